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
import { fdCount } from "./fixtures/proc.ts";
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
