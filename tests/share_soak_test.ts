/**
 * Soak: 10,000 downstream sessions through one upstream, which must not leak file
 * descriptors or memory. The upstream is a real, separate `plink -share -N` process of ours; the
 * downstreams are in-process clients (lib/share/downstream.ts: the sharing socket, our
 * SshConnection), 8 at a time, each connecting, running `echo <n>` on the server, checking its
 * output and exit status, and leaving -- starting 10,000 plink processes would take far too long.
 *
 * After a warm-up of 1,000 sessions the upstream's open descriptors (/proc/<pid>/fd) are counted
 * and its RSS read; at the end the descriptors must be back to that count and the RSS must have
 * grown by less than 64 MiB. Its V8 heap is capped at 64 MiB so that V8's lazy heap growth does
 * not pass for a leak (and a leak in the JS heap ends the upstream instead), and it runs with our
 * tools' small young generation (scripts/deno_flags.ts), whose growth to V8's default size would
 * otherwise show up late; a native leak shows in full: before 8b288cb the ciphers alone grew it by
 * ~110 MiB here.
 *
 * The RSS is also read half-way, and the growth must level off: the second half of the sessions
 * may add at most max(8 MiB, half of what the first half added). A leak costs every session the
 * same, so it grows both halves alike. Measured on 2 cores (10,000 sessions): the first half grew
 * 5.9 MiB (allocator and V8 warm-up), the second 0.5 MiB.
 *
 * PK_SOAK_SESSIONS=n changes the count (about 2.5 ms a session on 2 cores).
 */

import assert from "node:assert/strict";
import { startSshd } from "./fixtures/sshd.ts";
import { collect } from "./fixtures/tools.ts";
import { startUpstream, upstreamId } from "./fixtures/upstream.ts";
import { fdCount, rssKiB } from "./fixtures/proc.ts";
import { openDownstream } from "../lib/share/downstream.ts";
import { sharePaths } from "../lib/share/socket_path.ts";
import { DENO_RUN_FLAGS } from "../scripts/deno_flags.ts";

const SESSIONS = Number(Deno.env.get("PK_SOAK_SESSIONS") ?? 10000);
const WARM_UP = 1000;
const PARALLEL = 8;
const RSS_BOUND_MIB = 64;
/** The second half of the sessions may grow the RSS by at most max(floor, ratio * first half). */
const LEVEL_OFF_FLOOR_MIB = 8;
const LEVEL_OFF_RATIO = 0.5;
/**
 * The test gives up (killing the upstream, which fails every session) when no session has ended
 * for STALL_MS, or after DEADLINE_MS in all. Guards against a hang, not speed limits: a session
 * takes about 2.5 ms on 2 idle cores and up to ~19 ms here with several suites running at once.
 */
const STALL_MS = 30000;
const DEADLINE_MS = 60000 + SESSIONS * 60;

Deno.test(
  `soak: ${SESSIONS} downstream sessions through one upstream leak no descriptors or memory`,
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const s = await startSshd();
    const id = upstreamId(s);
    const denoFlags = DENO_RUN_FLAGS.map((f) =>
      f.startsWith("--v8-flags=") ? `${f},--max-old-space-size=64` : f
    );
    const up = await startUpstream(s, "ours", { denoFlags });
    const upDone = collect(up, { timeoutMs: DEADLINE_MS + 30000 });
    const startedAt = Date.now();
    let lastEnded = startedAt;
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastEnded <= STALL_MS && now - startedAt <= DEADLINE_MS) return;
      clearInterval(watchdog);
      try {
        up.kill("SIGKILL");
      } catch { /* gone */ }
    }, 1000);
    try {
      const { socket } = await sharePaths(id);

      let started = 0;
      const session = async (n: number) => {
        const { conn } = await openDownstream(socket);
        try {
          const ch = await conn.openSession();
          assert.ok(await ch.exec(`echo ${n}`), `session ${n}: exec refused`);
          const out = await new Response(ch.stdout.stream).text();
          await ch.closed;
          assert.equal(out, `${n}\n`, `session ${n}: output`);
          assert.deepEqual(ch.exit, { code: 0 }, `session ${n}: exit status`);
          lastEnded = Date.now();
        } finally {
          conn.close();
        }
      };
      const run = (count: number) =>
        Promise.all(Array.from({ length: PARALLEL }, async () => {
          for (let n = started++; n < count; n = started++) await session(n);
        }));
      const settled = async () => {
        // Every downstream has left once the count holds still for half a second.
        let last = -1;
        for (let same = 0; same < 5;) {
          await new Promise((r) => setTimeout(r, 100));
          const now = fdCount(up.pid);
          same = now === last ? same + 1 : 0;
          last = now;
        }
        return last;
      };

      await run(WARM_UP);
      const fds0 = await settled();
      const rss0 = rssKiB(up.pid);
      const t0 = performance.now();
      await run(WARM_UP + Math.floor(SESSIONS / 2));
      const fdsHalf = await settled();
      const rssHalf = rssKiB(up.pid);
      await run(WARM_UP + SESSIONS);
      const secs = (performance.now() - t0) / 1000;
      const fds1 = await settled();
      const rss1 = rssKiB(up.pid);
      const grownMiB = (rss1 - rss0) / 1024;
      const firstHalfMiB = (rssHalf - rss0) / 1024;
      const secondHalfMiB = (rss1 - rssHalf) / 1024;
      const mib = (kib: number) => (kib / 1024).toFixed(1);
      console.log(
        `${SESSIONS} sessions in ${secs.toFixed(1)} s; upstream fds ${fds0} -> ${fdsHalf} -> ` +
          `${fds1}, RSS ${mib(rss0)} -> ${mib(rssHalf)} -> ${mib(rss1)} MiB`,
      );
      assert.equal(fdsHalf, fds0, "descriptors back to their count half-way");
      assert.equal(fds1, fds0, "descriptors back to their count after the warm-up");
      assert.ok(grownMiB < RSS_BOUND_MIB, `RSS grew ${grownMiB.toFixed(0)} MiB`);
      // Growth levels off: a leak grows the RSS in proportion to the sessions, so the second
      // half would grow about as much as the first; allocator and V8 warm-up only in the first.
      const secondBound = Math.max(LEVEL_OFF_FLOOR_MIB, firstHalfMiB * LEVEL_OFF_RATIO);
      assert.ok(
        secondHalfMiB < secondBound,
        `RSS grew ${firstHalfMiB.toFixed(1)} MiB in the first half, ` +
          `${secondHalfMiB.toFixed(1)} MiB in the second (bound ${secondBound.toFixed(1)} MiB)`,
      );
      assert.equal(await s.authCount(), 1, "one authentication for every session");
    } finally {
      clearInterval(watchdog);
      try {
        up.kill("SIGTERM");
      } catch { /* gone */ }
      await upDone;
      await s.stop();
    }
  },
);
