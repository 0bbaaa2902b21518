/**
 * Our tools through a real OpenSSH ControlMaster (`ssh -M -S PATH -fN`) with -share -controlpath:
 * commands, exit status, streaming, pscp and psftp, -L; one authentication in sshd's log (the
 * master's), and the master still alive afterwards.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, loginArgs, passwdIds, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { controlDir, masterPid, startSshMaster, stopSshMaster } from "./fixtures/ssh_master.ts";
import { expandControlPath } from "../lib/openssh_mux/control_path.ts";
import {
  acceptsTcp,
  collect,
  ourShellCommand,
  runOurs,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";
import { Tmux } from "./fixtures/tmux.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Our options for the master: sharing on, the control path, the destination; no credentials. */
function via(s: Sshd, ctl: string, ...extra: string[]): string[] {
  return [
    "-batch",
    "-share",
    "-controlpath",
    ctl,
    ...extra,
    "-P",
    String(s.port),
    `${s.user}@${s.host}`,
  ];
}

async function sha256(path: string): Promise<string> {
  const out = await new Deno.Command("sha256sum", { args: [path], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split(" ")[0];
}

Deno.test(
  "plink, pscp and psftp use an OpenSSH master: one authentication, master survives",
  opts,
  async () => {
    const s = await startSshd();
    const ctl = join(await controlDir(s), "master");
    try {
      const pid = await startSshMaster(s, ctl);
      assert.equal(await s.authCount(), 1);

      const r = await runOurs("plink", [...via(s, ctl, "-v"), "echo out; echo err >&2; exit 7"], {
        env: s.env,
      });
      assert.equal(r.stdout, "out\n");
      assert.match(r.stderr, /err\n/);
      assert.equal(r.code, 7);
      assert.match(
        r.stderr,
        new RegExp(`Using OpenSSH master at ${ctl} \\(pid ${pid}\\) in proxy mode`),
      );

      // stdin streams through to the command and its output back.
      const input = "x".repeat(300000);
      const cat = await runOurs("plink", [...via(s, ctl), "wc -c"], { env: s.env, stdin: input });
      assert.equal(cat.stdout.trim(), "300000");
      assert.equal(cat.code, 0);

      // pscp both ways (SFTP and SCP), checked by checksum.
      const work = await s.userDir("work");
      const local = join(s.dir, "local.bin");
      const data = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 65536) {
        data.set(crypto.getRandomValues(new Uint8Array(65536)), i);
      }
      await Deno.writeFile(local, data);
      const pscp = ["-batch", "-share", "-controlpath", ctl, "-q", "-P", String(s.port)];
      const remote = `${s.user}@${s.host}:${work}/up.bin`;
      const up = await runOurs("pscp", [...pscp, local, remote], { env: s.env });
      assert.equal(up.code, 0, up.stderr);
      assert.equal(await sha256(join(work, "up.bin")), await sha256(local));
      const back = join(s.dir, "back.bin");
      const down = await runOurs("pscp", [...pscp, "-scp", remote, back], { env: s.env });
      assert.equal(down.code, 0, down.stderr);
      assert.equal(await sha256(back), await sha256(local));

      // psftp in batch mode.
      const script = join(s.dir, "script");
      await Deno.writeTextFile(script, `cd ${work}\nput ${local} p.bin\nls\n`);
      const ps = await runOurs("psftp", [...via(s, ctl, "-b", script)], { env: s.env });
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /p\.bin/);
      assert.equal(await sha256(join(work, "p.bin")), await sha256(local));

      assert.equal(await s.authCount(), 1);
      assert.equal(await masterPid(s, ctl), pid);
    } finally {
      await stopSshMaster(s, ctl);
      await s.stop();
    }
  },
);

/** Sends `socks` (then expects SOCKS 4's 8-byte success), then 60000 bytes that must echo back. */
async function echoesThrough(port: number, socks?: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const readExactly = async (n: number) => {
      const buf = new Uint8Array(n);
      for (let at = 0; at < n;) {
        const k = await conn.read(buf.subarray(at));
        if (k === null) throw new Error(`connection closed after ${at} of ${n} bytes`);
        at += k;
      }
      return buf;
    };
    const writeAll = async (b: Uint8Array) => {
      for (let at = 0; at < b.length;) at += await conn.write(b.subarray(at));
    };
    if (socks) {
      await writeAll(socks);
      assert.equal((await readExactly(8))[1], 90, "SOCKS 4 request granted");
    }
    const data = crypto.getRandomValues(new Uint8Array(60000));
    const writing = writeAll(data);
    assert.deepEqual(await readExactly(data.length), data);
    await writing;
  } finally {
    conn.close();
  }
}

