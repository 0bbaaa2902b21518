/**
 * The library API (mod.ts's `connect`) against a real sshd: from a program outside this repo that
 * imports mod.ts by file URL with no import map (as upstream, downstream of PuTTY's plink, and
 * direct), and in-process for streaming, forwarding, SFTP and the error classes.
 */

import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import {
  AuthenticationError,
  connect,
  ConnectionError,
  type ConnectOptions,
  HostKeyError,
  PuttykitError,
  RefusedError,
  RemoteFileError,
} from "../mod.ts";
import { freePort, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startUpstream, stopUpstream } from "./fixtures/upstream.ts";
import { controlDir, masterPid, startSshMaster, stopSshMaster } from "./fixtures/ssh_master.ts";
import { collect, DENO, MOD, runReal, spawn } from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** What the outside program does: connect, run a command, an SFTP round trip, then wait. */
const PROGRAM = `
import { connect } from ${JSON.stringify(pathToFileURL(MOD).href)};
const [host, port, user, keyFile, hostKey, share, dir] = Deno.args;
const conn = await connect(host, {
  port: Number(port), user, keyFile, hostKeys: [hostKey], share: share === "share",
});
const run = await conn.exec("echo out; echo err >&2; exit 3");
const sftp = await conn.sftp();
await sftp.writeFile(dir + "/sent.txt", "round trip\\n");
const back = new TextDecoder().decode(await sftp.readFile(dir + "/sent.txt"));
await sftp.close();
const dec = new TextDecoder();
console.log(JSON.stringify({
  role: conn.role, code: run.code, stdout: dec.decode(run.stdout), stderr: dec.decode(run.stderr),
  back,
}));
console.log("READY");
// The test says when to go (meanwhile an upstream serves other downstreams).
for await (const _ of Deno.stdin.readable) break;
await conn.close();
console.log("CLOSED");
`;

interface Outside {
  child: Deno.ChildProcess;
  /** The program's report, once it has connected and done its work. */
  report: Promise<{ role: string; code: number; stdout: string; stderr: string; back: string }>;
  /** Lets the program close its connection and exit; resolves to all it printed. */
  finish(): Promise<string>;
}

/** Runs PROGRAM with `deno run` from a directory outside the repo (no deno.json, no map). */
async function runOutside(s: Sshd, share: boolean): Promise<Outside> {
  const dir = await Deno.makeTempDir({ prefix: "pk-api-outside-" });
  await Deno.writeTextFile(`${dir}/program.ts`, PROGRAM);
  const remoteDir = await s.userDir(`api-${crypto.randomUUID()}`);
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "-A",
      "--no-lock",
      `${dir}/program.ts`,
      s.host,
      String(s.port),
      s.user,
      s.userKeyPpk,
      s.hostKeyFingerprint,
      share ? "share" : "noshare",
      remoteDir,
    ],
    cwd: dir,
    env: s.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let printed = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const readUntil = async (marker: string) => {
    const end = Date.now() + 30000;
    while (!printed.includes(marker) && Date.now() < end) {
      const { value, done } = await reader.read();
      if (done) break;
      printed += value;
    }
    return printed;
  };
  const stderr = new Response(child.stderr).text();
  const report = readUntil("READY").then(async (text) => {
    const line = text.split("\n").find((l) => l.startsWith("{"));
    if (!line) throw new Error(`the program printed no report: ${text}${await stderr}`);
    return JSON.parse(line);
  });
  return {
    child,
    report,
    finish: async () => {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode("go\n"));
      await w.close();
      const text = await readUntil("CLOSED");
      const status = await child.status;
      assert.equal(status.code, 0, `program failed: ${await stderr}`);
      return text;
    },
  };
}

function target(s: Sshd): string[] {
  return ["-P", String(s.port), `${s.user}@${s.host}`];
}

Deno.test(
  "a program outside the repo becomes the upstream and serves PuTTY's plink meanwhile",
  opts,
  async () => {
    const s = await startSshd();
    const prog = await runOutside(s, true);
    try {
      const r = await prog.report;
      assert.deepEqual(r, {
        role: "upstream",
        code: 3,
        stdout: "out\n",
        stderr: "err\n",
        back: "round trip\n",
      });
      const real = await runReal("plink", ["-share", "-batch", ...target(s), "echo via-api"], {
        env: s.env,
      });
      assert.equal(real.stdout, "via-api\n");
      assert.equal(real.code, 0);
      assert.equal(await s.authCount(), 1);
      assert.match(await prog.finish(), /CLOSED/);
    } finally {
      try {
        prog.child.kill("SIGKILL");
      } catch { /* exited */ }
      await s.stop();
    }
  },
);

