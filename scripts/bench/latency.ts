/**
 * What one short command (`true`) costs. First, paired round by round (each round runs each once,
 * in a turning order) with wall and CPU time and peak RSS:
 *
 *   deno run hello.ts        the floor any Deno program pays
 *   ours, warm downstream    plink -share host true, through our upstream (plink -share -N), as
 *                            scripts/install.sh installs it (the bundle of scripts/bundle.ts)
 *   ours from source         the same through `deno run mod.ts`
 *   PuTTY plink -share       real plink 0.78 as a downstream of that same upstream of ours
 *   OpenSSH mux              ssh -S ... host true through a warm ControlMaster
 *
 * then each on its own, run after run:
 *
 *   ours, warm downstream    plink -share host true, through our upstream (plink -share -N)
 *   ours, cold upstream      plink -share host true with no upstream (it becomes one, then ends)
 *   ours, no sharing         plink host true (own connection each time)
 *   OpenSSH mux              ssh -S ... host true through a warm ControlMaster
 *   ours via OpenSSH master  plink -share -controlpath ... host true through the same master
 *   OpenSSH, no mux          ssh host true
 *   PuTTY plink -share       real plink 0.78 through a real plink -share -N upstream
 *   PuTTY plink, no sharing  real plink host true
 */

import {
  type BenchContext,
  type Cmd,
  pairedRatio,
  ratio,
  type Row,
  type Section,
  stats,
  type Table,
  turningOrder,
} from "../bench_lib.ts";
import { fileURLToPath } from "node:url";
import { DENO } from "../../tests/fixtures/tools.ts";

/** The runs of one command in a paired measurement (index = round; NaN: not measured). */
interface Series {
  name: string;
  wall: number[];
  cpu: number[];
  rss: number[];
}

/**
 * `rounds` rounds, each running every command once in an order that turns round by round, so a
 * burst of load on the (shared) machine hits all of them alike: wall time, CPU time and peak RSS.
 */
async function paired(
  ctx: BenchContext,
  cmds: { name: string; cmd: Cmd }[],
  rounds: number,
): Promise<Series[]> {
  const series = cmds.map(({ name }) => ({ name, wall: [], cpu: [], rss: [] } as Series));
  for (let r = 0; r < rounds; r++) {
    for (const i of turningOrder(r, cmds.length)) {
      const t = await ctx.once(cmds[i].cmd, cmds[i].name, { rss: true });
      series[i].wall.push(t.ms);
      series[i].cpu.push(t.cpuMs ?? NaN);
      series[i].rss.push(t.peakRssMiB ?? NaN);
    }
  }
  return series;
}

const measured = (values: number[]) => values.filter(Number.isFinite);

/**
 * At the end of a few runs of each command (a preload reads /proc/self/status), its resident
 * memory split into anonymous and file-backed pages, medians: one note line each.
 */
