/**
 * Peak RSS of a pscp SFTP download, which must not grow with the file: 100 MiB and 1 GiB (random
 * bytes), each tool on its own connection, and 100 MiB as a downstream of an upstream of its own
 * kind (ours through ours, PuTTY's through PuTTY's). MiB/s of the same runs beside it. Runs are
 * interleaved; every download is checked by size.
 */

import { join } from "node:path";
import {
  type BenchContext,
  type Cmd,
  MiB,
  ratio,
  type Row,
  scratchRoot,
  type Section,
  stats,
} from "../bench_lib.ts";
import { randomFile } from "./transfer.ts";

/** A 1 GiB download may take minutes on a loaded machine. */
const BIG_LIMIT_MS = 15 * 60 * 1000;

export const transferMemory: Section = {
  name: "transfer-memory",
  async run(ctx: BenchContext) {
    const [small, big] = ctx.quick ? [8 * MiB, 16 * MiB] : [100 * MiB, 1024 * MiB];
    const reps = ctx.quick ? 1 : 2;
    const local = await Deno.makeTempDir({
      dir: scratchRoot(),
      prefix: "pk-bench-transfer-memory-",
    });
    const remoteDir = await ctx.sshd.userDir("bench-transfer-memory");
    try {
      const remote = { small: join(remoteDir, "small.bin"), big: join(remoteDir, "big.bin") };
      await randomFile(remote.small, small);
      await randomFile(remote.big, big);
      const back = join(local, "back.bin");
      const port = ["-P", String(ctx.sshd.port)];
      const from = (file: string) => `${ctx.userAtHost}:${file}`;
      const direct = (make: typeof ctx.ours, file: string) =>
        make([...ctx.auth, "-q", ...port, "-sftp", from(file), back], "pscp");
      const shared = (make: typeof ctx.ours, file: string) =>
        make(["-share", "-batch", "-q", ...port, "-sftp", from(file), back], "pscp");
      const ours = ctx.ours.bind(ctx);
      const real = ctx.real.bind(ctx);
      const mib = (n: number) => `${n / MiB >= 1024 ? `${n / MiB / 1024} GiB` : `${n / MiB} MiB`}`;

      const rss = new Map<string, number[]>();
      const speed = new Map<string, number[]>();
      const once = async (name: string, c: Cmd, size: number) => {
        await Deno.remove(back).catch(() => {});
        const t = await ctx.once(c, name, { rss: true, limitMs: BIG_LIMIT_MS });
        if (t.stopped) return;
        const got = await Deno.stat(back).then((s) => s.size, () => -1);
        if (got !== size) throw new Error(`${name}: ${got} of ${size} bytes`);
        if (t.peakRssMiB !== undefined) {
          rss.set(name, [...rss.get(name) ?? [], t.peakRssMiB]);
        }
        speed.set(name, [...speed.get(name) ?? [], size / MiB / (t.ms / 1000)]);
      };

      const names = {
        oursSmall: `ours pscp, ${mib(small)}`,
        oursBig: `ours pscp, ${mib(big)}`,
        realSmall: `PuTTY pscp, ${mib(small)}`,
        realBig: `PuTTY pscp, ${mib(big)}`,
        oursShared: `ours pscp as a downstream, ${mib(small)}`,
        realShared: `PuTTY pscp as a downstream, ${mib(small)}`,
      };
      await ctx.once(ctx.ours(["-V"], "pscp"));
      for (let i = 0; i < reps; i++) {
        await once(names.oursSmall, direct(ours, remote.small), small);
        await once(names.realSmall, direct(real, remote.small), small);
        await once(names.oursBig, direct(ours, remote.big), big);
        await once(names.realBig, direct(real, remote.big), big);
      }
      const oursUp = await ctx.startUpstream("ours");
      for (let i = 0; i < reps; i++) {
        await once(names.oursShared, shared(ours, remote.small), small);
      }
      await oursUp.stop();
      const realUp = await ctx.startUpstream("real");
      for (let i = 0; i < reps; i++) {
        await once(names.realShared, shared(real, remote.small), small);
      }
      await realUp.stop();

      const rowsOf = (m: Map<string, number[]>): Row[] =>
        Object.values(names).flatMap((n) => m.has(n) ? [{ name: n, stats: stats(m.get(n)!) }] : []);
      const rssRows = rowsOf(rss);
      const speedRows = rowsOf(speed);
      const present = (rows: Row[], pairs: [string, string][]) =>
        pairs.filter((p) => p.every((n) => rows.some((r) => r.name === n)))
          .map(([a, b]) => ratio(rows, a, b));
      return [{
        title: `Peak RSS of a pscp SFTP download, ${mib(small)} and ${mib(big)}, alone and as ` +
          `a downstream (${reps} runs each)`,
        unit: "MiB",
        rows: rssRows,
        ratios: present(rssRows, [
          [names.oursBig, names.oursSmall],
          [names.oursSmall, names.realSmall],
          [names.oursShared, names.realShared],
        ]),
        notes: rssRows.length
          ? []
          : ["no peak RSS: /usr/bin/time (Debian package time) is missing"],
      }, {
        title: `The same downloads' speed (higher is better)`,
        unit: "MiB/s",
        rows: speedRows,
        ratios: present(speedRows, [
          [names.oursSmall, names.realSmall],
          [names.oursShared, names.realShared],
        ]),
        notes: [],
      }];
    } finally {
      await Deno.remove(local, { recursive: true });
      await Deno.remove(remoteDir, { recursive: true }).catch(() => {});
    }
  },
};
