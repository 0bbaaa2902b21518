/**
 * putty, used as a person would: run in a terminal (tmux), against OpenSSH on loopback, by
 * typing and reading the screen. Checks the pty (type, size, modes), resizing, UTF-8 both ways,
 * the exit status, the local terminal restored (normal exit, SIGTERM, lost connection), putty
 * as a sharing upstream (for plink, pscp and psftp) that waits for its downstreams, -L/-R/-D/-A
 * forwarding, and -load of a saved session.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { descendants, freePort, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startAgent } from "./fixtures/agent.ts";
import {
  acceptsTcp,
  collect,
  ourShellCommand,
  runOurs,
  runReal,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";
import { isCooked, Tmux } from "./fixtures/tmux.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { connectionId } from "../lib/share/socket_path.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Waits until the remote shell runs what we type (whatever its prompt looks like). */
async function shellReady(tm: Tmux): Promise<void> {
  await tm.type("echo ready-$((2*3))\r");
  await tm.waitForScreen(/(^|\s)ready-6$/m);
}

function puttyArgs(s: Sshd, extra: string[] = []): string[] {
  return [
    "-batch",
    "-hostkey",
    s.hostKeyFingerprint,
    "-i",
    s.userKey,
    ...extra,
    "-P",
    String(s.port),
    `${s.user}@${s.host}`,
  ];
}

/**
 * A pane running `bash -c` with putty in it; afterwards putty's exit status and the terminal
 * settings before and after (stty -g) are written to files in `dir`.
 */
async function puttyInPane(s: Sshd, dir: string, args: string[], pre = ""): Promise<Tmux> {
  const script = [
    pre,
    `stty -g > ${dir}/before`,
    `(${ourShellCommand("putty", args)})`,
    `echo EXIT=$? > ${dir}/exit.tmp; mv ${dir}/exit.tmp ${dir}/exit`,
    `stty -g > ${dir}/after`,
    // On a line of its own: a killed putty may leave the cursor after the remote prompt.
    "printf '\\nPANE-DONE\\n'",
    "sleep 600",
  ].filter((l) => l).join("\n");
  await Deno.writeTextFile(join(dir, "pane.sh"), script);
  return await Tmux.start(`bash ${join(dir, "pane.sh")}`, { env: s.env });
}

async function exitLine(dir: string): Promise<string> {
  await waitFor(() => Deno.stat(join(dir, "exit")).then(() => true, () => false), 20000, "exit");
  return (await Deno.readTextFile(join(dir, "exit"))).trim();
}

async function assertRestored(tm: Tmux, dir: string) {
  await tm.waitForScreen(/^PANE-DONE$/m);
  const before = await Deno.readTextFile(join(dir, "before"));
  const after = await Deno.readTextFile(join(dir, "after"));
  assert.equal(after, before, "terminal settings are back as they were");
  assert.ok(isCooked(await tm.sttyAll()), "icanon and echo are on again");
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(b.subarray(at, at + 65536));
  return b;
}

/** putty's process (deno running mod.ts) under the pane. */
async function puttyPid(tm: Tmux): Promise<number> {
  const panePid = Number(await tm.paneVar("pane_pid"));
  let found: number | undefined;
  await waitFor(
    () => {
      found = descendants(panePid).find((pid) => {
        try {
          return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("mod.ts");
        } catch {
          return false;
        }
      });
      return found !== undefined;
    },
    10000,
    "putty process",
  );
  return found!;
}

