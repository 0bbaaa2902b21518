/**
 * Where a user meets PuTTY's behaviour directly, ours next to PuTTY's own tools (putty-tools)
 * against the same real OpenSSH sshd: bracketed IPv6 literals, unusable -i key files, psftp's
 * `open` after `close`, plink -s without a name, the usage texts and their exit status, SIGTERM's
 * exit status, a refused main channel, and pscp's statistics on a pipe.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { connectionId } from "../lib/share/socket_path.ts";
import { type Sshd, startSshd } from "./fixtures/sshd.ts";
import { stopUpstream } from "./fixtures/upstream.ts";
import {
  collect,
  type RunOptions,
  runOurs,
  runReal,
  type RunResult,
  spawn,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Whether this machine has IPv6 loopback (sshd is then told to listen on [::1] too). */
function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Our tool and PuTTY's, run alike. */
async function both(
  tool: string,
  args: string[],
  o: RunOptions,
): Promise<{ ours: RunResult; real: RunResult }> {
  const [ours, real] = [await runOurs(tool, args, o), await runReal(tool, args, o)];
  return { ours, real };
}

/** Options that accept the server's host key without a cache and keep the agent out. */
function hostArgs(s: Sshd): string[] {
  return ["-batch", "-noagent", "-hostkey", s.hostKeyFingerprint, "-P", String(s.port)];
}

