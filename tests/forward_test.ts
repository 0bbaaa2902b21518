/**
 * Port forwarding (-L, -R, -D) and agent forwarding (-A) end to end, against a real
 * OpenSSH sshd on loopback, real TCP peers started here (an echo server, a tiny HTTP server),
 * curl as the SOCKS client, a real ssh-agent, and PuTTY 0.78's own plink as upstream and
 * downstream of shared connections.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startAgent } from "./fixtures/agent.ts";
import { freePort, type Sshd, startSshd } from "./fixtures/sshd.ts";
import {
  acceptsTcp,
  collect,
  runOurs,
  runReal,
  type RunResult,
  spawn,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";
import { saveSession } from "../lib/config/settings_file.ts";
import { defaultPuttyConfig } from "../lib/config/types.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { connectionId } from "../lib/share/socket_path.ts";
import { concatBytes } from "../lib/ssh/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function target(s: Sshd): string[] {
  return ["-P", String(s.port), `${s.user}@${s.host}`];
}

function auth(s: Sshd): string[] {
  return ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk];
}

/** A TCP echo server on 127.0.0.1: whatever a client sends comes back, then EOF after its EOF. */
function echoServer(): { port: number; close(): void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) c.readable.pipeTo(c.writable).catch(() => {});
  })().catch(() => {});
  return { port: (l.addr as Deno.NetAddr).port, close: () => l.close() };
}

/** A tiny HTTP server on 127.0.0.1 answering every request with `body`. */
function httpServer(body: string): { port: number; close(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(body),
  );
  return { port: server.addr.port, close: () => server.shutdown() };
}

/** A loopback port nothing listens on. */
function closedPort(): number {
  return freePort();
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(b.subarray(at, at + 65536));
  return b;
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  return new Uint8Array(await new Response(conn.readable).arrayBuffer());
}

/** Sends `data` to host:port, half-closes, and returns everything that comes back. */
async function roundTrip(port: number, data: Uint8Array, hostname = "127.0.0.1") {
  const conn = await Deno.connect({ hostname, port });
  const back = readAll(conn);
  let at = 0;
  while (at < data.length) at += await conn.write(data.subarray(at, at + 65536));
  await conn.closeWrite();
  return await back;
}

/** Waits until something accepts TCP connections on host:port. */
async function waitListening(port: number, hostname = "127.0.0.1") {
  await waitFor(() => acceptsTcp(port, hostname), 20000, `a listener on ${hostname}:${port}`);
}

/** The local addresses listening on TCP `port` ("127.0.0.1:80", "[::1]:80"), sorted (ss). */
async function listeningOn(port: number): Promise<string[]> {
  const out = await new Deno.Command("ss", { args: ["-Hltn"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((line) => line.trim().split(/\s+/)[3])
    .filter((a) => a?.endsWith(`:${port}`)).sort();
}

function ipv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

async function stop(child: Deno.ChildProcess) {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  return await collect(child);
}

/**
 * Runs our plink with `args` while `body` runs, then ends it with `finish` (SIGTERM by default)
 * and returns its output; a failing body gets plink's stderr added to its message.
 */
async function whilePlinkRuns(
  s: Sshd,
  args: string[],
  body: () => Promise<void>,
  finish: (child: Deno.ChildProcess) => Promise<RunResult> = stop,
  env: Record<string, string> = s.env,
): Promise<RunResult> {
  const child = spawnOurs("plink", args, { env });
  let failure: unknown;
  try {
    await body();
  } catch (e) {
    failure = e;
  }
  const r = await finish(child);
  if (failure instanceof Error) failure.message += `\nplink's stderr:\n${r.stderr}`;
  if (failure) throw failure;
  return r;
}

Deno.test(
  "-L: data intact over one connection and 50 at once, on 127.0.0.1 and ::1",
  opts,
  async () => {
    const s = await startSshd();
    const echo = echoServer();
    const port = freePort();
    try {
      const r = await whilePlinkRuns(s, [
        ...auth(s),
        "-v",
        "-N",
        "-L",
        `${port}:127.0.0.1:${echo.port}`,
        ...target(s),
      ], async () => {
        await waitListening(port);
        const big = randomBytes(4 * 1024 * 1024);
        assert.deepEqual(await roundTrip(port, big), big);

        const many = Array.from({ length: 50 }, (_, i) => randomBytes(64 * 1024 + i * 997));
        const back = await Promise.all(many.map((d) => roundTrip(port, d)));
        for (let i = 0; i < many.length; i++) assert.deepEqual(back[i], many[i], `connection ${i}`);

        if (ipv6Loopback()) {
          const d = randomBytes(100000);
          assert.deepEqual(await roundTrip(port, d, "::1"), d);
        }
      });
      assert.match(
        r.stderr,
        new RegExp(`Local port ${port} forwarding to 127\\.0\\.0\\.1:${echo.port}`),
      );
      assert.match(
        r.stderr,
        /Opening connection to 127\.0\.0\.1:\d+ for forwarding from 127\.0\.0\.1:\d+/,
      );
    } finally {
      echo.close();
      await s.stop();
    }
  },
);

/** A TCP server on 127.0.0.1 that reads each connection to its end and answers its SHA-256. */
function digestServer(): { port: number; close(): void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) {
      (async () => {
        const parts: Uint8Array[] = [];
        for (let b = new Uint8Array(65536), n; (n = await c.read(b)) !== null;) {
          parts.push(b.slice(0, n));
        }
        await c.write(await sha256(concatBytes(parts)));
      })().catch(() => {}).finally(() => c.close());
    }
  })().catch(() => {});
  return { port: (l.addr as Deno.NetAddr).port, close: () => l.close() };
}