Deno.test(
  "a program outside the repo is a downstream of PuTTY's plink upstream",
  opts,
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "real");
    const prog = await runOutside(s, true);
    try {
      const r = await prog.report;
      assert.equal(r.role, "downstream");
      assert.equal(r.code, 3);
      assert.equal(r.back, "round trip\n");
      await prog.finish();
      assert.equal(await s.authCount(), 1);
    } finally {
      await stopUpstream(up);
      await s.stop();
    }
  },
);

Deno.test("a program outside the repo connects directly without sharing", opts, async () => {
  const s = await startSshd();
  const up = await startUpstream(s, "real");
  const prog = await runOutside(s, false);
  try {
    const r = await prog.report;
    assert.equal(r.role, "direct");
    assert.equal(r.stdout, "out\n");
    await prog.finish();
    // Its own login beside the upstream's.
    assert.equal(await s.authCount(), 2);
  } finally {
    await stopUpstream(up);
    await s.stop();
  }
});

Deno.test("controlPath: an OpenSSH ControlMaster carries the connection", opts, async () => {
  const s = await startSshd();
  const path = `${await controlDir(s)}/master`;
  const pid = await startSshMaster(s, path);
  const dir = await s.userDir("api-master");
  try {
    {
      await using conn = await connect(s.host, {
        port: s.port,
        user: s.user,
        share: true,
        controlPath: path,
        batch: true,
      });
      assert.equal(conn.role, "downstream");
      const r = await conn.exec("echo via-master; exit 4");
      assert.equal(r.code, 4);
      assert.equal(new TextDecoder().decode(r.stdout), "via-master\n");
      const sftp = await conn.sftp();
      await sftp.writeFile(`${dir}/m.txt`, "through the master\n");
      assert.equal(
        new TextDecoder().decode(await sftp.readFile(`${dir}/m.txt`)),
        "through the master\n",
      );
      await sftp.close();
    }
    // The master's own login only, and the master lives on.
    assert.equal(await s.authCount(), 1);
    assert.equal(await masterPid(s, path), pid);
  } finally {
    await stopSshMaster(s, path);
    await s.stop();
  }
});

function login(s: Sshd, extra: ConnectOptions = {}): ConnectOptions {
  return {
    port: s.port,
    user: s.user,
    keyFile: s.userKeyPpk,
    hostKeys: [s.hostKeyFingerprint],
    ...extra,
  };
}