Deno.test("PuTTY parity against OpenSSH", opts, async (t) => {
  const ipv6 = hasIpv6Loopback();
  const s = await startSshd({ config: ipv6 ? ["ListenAddress [::1]"] : [] });
  const env = s.env;
  const key = ["-i", s.userKeyPpk];
  try {
    const files = await s.userDir("files");
    await Deno.writeTextFile(join(files, "hello.txt"), "hello\n");
    await Deno.chmod(join(files, "hello.txt"), 0o644);

    await t.step({
      name: "bracketed IPv6 literals connect, as PuTTY strips the brackets",
      ignore: !ipv6,
      fn: async () => {
        const plink = [...hostArgs(s), ...key];
        for (const target of [[`${s.user}@[::1]`], ["-l", s.user, "[::1]"]]) {
          const { ours, real } = await both("plink", [...plink, ...target, "echo v6"], { env });
          assert.equal(real.code, 0, real.stderr);
          assert.equal(ours.code, 0, ours.stderr);
          assert.equal(ours.stdout, "v6\n");
          assert.equal(ours.stderr, real.stderr);
        }

        const dest = await Deno.makeTempDir({ dir: s.dir });
        const source = `${s.user}@[::1]:${files}/hello.txt`;
        const copy = await runOurs("pscp", [...hostArgs(s), ...key, "-q", source, dest], { env });
        assert.equal(copy.code, 0, copy.stderr);
        assert.equal(await Deno.readTextFile(join(dest, "hello.txt")), "hello\n");

        const script = { env, stdin: `cd ${files}\nls hello.txt\nquit\n` };
        const { ours, real } = await both(
          "psftp",
          [...hostArgs(s), ...key, `${s.user}@[::1]`],
          script,
        );
        assert.equal(real.code, 0, real.stderr);
        assert.equal(ours.code, 0, ours.stderr);
        assert.match(ours.stdout, /hello\.txt/);
        assert.equal(ours.stdout, real.stdout);
        assert.equal(ours.stderr, real.stderr);

        // Sharing is keyed on the host without brackets, as PuTTY's: ours finds its upstream.
        const before = await s.authCount();
        const upstream = spawn("plink", [...plink, "-share", `${s.user}@[::1]`, "-N"], { env });
        try {
          const id = connectionId("::1", s.port, s.user);
          // PuTTY listens for downstreams before it has logged in.
          const ready = async () => await upstreamExists(id) && await s.authCount() > before;
          await waitFor(ready, 20000, "PuTTY's upstream for [::1]");
          const logins = await s.authCount();
          const shared = await runOurs("plink", ["-share", ...plink, `${s.user}@[::1]`, "echo s"], {
            env,
          });
          assert.equal(shared.code, 0, shared.stderr);
          assert.equal(shared.stdout, "s\n");
          assert.equal(await s.authCount(), logins, "no login of its own: a downstream");
        } finally {
          await stopUpstream(upstream);
        }
      },
    });

    await t.step({
      name: "an unusable -i key file is reported in PuTTY's words and -pw still logs in",
      ignore: !s.password,
      fn: async () => {
        const garbage = join(s.dir, "garbage.key");
        await Deno.writeFile(garbage, crypto.getRandomValues(new Uint8Array(300)));
        const corrupt = join(s.dir, "corrupt.ppk");
        const ppk = await Deno.readTextFile(s.userKeyPpk);
        await Deno.writeTextFile(corrupt, ppk.replace(/^Private-Lines: .*$/m, "Private-Lines: 9"));
        const pw = ["-pw", s.password!];
        const target = `${s.user}@${s.host}`;
        // The same line as PuTTY's, byte for byte.
        for (const file of ["/nonexistent/key.ppk", "/etc", garbage]) {
          const args = [...hostArgs(s), ...pw, "-i", file, target, "echo in"];
          const { ours, real } = await both("plink", args, { env });
          assert.equal(real.code, 0, real.stderr);
          assert.match(real.stderr, /^Unable to use key file ".+" \(.+\)\r\n$/);
          assert.equal(ours.stderr, real.stderr, file);
          assert.equal(ours.stdout, "in\n");
          assert.equal(ours.code, 0);
        }
        // A key file whose private part is broken: the reason is ours to word.
        const { ours, real } = await both(
          "plink",
          [...hostArgs(s), ...pw, "-i", corrupt, target, "echo in"],
          { env },
        );
        for (const r of [ours, real]) {
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stderr, /^Unable to load private key \(.+\)\r\n$/);
          assert.equal(r.stdout, "in\n");
        }

        const missing = ["-i", "/nonexistent/key.ppk"];
        const dest = await Deno.makeTempDir({ dir: s.dir });
        const scp = await both(
          "pscp",
          [...hostArgs(s), ...pw, ...missing, "-q", `${target}:${files}/hello.txt`, dest],
          { env },
        );
        assert.equal(scp.real.code, 0, scp.real.stderr);
        assert.equal(scp.ours.code, 0, scp.ours.stderr);
        assert.equal(scp.ours.stderr, scp.real.stderr);
        assert.equal(await Deno.readTextFile(join(dest, "hello.txt")), "hello\n");

        const sftp = await both("psftp", [...hostArgs(s), ...pw, ...missing, target], {
          env,
          stdin: `cd ${files}\nls hello.txt\nquit\n`,
        });
        assert.equal(sftp.real.code, 0, sftp.real.stderr);
        assert.equal(sftp.ours.code, 0, sftp.ours.stderr);
        assert.match(sftp.ours.stderr, /^Unable to use key file "\/nonexistent\/key\.ppk"/);
        assert.equal(sftp.ours.stderr, sftp.real.stderr);
        assert.equal(sftp.ours.stdout, sftp.real.stdout);
      },
    });

    await t.step(
      "psftp: `open host` after `close` keeps the command line's user name",
      async () => {
        const { ours, real } = await both(
          "psftp",
          [...hostArgs(s), ...key, `${s.user}@${s.host}`],
          {
            env,
            stdin: `close\nopen ${s.host}\ncd ${files}\nls hello.txt\nquit\n`,
          },
        );
        assert.equal(real.code, 0, real.stderr);
        assert.equal(ours.code, 0, ours.stderr);
        assert.equal((ours.stdout.match(/Remote working directory is/g) ?? []).length, 2);
        assert.match(ours.stdout, /hello\.txt/);
        assert.equal(ours.stdout, real.stdout);
        assert.equal(ours.stderr, real.stderr);
      },
    );

    await t.step("plink -s without a subsystem name, and -nc: as PuTTY's plink", async () => {
      const login = [...hostArgs(s), ...key, `${s.user}@${s.host}`];
      const sub = await both("plink", ["-s", ...login], { env });
      assert.equal(sub.real.code, 1);
      assert.match(sub.real.stderr, /FATAL ERROR: Server refused to start a shell\/command\n$/);
      assert.equal(sub.ours.code, sub.real.code);
      assert.equal(sub.ours.stderr, sub.real.stderr);
      // A named subsystem the server lacks: the same words.
      const none = await both("plink", ["-s", ...login, "no-such-subsystem"], { env });
      assert.equal(none.ours.code, none.real.code);
      assert.equal(none.ours.stderr, none.real.stderr);
      // -nc is not an interactive session: no "Using username" line.
      const nc = await both("plink", ["-nc", `${s.host}:${s.port}`, ...login], { env, stdin: "" });
      assert.match(nc.real.stdout, /^SSH-2\.0-/);
      assert.match(nc.ours.stdout, /^SSH-2\.0-/);
      assert.doesNotMatch(nc.real.stderr, /Using username/);
      assert.doesNotMatch(nc.ours.stderr, /Using username/);
    });

    await t.step("usage texts: PuTTY's options in PuTTY's order, and its exit status", async () => {
      for (const tool of ["plink", "pscp", "psftp"]) {
        const { ours, real } = await both(tool, ["--help"], { env });
        assert.equal(real.code, 1, tool);
        assert.equal(ours.code, real.code, tool);
        // Line 2 is the release; pscp and psftp add the sharing options PuTTY leaves out.
        const lines = (text: string) => text.split("\n").filter((_, i) => i !== 1);
        const ourLines = lines(ours.stdout);
        const theirs = lines(real.stdout);
        assert.deepEqual(ourLines.slice(0, theirs.length - 1), theirs.slice(0, -1), tool);
        const extra = ourLines.slice(theirs.length - 1).join("\n");
        if (tool === "plink") assert.equal(extra, "");
        else assert.match(extra, /^Connection sharing:\n {2}-share .*\n {2}-noshare .*\n$/);
      }
      assert.match((await runOurs("plink", ["--help"])).stdout, /-pwfile.*\n(.*\n)*.*-sshlog/);
    });

    await t.step("SIGTERM ends pscp and psftp mid-transfer with status 143", async () => {
      // 2 GiB, sparse: far more than can arrive before the signal.
      const huge = join(await s.userDir("huge"), "huge.bin");
      await Deno.writeFile(huge, new Uint8Array(0));
      await Deno.truncate(huge, 2 ** 31);
      const started = (dir: string) => () =>
        [...Deno.readDirSync(dir)].some((e) => Deno.statSync(join(dir, e.name)).size > 1 << 20);
      const login = [...hostArgs(s), ...key];
      for (const which of ["ours", "real"]) {
        for (const tool of ["pscp", "psftp"]) {
          const dest = await Deno.makeTempDir({ dir: s.dir });
          const args = tool === "pscp"
            ? [...login, "-q", `${s.user}@${s.host}:${huge}`, dest]
            : [...login, `${s.user}@${s.host}`];
          const o = { env, stdin: `lcd ${dest}\nget ${huge}\n` };
          const child = which === "ours" ? spawnOurs(tool, args, o) : spawn(tool, args, o);
          const result = collect(child, { ...o, timeoutMs: 60000 });
          await waitFor(started(dest), 30000, `${which} ${tool} under way`);
          child.kill("SIGTERM");
          const r = await result;
          assert.equal(r.code, 143, `${which} ${tool}: ${r.stderr}`);
          if (which === "ours") assert.deepEqual([...Deno.readDirSync(dest)], [], "cleaned up");
        }
      }
    });

    await t.step("pscp's statistics line on a pipe, as PuTTY's (none with -q)", async () => {
      const login = [...hostArgs(s), ...key];
      for (const quiet of [[], ["-q"]]) {
        const down = await both("pscp", [
          ...login,
          ...quiet,
          `${s.user}@${s.host}:${files}/hello.txt`,
          await Deno.makeTempDir({ dir: s.dir }),
        ], { env });
        assert.equal(down.real.code, 0, down.real.stderr);
        assert.equal(down.ours.code, 0, down.ours.stderr);
        if (quiet.length) assert.equal(down.real.stdout, "");
        else assert.match(down.real.stdout, /^\rhello\.txt {17}\| 0 kB \| .*\| 100%\n$/);
        assert.equal(down.ours.stdout, down.real.stdout);
      }
      const up = await both("pscp", [
        ...login,
        join(files, "hello.txt"),
        `${s.user}@${s.host}:${await s.userDir("up")}/`,
      ], { env });
      assert.equal(up.ours.code, 0, up.ours.stderr);
      assert.match(up.real.stdout, /^\rhello\.txt .*\| 100%\n$/);
      assert.equal(up.ours.stdout, up.real.stdout);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("a server refusing the main channel: PuTTY's words and reason", opts, async () => {
  const s = await startSshd({ config: ["MaxSessions 0"] });
  try {
    const login = [...hostArgs(s), "-i", s.userKeyPpk];
    const cases: [string, string[]][] = [
      ["plink", [...login, `${s.user}@${s.host}`, "true"]],
      ["pscp", [...login, `${s.user}@${s.host}:/etc/hostname`, s.dir]],
      ["psftp", [...login, `${s.user}@${s.host}`]],
    ];
    for (const [tool, args] of cases) {
      const { ours, real } = await both(tool, args, { env: s.env, stdin: "" });
      assert.equal(real.code, 1, tool);
      assert.match(
        real.stderr,
        /FATAL ERROR: Server refused to open main channel: Connect failed \[open failed\]\n$/,
      );
      assert.equal(ours.code, real.code, tool);
      assert.equal(ours.stderr, real.stderr, tool);
    }
  } finally {
    await s.stop();
  }
});