async function sha256(d: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", d as Uint8Array<ArrayBuffer>));
}

Deno.test(
  "-L: large uploads arrive intact, alone and several at once, across the server's re-keys",
  opts,
  async () => {
    // Data packets are made where they lie and their buffers reused (lib/ssh/framed_payload.ts):
    // connections at once share those buffers, and a re-key queues packets in between.
    const s = await startSshd({ config: ["RekeyLimit 4M"] });
    const sink = digestServer();
    const port = freePort();
    try {
      await whilePlinkRuns(s, [
        ...auth(s),
        "-N",
        "-L",
        `${port}:127.0.0.1:${sink.port}`,
        ...target(s),
      ], async () => {
        await waitListening(port);
        const big = randomBytes(32 * 1024 * 1024);
        assert.deepEqual(await roundTrip(port, big), await sha256(big));
        const several = Array.from(
          { length: 4 },
          (_, i) => randomBytes(8 * 1024 * 1024 + i * 4099),
        );
        const back = await Promise.all(several.map((d) => roundTrip(port, d)));
        for (let i = 0; i < several.length; i++) {
          assert.deepEqual(back[i], await sha256(several[i]), `connection ${i}`);
        }
      });
    } finally {
      sink.close();
      await s.stop();
    }
  },
);

Deno.test(
  "-L: downloads and uploads at once arrive intact across the server's re-keys",
  opts,
  async () => {
    // Downloads keep us sending WINDOW_ADJUST, uploads send framed data, and re-keys come every
    // few MiB: one such message sent as a re-key ended went out without its packet header
    // (tests/ssh2_internals_test.ts has that moment exactly; here it came up only under load).
    const s = await startSshd({ config: ["RekeyLimit 4M"] });
    const data = randomBytes(16 * 1024 * 1024);
    const source = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    (async () => {
      for await (const c of source) {
        (async () => {
          for (let at = 0; at < data.length;) at += await c.write(data.subarray(at, at + 65536));
        })().catch(() => {}).finally(() => c.close());
      }
    })().catch(() => {});
    const sink = digestServer();
    const [down, up] = [freePort(), freePort()];
    try {
      await whilePlinkRuns(s, [
        ...auth(s),
        "-N",
        "-L",
        `${down}:127.0.0.1:${(source.addr as Deno.NetAddr).port}`,
        "-L",
        `${up}:127.0.0.1:${sink.port}`,
        ...target(s),
      ], async () => {
        await waitListening(down);
        await waitListening(up);
        const want = await sha256(data);
        const uploads = Array.from({ length: 4 }, (_, i) => randomBytes(8 * 1024 * 1024 + i));
        for (let round = 0; round < 2; round++) {
          const [got, back] = await Promise.all([
            Promise.all(Array.from({ length: 10 }, async () => {
              const c = await Deno.connect({ hostname: "127.0.0.1", port: down });
              return await sha256(await readAll(c));
            })),
            Promise.all(uploads.map((d) => roundTrip(up, d))),
          ]);
          for (const [i, h] of got.entries()) assert.deepEqual(h, want, `round ${round}, ${i}`);
          for (const [i, h] of back.entries()) {
            assert.deepEqual(h, await sha256(uploads[i]), `round ${round}, upload ${i}`);
          }
        }
      });
    } finally {
      source.close();
      sink.close();
      await s.stop();
    }
  },
);

