/**
 * File transfer: one file (200 MiB of random bytes) uploaded to and downloaded from the server,
 * each tool making its own connection and authenticating (public key), as a user runs it:
 *
 *   ours pscp (SFTP)     pscp -sftp file host:path   and back
 *   ours pscp (SCP)      pscp -scp ...
 *   ours psftp           psftp -b with a `put` / a `get` batch file
 *   OpenSSH sftp -b      the same batch files
 *   OpenSSH scp -O       the SCP protocol (OpenSSH 9's scp speaks SFTP unless -O)
 *   PuTTY pscp (SFTP), PuTTY pscp (SCP), PuTTY psftp: 0.78 from putty-tools
 *
 * The tools run in rounds, each tool once a round, in an order that turns from round to round; the
 * ratios pair them round by round. Every transfer is checked by size. MiB/s is over the wall
 * time including connection set-up; peak RSS is the client's (GNU time; OpenSSH's includes the
 * ssh it starts).
 */

import { join } from "node:path";
import {
  type BenchContext,
  type Cmd,
  MiB,
  ratio,
  roundsRow,
  type Row,
  scratchRoot,
  type Section,
  stats,
  type Table,
  turningOrder,
} from "../bench_lib.ts";

interface Tool {
  name: string;
  up: Cmd;
  down: Cmd;
}

/** MiB/s of each upload and download, peak RSS (MiB) of each transfer. */
interface Samples {
  up: number[];
  down: number[];
  rss: number[];
}

/** Writes `size` random bytes to `path`. */
export async function randomFile(path: string, size: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(MiB);
  for (let left = size; left > 0; left -= block.length) {
    for (let off = 0; off < block.length; off += 65536) {
      crypto.getRandomValues(block.subarray(off, off + 65536));
    }
    const part = block.subarray(0, Math.min(left, block.length));
    for (let done = 0; done < part.length;) done += await f.write(part.subarray(done));
  }
}

const sizeOf = (path: string) => Deno.stat(path).then((s) => s.size, () => -1);

