/**
 * The upstream under abuse from clients on the same account (raw sockets on the sharing socket)
 * and a downstream facing a stuck upstream, against a real sshd. Time limits are shortened
 * through PK_SHARE_GREETING_MS / PK_SHARE_MAX_PENDING; every wait is bounded, and each check
 * leaves seconds of slack for a loaded machine.
 */

import assert from "node:assert/strict";
import { loginArgs, startSshd } from "./fixtures/sshd.ts";
import { collect, runOurs, waitFor } from "./fixtures/tools.ts";
import { startUpstream, stopUpstream, upstreamId } from "./fixtures/upstream.ts";
import { fdCount, rssKiB } from "./fixtures/proc.ts";
import { GREETING_PREFIX } from "../lib/share/socket_port.ts";
import { concatBytes, message, MSG, readUint32 } from "../lib/ssh/wire.ts";
import { sharePaths } from "../lib/share/socket_path.ts";
import { openDownstream } from "../lib/share/downstream.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A connection to the sharing socket that sends nothing; `closed` settles when the peer hangs up. */
async function silent(path: string): Promise<{ conn: Deno.UnixConn; closed: Promise<number> }> {
  const conn = await Deno.connect({ transport: "unix", path });
  const opened = Date.now();
  const closed = (async () => {
    const buf = new Uint8Array(4096);
    try {
      while (await conn.read(buf) !== null) { /* the greeting, if any */ }
    } catch { /* reset */ }
    return Date.now() - opened;
  })();
  return { conn, closed };
}

function closeAll(conns: { conn: Deno.UnixConn }[]): void {
  for (const c of conns) {
    try {
      c.conn.close();
    } catch { /* closed */ }
  }
}

Deno.test(
  "share abuse: connections that never greet are dropped in time, and capped",
  opts,
  async () => {
    const s = await startSshd();
    const greetingMs = 4000;
    const up = await startUpstream(s, "ours", {
      env: { PK_SHARE_GREETING_MS: String(greetingMs), PK_SHARE_MAX_PENDING: "8" },
    });
    const idle: Awaited<ReturnType<typeof silent>>[] = [];
    try {
      const { socket } = await sharePaths(upstreamId(s));
      for (let i = 0; i < 20; i++) idle.push(await silent(socket));
      // Each one either is refused on arrival (over the cap) or dropped at the time limit; the
      // upstream's own start-up probes may still hold a slot or two when the first ones arrive.
      const deadline = setTimeout(() => closeAll(idle), greetingMs + 15000);
      const times = await Promise.all(idle.map((c) => c.closed));
      clearTimeout(deadline);
      const held = times.filter((t) => t >= greetingMs - 200);
      const refused = times.filter((t) => t < greetingMs - 1000);
      assert.equal(held.length + refused.length, 20, `lasted: ${times}`);
      assert.ok(held.length >= 4 && held.length <= 8, `held to the limit: ${held}`);
      for (const t of held) assert.ok(t < greetingMs + 8000, `one lasted ${t} ms`);
      closeAll(idle);
      // And the upstream still serves well-behaved downstreams.
      const r = await runOurs("plink", [...loginArgs(s, "-share", "-v"), "echo still-here"], {
        env: s.env,
        timeoutMs: 30000,
      });
      assert.equal(r.stdout, "still-here\n", r.stderr);
      assert.match(r.stderr, /Using existing shared connection/);
    } finally {
      closeAll(idle);
      await stopUpstream(up);
      await s.stop();
    }
  },
);

Deno.test(
  "share abuse: an upstream out of descriptors recovers once they are freed",
  opts,
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "ours", {
      env: { PK_SHARE_GREETING_MS: "120000" },
      args: ["-v"],
    });
    const upDone = collect(up, { timeoutMs: 120000 });
    const stop = () => {
      try {
        up.kill("SIGTERM");
      } catch { /* gone */ }
      return upDone;
    };
    const idle: Awaited<ReturnType<typeof silent>>[] = [];
    try {
      const { socket } = await sharePaths(upstreamId(s));
      // Logged in and serving (the socket exists before that), so only accepting is starved.
      (await openDownstream(socket)).conn.close();
      const limit = 64;
      const lim = await new Deno.Command("prlimit", {
        args: ["--pid", String(up.pid), `--nofile=${limit}:${limit}`],
      }).output();
      assert.ok(lim.success, new TextDecoder().decode(lim.stderr));
      for (let i = 0; i < 150; i++) {
        try {
          idle.push(await silent(socket));
        } catch {
          break; // the kernel's backlog is full too
        }
      }
      // The upstream takes descriptors until it has none left (accept() fails with EMFILE).
      await waitFor(
        () => fdCount(up.pid) >= limit - 2,
        15000,
        "the upstream to run out of descriptors",
      );
      closeAll(idle);
      await waitFor(() => fdCount(up.pid) < limit / 2, 15000, "the idle connections to be closed");
      const r = await runOurs("plink", [...loginArgs(s, "-share", "-v"), "echo recovered"], {
        env: s.env,
        timeoutMs: 30000,
      });
      assert.equal(r.stdout, "recovered\n", r.stderr);
      assert.match(r.stderr, /Using existing shared connection/, (await stop()).stderr);
      assert.match((await stop()).stderr, /Too many open files/);
    } finally {
      closeAll(idle);
      await stop();
      await s.stop();
    }
  },
);