Deno.test("-L/-D listen on loopback only unless a bind address is given", opts, async () => {
  const s = await startSshd();
  const [l, d, explicit] = [freePort(), freePort(), freePort()];
  try {
    await whilePlinkRuns(s, [
      ...auth(s),
      "-N",
      "-L",
      `${l}:127.0.0.1:9`,
      "-D",
      String(d),
      "-L",
      `127.0.0.1:${explicit}:127.0.0.1:9`,
      ...target(s),
    ], async () => {
      await waitListening(explicit);
      const loopback = (p: number) =>
        ipv6Loopback() ? [`127.0.0.1:${p}`, `[::1]:${p}`].sort() : [`127.0.0.1:${p}`];
      assert.deepEqual(await listeningOn(l), loopback(l));
      assert.deepEqual(await listeningOn(d), loopback(d));
      assert.deepEqual(await listeningOn(explicit), [`127.0.0.1:${explicit}`]);
    });
  } finally {
    await s.stop();
  }
});

Deno.test(
  "saved LocalPortAcceptAll / RemotePortAcceptAll: every interface, as PuTTY",
  opts,
  async () => {
    // GatewayPorts clientspecified lets the server honour the address we ask for (default: no).
    const s = await startSshd({ config: ["GatewayPorts clientspecified"] });
    const dir = s.env.PUTTYDIR;
    saveSession("open", {
      ...defaultPuttyConfig(),
      localPortAcceptAll: true,
      remotePortAcceptAll: true,
    }, (name) => name === "PUTTYDIR" ? dir : undefined);
    const [l, r, rl] = [freePort(), freePort(), freePort()];
    try {
      await whilePlinkRuns(s, [
        "-load",
        "open",
        ...auth(s),
        "-N",
        "-L",
        `${l}:127.0.0.1:9`,
        "-R",
        `${r}:127.0.0.1:9`,
        "-R",
        `localhost:${rl}:127.0.0.1:9`,
        ...target(s),
      ], async () => {
        await waitListening(l);
        await waitFor(async () => (await listeningOn(rl)).length > 0, 20000, "-R listeners");
        await waitFor(async () => (await listeningOn(r)).length > 0, 20000, "-R listeners");
        const any = (p: number) => ipv6Loopback() ? [`*:${p}`] : [`0.0.0.0:${p}`];
        assert.deepEqual(await listeningOn(l), any(l));
        // "" asks the server for every interface; an explicit address still wins.
        assert.deepEqual(
          await listeningOn(r),
          ipv6Loopback() ? [`0.0.0.0:${r}`, `[::]:${r}`] : [`0.0.0.0:${r}`],
        );
        assert.deepEqual(
          await listeningOn(rl),
          ipv6Loopback() ? [`127.0.0.1:${rl}`, `[::1]:${rl}`] : [`127.0.0.1:${rl}`],
        );
      });
    } finally {
      await s.stop();
    }
  },
);

Deno.test(
  "a refused target: PuTTY's -v line; the session and other forwardings carry on",
  opts,
  async () => {
    const s = await startSshd();
    const echo = echoServer();
    const [bad, good] = [freePort(), freePort()];
    const mark = join(s.dir, "go");
    try {
      // The remote command waits for our say-so, so the session is provably alive throughout.
      const r = await whilePlinkRuns(s, [
        ...auth(s),
        "-v",
        "-L",
        `${bad}:127.0.0.1:${closedPort()}`,
        "-L",
        `${good}:127.0.0.1:${echo.port}`,
        ...target(s),
        `while [ ! -e ${mark} ]; do sleep 0.05; done; echo alive`,
      ], async () => {
        await waitListening(bad);
        // The connection to the refused target is just closed.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: bad });
        assert.equal((await readAll(conn)).length, 0);
        const d = randomBytes(300000);
        assert.deepEqual(await roundTrip(good, d), d);
      }, async (child) => {
        await Deno.writeTextFile(mark, "");
        return await collect(child);
      });
      assert.equal(r.stdout, "alive\n");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /Forwarded connection refused by remote: Connect failed \[Connection refused\]/,
      );
    } finally {
      echo.close();
      await s.stop();
    }
  },
);

