/**
 * 40 downstream commands (`sleep 1; echo ok`) started at once against a server allowing 10
 * sessions per connection (sshd `MaxSessions 10`, a second sshd started for this section): the
 * wall time until the last has finished, and how many failed, for our upstream + our plink, an
 * OpenSSH ControlMaster + ssh -S and PuTTY's upstream + PuTTY's plink; and our 40 one after
 * another for comparison. Ours queue sessions the server refuses and open more connections
 * (logged in with the upstream's key); PuTTY's fail what the server refuses, and OpenSSH's ssh -S
 * then logs in by itself (counted in the notes).
 */

import { BenchContext, type Cmd, ratio, type Row, type Section, stats } from "../bench_lib.ts";
import { startSshd } from "../../tests/fixtures/sshd.ts";

const LIMIT = 10;
const COMMAND = "sleep 1; echo ok";

interface Batch {
  ms: number;
  failed: number;
  firstError?: string;
}

async function parallelBatch(ctx: BenchContext, c: Cmd, n: number): Promise<Batch> {
  const t0 = performance.now();
  const outs = await Promise.all(Array.from({ length: n }, () => ctx.spawn(c).output()));
  const ms = performance.now() - t0;
  const bad = outs.filter((o) => !o.success || new TextDecoder().decode(o.stdout) !== "ok\n");
  const firstError = bad.length ? new TextDecoder().decode(bad[0].stderr).trim() : undefined;
  return { ms, failed: bad.length, firstError };
}

async function sequentialBatch(ctx: BenchContext, c: Cmd, n: number): Promise<Batch> {
  const t0 = performance.now();
  let failed = 0;
  for (let i = 0; i < n; i++) {
    const o = await ctx.spawn(c).output();
    if (!o.success || new TextDecoder().decode(o.stdout) !== "ok\n") failed++;
  }
  return { ms: performance.now() - t0, failed };
}

export const sessionLimit: Section = {
  name: "session-limit",
  async run(outer: BenchContext) {
    const n = outer.quick ? 12 : 40;
    const reps = outer.quick ? 1 : 3;
    const sshd = await startSshd({ config: [`MaxSessions ${LIMIT}`] });
    const ctx = new BenchContext(sshd, outer.opts);
    const rows: Row[] = [];
    const notes: string[] = [];
    const measure = async (name: string, c: Cmd, how: typeof parallelBatch, times: number) => {
      const batches: Batch[] = [];
      for (let i = 0; i < times; i++) batches.push(await how(ctx, c, n));
      rows.push({ name, stats: stats(batches.map((b) => b.ms)) });
      const failed = batches.reduce((a, b) => a + b.failed, 0);
      const first = batches.find((b) => b.firstError)?.firstError;
      notes.push(
        `${name}: ${failed} of ${n * times} commands failed` +
          (first ? ` (first: ${first.split("\n").pop()})` : ""),
      );
    };
    try {
      const before = await sshd.authCount();
      const up = await ctx.startUpstream("ours");
      const upAuth = (await sshd.authCount()) - before;
      const ours = ctx.ours(["-share", "-batch", ...ctx.target, COMMAND]);
      await measure(`ours, ${n} parallel`, ours, parallelBatch, reps);
      const extra = (await sshd.authCount()) - before - upAuth;
      await measure(`ours, ${n} sequential`, ours, sequentialBatch, 1);
      await up.stop();
      notes.push(`our upstream's extra connections to the server in all: ${extra}`);

      const master = await ctx.startSshMaster();
      const beforeMux = await sshd.authCount();
      await measure(`OpenSSH mux, ${n} parallel`, ctx.ssh([COMMAND], true), parallelBatch, reps);
      // ssh -S falls back to a connection of its own when the master's session is refused.
      notes.push(
        `logins of OpenSSH's clients of their own (the master refused): ` +
          `${(await sshd.authCount()) - beforeMux}`,
      );
      await master.stop();

      const realUp = await ctx.startUpstream("real");
      const real = ctx.real(["-share", "-batch", ...ctx.target, COMMAND]);
      await measure(`PuTTY plink -share, ${n} parallel`, real, parallelBatch, reps);
      await realUp.stop();
    } finally {
      await ctx.stopAll();
      await sshd.stop();
    }
    const ours0 = `ours, ${n} parallel`;
    return [{
      title: `${n} parallel against MaxSessions ${LIMIT}: \`${COMMAND}\`, wall time per batch ` +
        `of ${n} (${reps} batches; sequential: 1)`,
      unit: "ms",
      rows,
      ratios: [
        ratio(rows, ours0, `ours, ${n} sequential`),
        ratio(rows, ours0, `OpenSSH mux, ${n} parallel`),
        ratio(rows, ours0, `PuTTY plink -share, ${n} parallel`),
      ],
      notes,
    }];
  },
};
