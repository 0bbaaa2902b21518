/**
 * Local port forwarding (-L) throughput: our plink, PuTTY's plink 0.78 and OpenSSH's ssh each
 * started with `-N` and two forwardings to local test servers, then
 *
 *   upload     one connection sends N MiB through the forwarding to a sink that answers the count
 *   download   one connection receives N MiB from a source through the forwarding
 *   K x down   K such downloads at once (aggregate MiB/s)
 *
 * and the forwarding process's peak RSS (VmHWM) after all of it. The three forward at once and
 * take turns, in rounds that run each once; the ratios pair them round by round. Time runs from
 * connecting to the forwarded port to the last byte (the SSH connection is already up).
 */

import { peakRssKiB } from "../../tests/fixtures/proc.ts";
import { freePort } from "../../tests/fixtures/sshd.ts";
import { acceptsTcp } from "../../tests/fixtures/tools.ts";
import {
  type BenchContext,
  type Cmd,
  MiB,
  ratio,
  roundsRow,
  type Row,
  type Running,
  type Section,
  stats,
  type Table,
  turningOrder,
} from "../bench_lib.ts";

const BLOCK = new Uint8Array(65536);

async function writeAll(c: Deno.Conn, size: number): Promise<void> {
  for (let sent = 0; sent < size;) {
    sent += await c.write(BLOCK.subarray(0, Math.min(BLOCK.length, size - sent)));
  }
}

/** Reads `c` to its end; the byte count, and the bytes themselves if `keep` is given. */
async function readAll(c: Deno.Conn, keep?: Uint8Array<ArrayBuffer>[]): Promise<number> {
  const b = new Uint8Array(65536);
  let n = 0;
  for (let r; (r = await c.read(b)) !== null;) {
    n += r;
    keep?.push(b.slice(0, r));
  }
  return n;
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}

/** A local server handling each connection with `handle`; its port. */
function serve(handle: (c: Deno.Conn) => Promise<void>): Deno.TcpListener {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) handle(c).catch(() => {}).finally(() => closeQuietly(c));
  })().catch(() => {});
  return l;
}

const portOf = (l: Deno.TcpListener) => (l.addr as Deno.NetAddr).port;

/** MiB/s of one upload of `size` bytes through `port`, checked by the sink's count. */
async function upload(port: number, size: number): Promise<number> {
  const t0 = performance.now();
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(c, size);
    await c.closeWrite();
    const reply: Uint8Array<ArrayBuffer>[] = [];
    await readAll(c, reply);
    const counted = Number(new TextDecoder().decode(await new Blob(reply).arrayBuffer()));
    if (counted !== size) throw new Error(`upload: the sink got ${counted} of ${size} bytes`);
  } finally {
    closeQuietly(c);
  }
  return size / MiB / ((performance.now() - t0) / 1000);
}

/** Aggregate MiB/s of `copies` simultaneous downloads of `size` bytes each through `port`. */
async function download(port: number, size: number, copies = 1): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: copies }, async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const n = await readAll(c);
      if (n !== size) throw new Error(`download: got ${n} of ${size} bytes`);
    } finally {
      closeQuietly(c);
    }
  }));
  return (size * copies) / MiB / ((performance.now() - t0) / 1000);
}

export const forward: Section = {
  name: "forward",
  async run(ctx: BenchContext) {
    const size = (ctx.quick ? 8 : 200) * MiB;
    const reps = ctx.quick ? 1 : 5;
    const copies = ctx.quick ? 4 : 20;
    const sink = serve(async (c) => {
      const n = await readAll(c);
      await c.write(new TextEncoder().encode(String(n)));
    });
    const source = serve((c) => writeAll(c, size));
    const tools: [string, (forwardings: string[]) => Cmd][] = [
      ["ours plink", (f) => ctx.ours([...ctx.auth, ...f, ...ctx.target, "-N"])],
      ["PuTTY plink", (f) => ctx.real([...ctx.auth, ...f, ...ctx.target, "-N"])],
      ["OpenSSH ssh", (f) => ctx.ssh([], false, [...f, "-N"])],
    ];
    const samples = tools.map(() => ({
      up: [] as number[],
      down: [] as number[],
      many: [] as number[],
    }));
    const rss: number[] = [];
    const forwarders: { upPort: number; downPort: number; fwd: Running }[] = [];
    try {
      // All three forward at once, each on ports of its own; rounds run each once, in an order
      // that turns, so that load that comes and goes hits all of them alike.
      for (const [name, command] of tools) {
        const [upPort, downPort] = [freePort(), freePort()];
        const fwd = await ctx.start(
          `${name} -L`,
          command([
            "-L",
            `${upPort}:127.0.0.1:${portOf(sink)}`,
            "-L",
            `${downPort}:127.0.0.1:${portOf(source)}`,
          ]),
          async () => await acceptsTcp(upPort) && await acceptsTcp(downPort),
        );
        forwarders.push({ upPort, downPort, fwd });
      }
      for (let i = 0; i < reps; i++) {
        for (const t of turningOrder(i, tools.length)) {
          const { upPort, downPort } = forwarders[t];
          samples[t].up.push(await upload(upPort, size));
          samples[t].down.push(await download(downPort, size));
          samples[t].many.push(await download(downPort, size, copies));
        }
      }
      for (const { fwd } of forwarders) rss.push(peakRssKiB(fwd.pid) / 1024);
    } finally {
      for (const { fwd } of forwarders) await fwd.stop();
      sink.close();
      source.close();
    }
    const rows = (pick: (t: number) => number[]): Row[] =>
      tools.map(([name], t) => roundsRow(name, pick(t)));
    const up = rows((t) => samples[t].up);
    const down = rows((t) => samples[t].down);
    const many = rows((t) => samples[t].many);
    const peak = tools.map(([name], t): Row => ({ name, stats: stats([rss[t]]) }));
    const table = (r: Row[], title: string, unit = "MiB/s"): Table => ({
      title,
      unit,
      rows: r,
      ratios: [ratio(r, "ours plink", "PuTTY plink"), ratio(r, "ours plink", "OpenSSH ssh")],
      notes: [],
    });
    const of = `${size / MiB} MiB per connection, ${reps} rounds; higher is better`;
    return [
      table(up, `-L forwarding, upload through it (${of})`),
      table(down, `-L forwarding, download through it (${of})`),
      table(many, `-L forwarding, ${copies} downloads at once, aggregate (${of})`),
      table(peak, `-L forwarding, peak RSS of the forwarding process after all of that`, "MiB"),
    ];
  },
};