Deno.test(
  "a port in use and a refused -R are one clear line each; the rest work",
  opts,
  async () => {
    const s = await startSshd();
    const echo = echoServer();
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const busyPort = (busy.addr as Deno.NetAddr).port;
    const free = freePort();
    const mark = join(s.dir, "go");
    try {
      const r = await whilePlinkRuns(s, [
        ...auth(s),
        "-L",
        `${busyPort}:127.0.0.1:${echo.port}`,
        "-R",
        `999:127.0.0.1:${echo.port}`, // a privileged port: sshd refuses it for a normal user
        "-L",
        `${free}:127.0.0.1:${echo.port}`,
        ...target(s),
        `while [ ! -e ${mark} ]; do sleep 0.05; done; echo alive`,
      ], async () => {
        await waitListening(free);
        const d = randomBytes(50000);
        assert.deepEqual(await roundTrip(free, d), d);
      }, async (child) => {
        await Deno.writeTextFile(mark, "");
        return await collect(child);
      });
      assert.equal(r.stdout, "alive\n");
      assert.equal(r.code, 0);
      assert.deepEqual(r.stderr.trimEnd().split("\n").sort(), [
        `Local port ${busyPort} forwarding to 127.0.0.1:${echo.port} failed: Address already in use`,
        "Remote port forwarding from 999 refused",
      ]);
    } finally {
      busy.close();
      echo.close();
      await s.stop();
    }
  },
);

Deno.test(
  "-R: the server's port reaches our echo server; a refused target is logged",
  opts,
  async () => {
    const s = await startSshd();
    const echo = echoServer();
    const [rport, rbad] = [freePort(), freePort()];
    try {
      const r = await whilePlinkRuns(s, [
        ...auth(s),
        "-v",
        "-N",
        "-R",
        `${rport}:127.0.0.1:${echo.port}`,
        "-R",
        `${rbad}:127.0.0.1:${closedPort()}`,
        ...target(s),
      ], async () => {
        // sshd listens on the loopback side of "the remote host", which is this machine.
        await waitListening(rport);
        const d = randomBytes(2 * 1024 * 1024);
        assert.deepEqual(await roundTrip(rport, d), d);
        const many = Array.from({ length: 20 }, () => randomBytes(100000));
        const back = await Promise.all(many.map((x) => roundTrip(rport, x)));
        for (let i = 0; i < many.length; i++) assert.deepEqual(back[i], many[i]);
        // A program on the remote side connecting to it.
        const remote = await runOurs("plink", [
          ...auth(s),
          ...target(s),
          `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${rport}; echo ping-from-remote >&3; head -1 <&3'`,
        ], { env: s.env });
        assert.equal(remote.stdout, "ping-from-remote\n", remote.stderr);

        await waitListening(rbad);
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: rbad });
        assert.equal((await readAll(conn)).length, 0);
      });
      assert.match(r.stderr, new RegExp(`Remote port forwarding from ${rport} enabled`));
      assert.match(r.stderr, new RegExp(`Received remote port localhost:${rport} open request`));
      assert.match(r.stderr, /Port open failed: Connection refused/);
    } finally {
      echo.close();
      await s.stop();
    }
  },
);

/** curl through a SOCKS proxy; returns curl's exit code, stdout and stderr. */
async function curl(args: string[]) {
  return await runReal("curl", ["-sS", "--max-time", "20", ...args]);
}