Deno.test(
  "-L and -D through an OpenSSH master; -R, -A and -X refused in one line each",
  opts,
  async () => {
    const s = await startSshd();
    const ctl = join(await controlDir(s), "m");
    const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    (async () => {
      for await (const c of echo) c.readable.pipeTo(c.writable).catch(() => {});
    })();
    const listenPort = freePort();
    const socksPort = freePort();
    try {
      const pid = await startSshMaster(s, ctl);
      const child = spawnOurs("plink", [
        ...via(s, ctl, "-L", `${listenPort}:127.0.0.1:${(echo.addr as Deno.NetAddr).port}`),
        "-D",
        String(socksPort),
        "-R",
        "127.0.0.1:2222:127.0.0.1:9",
        "-A",
        "-X",
        "-N",
      ], { env: s.env });
      await waitFor(() => acceptsTcp(listenPort), 20000, "-L listener");
      await waitFor(() => acceptsTcp(socksPort), 20000, "-D listener");
      await echoesThrough(listenPort);
      // SOCKS 4 to the echo server: CONNECT, port, 127.0.0.1, an empty user id.
      const echoPort = (echo.addr as Deno.NetAddr).port;
      await echoesThrough(
        socksPort,
        new Uint8Array([4, 1, echoPort >> 8, echoPort & 0xff, 127, 0, 0, 1, 0]),
      );
      child.kill("SIGTERM");
      const r = await collect(child);
      const refusals = r.stderr.split("\n").filter((l) =>
        / refused: the OpenSSH master at /.test(l)
      );
      assert.equal(refusals.length, 3, r.stderr);
      assert.match(r.stderr, /^Remote port forwarding from 127\.0\.0\.1:2222 refused/m);
      assert.equal(await s.authCount(), 1);
      assert.equal(await masterPid(s, ctl), pid);
    } finally {
      echo.close();
      await stopSshMaster(s, ctl);
      await s.stop();
    }
  },
);

Deno.test("with no master at the control path, plink connects as without it", opts, async () => {
  const s = await startSshd();
  const ctl = join(await controlDir(s), "none-%h-%p");
  try {
    const r = await runOurs("plink", [
      "-controlpath",
      ctl,
      ...loginArgs(s, "-share", "-v"),
      "echo direct",
    ], { env: s.env });
    assert.equal(r.stdout, "direct\n");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /No OpenSSH master to use: .*none-127\.0\.0\.1-\d+: No such file/);
    assert.equal(await s.authCount(), 1);
  } finally {
    await s.stop();
  }
});

Deno.test("plink through a master never touches the lazy globals", opts, async () => {
  const s = await startSshd();
  const ctl = join(await controlDir(s), "m");
  try {
    await startSshMaster(s, ctl);
    const trap = fileURLToPath(new URL("./fixtures/lazy_globals_trap.ts", import.meta.url));
    const r = await runOurs("plink", [...via(s, ctl), "cat; exit 4"], {
      env: s.env,
      stdin: "in\n",
      denoFlags: ["--preload", trap],
    });
    assert.equal(r.stdout, "in\n");
    assert.equal(r.code, 4);
    assert.deepEqual(r.stderr.split("\n").filter((l) => l.startsWith("LAZY")), []);
  } finally {
    await stopSshMaster(s, ctl);
    await s.stop();
  }
});

Deno.test("-controlpath tokens expand as OpenSSH's ssh -G expands ControlPath", async () => {
  const template = "~/cm-%C-%h-%p-%r-%u-%l-%L-%n-%i-%%-${HOME}";
  for (
    const [user, host, port] of [["alice", "Example.COM", 2222], [
      undefined,
      "127.0.0.1",
      22,
    ]] as const
  ) {
    const ssh = await new Deno.Command("ssh", {
      args: [
        "-G",
        "-o",
        `ControlPath=${template}`,
        "-p",
        String(port),
        ...(user ? ["-l", user] : []),
        host,
      ],
      stdout: "piped",
    }).output();
    const line = new TextDecoder().decode(ssh.stdout).split("\n").find((l) =>
      l.startsWith("controlpath ")
    );
    assert.ok(line, "ssh -G printed a controlpath");
    assert.equal(
      await expandControlPath(template, { host, port, user }),
      line.slice("controlpath ".length),
    );
  }
  await assert.rejects(expandControlPath("/tmp/%Z", { host: "h", port: 22 }), /unknown key %Z/);
});

