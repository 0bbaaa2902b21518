/**
 * Bulk data through one command, both ways: 200 MiB from the server (`head -c N /dev/zero` read
 * on our side) and to it (our stdin into `wc -c`, whose count is checked). Wall time includes
 * connection set-up, as a user sees it. Compared: our plink as a downstream of our upstream and
 * alone, PuTTY's plink as a downstream of PuTTY's upstream and alone, and OpenSSH's ssh.
 */

import {
  type BenchContext,
  type Cmd,
  MiB,
  ratio,
  type Row,
  type Section,
  stats,
  type Table,
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
    const reps = ctx.quick ? 1 : 3;
    const down = `head -c ${size} /dev/zero`;
    const up = "wc -c";
    const rows = { download: [] as Row[], upload: [] as Row[] };
    const measure = async (name: string, make: (cmd: string) => Cmd) => {
      const d: number[] = [];
      const u: number[] = [];
      for (let i = 0; i < reps; i++) {
        d.push(await download(ctx, `${name} download`, make(down), size));
        u.push(await upload(ctx, `${name} upload`, make(up), size));
      }
      rows.download.push({ name, stats: stats(d) });
      rows.upload.push({ name, stats: stats(u) });
    };
    const { auth, target } = ctx;

    const oursUp = await ctx.startUpstream("ours");
    await measure("ours, downstream", (c) => ctx.ours(["-share", "-batch", ...target, c]));
    await oursUp.stop();
    await measure("ours, no sharing", (c) => ctx.ours([...auth, ...target, c]));
    const realUp = await ctx.startUpstream("real");
    await measure("PuTTY plink, downstream", (c) => ctx.real(["-share", "-batch", ...target, c]));
    await realUp.stop();
    await measure("PuTTY plink, no sharing", (c) => ctx.real([...auth, ...target, c]));
    await measure("OpenSSH ssh", (c) => ctx.ssh([c]));

    const table = (dir: "download" | "upload", what: string): Table => ({
      title: `Throughput, ${size / MiB} MiB ${what} (${reps} runs; higher is better)`,
      unit: "MiB/s",
      rows: rows[dir],
      ratios: [
        ratio(rows[dir], "ours, downstream", "ours, no sharing"),
        ratio(rows[dir], "ours, downstream", "PuTTY plink, downstream"),
        ratio(rows[dir], "ours, downstream", "OpenSSH ssh"),
      ],
      notes: [],
    });
    return [
      table("download", "from the server (`head -c N /dev/zero`)"),
      table("upload", "to the server (stdin into `wc -c`)"),
    ];
  },
};
