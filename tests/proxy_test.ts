/**
 * Connecting through proxies (PuTTY's Proxy settings and -proxycmd), ours beside PuTTY 0.78's
 * plink with the same saved session: a local proxy command (socat), OpenSSH's `ssh -D` as a real
 * SOCKS 4A and 5 server, and a small HTTP CONNECT proxy with Basic authentication started here.
 */

import assert from "node:assert/strict";
import { freePort, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { acceptsTcp, collect, runOurs, runReal, spawn, waitFor } from "./fixtures/tools.ts";
import { saveSession } from "../lib/config/settings_file.ts";
import { defaultPuttyConfig, type PuttyConfig } from "../lib/config/types.ts";
import { formatProxyCommand, proxyFor } from "../lib/transport/proxy.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function auth(s: Sshd): string[] {
  return ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk, "-l", s.user];
}

/** Saves session `name` with these proxy settings in the server's PuTTY directory. */
function proxySession(s: Sshd, name: string, proxy: Partial<PuttyConfig>): void {
  saveSession(
    name,
    { ...defaultPuttyConfig(), ...proxy },
    (n) => n === "PUTTYDIR" ? s.env.PUTTYDIR : undefined,
  );
}

/** Runs ours and PuTTY's plink, with the same options, to `host` at the server's port. */
async function both(s: Sshd, host: string, command: string, options: string[]) {
  const args = [...auth(s), ...options, "-P", String(s.port), host, command];
  const [ours, real] = await Promise.all([
    runOurs("plink", args, { env: s.env }),
    runReal("plink", args, { env: s.env }),
  ]);
  return { ours, real };
}

Deno.test(
  "proxies: a local command, SOCKS 4A and 5 (OpenSSH's -D), HTTP CONNECT",
  opts,
  async (t) => {
    const s = await startSshd();
    try {
      await t.step(
        "-proxycmd: the command carries the connection; %host and %port filled in",
        async () => {
          const marks = `${s.dir}/proxycmd-ran`;
          const cmd =
            `echo "%host %port" >> ${marks}; echo proxy-says-hi >&2; exec socat - TCP:127.0.0.1:%port`;
          const { ours, real } = await both(s, "far.example", "echo remote-ok", [
            "-v",
            "-proxycmd",
            cmd,
          ]);
          for (const r of [ours, real]) {
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, "remote-ok\n");
            assert.match(
              r.stderr,
              /^Leaving host lookup to proxy of "far\.example" \(for SSH connection\)$/m,
            );
            assert.match(
              r.stderr,
              // (PuTTY's log shows the command's quotes escaped.)
              new RegExp(`^Starting local proxy command: echo \\\\?"far\\.example ${s.port}`, "m"),
            );
            assert.match(r.stderr, /^proxy: proxy-says-hi$/m);
          }
          assert.equal(await Deno.readTextFile(marks), `far.example ${s.port}\n`.repeat(2));
        },
      );

      await t.step("-proxycmd is not used for this machine itself, as in PuTTY", async () => {
        const marks = `${s.dir}/proxycmd-local`;
        const cmd = `touch ${marks}; exec socat - TCP:127.0.0.1:%port`;
        const { ours, real } = await both(s, s.host, "echo direct", ["-proxycmd", cmd]);
        assert.equal(ours.stdout, "direct\n", ours.stderr);
        assert.equal(real.stdout, "direct\n", real.stderr);
        assert.throws(() => Deno.statSync(marks), Deno.errors.NotFound);
      });

      await t.step("a proxy command that gives up: PuTTY's one line, exit 1", async () => {
        const { ours, real } = await both(s, "far.example", "true", [
          "-proxycmd",
          "echo cannot reach %host >&2; exit 3",
        ]);
        assert.equal(ours.code, 1);
        assert.equal(ours.stderr, real.stderr);
        assert.equal(
          ours.stderr,
          "FATAL ERROR: Remote side unexpectedly closed network connection\n",
        );
      });

      // OpenSSH's dynamic forwarding is a SOCKS 4, 4A and 5 server.
      const socksPort = freePort();
      const ssh = spawn("ssh", [
        "-N",
        "-D",
        `127.0.0.1:${socksPort}`,
        "-i",
        s.userKey,
        "-p",
        String(s.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        `${s.user}@${s.host}`,
      ]);
      try {
        await waitFor(() => acceptsTcp(socksPort), 15000, "ssh -D");
        for (const [type, version] of [["socks5", 5], ["socks4", 4]] as const) {
          await t.step(`SOCKS ${version} proxy (a saved session, ProxyLocalhost on)`, async () => {
            proxySession(s, type, {
              proxyType: type,
              proxyHost: "127.0.0.1",
              proxyPort: socksPort,
              proxyLocalhost: true,
            });
            const { ours, real } = await both(s, "localhost", "echo via-$SSH_CONNECTION", [
              "-v",
              "-load",
              type,
            ]);
            for (const r of [ours, real]) {
              assert.equal(r.code, 0, r.stderr);
              // The server sees the connection come from the proxy (ssh -D), not from us.
              assert.match(r.stdout, /^via-127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+$/m);
            }
            assert.match(
              ours.stderr,
              new RegExp(
                `Connecting to SOCKS ${version} proxy at 127\\.0\\.0\\.1 port ${socksPort}`,
              ),
            );
          });
        }
        await t.step("an excluded host is reached directly", async () => {
          proxySession(s, "excluded", {
            proxyType: "socks5",
            proxyHost: "127.0.0.1",
            proxyPort: freePort(), // nothing listens: a proxied attempt would fail
            proxyLocalhost: true,
            proxyExcludeList: "example.org, 127.0.*",
          });
          const { ours, real } = await both(s, s.host, "echo direct", ["-load", "excluded"]);
          assert.equal(ours.stdout, "direct\n", ours.stderr);
          assert.equal(real.stdout, "direct\n", real.stderr);
        });
        await t.step("a SOCKS proxy that isn't there: a clear error, exit 1", async () => {
          proxySession(s, "nosocks", {
            proxyType: "socks5",
            proxyHost: "127.0.0.1",
            proxyPort: freePort(),
            proxyLocalhost: true,
          });
          const { ours, real } = await both(s, s.host, "true", ["-load", "nosocks"]);
          assert.equal(ours.code, 1);
          assert.equal(real.code, 1);
          assert.match(ours.stderr, /^FATAL ERROR: Proxy error: Connection refused\n$/);
        });
      } finally {
        ssh.kill("SIGTERM");
        await collect(ssh);
      }

      await t.step("HTTP CONNECT proxy; Basic authentication", async () => {
        const open = httpConnectProxy();
        const closed = httpConnectProxy({ user: "user", password: "secret" });
        try {
          const settings = {
            proxyType: "http" as const,
            proxyHost: "127.0.0.1",
            proxyLocalhost: true,
          };
          proxySession(s, "http-open", { ...settings, proxyPort: open.port });
          const via = await both(s, s.host, "echo via-http", ["-load", "http-open"]);
          assert.equal(via.ours.stdout, "via-http\n", via.ours.stderr);
          assert.equal(via.real.stdout, "via-http\n", via.real.stderr);
          assert.deepEqual(open.seen, [`127.0.0.1:${s.port}`, `127.0.0.1:${s.port}`]);
          // (PuTTY 0.78 asks without credentials first and then stalls on this proxy's 407, so
          // only ours, which sends them at once, is run against it.)
          const withAuth = { ...settings, proxyPort: closed.port, proxyUsername: "user" };
          proxySession(s, "http-good", { ...withAuth, proxyPassword: "secret" });
          proxySession(s, "http-bad", { ...withAuth, proxyPassword: "wrong" });
          const good = await runOurs("plink", [
            ...auth(s),
            "-load",
            "http-good",
            "-P",
            String(s.port),
            s.host,
            "echo ok",
          ], { env: s.env });
          assert.equal(good.stdout, "ok\n", good.stderr);
          const bad = await runOurs("plink", [
            ...auth(s),
            "-load",
            "http-bad",
            "-P",
            String(s.port),
            s.host,
            "true",
          ], { env: s.env });
          assert.equal(bad.code, 1);
          assert.equal(bad.stderr, "FATAL ERROR: Proxy error: 407 Proxy Authentication Required\n");
          assert.deepEqual(closed.seen, [`127.0.0.1:${s.port}`]);
        } finally {
          open.close();
          closed.close();
        }
      });
    } finally {
      await s.stop();
    }
  },
);