Deno.test(
  "-D: curl through SOCKS 5, 5 with host names, 4 and 4a; refused targets are SOCKS errors",
  opts,
  async () => {
    const s = await startSshd();
    const web = httpServer("hello through socks\n");
    const port = freePort();
    try {
      const r = await whilePlinkRuns(
        s,
        [...auth(s), "-v", "-N", "-D", String(port), ...target(s)],
        async () => {
          await waitListening(port);
          const proxy = `127.0.0.1:${port}`;
          for (
            const [flag, host] of [
              ["--socks5", "127.0.0.1"],
              ["--socks5-hostname", "localhost"],
              ["--socks4", "127.0.0.1"],
              ["--socks4a", "localhost"],
            ]
          ) {
            const r = await curl([flag, proxy, `http://${host}:${web.port}/`]);
            assert.equal(r.stdout, "hello through socks\n", `${flag}: ${r.stderr}`);
            assert.equal(r.code, 0);
          }
          const all = await Promise.all(
            Array.from(
              { length: 20 },
              () => curl(["--socks5", proxy, `http://127.0.0.1:${web.port}/`]),
            ),
          );
          for (const r of all) assert.equal(r.stdout, "hello through socks\n", r.stderr);

          const dead = closedPort();
          const r5 = await curl(["--socks5", proxy, `http://127.0.0.1:${dead}/`]);
          assert.equal(r5.code, 97); // CURLE_PROXY: the proxy refused
          assert.match(r5.stderr, /SOCKS5.*\(5\)/); // reply 5: connection refused
          const r4 = await curl(["--socks4", proxy, `http://127.0.0.1:${dead}/`]);
          assert.equal(r4.code, 97);
          assert.match(r4.stderr, /SOCKS4.*\(91\)/); // 0x5B: request rejected or failed
          const rn = await curl(["--socks5-hostname", proxy, `http://no-such-host.invalid:80/`]);
          assert.equal(rn.code, 97);
          assert.match(rn.stderr, /SOCKS5.*\(4\)/); // reply 4: host unreachable

          // Still serving afterwards.
          const again = await curl(["--socks5", proxy, `http://127.0.0.1:${web.port}/`]);
          assert.equal(again.stdout, "hello through socks\n");
        },
      );
      assert.match(r.stderr, new RegExp(`Local port ${port} SOCKS dynamic forwarding`));
      assert.match(
        r.stderr,
        /Opening connection to localhost:\d+ for forwarding from 127\.0\.0\.1/,
      );
      assert.match(r.stderr, /Forwarded connection refused by remote: Connect failed/);
    } finally {
      await web.close();
      await s.stop();
    }
  },
);

function shareId(s: Sshd): string {
  return connectionId(s.host, s.port, s.user);
}

/** `plink -share -N` (ours or PuTTY's) holding the connection; resolves once it serves. */
async function startUpstream(
  s: Sshd,
  which: "ours" | "real",
  extra: string[] = [],
  env: Record<string, string> = s.env,
) {
  const args = ["-share", ...auth(s), ...extra, "-N", ...target(s)];
  const child = which === "ours"
    ? spawnOurs("plink", args, { env })
    : spawn("plink", args, { env });
  await waitFor(() => upstreamExists(shareId(s)), 20000, `${which} upstream`);
  return child;
}

async function downstreamForwardings(s: Sshd, upstream: "ours" | "real") {
  const up = await startUpstream(s, upstream);
  const echo = echoServer();
  const web = httpServer("socks via downstream\n");
  const [l, d, r] = [freePort(), freePort(), freePort()];
  try {
    // No key, no host key: a downstream needs neither.
    const dr = await whilePlinkRuns(s, [
      "-share",
      "-batch",
      "-v",
      "-N",
      "-L",
      `${l}:127.0.0.1:${echo.port}`,
      "-D",
      String(d),
      "-R",
      `${r}:127.0.0.1:${echo.port}`,
      ...target(s),
    ], async () => {
      await waitListening(l);
      const data = randomBytes(1024 * 1024);
      assert.deepEqual(await roundTrip(l, data), data);
      const many = Array.from({ length: 20 }, () => randomBytes(50000));
      const back = await Promise.all(many.map((x) => roundTrip(l, x)));
      for (let i = 0; i < many.length; i++) assert.deepEqual(back[i], many[i]);

      await waitListening(d);
      const c = await curl([
        "--socks5-hostname",
        `127.0.0.1:${d}`,
        `http://localhost:${web.port}/`,
      ]);
      assert.equal(c.stdout, "socks via downstream\n", c.stderr);

      // PuTTY 0.78's upstream grants a downstream's -R but then answers the server's
      // forwarded-tcpip open for it with a bogus CHANNEL_OPEN_FAILURE (channel 0), and sshd
      // drops the whole connection; its own plink downstream fails identically. So connections
      // over -R are only made through our upstream.
      if (upstream === "ours") {
        await waitListening(r);
        const x = randomBytes(500000);
        assert.deepEqual(await roundTrip(r, x), x);
      } else {
        await waitFor(async () => (await listeningOn(r)).length > 0, 20000, "the -R listener");
      }
      assert.equal(await s.authCount(), 1, "everything went through the one upstream");
    });
    assert.match(dr.stderr, /Using existing shared connection/);
    assert.match(dr.stderr, new RegExp(`Remote port forwarding from ${r} enabled`));
  } finally {
    await stop(up);
    echo.close();
    await web.close();
  }
}

Deno.test("-L/-R/-D from a downstream of our upstream", opts, async () => {
  const s = await startSshd();
  try {
    await downstreamForwardings(s, "ours");
  } finally {
    await s.stop();
  }
});

