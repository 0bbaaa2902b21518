/**
 * 100 downstream commands (`true`) started at once through one shared connection: the wall time
 * until the last has finished, for our upstream + our plink, an OpenSSH ControlMaster + ssh -S, and
 * PuTTY's upstream + PuTTY's plink. Every command must succeed and nobody re-authenticates. The
 * floor: as many `deno run hello.ts` at once, what starting that many Deno programs costs. The four
 * take turns, batch by batch.
 */

import { type BenchContext, type Cmd, ratio, type Row, type Section, stats } from "../bench_lib.ts";
import type { Running } from "../bench_lib.ts";
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

export const parallel: Section = {
  name: "parallel",
  async run(ctx: BenchContext) {
    const n = ctx.quick ? 10 : 100;
    const reps = ctx.quick ? 1 : 5;
    const dir = await Deno.makeTempDir({ prefix: "pk-bench-hello-" });
    const ours = {
      name: "ours (plink -share)",
      cmd: ctx.ours(["-share", "-batch", ...ctx.target, "true"]),
      start: () => ctx.startUpstream("ours"),
      ms: [] as number[],
    };
    const variants: { name: string; cmd: Cmd; start?: () => Promise<Running>; ms: number[] }[] = [
      ours,
      {
        name: "OpenSSH mux (ssh -S)",
        cmd: ctx.ssh(["true"], true),
        start: () => ctx.startSshMaster(),
        ms: [],
      },
      {
        name: "PuTTY plink -share",
        cmd: ctx.real(["-share", "-batch", ...ctx.target, "true"]),
        start: () => ctx.startUpstream("real"),
        ms: [],
      },
      {
        name: "deno run hello.ts (the floor)",
        cmd: { cmd: DENO, args: ["run", "--quiet", `${dir}/hello.ts`] },
        ms: [],
      },
    ];
    let oursDownstreamAuths = 0;
    try {
      await Deno.writeTextFile(`${dir}/hello.ts`, 'console.log("hello");\n');
      // The batches take turns, in an order that turns from round to round, so load that comes
      // and goes on a shared machine hits every row alike; each upstream runs for its batch only
      // (ours and PuTTY's would share the one socket).
      for (let round = 0; round < reps; round++) {
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(i + round) % variants.length];
          const up = await v.start?.();
          try {
            const before = await ctx.sshd.authCount();
            v.ms.push(await batch(ctx, v.name, v.cmd, n));
            if (v === ours) oursDownstreamAuths += (await ctx.sshd.authCount()) - before;
          } finally {
            await up?.stop();
          }
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const rows: Row[] = variants.map((v) => ({ name: v.name, stats: stats(v.ms) }));

    return [{
      title: `${n} parallel downstream commands (\`true\`), wall time per batch of ${n} ` +
        `(${reps} batches each, taking turns)`,
      unit: "ms",
      rows,
      ratios: [
        ratio(rows, ours.name, "OpenSSH mux (ssh -S)"),
        ratio(rows, ours.name, "PuTTY plink -share"),
        ratio(rows, ours.name, "deno run hello.ts (the floor)"),
        ratio(rows, "deno run hello.ts (the floor)", "PuTTY plink -share"),
      ],
      notes: [
        `server authentications for our ${n * reps} downstreams: ${oursDownstreamAuths}`,
      ],
    }];
  },
};