Deno.test(
  "share abuse: a downstream whose upstream never greets goes it alone, with one line",
  opts,
  async () => {
    const s = await startSshd();
    const paths = await sharePaths(upstreamId(s));
    await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
    try {
      Deno.removeSync(paths.socket);
    } catch { /* none */ }
    // A "live upstream" that accepts and says nothing.
    const stuck = Deno.listen({ transport: "unix", path: paths.socket });
    const held: Deno.Conn[] = [];
    (async () => {
      try {
        for await (const c of stuck) held.push(c);
      } catch { /* closed */ }
    })();
    try {
      const before = await s.authCount();
      const started = Date.now();
      const r = await runOurs("plink", [...loginArgs(s, "-share"), "echo alone"], {
        env: { ...s.env, PK_SHARE_GREETING_MS: "1500" },
        timeoutMs: 30000,
      });
      assert.equal(r.stdout, "alone\n", r.stderr);
      assert.equal(r.code, 0);
      const lines = r.stderr.trim().split("\n").filter((l) => /greeting/.test(l));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /sent no greeting in 1\.5 s; connecting without it/);
      assert.ok(Date.now() - started >= 1500);
      assert.equal(await s.authCount(), before + 1, "it logged in itself");
      assert.ok(held.length >= 1, "it did try the stuck upstream");
    } finally {
      stuck.close();
      for (const c of held) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      try {
        Deno.removeSync(paths.socket);
      } catch { /* gone */ }
      await s.stop();
    }
  },
);

/**
 * A downstream that grants a 4 GiB window, starts `head -c 3G /dev/zero` and then never reads:
 * it reads only up to its channel's confirmation, by hand.
 */
async function nonReadingDownstream(socket: string, command: string): Promise<Deno.UnixConn> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const send = async (payload: Uint8Array) => {
    const framed = new Uint8Array(payload.length + 4);
    new DataView(framed.buffer).setUint32(0, payload.length);
    framed.set(payload, 4);
    for (let off = 0; off < framed.length;) off += await conn.write(framed.subarray(off));
  };
  await conn.write(new TextEncoder().encode(`${GREETING_PREFIX}hog\r\n`));
  await send(message(MSG.CHANNEL_OPEN, (w) => {
    w.string("session").uint32(7).uint32(0xffffffff).uint32(0x4000);
  }));
  let have: Uint8Array = new Uint8Array(0);
  const more = async () => {
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    if (n === null) throw new Error("upstream hung up");
    have = concatBytes([have, buf.subarray(0, n)]);
  };
  while (have.indexOf(10) < 0) await more();
  have = have.subarray(have.indexOf(10) + 1);
  for (;;) {
    while (have.length < 4 || have.length < 4 + readUint32(have, 0)) await more();
    const p = have.subarray(4, 4 + readUint32(have, 0));
    have = have.subarray(4 + p.length);
    if (p[0] === MSG.CHANNEL_OPEN_CONFIRMATION) {
      const serverId = readUint32(p, 5);
      await send(message(MSG.CHANNEL_REQUEST, (w) => {
        w.uint32(serverId).string("exec").bool(false).string(command);
      }));
      return conn;
    }
    if (p[0] === MSG.CHANNEL_OPEN_FAILURE) throw new Error("session refused");
  }
}

Deno.test(
  "share abuse: a 4 GiB window that is never read costs the upstream a bounded amount",
  opts,
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "ours");
    let hog: Deno.UnixConn | undefined;
    try {
      const { socket } = await sharePaths(upstreamId(s));
      (await openDownstream(socket)).conn.close(); // greeted: logged in and warmed up
      const before = rssKiB(up.pid);
      // 3 GiB and a few bytes: a command line no other test runs, to find its process by.
      const size = 3 * 1024 ** 3 + Math.floor(Math.random() * 100000);
      hog = await nonReadingDownstream(socket, `head -c ${size} /dev/zero`);
      const samples: number[] = [];
      for (let i = 0; i < 16; i++) {
        await new Promise((r) => setTimeout(r, 500));
        samples.push(rssKiB(up.pid));
      }
      const growthMiB = (Math.max(...samples) - before) / 1024;
      assert.ok(growthMiB <= 64, `the upstream grew by ${growthMiB.toFixed(1)} MiB`);
      // The server was let send only a bounded amount (sshd reads from the command only while
      // it has window to send): without the clamp head writes ~40 MiB in the first second here.
      const pgrep = await new Deno.Command("pgrep", { args: ["-f", `^head -c ${size} `] }).output();
      const pids = new TextDecoder().decode(pgrep.stdout).trim().split("\n").filter(Boolean);
      assert.equal(pids.length, 1, "the command is running");
      const io = await Deno.readTextFile(`/proc/${pids[0]}/io`);
      const written = Number(io.match(/wchar: (\d+)/)![1]);
      assert.ok(written < 32 * 1024 * 1024, `the command wrote ${written} bytes`);
      // And it still serves others at full speed.
      const r = await runOurs("plink", [
        ...loginArgs(s, "-share"),
        "head -c 50000000 /dev/zero | wc -c",
      ], {
        env: s.env,
        timeoutMs: 60000,
      });
      assert.equal(r.stdout.trim(), "50000000", r.stderr);
    } finally {
      hog?.close();
      await stopUpstream(up);
      await s.stop();
    }
  },
);