Deno.test(
  "-L/-D (and the -R request) from a downstream of PuTTY's own upstream",
  opts,
  async () => {
    const s = await startSshd();
    try {
      await downstreamForwardings(s, "real");
    } finally {
      await s.stop();
    }
  },
);

Deno.test("a downstream's -R ends with it; the upstream carries on", opts, async () => {
  const s = await startSshd();
  const up = await startUpstream(s, "ours");
  const echo = echoServer();
  const r = freePort();
  try {
    const ds = spawnOurs("plink", [
      "-share",
      "-batch",
      "-N",
      "-R",
      `${r}:127.0.0.1:${echo.port}`,
      ...target(s),
    ], {
      env: s.env,
    });
    await waitListening(r);
    await stop(ds);
    // The upstream cancels what the downstream left behind: the server stops listening.
    await waitFor(
      async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port: r })).close();
          return false;
        } catch {
          return true;
        }
      },
      10000,
      "the server to stop listening",
    );
    const again = await runOurs("plink", ["-share", "-batch", ...target(s), "echo still-here"], {
      env: s.env,
    });
    assert.equal(again.stdout, "still-here\n");
  } finally {
    await stop(up);
    echo.close();
    await s.stop();
  }
});

/** The key's fingerprint as `ssh-add -l` lists it. */
async function keyFingerprint(s: Sshd): Promise<string> {
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-lf", `${s.userKey}.pub`],
    stdout: "piped",
  })
    .output();
  return new TextDecoder().decode(out.stdout).split(" ")[1];
}

Deno.test(
  "-A: the remote ssh-add -l lists our agent's key, directly and through downstreams",
  opts,
  async () => {
    const s = await startSshd();
    const agent = await startAgent(s);
    const env = { ...s.env, SSH_AUTH_SOCK: agent.sock };
    const fp = await keyFingerprint(s);
    const hk = ["-batch", "-hostkey", s.hostKeyFingerprint];
    try {
      const direct = await runOurs("plink", [...hk, "-A", ...target(s), "ssh-add -l"], { env });
      assert.equal(direct.code, 0, direct.stderr);
      assert.match(
        direct.stdout,
        new RegExp(`${fp.replace(/[+/]/g, "\\$&")} pk-test \\(ED25519\\)`),
      );

      const without = await runOurs("plink", [...hk, ...target(s), "ssh-add -l"], { env });
      assert.equal(without.code, 2, "no agent without -A");

      // Upstream with -A: downstreams (ours and PuTTY's) get its agent.
      const up = await startUpstream(s, "ours", ["-A"], env);
      try {
        const ours = await runOurs(
          "plink",
          ["-share", "-batch", "-A", ...target(s), "ssh-add -l"],
          { env },
        );
        assert.equal(ours.code, 0, ours.stderr);
        assert.match(ours.stdout, /pk-test \(ED25519\)/);
        const real = await runReal(
          "plink",
          ["-share", "-batch", "-A", ...target(s), "ssh-add -l"],
          { env },
        );
        assert.equal(real.code, 0, real.stderr);
        assert.match(real.stdout, /pk-test \(ED25519\)/);
      } finally {
        await stop(up);
      }
      await waitFor(async () => !(await upstreamExists(shareId(s))), 10000, "upstream gone");

      // Upstream without -A: it refuses a downstream's request, as PuTTY does.
      const up2 = await startUpstream(s, "ours", [], env);
      try {
        const ds = await runOurs("plink", [
          "-share",
          "-batch",
          "-A",
          "-v",
          ...target(s),
          "ssh-add -l",
        ], { env });
        assert.equal(ds.code, 2, ds.stdout);
        assert.match(ds.stderr, /Agent forwarding refused/);
      } finally {
        await stop(up2);
      }
    } finally {
      await agent.stop();
      await s.stop();
    }
  },
);

Deno.test("-A through PuTTY's own upstream", opts, async () => {
  const s = await startSshd();
  const agent = await startAgent(s);
  const env = { ...s.env, SSH_AUTH_SOCK: agent.sock };
  const up = await startUpstream(s, "real", ["-A"], env);
  try {
    const r = await runOurs("plink", ["-share", "-batch", "-A", ...target(s), "ssh-add -l"], {
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pk-test \(ED25519\)/);
  } finally {
    await stop(up);
    await agent.stop();
    await s.stop();
  }
});
