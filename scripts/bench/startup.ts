/**
 * Process start-up: `plink -V` (parse the command line, print the version, exit) for ours under
 * `deno run` (as scripts/install.sh's wrappers run it; also the compiled dist/plink when `deno task
 * compile` has built one), PuTTY's plink and OpenSSH's `ssh -V`, next to the floor Deno itself
 * costs (`deno run` of an empty module).
 */

import { fileURLToPath } from "node:url";
import { DENO } from "../../tests/fixtures/tools.ts";
import { type BenchContext, ratio, type Row, type Section } from "../bench_lib.ts";

export const startup: Section = {
  name: "startup",
  async run(ctx: BenchContext) {
    const runs = Math.max(ctx.runs, ctx.quick ? 3 : 30);
    const rows: Row[] = [];
    const empty = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      const add = async (name: string, cmd: string, args: string[]) =>
        rows.push({ name, stats: await ctx.time(name, { cmd, args }, runs) });
      await ctx.time("warm-up", ctx.ours(["-V"]), 2);
      const ours = ctx.ours(["-V"]);
      await add("ours, plink -V (deno run)", ours.cmd, ours.args);
      const compiled = fileURLToPath(new URL("../../dist/plink", import.meta.url));
      if (await Deno.stat(compiled).then(() => true, () => false)) {
        await add("ours, plink -V (compiled)", compiled, ["-V"]);
      }
      await add("PuTTY plink -V", "plink", ["-V"]);
      await add("OpenSSH ssh -V", "ssh", ["-V"]);
      await add("deno run, empty module", DENO, ["run", "--quiet", empty]);
    } finally {
      await Deno.remove(empty);
    }
    const ours = "ours, plink -V (deno run)";
    return [{
      title: `Process start-up (${runs} sequential runs each)`,
      unit: "ms",
      rows,
      ratios: [ratio(rows, ours, "PuTTY plink -V"), ratio(rows, ours, "deno run, empty module")],
      notes: [],
    }];
  },
};