Deno.test("putty: usage, version and bad input", opts, async (t) => {
  await t.step("no arguments: usage on stderr, exit 1", async () => {
    const r = await runOurs("putty", []);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Usage: putty \[options\] \[user@\]host \[port\]$/m);
  });
  await t.step("-V and --version print the version; --help the usage", async () => {
    for (const opt of ["-V", "--version"]) {
      const r = await runOurs("putty", [opt]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^putty: puttykit \d+\.\d+\.\d+\n$/);
    }
    const help = await runOurs("putty", ["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: putty/m);
  });
  const oneLine = [
    [["-foo", "host"], /^putty: unknown option "-foo"$/],
    [["host", "22", "extra"], /^putty: unexpected non-option argument 'extra'$/],
    [["-v", "host"], /^putty: option "-v" not available in this tool$/],
    [["-P", "2222"], /^putty: no host name given/],
    [["-telnet", "host"], /^putty: the telnet protocol is not supported by puttykit$/],
    [["127.0.0.1"], /^putty: standard input is not a terminal/],
  ] as const;
  for (const [args, re] of oneLine) {
    await t.step(`putty ${args.join(" ")}: one line, exit 1`, async () => {
      const r = await runOurs("putty", [...args]);
      assert.equal(r.code, 1);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
    });
  }
});

Deno.test("putty in a terminal against OpenSSH", opts, async (t) => {
  const s = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
  // -L to the server's own port: the forwarding's far end answers with the SSH banner.
  const fwdPort = freePort();
  const args = puttyArgs(s, ["-L", `${fwdPort}:127.0.0.1:${s.port}`]);
  // A local terminal with a terminal type and an erase character of its own, to see them sent.
  const tm = await puttyInPane(s, dir, args, "export TERM=vt220; stty erase '^H'");
  try {
    await t.step(
      "the remote shell starts; the local terminal is in raw mode meanwhile",
      async () => {
        await shellReady(tm);
        const stty = await tm.sttyAll();
        assert.ok(!isCooked(stty), `raw while the session runs:\n${stty}`);
      },
    );

    await t.step("typed commands run and their output shows", async () => {
      await tm.type("echo hello-$((6*7))\r");
      await tm.waitForScreen(/^hello-42$/m);
    });

    await t.step("the pty has the local terminal's type and modes", async () => {
      await tm.type("tty; echo term=$TERM; stty -a | tr ';' '\\n' | grep -E 'erase|iutf8'\r");
      const screen = await tm.waitForScreen(/^term=\S+$/m);
      assert.match(screen, /^\/dev\/pts\/\d+$/m);
      assert.match(screen, /^term=vt220$/m);
      await tm.waitForScreen(/^\s*erase = \^H$/m);
      // The flags come after the characters: wait for the line, whichever way iutf8 is set.
      assert.match(await tm.waitForScreen(/iutf8/), /(^| )iutf8( |$)/m);
    });

    await t.step("UTF-8 goes through both ways", async () => {
      await tm.type("printf 'h\\303\\251llo\\n'\r");
      await tm.waitForScreen(/^héllo$/m);
      await tm.type("echo ünï | od -An -tx1\r");
      await tm.waitForScreen(/^\s*c3 bc 6e c3 af 0a$/m);
    });

    await t.step("a -L port forwarding works while the session runs", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: fwdPort });
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      conn.close();
      assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^SSH-2\.0-OpenSSH/);
    });

    await t.step("resizing the terminal resizes the remote pty", async () => {
      await tm.type("clear; stty size\r");
      await tm.waitForScreen(/^30 100$/m);
      await tm.resize(120, 40);
      await waitFor(
        async () => {
          await tm.type("clear; stty size\r");
          await new Promise((r) => setTimeout(r, 200));
          return /^40 120$/m.test(await tm.screen());
        },
        10000,
        "remote size 40 120",
      );
    });

    await t.step("exit 3: putty exits 3 and the terminal is restored", async () => {
      await tm.type("exit 3\r");
      assert.equal(await exitLine(dir), "EXIT=3");
      await assertRestored(tm, dir);
    });
  } finally {
    await tm.stop();
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("putty asks on the terminal: unknown host key, then the password", opts, async () => {
  const s = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
  const args = ["-noagent", "-P", String(s.port), `${s.user}@${s.host}`];
  const tm = await puttyInPane(s, dir, s.password ? args : ["-i", s.userKey, ...args]);
  try {
    await tm.waitForScreen(/Store key in cache\? \(y\/n, Return cancels connection/);
    await tm.type("y\r");
    if (s.password) {
      await tm.waitForScreen(/'s password:$/m);
      await tm.type(`${s.password}\r`);
    }
    await shellReady(tm);
    assert.ok(!(await tm.screen()).includes(s.password ?? "\0"), "the password was not echoed");
    await tm.type("exit\r");
    assert.equal(await exitLine(dir), "EXIT=0");
    await assertRestored(tm, dir);
    const cached = await Deno.readTextFile(join(s.env.PUTTYDIR, "sshhostkeys"));
    assert.match(cached, new RegExp(`^ssh-ed25519@${s.port}:${s.host} `, "m"));
  } finally {
    await tm.stop();
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test(
  "putty restores the terminal when killed or when the connection dies",
  opts,
  async (t) => {
    const s = await startSshd();
    try {
      for (const how of ["SIGTERM", "SIGHUP", "lost connection"] as const) {
        await t.step(how, async () => {
          const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
          const tm = await puttyInPane(s, dir, puttyArgs(s));
          try {
            await shellReady(tm);
            assert.ok(!isCooked(await tm.sttyAll()), "raw while the session runs");
            if (how === "lost connection") {
              s.killConnections();
              assert.equal(await exitLine(dir), "EXIT=1");
              await tm.waitForScreen(/^FATAL ERROR: /m);
            } else {
              Deno.kill(await puttyPid(tm), how);
              assert.equal(await exitLine(dir), how === "SIGTERM" ? "EXIT=143" : "EXIT=129");
            }
            await assertRestored(tm, dir);
          } finally {
            await tm.stop();
            await Deno.remove(dir, { recursive: true }).catch(() => {});
          }
        });
      }
    } finally {
      await s.stop();
    }
  },
);

Deno.test(
  "putty -share: an upstream waits for its downstreams; a downstream too",
  opts,
  async (t) => {
    const s = await startSshd();
    const id = connectionId(s.host, s.port, s.user);
    try {
      await t.step("putty's shell exits while plink runs through it: putty waits", async () => {
        const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
        const tm = await puttyInPane(s, dir, puttyArgs(s, ["-share"]));
        try {
          await shellReady(tm);
          assert.ok(await upstreamExists(id), "putty is the upstream");
          const plink = spawnOurs("plink", [
            "-share",
            ...puttyArgs(s),
            "echo started; sleep 2; echo done",
          ], { env: s.env });
          // Wait until the downstream's command runs, then leave putty's shell.
          const reader = plink.stdout.getReader();
          const first = new TextDecoder().decode((await reader.read()).value);
          assert.equal(first, "started\n");
          reader.releaseLock();
          await tm.type("exit\r");
          const screen = await tm.waitForScreen(/waiting for 1 downstream connection/);
          assert.match(
            screen,
            /^puttykit: waiting for 1 downstream connection\(s\) \(pscp\/psftp\/plink\) sharing this connection to finish/m,
          );
          assert.doesNotMatch(screen, /PANE-DONE/, "putty is still running");
          const r = await collect(plink);
          assert.equal(r.stdout, "done\n");
          assert.equal(r.code, 0, r.stderr);
          assert.equal(await exitLine(dir), "EXIT=0");
          await assertRestored(tm, dir);
          assert.equal(await s.authCount(), 1, "plink used putty's connection");
          await waitFor(async () => !(await upstreamExists(id)), 5000, "upstream gone");
        } finally {
          await tm.stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      });

      await t.step(
        "pscp and psftp through putty -share: one login; putty waits for a busy psftp",
        async () => {
          const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
          const before = await s.authCount();
          const tm = await puttyInPane(s, dir, puttyArgs(s, ["-share"]));
          try {
            await shellReady(tm);
            assert.ok(await upstreamExists(id), "putty is the upstream");
            const remote = await s.userDir("via-putty");
            const at = (path: string) => `${s.user}@${s.host}:${remote}/${path}`;
            const data = randomBytes(1 << 20);
            const local = join(dir, "up.bin");
            await Deno.writeFile(local, data);
            // With the host key and the login key: were sharing not used, these would log in.
            const share = [
              "-share",
              "-v",
              "-batch",
              "-hostkey",
              s.hostKeyFingerprint,
              "-i",
              s.userKey,
              "-P",
              String(s.port),
            ];

            const up = await runOurs("pscp", [...share, "-q", local, at("up.bin")], {
              env: s.env,
            });
            assert.equal(up.code, 0, up.stderr);
            assert.match(up.stderr, /Using existing shared connection at /);
            const back = join(dir, "back.bin");
            const down = await runOurs("pscp", [...share, "-q", at("up.bin"), back], {
              env: s.env,
            });
            assert.equal(down.code, 0, down.stderr);
            assert.deepEqual(await Deno.readFile(back), data, "pscp brought the bytes back");

            const script = join(dir, "batch.psftp");
            await Deno.writeTextFile(
              script,
              `cd ${remote}\nput ${local} psftp.bin\nget psftp.bin ${dir}/psftp-back.bin\nls\n`,
            );
            const ps = await runOurs(
              "psftp",
              [...share, `${s.user}@${s.host}`, "-b", script],
              { env: s.env },
            );
            assert.equal(ps.code, 0, ps.stdout + ps.stderr);
            assert.match(ps.stderr, /Using existing shared connection at /);
            assert.match(ps.stdout, /psftp\.bin/, "ls lists the upload");
            assert.deepEqual(await Deno.readFile(join(dir, "psftp-back.bin")), data);
            assert.equal(await s.authCount(), before + 1, "pscp and psftp used putty's login");

            // A psftp that is busy (its "!" waits for the test) when putty's shell exits, and
            // still has a put and a get to do through putty's connection afterwards.
            const [started, release] = [join(dir, "started"), join(dir, "release")];
            await Deno.writeTextFile(
              script,
              `!touch ${started}; while [ ! -e ${release} ]; do sleep 0.05; done\n` +
                `cd ${remote}\nput ${local} late.bin\nget late.bin ${dir}/late.bin\n`,
            );
            const busy = collect(
              spawnOurs("psftp", [...share, `${s.user}@${s.host}`, "-b", script], {
                env: s.env,
              }),
            );
            await waitFor(
              () => Deno.stat(started).then(() => true, () => false),
              20000,
              "psftp to connect",
            );
            await tm.type("exit\r");
            const screen = await tm.waitForScreen(/waiting for 1 downstream connection/);
            assert.match(
              screen,
              /^puttykit: waiting for 1 downstream connection\(s\) \(pscp\/psftp\/plink\)/m,
            );
            assert.doesNotMatch(screen, /PANE-DONE/, "putty is still running");
            assert.equal(
              await Deno.stat(join(dir, "exit")).then(() => true, () => false),
              false,
              "putty has not exited",
            );
            await Deno.writeTextFile(release, "");
            const r = await busy;
            assert.equal(r.code, 0, r.stdout + r.stderr);
            assert.deepEqual(await Deno.readFile(join(dir, "late.bin")), data);
            assert.equal(await exitLine(dir), "EXIT=0");
            await assertRestored(tm, dir);
            assert.equal(await s.authCount(), before + 1, "still putty's one login");
            await waitFor(async () => !(await upstreamExists(id)), 5000, "upstream gone");
          } finally {
            await tm.stop();
            await Deno.remove(dir, { recursive: true }).catch(() => {});
          }
        },
      );

      await t.step("while it waits, Ctrl-C ends putty and its downstreams at once", async () => {
        const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
        const tm = await puttyInPane(s, dir, puttyArgs(s, ["-share"]));
        try {
          await shellReady(tm);
          const plink = spawnOurs("plink", ["-share", ...puttyArgs(s), "echo started; sleep 60"], {
            env: s.env,
          });
          const reader = plink.stdout.getReader();
          assert.equal(new TextDecoder().decode((await reader.read()).value), "started\n");
          reader.releaseLock();
          await tm.type("exit\r");
          await tm.waitForScreen(/waiting for 1 downstream connection/);
          const started = Date.now();
          await tm.key("C-c");
          assert.equal(await exitLine(dir), "EXIT=130");
          const r = await collect(plink);
          assert.notEqual(r.code, 0, "the downstream lost its connection");
          assert.ok(Date.now() - started < 20000, "nobody waited for sleep 60");
          await assertRestored(tm, dir);
        } finally {
          await tm.stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      });

      await t.step("putty as a downstream of a plink -share -N upstream", async () => {
        const up = spawnOurs("plink", ["-share", "-N", ...puttyArgs(s)], { env: s.env });
        const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
        let tm: Tmux | undefined;
        try {
          const auths = (await s.authCount()) + 1;
          await waitFor(() => upstreamExists(id), 20000, "plink upstream");
          await waitFor(async () => (await s.authCount()) === auths, 10000, "plink logged in");
          tm = await puttyInPane(s, dir, puttyArgs(s, ["-share"]));
          await shellReady(tm);
          await tm.type("echo via-$((40+2)); exit 5\r");
          await tm.waitForScreen(/^via-42$/m);
          assert.equal(await exitLine(dir), "EXIT=5");
          await assertRestored(tm, dir);
          assert.equal(await s.authCount(), auths, "no new authentication");
        } finally {
          await tm?.stop();
          up.kill("SIGTERM");
          await collect(up);
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      });
    } finally {
      await s.stop();
    }
  },
);

/** A TCP echo server on 127.0.0.1 that says "via-echo " first, then sends back what it gets. */
function echoServer(): { port: number; close(): void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) {
      c.write(new TextEncoder().encode("via-echo "))
        .then(() => c.readable.pipeTo(c.writable))
        .catch(() => {});
    }
  })().catch(() => {});
  return { port: (l.addr as Deno.NetAddr).port, close: () => l.close() };
}

/** The user key's fingerprint as ssh-keygen (and so `ssh-add -l` and sshd's log) shows it. */
async function userKeyFingerprint(s: Sshd): Promise<string> {
  const out = await new Deno.Command("ssh-keygen", { args: ["-lf", `${s.userKey}.pub`] }).output();
  return new TextDecoder().decode(out.stdout).split(" ")[1];
}

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("putty -R, -D and -A in one session", opts, async (t) => {
  const s = await startSshd();
  const agent = await startAgent(s);
  const echo = echoServer();
  const web = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("hello through putty's socks\n"),
  );
  const [rport, dport] = [freePort(), freePort()];
  const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
  const args = puttyArgs(s, [
    "-A",
    "-R",
    `${rport}:127.0.0.1:${echo.port}`,
    "-D",
    `127.0.0.1:${dport}`,
  ]);
  const tm = await puttyInPane(s, dir, args, `export SSH_AUTH_SOCK=${agent.sock}`);
  try {
    await shellReady(tm);

    await t.step("-R: a remote program reaches our echo server", async () => {
      // sshd listens for -R on this machine's loopback: wait until it does.
      await waitFor(() => acceptsTcp(rport), 10000, "the -R listener");
      await tm.type(
        `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${rport}; echo "remote-$((20+22))" >&3; head -1 <&3'\r`,
      );
      await tm.waitForScreen(/^via-echo remote-42$/m);
    });

    await t.step("-D: curl --socks5-hostname through putty", async () => {
      await waitFor(() => acceptsTcp(dport), 10000, "the -D listener");
      const r = await runReal("curl", [
        "-sS",
        "--max-time",
        "20",
        "--socks5-hostname",
        `127.0.0.1:${dport}`,
        `http://localhost:${web.addr.port}/`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "hello through putty's socks\n");
    });

    await t.step("-A: the remote ssh-add -l lists our agent's key", async () => {
      const fp = await userKeyFingerprint(s);
      await tm.type("ssh-add -l | sed 's/^/agent: /'\r");
      await tm.waitForScreen(new RegExp(`^agent: 256 ${literal(fp)} pk-test \\(ED25519\\)$`, "m"));
    });

    await t.step("the session ends normally", async () => {
      await tm.type("exit\r");
      assert.equal(await exitLine(dir), "EXIT=0");
      await assertRestored(tm, dir);
    });
  } finally {
    await tm.stop();
    echo.close();
    await web.shutdown();
    await agent.stop();
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test(
  "putty -load: a saved session's host, port, user, key and terminal type",
  opts,
  async () => {
    const s = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
    // Written as PuTTY writes it: the name's unsafe bytes (the spaces) as %XX, Key=Value lines.
    // Without Protocol=ssh PuTTY would ignore PortNumber; the host key is pinned in the session.
    const sessions = join(s.env.PUTTYDIR, "sessions");
    await Deno.mkdir(sessions, { recursive: true });
    await Deno.writeTextFile(
      join(sessions, "pk%20load%20test"),
      [
        `HostName=${s.host}`,
        "Protocol=ssh",
        `PortNumber=${s.port}`,
        `UserName=${s.user}`,
        `PublicKeyFile=${s.userKeyPpk}`,
        "TryAgent=0",
        "TerminalType=vt100",
        `SSHManualHostKeys=${s.hostKeyFingerprint}`,
      ].join("\n") + "\n",
    );
    // The local terminal says xterm-256color: the remote vt100 can only come from the session.
    const tm = await puttyInPane(
      s,
      dir,
      ["-batch", "-load", "pk load test"],
      "export TERM=xterm-256color",
    );
    try {
      await shellReady(tm);
      await tm.type(`echo "term=$TERM user=$(id -un)"\r`);
      await tm.waitForScreen(new RegExp(`^term=vt100 user=${s.user}$`, "m"));
      await tm.type("exit 4\r");
      assert.equal(await exitLine(dir), "EXIT=4");
      await assertRestored(tm, dir);
      const fp = await userKeyFingerprint(s);
      assert.equal(await s.authCount(), 1);
      assert.match(
        await s.log(),
        new RegExp(`^Accepted publickey for ${s.user} from .* ED25519 ${literal(fp)}$`, "m"),
        "logged in with the session's key",
      );
    } finally {
      await tm.stop();
      await s.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

Deno.test("putty -sessionlog: the session's output after PuTTY's header", opts, async () => {
  const s = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "pk-putty-" });
  const log = join(dir, "session.log");
  const tm = await puttyInPane(s, dir, puttyArgs(s, ["-sessionlog", log]));
  try {
    await shellReady(tm);
    await tm.type("echo logged-$((6*7))\r");
    await tm.waitForScreen(/^logged-42$/m);
    // What is typed reaches the log only as the server's echo: with echo off, not at all.
    await tm.type("stty -echo; echo echo-$((2+3)); read x; stty echo; echo got-$x\r");
    await tm.waitForScreen(/^echo-5$/m); // echo is off from here on
    await tm.type("unechoed-input\r");
    await tm.waitForScreen(/^got-unechoed-input$/m);
    await tm.type("exit\r");
    assert.equal(await exitLine(dir), "EXIT=0");
    const text = await Deno.readTextFile(log);
    assert.match(
      text,
      /^=~=~=~=~=~=~=~=~=~=~=~= PuTTY log \d{4}\.\d\d\.\d\d [\d:]{8} =~=~=~=~=~=~=~=~=~=~=~=\r\n/,
    );
    assert.match(text, /^logged-42\r$/m, "the command's output, as the terminal got it");
    assert.match(text, /^got-unechoed-input\r$/m);
    assert.doesNotMatch(text, /^unechoed-input/m, "our own keystrokes are not logged");
  } finally {
    await tm.stop();
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