/**
 * An HTTP proxy that only does CONNECT, for anyone or only with these credentials (Basic);
 * `seen` lists the targets it joined.
 */
function httpConnectProxy(credentials?: { user: string; password: string }) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const serve = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(4096);
    const say = (text: string) => conn.write(new TextEncoder().encode(text));
    let head = "";
    // Requests on one connection until one is authorised (a client may first try without).
    for (;;) {
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return conn.close();
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      const end = head.indexOf("\r\n\r\n") + 4;
      const request = head.slice(0, end);
      head = head.slice(end);
      const target = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(request)?.[1];
      if (!target) {
        await say("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return conn.close();
      }
      const given = /^Proxy-Authorization: Basic (\S+)\r$/mi.exec(request)?.[1];
      if (credentials && given !== btoa(`${credentials.user}:${credentials.password}`)) {
        await say(
          "HTTP/1.1 407 Proxy Authentication Required\r\n" +
            'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n',
        );
        continue;
      }
      const at = target.lastIndexOf(":");
      const upstream = await Deno.connect({
        hostname: target.slice(0, at),
        port: Number(target.slice(at + 1)),
      });
      seen.push(target);
      await say("HTTP/1.1 200 Connection established\r\n\r\n");
      await Promise.allSettled([
        conn.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(conn.writable),
      ]);
      return;
    }
  };
  (async () => {
    for await (const conn of listener) serve(conn).catch(() => {});
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, seen, close: () => listener.close() };
}

Deno.test("proxy command formatting and which hosts are proxied, as PuTTY's", () => {
  const cfg = { proxyHost: "ph", proxyPort: 3128, proxyUsername: "u", proxyPassword: "p" };
  assert.equal(
    formatProxyCommand(
      "nc %host %port %% %user:%pass@%proxyhost:%proxyport %x \\%\\\\ \\x41\\xZZ\\n",
      "h",
      22,
      cfg,
    ),
    "nc h 22 % u:p@ph:3128 %x %\\ A\\xZZ\n",
  );
  assert.equal(formatProxyCommand("%HOST:%Port trailing\\", "h", 2, cfg), "h:2 trailing\\");
  const base = {
    ...defaultPuttyConfig(),
    proxyType: "socks5" as const,
  };
  assert.equal(proxyFor(base, "example.org"), true);
  assert.equal(proxyFor({ ...base, proxyType: "none" }, "example.org"), false);
  assert.equal(proxyFor(base, "localhost"), false);
  assert.equal(proxyFor(base, "127.0.0.1"), false);
  assert.equal(proxyFor({ ...base, proxyLocalhost: true }, "127.0.0.1"), true);
  const ex = { ...base, proxyExcludeList: "*.corp.example, 10.1.*,direct.example.org" };
  assert.equal(proxyFor(ex, "db.corp.example"), false);
  assert.equal(proxyFor(ex, "10.1.2.3"), false);
  assert.equal(proxyFor(ex, "DIRECT.example.org"), false);
  assert.equal(proxyFor(ex, "other.example.org"), true);
});