async function rssSplit(ctx: BenchContext, cmds: { name: string; cmd: Cmd }[]): Promise<string[]> {
  const preload = fileURLToPath(new URL("./rss_split.ts", import.meta.url));
  const notes: string[] = [];
  for (const { name, cmd } of cmds) {
    const anon: number[] = [], file: number[] = [];
    for (let i = 0; i < Math.min(ctx.runs, 5); i++) {
      // Reading /proc/self needs every permission.
      const all = cmd.args.includes("-A") ? [] : ["-A"];
      const args = [cmd.args[0], ...all, "--preload", preload, ...cmd.args.slice(1)];
      const out = await new Deno.Command(cmd.cmd, {
        args,
        env: ctx.env,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      const m = /RSS_SPLIT anon=(\d+) file=(\d+)/.exec(new TextDecoder().decode(out.stderr));
      if (m) anon.push(Number(m[1]) / 1024), file.push(Number(m[2]) / 1024);
    }
    if (anon.length) {
      notes.push(
        `${name} at exit: ${stats(anon).median.toFixed(1)} MiB anonymous, ` +
          `${stats(file).median.toFixed(1)} MiB file-backed (Deno's executable, shared)`,
      );
    }
  }
  return notes;
}

/**
 * Our warm downstream next to `deno run hello.ts` (the floor any Deno program pays), PuTTY's plink
 * through the same upstream of ours and OpenSSH's ssh -S through a ControlMaster, paired run by
 * run: wall and CPU time, and peak RSS.
 */
async function againstFloor(ctx: BenchContext): Promise<Table[]> {
  const dir = await Deno.makeTempDir({ prefix: "pk-bench-hello-" });
  const hello = `${dir}/hello.ts`;
  await Deno.writeTextFile(hello, 'console.log("hello");\n');
  const up = await ctx.startUpstream("ours");
  const master = await ctx.startSshMaster();
  let series: Series[];
  let split: string[];
  try {
    series = await paired(ctx, [
      { name: "deno run hello.ts", cmd: { cmd: DENO, args: ["run", "--quiet", hello] } },
      { name: "ours, warm downstream", cmd: ctx.ours(["-share", "-batch", ...ctx.target, "true"]) },
      {
        name: "ours from source (deno run mod.ts)",
        cmd: ctx.oursFromSource(["-share", "-batch", ...ctx.target, "true"]),
      },
      {
        name: "PuTTY plink -share (our upstream)",
        cmd: ctx.real(["-share", "-batch", ...ctx.target, "true"]),
      },
      { name: "OpenSSH mux (ssh -S)", cmd: ctx.ssh(["true"], true) },
    ], ctx.runs);
    split = await rssSplit(ctx, [
      { name: "deno run hello.ts", cmd: { cmd: DENO, args: ["run", "--quiet", hello] } },
      { name: "ours, warm downstream", cmd: ctx.ours(["-share", "-batch", ...ctx.target, "true"]) },
    ]);
  } finally {
    await master.stop();
    await up.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const [floor, ours, source, putty, ssh] = series;
  const rows = (pick: (s: Series) => number[], suffix = "") =>
    series.filter((s) => measured(pick(s)).length).map((s) => ({
      name: `${s.name}${suffix}`,
      stats: stats(measured(pick(s))),
    }));
  const vs = (pick: (s: Series) => number[], what: string, a: Series, b: Series) =>
    pick(a).some((v, i) => Number.isFinite(v / pick(b)[i]))
      ? [[`${a.name} / ${b.name}, ${what}, paired`, pairedRatio(pick(a), pick(b))] as [
        string,
        number,
      ]]
      : [];
  const wall = (s: Series) => s.wall;
  const cpu = (s: Series) => s.cpu;
  const rss = (s: Series) => s.rss;
  const tables: Table[] = [{
    title: `Warm downstream \`true\` next to Deno's hello world, wall and CPU time ` +
      `(${ctx.runs} rounds, each runs all five)`,
    unit: "ms",
    rows: [...rows(wall), ...rows(cpu, ", CPU")],
    ratios: [
      ...vs(wall, "wall", ours, floor),
      ...vs(cpu, "CPU", ours, floor),
      ...vs(wall, "wall", source, floor),
      ...vs(cpu, "CPU", source, floor),
      ...vs(wall, "wall", ours, putty),
      ...vs(wall, "wall", ours, ssh),
    ],
    notes: measured(cpu(ours)).length ? [] : ["no CPU times: libc's getrusage could not be called"],
  }];
  if (measured(rss(ours)).length) {
    tables.push({
      title: "Peak RSS of those runs",
      unit: "MiB",
      rows: rows(rss),
      ratios: [
        ...vs(rss, "peak RSS", ours, floor),
        ...vs(rss, "peak RSS", source, floor),
        ...vs(rss, "peak RSS", ours, putty),
      ],
      notes: split,
    });
  }
  return tables;
}

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
    const masterAuthsBefore = await ctx.sshd.authCount();
    await add(
      "ours via OpenSSH master",
      "ours via master",
      ctx.ours(["-share", "-batch", "-controlpath", ctx.ctlPath, ...target, "true"]),
    );
    const masterAuths = (await ctx.sshd.authCount()) - masterAuthsBefore;
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
    return [...await againstFloor(ctx), {
      title: `Per-command latency of \`true\` (${ctx.runs} sequential runs each)`,
      unit: "ms",
      rows,
      ratios: [
        ratio(rows, warm, "OpenSSH mux (ssh -S)"),
        ratio(rows, warm, "PuTTY plink -share"),
        ratio(rows, warm, "ours, no sharing"),
        ratio(rows, "ours, cold upstream", "ours, no sharing"),
        ratio(rows, "ours via OpenSSH master", "OpenSSH mux (ssh -S)"),
        ratio(rows, "ours via OpenSSH master", warm),
      ],
      notes: [
        `server authentications during the ${ctx.runs} warm downstream runs: ${warmAuths}`,
        `server authentications during the ${ctx.runs} runs through the OpenSSH master: ${masterAuths}`,
      ],
    }];
  },
};
