/**
 * 100 downstream commands (`true`) started at once through one shared connection: the wall time
 * until the last has finished, for our upstream + our plink, an OpenSSH ControlMaster + ssh -S, and
 * PuTTY's upstream + PuTTY's plink. Every command must succeed and nobody re-authenticates. The
 * floor: as many `deno run hello.ts` at once, what starting that many Deno programs costs.
 */

import { type BenchContext, type Cmd, ratio, type Row, type Section, stats } from "../bench_lib.ts";
import { DENO } from "../../tests/fixtures/tools.ts";

async function batch(ctx: BenchContext, label: string, c: Cmd, n: number): Promise<number> {
  const t0 = performance.now();
  const outs = await Promise.all(
    Array.from({ length: n }, () => ctx.spawn(c).output()),
  );
  const ms = performance.now() - t0;
  const bad = outs.filter((o) => !o.success);
  if (bad.length) {
    const err = new TextDecoder().decode(bad[0].stderr).trim();
    throw new Error(`${label}: ${bad.length} of ${n} failed; first: exit ${bad[0].code}: ${err}`);
  }
  return ms;
}

async function batches(ctx: BenchContext, label: string, c: Cmd, n: number, reps: number) {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) samples.push(await batch(ctx, label, c, n));
  return stats(samples);
}

export const parallel: Section = {
  name: "parallel",
  async run(ctx: BenchContext) {
    const n = ctx.quick ? 10 : 100;
    const reps = ctx.quick ? 1 : 5;
    const rows: Row[] = [];
    const before = await ctx.sshd.authCount();

    const up = await ctx.startUpstream("ours");
    const oursAuth = (await ctx.sshd.authCount()) - before;
    const ours = ctx.ours(["-share", "-batch", ...ctx.target, "true"]);
    rows.push({ name: "ours (plink -share)", stats: await batches(ctx, "ours", ours, n, reps) });
    const oursAuthAfter = (await ctx.sshd.authCount()) - before;
    await up.stop();

    const master = await ctx.startSshMaster();
    rows.push({
      name: "OpenSSH mux (ssh -S)",
      stats: await batches(ctx, "ssh mux", ctx.ssh(["true"], true), n, reps),
    });
    await master.stop();

    const realUp = await ctx.startUpstream("real");
    const real = ctx.real(["-share", "-batch", ...ctx.target, "true"]);
    rows.push({ name: "PuTTY plink -share", stats: await batches(ctx, "real", real, n, reps) });
    await realUp.stop();

    const dir = await Deno.makeTempDir({ prefix: "pk-bench-hello-" });
    try {
      await Deno.writeTextFile(`${dir}/hello.ts`, 'console.log("hello");\n');
      const hello = { cmd: DENO, args: ["run", "--quiet", `${dir}/hello.ts`] };
      rows.push({
        name: "deno run hello.ts (the floor)",
        stats: await batches(ctx, "hello", hello, n, reps),
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    const ours0 = "ours (plink -share)";
    return [{
      title: `${n} parallel downstream commands (\`true\`), wall time per batch of ${n} ` +
        `(${reps} batches)`,
      unit: "ms",
      rows,
      ratios: [
        ratio(rows, ours0, "OpenSSH mux (ssh -S)"),
        ratio(rows, ours0, "PuTTY plink -share"),
        ratio(rows, ours0, "deno run hello.ts (the floor)"),
        ratio(rows, "deno run hello.ts (the floor)", "PuTTY plink -share"),
      ],
      notes: [
        `server authentications for our ${n * reps} downstreams: ${oursAuthAfter - oursAuth}`,
      ],
    }];
  },
};
