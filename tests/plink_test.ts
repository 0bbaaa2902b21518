/**
 * plink end to end against a real OpenSSH sshd on loopback: output, binary-safe stdio
 * with back-pressure, exit statuses, the errors users hit, and the host-key cache shared with
 * PuTTY's own plink.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startAgent } from "./fixtures/agent.ts";
import { startSshd } from "./fixtures/sshd.ts";
import {
  collect,
  ourShellCommand,
  runOnPty,
  type RunOptions,
  runOurs,
  runReal,
  spawn,
  spawnOurs,
} from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A clean error: one line, PuTTY's wording, no stack trace. */
function assertOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(stderr, /\bat .*\.ts:\d+|Uncaught|Stack backtrace/);
}

Deno.test("plink against OpenSSH", opts, async (t) => {
  const s = await startSshd();
  const target = ["-P", String(s.port), `${s.user}@${s.host}`];
  const auth = ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk];
  const env = s.env;
  try {
    await t.step("command output, stderr and exit status", async () => {
      const r = await runOurs("plink", [...auth, ...target, "echo out; echo err >&2; exit 42"], {
        env,
      });
      assert.equal(r.stdout, "out\n");
      assert.equal(r.stderr, "err\n");
      assert.equal(r.code, 42);
    });

    await t.step("a command killed by a signal gives 128, as PuTTY 0.78 does", async () => {
      const ours = await runOurs("plink", [...auth, ...target, "kill -TERM $$"], { env });
      const real = await runReal("plink", [...auth, ...target, "kill -TERM $$"], { env });
      assert.equal(real.code, 128);
      assert.equal(ours.code, real.code);
    });

    await t.step("50 MB of binary stdin round-trips through cat unchanged", async () => {
      const size = 50 * 1024 * 1024;
      const data = new Uint8Array(size);
      for (let at = 0; at < size; at += 65536) {
        crypto.getRandomValues(data.subarray(at, at + 65536));
      }
      const child = spawnOurs("plink", [...auth, ...target, "cat"], { env, stdin: "" });
      const r = await collect(child, { stdin: data, timeoutMs: 120000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.out.length, size);
      assert.equal(await sha256Hex(r.out), await sha256Hex(data));
    });

    await t.step("-m reads the command from a file; -s starts a subsystem", async () => {
      const file = join(s.dir, "cmd.txt");
      await Deno.writeTextFile(file, "echo from-file; exit 3\n");
      const r = await runOurs("plink", [...auth, "-m", file, ...target], { env });
      assert.equal(r.stdout, "from-file\n");
      assert.equal(r.code, 3);
      // SFTP INIT (version 3) to the sftp subsystem: the reply is SSH_FXP_VERSION (2). Keep stdin
      // open until the reply is in: sftp-server may drop its reply when EOF comes with the data.
      const child = spawnOurs("plink", [...auth, "-s", ...target, "sftp"], { env, stdin: "" });
      const w = child.stdin.getWriter();
      await w.write(new Uint8Array([0, 0, 0, 5, 1, 0, 0, 0, 3]));
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      assert.equal(value?.[4], 2, `reply ${Array.from(value ?? [])}`);
      reader.releaseLock();
      await w.close();
      const done = await collect(child);
      assert.equal(done.code, 0, done.stderr);
    });

    await t.step("unknown option", async () => {
      const r = await runOurs("plink", ["-frobnicate", ...target], { env });
      assert.equal(r.code, 1);
      assertOneLineError(r.stderr, /^plink: unknown option "-frobnicate"$/);
    });

    await t.step("unknown host", async () => {
      const r = await runOurs("plink", ["-batch", "no-such-host.invalid", "true"], { env });
      assert.equal(r.code, 1);
      assertOneLineError(r.stderr, /^FATAL ERROR: .*no-such-host\.invalid.*Host does not exist/);
    });

    await t.step("connection refused", async () => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      const r = await runOurs("plink", ["-batch", "-P", String(port), `x@127.0.0.1`, "true"], {
        env,
      });
      assert.equal(r.code, 1);
      assertOneLineError(r.stderr, /^FATAL ERROR: Connection refused$/);
      // PuTTY 0.78's words exactly.
      const real = await runReal("plink", ["-batch", "-P", String(port), `x@127.0.0.1`, "true"]);
      assert.equal(r.stderr, real.stderr);
    });

    await t.step("no host: the usage on stdout, exit 1, as PuTTY's plink", async () => {
      for (const args of [[], ["-batch", "-v"]]) {
        const r = await runOurs("plink", args, { env });
        assert.equal(r.code, 1);
        assert.match(r.stdout, /^Plink: command-line connection utility/);
        assert.match(r.stdout, /^Usage: plink \[options\] \[user@\]host \[command\]$/m);
        assert.equal(r.stderr, "");
      }
    });

    await t.step("impossible addresses: one line each", async () => {
      const cases: [string[], RegExp][] = [
        [["-P", "70000", "127.0.0.1"], /port 70000 is out of range/],
        [["-P", "-5", "127.0.0.1"], /port -5 is out of range/],
        [["-6", "127.0.0.1"], /127\.0\.0\.1: Address family for hostname not supported$/],
        [["-4", "::1"], /::1: Address family for hostname not supported$/],
        [["-6", "no-such-host.invalid"], /no-such-host\.invalid: Host does not exist$/],
      ];
      for (const [args, expected] of cases) {
        const r = await runOurs("plink", ["-batch", ...args, "true"], { env });
        assert.equal(r.code, 1, args.join(" "));
        assertOneLineError(r.stderr, expected);
      }
    });

    if (s.password) {
      await t.step("password: right and wrong", async () => {
        const hk = ["-batch", "-hostkey", s.hostKeyFingerprint];
        const ok = await runOurs("plink", [...hk, "-pw", s.password!, ...target, "echo pw-ok"], {
          env,
        });
        assert.equal(ok.stdout, "pw-ok\n");
        const bad = await runOurs("plink", [...hk, "-pw", "wrong", ...target, "true"], { env });
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /FATAL ERROR: Configured password was not accepted\n$/);
        assert.doesNotMatch(bad.stderr, /Uncaught|\.ts:\d+/);
      });
    }

    if (s.password) {
      await t.step("an interactive password prompt, without echo, on the terminal", async () => {
        const cmd = ourShellCommand("plink", [
          "-hostkey",
          s.hostKeyFingerprint,
          "-noagent",
          ...target,
          "echo logged-in",
        ]);
        let typed = false;
        const r = await runOnPty(cmd, (screen) => {
          if (typed || !screen.includes(`${s.user}@${s.host}'s password: `)) return undefined;
          typed = true;
          return `${s.password}\r`;
        }, { env });
        assert.ok(typed, r.stdout);
        assert.match(r.stdout, /logged-in/);
        assert.ok(!r.stdout.includes(s.password!), "the password was not echoed");
        assert.equal(r.code, 0);

        // ^C at the prompt interrupts, as it does PuTTY's: status 130, the terminal restored.
        let interrupted = false;
        const c = await runOnPty(
          `(${cmd}); echo EXIT=$?; stty -a | grep -o -- '-\\?echo\\b'`,
          (screen) => {
            if (
              interrupted || !screen.endsWith(`${s.user}@${s.host}'s password: `)
            ) return undefined;
            interrupted = true;
            return "\x03";
          },
          { env },
        );
        assert.ok(interrupted, c.stdout);
        assert.match(c.stdout, /EXIT=130\r?\necho\r?\n/);
        assert.doesNotMatch(c.stdout, /Access denied/);
      });
    }

    await t.step(
      "no command: an interactive shell on a pty; the terminal is restored",
      async () => {
        const cmd = ourShellCommand("plink", [...auth, ...target]);
        let typed = false;
        const r = await runOnPty(
          `(${cmd}); echo EXIT=$?; stty -a | grep -o -- '-\\?icanon'`,
          (screen) => {
            if (typed || !/\$ $/.test(screen)) return undefined;
            typed = true;
            return "echo shell-$((6*7)); tty; exit 3\r";
          },
          { env },
        );
        assert.match(r.stdout, /shell-42/);
        assert.match(r.stdout, /\/dev\/pts\/\d+/, "the remote side has a pty");
        assert.match(r.stdout, /EXIT=3/);
        assert.match(r.stdout, /\bicanon/);
        assert.doesNotMatch(r.stdout, /-icanon/);
      },
    );

    await t.step("stdout closed early: one line, exit 1, as real plink", async () => {
      const cmd = ourShellCommand("plink", [...auth, ...target, "seq 1 1000000"]);
      const out = await new Deno.Command("bash", {
        args: ["-c", `(${cmd}) | head -2; echo "status=\${PIPESTATUS[0]}" >&2`],
        env,
      }).output();
      const err = new TextDecoder().decode(out.stderr);
      assert.equal(new TextDecoder().decode(out.stdout), "1\n2\n");
      assert.match(err, /^stdout: write: Broken pipe\nstatus=1\n$/);
    });

    await t.step("-nc host:port tunnels stdin/stdout to a TCP port", async () => {
      const r = await runOurs("plink", [...auth, "-nc", `127.0.0.1:${s.port}`, ...target], {
        env,
        stdin: "SSH-2.0-probe\r\n",
      });
      assert.match(r.stdout, /^SSH-2\.0-OpenSSH/);
    });

    await t.step(
      "authentication through ssh-agent (SSH_AUTH_SOCK); -noagent turns it off",
      async () => {
        const agent = await startAgent(s);
        const sock = agent.sock;
        try {
          const hk = ["-batch", "-hostkey", s.hostKeyFingerprint];
          const withAgent = { ...env, SSH_AUTH_SOCK: sock };
          const r = await runOurs("plink", [...hk, ...target, "echo via-agent"], {
            env: withAgent,
          });
          assert.equal(r.stdout, "via-agent\n", r.stderr);
          const off = await runOurs("plink", [...hk, "-noagent", ...target, "echo via-agent"], {
            env: withAgent,
          });
          assert.equal(off.code, 1);
          assert.equal(off.stdout, "");
        } finally {
          await agent.stop();
        }
      },
    );

    await t.step("a key the server does not accept", async () => {
      const other = join(s.dir, "other_ed25519");
      await new Deno.Command("ssh-keygen", { args: ["-q", "-t", "ed25519", "-N", "", "-f", other] })
        .output();
      const r = await runOurs("plink", [
        "-batch",
        "-hostkey",
        s.hostKeyFingerprint,
        "-i",
        other,
        "-noagent",
        ...target,
        "true",
      ], { env });
      assert.equal(r.code, 1);
      assertOneLineError(r.stderr, /^FATAL ERROR: /);
    });

    await t.step("a missing key file: said, then the other ways to log in", async () => {
      const r = await runOurs(
        "plink",
        // As in PuTTY, key files are read once the host key is accepted.
        [
          "-batch",
          "-noagent",
          "-hostkey",
          s.hostKeyFingerprint,
          "-i",
          "/nonexistent/key.ppk",
          ...target,
          "true",
        ],
        {
          env,
        },
      );
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^Unable to use key file "\/nonexistent\/key\.ppk" \(unable to open file\)\r\n/,
      );
      // Nothing else to log in with in batch mode: authentication is what fails.
      assert.match(r.stderr, /\r\nFATAL ERROR: [^\n]+\n$/);
    });

    await t.step("unknown host key in -batch is refused", async () => {
      const r = await runOurs("plink", ["-batch", "-i", s.userKeyPpk, ...target, "true"], { env });
      assert.equal(r.code, 1);
      assertOneLineError(
        r.stderr,
        /host key is not cached .*cannot confirm a host key in batch mode/,
      );
    });

    await t.step(
      "host keys we store are understood by PuTTY's plink, and the reverse",
      async () => {
        // Ours: answer "y" on stdin (as PuTTY reads it), then real plink must trust the cache.
        const mine = { PUTTYDIR: join(s.dir, "putty-ours") };
        const stored = await runOurs("plink", ["-i", s.userKeyPpk, ...target, "echo stored"], {
          env: mine,
          stdin: "y\n",
        });
        assert.equal(stored.stdout, "stored\n", stored.stderr);
        assert.match(stored.stderr, /Store key in cache\?/);
        const real = await runReal("plink", [
          "-batch",
          "-i",
          s.userKeyPpk,
          ...target,
          "echo real-trusts",
        ], {
          env: mine,
        });
        assert.equal(real.stdout, "real-trusts\n", real.stderr);
        // Theirs: real plink stores it; ours must trust it in -batch.
        const theirs = { PUTTYDIR: join(s.dir, "putty-real") };
        const r2 = await runReal("plink", ["-i", s.userKeyPpk, ...target, "true"], {
          env: theirs,
          stdin: "y\n",
        });
        assert.equal(r2.code, 0, r2.stderr);
        const ours2 = await runOurs("plink", [
          "-batch",
          "-i",
          s.userKeyPpk,
          ...target,
          "echo ours-trusts",
        ], {
          env: theirs,
        });
        assert.equal(ours2.stdout, "ours-trusts\n", ours2.stderr);
      },
    );

    await t.step("the server vanishing mid-command: PuTTY's words, exit 1", async () => {
      const lines: string[] = [];
      for (
        const run of [spawnOurs, (_: string, a: string[], o: RunOptions) => spawn("plink", a, o)]
      ) {
        const child = run("plink", [...auth, ...target, "echo started; sleep 30"], { env });
        const reader = child.stdout.getReader();
        await reader.read(); // "started": the command runs
        s.killConnections();
        reader.releaseLock();
        const r = await collect(child, { timeoutMs: 15000 });
        assert.equal(r.code, 1);
        assertOneLineError(r.stderr, /^FATAL ERROR: /);
        lines.push(r.stderr.trim());
      }
      // The server's end comes as an end of stream or, with data still unread, a reset; either
      // tool may see either, and says it in PuTTY's words.
      const words =
        /^FATAL ERROR: (Remote side unexpectedly closed network connection|Connection reset by peer)$/;
      assert.match(lines[0], words);
      assert.match(lines[1], words, "PuTTY says one of the same");
    });

    await t.step("a changed host key is refused loudly, even interactively", async () => {
      const dir = join(s.dir, "putty-changed");
      await Deno.mkdir(dir);
      // A different ed25519 key recorded for this host and port.
      await Deno.writeTextFile(
        join(dir, "sshhostkeys"),
        `ssh-ed25519@${s.port}:${s.host} 0x1b2c0e8a3b1d2d3e1f10111213141516171819202122232425262728292a2b,0x4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899\n`,
      );
      const r = await runOurs("plink", ["-i", s.userKeyPpk, ...target, "echo should-not-run"], {
        env: { PUTTYDIR: dir },
        stdin: "y\n",
      });
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
      assertOneLineError(r.stderr, /POTENTIAL SECURITY BREACH/);
    });
  } finally {
    await s.stop();
  }
});
