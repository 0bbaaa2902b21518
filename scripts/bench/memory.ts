/**
 * Memory of the process holding the shared connection (VmRSS from /proc/<pid>/status): idle
 * (after one command through it), with 50 and then 100 live downstreams (each a PuTTY plink -share
 * running `cat`, proven live by an echo; OpenSSH: ssh -S clients), and after they have all gone.
 * What one more downstream costs is the growth from 50 to 100: the first ones also pay for code
 * paged in and heap and allocator growth once. Ours (plink -share -N under `deno run`) vs PuTTY's
 * plink -share -N vs an OpenSSH ControlMaster.
 */

import { rssKiB } from "../../tests/fixtures/proc.ts";
import {
  type BenchContext,
  type Cmd,
  ratio,
  type Row,
  type Running,
  type Section,
  type Stats,
  stats,
} from "../bench_lib.ts";

/** Three samples of the holder's RSS in MiB, 200 ms apart. */
async function rss(pid: number): Promise<Stats> {
  const s: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (i) await new Promise((r) => setTimeout(r, 200));
    s.push(rssKiB(pid) / 1024);
  }
  return stats(s);
}

/** Starts `n` clients running `cat` and returns once each has echoed a line back. */
async function liveClients(ctx: BenchContext, c: Cmd, n: number) {
  const kids = Array.from({ length: n }, () => ctx.spawn(c, "piped"));
  const ping = new TextEncoder().encode("ping\n");
  const writers = kids.map((k) => k.stdin.getWriter());
  const echoed = kids.map(async (k, i) => {
    await writers[i].write(ping);
    const reader = k.stdout.getReader();
    let seen = 0;
    while (seen < ping.length) {
      const { value, done } = await reader.read();
      if (done) {
        const err = await new Response(k.stderr).text();
        throw new Error(`client ${i} ended before echoing: ${err.trim()}`);
      }
      seen += value.length;
    }
    reader.releaseLock();
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(echoed),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("clients did not all echo in 60 s")), 60000);
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    async close() {
      await Promise.all(writers.map((w) => w.close().catch(() => {})));
      await Promise.all(kids.map(async (k) => {
        await k.stdout.cancel().catch(() => {});
        await k.stderr.cancel().catch(() => {});
        await k.status;
      }));
    },
  };
}

export const memory: Section = {
  name: "memory",
  async run(ctx: BenchContext) {
    const n = ctx.quick ? 10 : 100;
    const half = n / 2;
    const rows: Row[] = [];
    const measure = async (
      name: string,
      start: () => Promise<Running>,
      client: (command: string) => Cmd,
    ) => {
      const holder = await start();
      await ctx.run(client("true"));
      rows.push({ name: `${name}, idle`, stats: await rss(holder.pid) });
      const first = await liveClients(ctx, client("cat"), half);
      rows.push({ name: `${name}, ${half} downstreams`, stats: await rss(holder.pid) });
      const second = await liveClients(ctx, client("cat"), n - half);
      rows.push({ name: `${name}, ${n} downstreams`, stats: await rss(holder.pid) });
      await Promise.all([first.close(), second.close()]);
      await new Promise((r) => setTimeout(r, 500));
      rows.push({ name: `${name}, after they left`, stats: await rss(holder.pid) });
      await holder.stop();
    };
    const realDownstream = (c: string) => ctx.real(["-share", "-batch", ...ctx.target, c]);
    await measure("ours", () => ctx.startUpstream("ours"), realDownstream);
    await measure("PuTTY plink", () => ctx.startUpstream("real"), realDownstream);
    await measure("OpenSSH master", () => ctx.startSshMaster(), (c) => ctx.ssh([c], true));

    const median = (who: string, suffix: string) =>
      rows.find((r) => r.name === `${who}, ${suffix}`)!.stats.median;
    /** KiB per downstream between two rows (MiB). */
    const kib = (who: string, from: string, to: string, count: number) =>
      `${((median(who, to) - median(who, from)) * 1024 / count).toFixed(0)} KiB`;
    const who = ["ours", "PuTTY plink", "OpenSSH master"];
    const busy = (w: string) => `${w}, ${n} downstreams`;
    return [{
      title: `Upstream memory (RSS), idle and with ${half} and ${n} live downstreams`,
      unit: "MiB",
      rows,
      ratios: [
        ratio(rows, busy("ours"), busy("PuTTY plink")),
        ratio(rows, busy("ours"), busy("OpenSSH master")),
      ],
      notes: [
        // The first ones also pay one-off costs (code paged in, heap and allocator growth).
        `each further downstream (${half} -> ${n}): ` +
        who.map((w) => `${w} ${kib(w, `${half} downstreams`, `${n} downstreams`, n - half)}`)
          .join(", "),
        `the first ${n} (idle -> ${n}), per downstream: ` +
        who.map((w) => `${w} ${kib(w, "idle", `${n} downstreams`, n)}`).join(", "),
      ],
    }];
  },
};
