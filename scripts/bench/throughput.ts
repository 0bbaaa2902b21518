/**
 * Bulk data through one command, both ways: 200 MiB from the server (`head -c N /dev/zero` read
 * on our side) and to it (our stdin into `wc -c`, whose count is checked). Wall time includes
 * connection set-up, as a user sees it. Compared: our plink as a downstream of our upstream and
 * alone, PuTTY's plink as a downstream of PuTTY's upstream and alone, and OpenSSH's ssh, in rounds
 * that run each once; the ratios pair them round by round.
 */

import {
  type BenchContext,
  type Cmd,
  MiB,
  ratio,
  roundsRow,
  type Section,
  type Table,
  turningOrder,
} from "../bench_lib.ts";

async function download(ctx: BenchContext, label: string, c: Cmd, size: number): Promise<number> {
  const t0 = performance.now();
  const child = ctx.spawn(c);
  const stderr = new Response(child.stderr).text();
  let got = 0;
  for await (const chunk of child.stdout) got += chunk.length;
  const status = await child.status;
  const secs = (performance.now() - t0) / 1000;
  if (!status.success || got !== size) {
    throw new Error(`${label}: exit ${status.code}, ${got} of ${size} bytes: ${await stderr}`);
  }
  return size / MiB / secs;
}

async function upload(ctx: BenchContext, label: string, c: Cmd, size: number): Promise<number> {
  const block = new Uint8Array(MiB);
  const t0 = performance.now();
  const child = ctx.spawn(c, "piped");
  const out = child.output();
  const w = child.stdin.getWriter();
  for (let sent = 0; sent < size; sent += block.length) {
    await w.write(block.subarray(0, Math.min(block.length, size - sent)));
  }
  await w.close();
  const o = await out;
  const secs = (performance.now() - t0) / 1000;
  const counted = Number(new TextDecoder().decode(o.stdout).trim());
  if (!o.success || counted !== size) {
    const err = new TextDecoder().decode(o.stderr).trim();
    throw new Error(`${label}: exit ${o.code}, server counted ${counted} of ${size}: ${err}`);
  }
  return size / MiB / secs;
}

export const throughput: Section = {
  name: "throughput",
  async run(ctx: BenchContext) {
    const size = (ctx.quick ? 8 : 200) * MiB;
    const reps = ctx.quick ? 1 : 5;
    const down = `head -c ${size} /dev/zero`;
    const up = "wc -c";
    const { auth, target } = ctx;
    /** Each way: a name, the upstream it runs through (if any) and its command for `c`. */
    const ways: [string, "ours" | "real" | undefined, (c: string) => Cmd][] = [
      ["ours, downstream", "ours", (c) => ctx.ours(["-share", "-batch", ...target, c])],
      ["ours, no sharing", undefined, (c) => ctx.ours([...auth, ...target, c])],
      ["PuTTY plink, downstream", "real", (c) => ctx.real(["-share", "-batch", ...target, c])],
      ["PuTTY plink, no sharing", undefined, (c) => ctx.real([...auth, ...target, c])],
      ["OpenSSH ssh", undefined, (c) => ctx.ssh([c])],
    ];
    const samples = ways.map(() => ({ download: [] as number[], upload: [] as number[] }));
    // Rounds, each way once a round in an order that turns, so that load that comes and goes
    // hits all of them alike; an upstream lives for its way's turn only (ours and PuTTY's would
    // share one socket).
    for (let i = 0; i < reps; i++) {
      for (const w of turningOrder(i, ways.length)) {
        const [name, upstream, make] = ways[w];
        const running = upstream ? await ctx.startUpstream(upstream) : undefined;
        try {
          samples[w].download.push(await download(ctx, `${name} download`, make(down), size));
          samples[w].upload.push(await upload(ctx, `${name} upload`, make(up), size));
        } finally {
          await running?.stop();
        }
      }
    }
    const table = (dir: "download" | "upload", what: string): Table => {
      const rows = ways.map(([name], w) => roundsRow(name, samples[w][dir]));
      return {
        title: `Throughput, ${size / MiB} MiB ${what} (${reps} rounds; higher is better)`,
        unit: "MiB/s",
        rows,
        ratios: [
          ratio(rows, "ours, downstream", "ours, no sharing"),
          ratio(rows, "ours, downstream", "PuTTY plink, downstream"),
          ratio(rows, "ours, downstream", "OpenSSH ssh"),
        ],
        notes: [],
      };
    };
    return [
      table("download", "from the server (`head -c N /dev/zero`)"),
      table("upload", "to the server (stdin into `wc -c`)"),
    ];
  },
};
