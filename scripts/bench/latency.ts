/**
 * What one short command (`true`) costs, run after run:
 *
 *   ours, warm downstream    plink -share host true, through our upstream (plink -share -N)
 *   ours, cold upstream      plink -share host true with no upstream (it becomes one, then ends)
 *   ours, no sharing         plink host true (own connection each time)
 *   OpenSSH mux              ssh -S ... host true through a warm ControlMaster
 *   OpenSSH, no mux          ssh host true
 *   PuTTY plink -share       real plink 0.78 through a real plink -share -N upstream
 *   PuTTY plink, no sharing  real plink host true
 */

import { type BenchContext, ratio, type Row, type Section } from "../bench_lib.ts";

export const latency: Section = {
  name: "latency",
  async run(ctx: BenchContext) {
    const rows: Row[] = [];
    const add = async (name: string, ...timing: Parameters<BenchContext["time"]>) =>
      rows.push({ name, stats: await ctx.time(...timing) });
    const { auth, target } = ctx;

    const up = await ctx.startUpstream("ours");
    const authBefore = await ctx.sshd.authCount();
    await add(
      "ours, warm downstream",
      "ours warm",
      ctx.ours(["-share", "-batch", ...target, "true"]),
    );
    const warmAuths = (await ctx.sshd.authCount()) - authBefore;
    await up.stop();
    await add(
      "ours, cold upstream",
      "ours cold",
      ctx.ours(["-share", ...auth, ...target, "true"]),
      Math.min(ctx.runs, 20),
    );
    await add("ours, no sharing", "ours direct", ctx.ours([...auth, ...target, "true"]));

    const master = await ctx.startSshMaster();
    await add("OpenSSH mux (ssh -S)", "ssh mux", ctx.ssh(["true"], true));
    await master.stop();
    await add("OpenSSH, no mux", "ssh", ctx.ssh(["true"]));

    const realUp = await ctx.startUpstream("real");
    await add(
      "PuTTY plink -share",
      "real share",
      ctx.real(["-share", "-batch", ...target, "true"]),
    );
    await realUp.stop();
    await add("PuTTY plink, no sharing", "real direct", ctx.real([...auth, ...target, "true"]));

    const warm = "ours, warm downstream";
    return [{
      title: `Per-command latency of \`true\` (${ctx.runs} sequential runs each)`,
      unit: "ms",
      rows,
      ratios: [
        ratio(rows, warm, "OpenSSH mux (ssh -S)"),
        ratio(rows, warm, "PuTTY plink -share"),
        ratio(rows, warm, "ours, no sharing"),
        ratio(rows, "ours, cold upstream", "ours, no sharing"),
      ],
      notes: [`server authentications during the ${ctx.runs} warm downstream runs: ${warmAuths}`],
    }];
  },
};