Deno.test("streaming, SFTP and port forwarding in-process", opts, async () => {
  const s = await startSshd();
  const dir = await s.userDir("api-inproc");
  const local = await Deno.makeTempDir();
  try {
    await using conn = await connect(s.host, login(s));
    assert.equal(conn.role, "direct");

    // spawn: 4 MiB through `wc -c` and back out of `cat`, by web streams.
    const p = await conn.spawn("cat");
    const size = 4 * 1024 * 1024;
    const input = new Uint8Array(size).map((_, i) => i & 0xff);
    const writing = (async () => {
      const w = p.stdin.getWriter();
      await w.write(input);
      await w.close();
    })();
    const echoed = new Uint8Array(await new Response(p.stdout).arrayBuffer());
    await writing;
    assert.equal(echoed.length, size);
    assert.deepEqual(echoed.subarray(size - 256), input.subarray(size - 256));
    assert.deepEqual(await p.status, { code: 0 });

    const killed = await conn.exec("kill -TERM $$");
    assert.equal(killed.code, null);
    assert.equal(killed.signal, "TERM");

    const sftp = await conn.sftp();
    await Deno.writeTextFile(`${local}/up.txt`, "uploaded\n");
    await sftp.put(`${local}/up.txt`, `${dir}/up.txt`);
    await sftp.mkdir(`${dir}/sub`);
    await sftp.rename(`${dir}/up.txt`, `${dir}/sub/moved.txt`);
    const listed = await sftp.list(`${dir}/sub`);
    assert.deepEqual(listed.map((e) => [e.name, e.size, e.isFile]), [["moved.txt", 9, true]]);
    assert.equal((await sftp.stat(`${dir}/sub`)).isDirectory, true);
    await sftp.get(`${dir}/sub/moved.txt`, `${local}/down.txt`);
    assert.equal(await Deno.readTextFile(`${local}/down.txt`), "uploaded\n");
    await sftp.remove(`${dir}/sub/moved.txt`);
    await sftp.remove(`${dir}/sub`, { directory: true });
    await assert.rejects(
      () => sftp.stat(`${dir}/sub`),
      (e) => e instanceof RemoteFileError && e.status === 2,
    );
    // A failed download leaves nothing under the target's name, nor a temporary file.
    await assert.rejects(() => sftp.get(`${dir}/missing`, `${local}/missing`), RemoteFileError);
    assert.deepEqual([...Deno.readDirSync(local)].map((e) => e.name).sort(), [
      "down.txt",
      "up.txt",
    ]);
    await assert.rejects(
      () => sftp.put(`${local}/absent`, `${dir}/absent`),
      (e) => e instanceof PuttykitError && e.message.endsWith("absent: No such file or directory"),
    );
    await sftp.close();

    // -L through the connection to a local echo-ish server (sshd itself: its banner).
    const fwd = await conn.forwardLocal({
      listenPort: 0,
      listenHost: "127.0.0.1",
      host: "127.0.0.1",
      port: s.port,
    });
    const sock = await Deno.connect({ hostname: "127.0.0.1", port: fwd.port });
    const buf = new Uint8Array(64);
    const n = await sock.read(buf);
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^SSH-2\.0-OpenSSH/);
    sock.close();
    fwd.close();

    // -R: the server listens and its connections come back here.
    const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const remotePort = freePort();
    const rfwd = await conn.forwardRemote({
      listenPort: remotePort,
      host: "127.0.0.1",
      port: (echo.addr as Deno.NetAddr).port,
    });
    const served = (async () => {
      const c = await echo.accept();
      await c.write(new TextEncoder().encode("from-local\n"));
      c.close();
    })();
    const viaServer = await conn.exec(
      `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${remotePort}; cat <&3'`,
    );
    assert.equal(new TextDecoder().decode(viaServer.stdout), "from-local\n");
    await served;
    rfwd.close();
    echo.close();
  } finally {
    await Deno.remove(local, { recursive: true });
    await s.stop();
  }
});