Deno.test(
  "putty through an OpenSSH master: a shell on a pty and its exit status",
  opts,
  async () => {
    const s = await startSshd();
    const ctl = join(await controlDir(s), "m");
    const script = join(s.dir, "pane.sh");
    let tm: Tmux | undefined;
    try {
      const pid = await startSshMaster(s, ctl);
      await Deno.writeTextFile(
        script,
        `${ourShellCommand("putty", via(s, ctl))}\necho EXIT=$?\nsleep 600\n`.replace(/^exec /, ""),
      );
      tm = await Tmux.start(`bash ${script}`, { env: s.env });
      await tm.type("echo hi-$((6*7)); tty\r");
      await tm.waitForScreen(/(^|\s)hi-42$/m);
      await tm.waitForScreen(/^\/dev\/pts\/\d+$/m);
      await tm.type("exit 3\r");
      await tm.waitForScreen(/^EXIT=3$/m);
      assert.equal(await s.authCount(), 1);
      assert.equal(await masterPid(s, ctl), pid);
    } finally {
      await tm?.stop();
      await stopSshMaster(s, ctl);
      await s.stop();
    }
  },
);

Deno.test(
  "a control socket that is not ours, or in a directory others can write, is not used",
  opts,
  async (t) => {
    const s = await startSshd();
    const dir = await controlDir(s);
    const ctl = join(dir, "m");
    try {
      await startSshMaster(s, ctl);
      await t.step({
        name: "a socket owned by someone else",
        ignore: Deno.uid() !== 0,
        fn: async () => {
          const [uid] = passwdIds(s.user);
          await Deno.chown(ctl, uid, null);
          try {
            const r = await runOurs("plink", [...via(s, ctl, "-v"), "true"], { env: s.env });
            assert.match(
              r.stderr,
              new RegExp(`No OpenSSH master to use: ${ctl}: socket owned by uid ${uid}, not by us`),
            );
            assert.notEqual(r.code, 0, "no master, and no credentials to log in by itself");
          } finally {
            await Deno.chown(ctl, Deno.uid(), null);
          }
        },
      });
      await t.step("a directory anyone can write to (not sticky)", async () => {
        await Deno.chmod(dir, 0o777);
        try {
          const r = await runOurs("plink", [...via(s, ctl, "-v"), "true"], { env: s.env });
          assert.match(r.stderr, /No OpenSSH master to use: .*directory is writable by others/);
        } finally {
          await Deno.chmod(dir, 0o700);
        }
      });
      await t.step("our upstream will not listen in such a directory either", async () => {
        const open = join(s.dir, "open");
        await Deno.mkdir(open);
        await Deno.chmod(open, 0o777);
        const r = await runOurs("plink", [
          "-controlpath",
          join(open, "up"),
          ...loginArgs(s, "-share"),
          "echo served",
        ], { env: s.env });
        assert.equal(r.stdout, "served\n");
        assert.match(
          r.stderr,
          /^Could not listen for OpenSSH clients at .*: directory is writable by others/m,
        );
        assert.throws(() => Deno.lstatSync(join(open, "up")), Deno.errors.NotFound);
      });
    } finally {
      await stopSshMaster(s, ctl);
      await s.stop();
    }
  },
);

Deno.test(
  "a saved session's ControlPath and ConnectionSharing reach the master",
  opts,
  async () => {
    const s = await startSshd();
    const ctl = join(await controlDir(s), "m-%r-%p");
    const path = ctl.replace("%r", s.user).replace("%p", String(s.port));
    try {
      const pid = await startSshMaster(s, path);
      const sessions = join(s.env.PUTTYDIR, "sessions");
      await Deno.mkdir(sessions, { recursive: true });
      await Deno.writeTextFile(
        join(sessions, "viamaster"),
        `HostName=${s.host}\nProtocol=ssh\nPortNumber=${s.port}\nUserName=${s.user}\n` +
          `ConnectionSharing=1\nControlPath=${ctl}\n`,
      );
      const r = await runOurs(
        "plink",
        ["-batch", "-v", "-load", "viamaster", "echo saved; exit 6"],
        {
          env: s.env,
        },
      );
      assert.equal(r.stdout, "saved\n");
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /Using OpenSSH master at /);
      assert.equal(await s.authCount(), 1);
      assert.equal(await masterPid(s, path), pid);
    } finally {
      await stopSshMaster(s, path);
      await s.stop();
    }
  },
);