export const transfer: Section = {
  name: "transfer",
  async run(ctx: BenchContext) {
    const size = (ctx.quick ? 8 : 200) * MiB;
    const reps = ctx.quick ? 1 : 5;
    const local = await Deno.makeTempDir({ dir: scratchRoot(), prefix: "pk-bench-transfer-" });
    try {
      const src = join(local, "payload.bin");
      const back = join(local, "back.bin");
      const remote = join(await ctx.sshd.userDir("bench-transfer"), "payload.bin");
      await randomFile(src, size);
      const [put, get] = [join(local, "put"), join(local, "get")];
      await Deno.writeTextFile(put, `put ${src} ${remote}\n`);
      await Deno.writeTextFile(get, `get ${remote} ${back}\n`);

      const port = ["-P", String(ctx.sshd.port)];
      const at = `${ctx.userAtHost}:${remote}`;
      const pscp = (make: typeof ctx.ours, proto: string) => ({
        up: make([...ctx.auth, "-q", ...port, proto, src, at], "pscp"),
        down: make([...ctx.auth, "-q", ...port, proto, at, back], "pscp"),
      });
      const psftp = (make: typeof ctx.ours) => ({
        up: make([...ctx.auth, ...port, "-b", put, ctx.userAtHost], "psftp"),
        down: make([...ctx.auth, ...port, "-b", get, ctx.userAtHost], "psftp"),
      });
      const ours = ctx.ours.bind(ctx);
      const real = ctx.real.bind(ctx);
      const tools: Tool[] = [
        { name: "ours pscp (SFTP)", ...pscp(ours, "-sftp") },
        { name: "ours pscp (SCP)", ...pscp(ours, "-scp") },
        { name: "ours psftp", ...psftp(ours) },
        {
          name: "OpenSSH sftp -b",
          up: ctx.openssh("sftp", ["-b", put, ctx.userAtHost]),
          down: ctx.openssh("sftp", ["-b", get, ctx.userAtHost]),
        },
        {
          name: "OpenSSH scp -O",
          up: ctx.openssh("scp", ["-q", "-O", src, at]),
          down: ctx.openssh("scp", ["-q", "-O", at, back]),
        },
        { name: "PuTTY pscp (SFTP)", ...pscp(real, "-sftp") },
        { name: "PuTTY pscp (SCP)", ...pscp(real, "-scp") },
        { name: "PuTTY psftp", ...psftp(real) },
      ];

      // Deno's module cache for pscp and psftp (plink's was warmed by the harness).
      await ctx.once(ctx.ours(["-V"], "pscp"));
      await ctx.once(ctx.ours(["-V"], "psftp"));

      const samples = new Map<string, Samples>(
        tools.map((t) => [t.name, { up: [], down: [], rss: [] }]),
      );
      for (let i = 0; i < reps; i++) {
        for (const t of turningOrder(i, tools.length)) {
          const tool = tools[t];
          const s = samples.get(tool.name)!;
          const once = async (c: Cmd, dir: "upload" | "download", file: string) => {
            await Deno.remove(file).catch(() => {});
            const t = await ctx.once(c, `${tool.name} ${dir}`, { rss: true });
            if (t.stopped) {
              // Counted at the limit; the next download needs the whole file on the server.
              if (dir === "upload") await Deno.copyFile(src, remote);
              return size / MiB / (t.ms / 1000);
            }
            const got = await sizeOf(file);
            if (got !== size) throw new Error(`${tool.name} ${dir}: ${got} of ${size} bytes`);
            if (t.peakRssMiB !== undefined) s.rss.push(t.peakRssMiB);
            return size / MiB / (t.ms / 1000);
          };
          s.up.push(await once(tool.up, "upload", remote));
          s.down.push(await once(tool.down, "download", back));
        }
      }

      const rows = (pick: (s: Samples) => number[], paired: boolean) =>
        tools.flatMap((t): Row[] => {
          const xs = pick(samples.get(t.name)!);
          if (!xs.length) return [];
          return [paired ? roundsRow(t.name, xs) : { name: t.name, stats: stats(xs) }];
        });
      const pairs: [string, string][] = [
        ["ours pscp (SFTP)", "PuTTY pscp (SFTP)"],
        ["ours pscp (SFTP)", "OpenSSH sftp -b"],
        ["ours pscp (SCP)", "PuTTY pscp (SCP)"],
        ["ours pscp (SCP)", "OpenSSH scp -O"],
        ["ours psftp", "PuTTY psftp"],
        ["ours psftp", "OpenSSH sftp -b"],
      ];
      const speed = (dir: "up" | "down", what: string): Table => {
        const r = rows((s) => s[dir], true);
        return {
          title: `File ${what}, ${size / MiB} MiB, pscp/psftp vs scp/sftp (${reps} rounds; ` +
            `higher is better)`,
          unit: "MiB/s",
          rows: r,
          ratios: pairs.map(([a, b]) => ratio(r, a, b)),
          notes: [],
        };
      };
      const tables = [speed("up", "upload"), speed("down", "download")];
      // Runs stopped at the time limit have no peak RSS, so the RSS samples are not one a round.
      const rss = rows((s) => s.rss, false);
      if (rss.length) {
        tables.push({
          title: `Peak RSS of the file transfer clients, ${size / MiB} MiB up and down ` +
            `(${2 * reps} transfers each)`,
          unit: "MiB",
          rows: rss,
          // Runs stopped at the time limit have no peak RSS: ratios of the rows there are.
          ratios: [
            ["ours pscp (SFTP)", "PuTTY pscp (SFTP)"],
            ["ours psftp", "PuTTY psftp"],
            ["ours pscp (SFTP)", "OpenSSH sftp -b"],
          ].filter((pair) => pair.every((n) => rss.some((r) => r.name === n)))
            .map(([a, b]) => ratio(rss, a, b)),
          notes: [],
        });
      } else {
        tables[1].notes.push("no peak RSS: /usr/bin/time (Debian package time) is missing");
      }
      return tables;
    } finally {
      await Deno.remove(local, { recursive: true });
    }
  },
};