Deno.test("errors are typed, with PuTTY's messages", opts, async () => {
  const s = await startSshd();
  try {
    await assert.rejects(
      () =>
        connect(
          s.host,
          login(s, { hostKeys: ["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] }),
        ),
      (e) => e instanceof HostKeyError && /does not match any -hostkey given/.test(e.message),
    );
    await assert.rejects(
      () => connect(s.host, login(s, { keyFile: undefined, password: "wrong-password" })),
      (e) => e instanceof AuthenticationError,
    );
    const closed = freePort();
    await assert.rejects(
      () => connect("127.0.0.1", { port: closed, batch: true }),
      (e) => e instanceof ConnectionError && /Connection refused/.test(e.message),
    );
    await using conn = await connect(s.host, login(s));
    await assert.rejects(
      () => conn.forwardRemote({ listenPort: 1, host: "127.0.0.1", port: 9 }),
      RefusedError,
    );
    const aborter = new AbortController();
    aborter.abort();
    await assert.rejects(
      () => connect(s.host, login(s, { signal: aborter.signal })),
      (e) => e instanceof DOMException && e.name === "AbortError",
    );
    // A server that never says anything: the signal ends the wait.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of silent) held.push(c);
    })();
    const midway = new AbortController();
    const started = Date.now();
    setTimeout(() => midway.abort(), 300);
    await assert.rejects(
      () =>
        connect("127.0.0.1", {
          port: (silent.addr as Deno.NetAddr).port,
          batch: true,
          signal: midway.signal,
        }),
      (e) => e instanceof DOMException && e.name === "AbortError",
    );
    assert.ok(Date.now() - started < 10000);
    silent.close();
    for (const c of held) c.close();
    await accepting.catch(() => {});
    // A connection that is lost says so.
    const doomed = await connect(s.host, login(s));
    s.killConnections();
    assert.ok((await doomed.closed) instanceof ConnectionError);
    await doomed.close({ force: true });
  } finally {
    await s.stop();
  }
});

Deno.test("questions go to the callback; without one, batch rules refuse", opts, async (t) => {
  const s = await startSshd();
  // The test's own PuTTY directory: an empty host-key cache.
  const saved = Deno.env.get("PUTTYDIR");
  Deno.env.set("PUTTYDIR", s.env.PUTTYDIR);
  const base = { port: s.port, user: s.user, keyFile: s.userKeyPpk };
  try {
    await assert.rejects(
      () => connect(s.host, base),
      (e) => e instanceof HostKeyError && /cannot confirm a host key in batch mode/.test(e.message),
    );
    const asked: string[] = [];
    await assert.rejects(
      () =>
        connect(s.host, {
          ...base,
          questions: {
            hostKey: (k) => {
              asked.push(k.fingerprint);
              return Promise.resolve("no");
            },
          },
        }),
      (e) => e instanceof HostKeyError && e.message === "Connection abandoned",
    );
    assert.equal(asked.length, 1);
    assert.match(asked[0], /^ssh-ed25519 255 SHA256:/);
    {
      await using conn = await connect(s.host, {
        ...base,
        questions: { hostKey: () => Promise.resolve("store") },
      });
      assert.equal((await conn.exec("true")).code, 0);
    }
    // Stored in PuTTY's cache: no question now, even in batch mode.
    {
      await using conn = await connect(s.host, { ...base, batch: true });
      assert.equal(conn.role, "direct");
    }
    if (s.password) {
      await t.step("a password asked through prompt", async () => {
        const prompts: string[] = [];
        await using conn = await connect(s.host, {
          port: s.port,
          user: s.user,
          questions: {
            prompt: (q, { echo }) => {
              prompts.push(`${q}|${echo}`);
              return Promise.resolve(s.password);
            },
          },
        });
        assert.equal((await conn.exec("echo ok")).code, 0);
        assert.equal(prompts.length, 1);
        assert.match(prompts[0], /password: \|false$/);
      });
    }
  } finally {
    if (saved === undefined) Deno.env.delete("PUTTYDIR");
    else Deno.env.set("PUTTYDIR", saved);
    await s.stop();
  }
});

Deno.test("the CLI entry still dispatches when mod.ts is imported for its API", opts, async () => {
  const r = await collect(spawn(DENO, ["run", "-A", MOD, "plink", "-V"]));
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^plink: puttykit /m);
});

Deno.test("deno.json is ready for deno publish, at the tools' version", opts, async () => {
  const { VERSION } = await import("../lib/version.ts");
  const manifest = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(manifest.version, VERSION);
  assert.equal(manifest.exports, "./mod.ts");
  const r = await collect(spawn(DENO, ["publish", "--dry-run", "--allow-dirty"], {}), {
    timeoutMs: 120000,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /Dry run complete/);
  // Only the library and its entry are published: no tests, no scripts.
  assert.doesNotMatch(r.stdout + r.stderr, /\/tests\/|\/scripts\//);
});

Deno.test("every import is relative, node: or a pinned npm: specifier (no import map)", async () => {
  const root = new URL("../", import.meta.url);
  const files = ["mod.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.isDirectory) await walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".ts")) files.push(`${dir}${e.name}`);
    }
  };
  await walk("lib/");
  await walk("cmd/");
  await walk("scripts/");
  await walk("tests/");
  const bad: string[] = [];
  for (const f of files) {
    const text = await Deno.readTextFile(new URL(f, root));
    const specifiers = [
      ...text.matchAll(/^\s*(?:import|export)\b[^;"]*?\bfrom\s+"([^"]+)"/gm),
      ...text.matchAll(/^\s*import\s+"([^"]+)"/gm),
      ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
    ].map((m) => m[1]);
    for (const spec of specifiers) {
      if (/^\.\.?\//.test(spec) || spec.startsWith("node:")) continue;
      if (/^npm:(@[^/]+\/)?[^@/]+@\d+\.\d+\.\d+(\/|$)/.test(spec)) continue;
      bad.push(`${f}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});
