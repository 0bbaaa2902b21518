/**
 * `deno task bench:transfer`: throughput of one 200 MB file uploaded and downloaded over loopback
 * to one OpenSSH sshd, in one run, by:
 *
 *   ours pscp (SFTP)     pscp -sftp file host:dir/   and back
 *   ours pscp (SCP)      pscp -scp ...
 *   OpenSSH sftp -b      put / get from a batch file
 *   OpenSSH scp -O       the SCP protocol (OpenSSH 9's scp speaks SFTP unless -O)
 *   PuTTY pscp (SFTP)    pscp 0.78 from putty-tools
 *   PuTTY pscp (SCP)     pscp -scp
 *
 * Every tool does its own connection and authentication (public key). Each transfer's result is
 * checked by size; the median of the runs is reported with MB/s, peak memory (max RSS, when
 * /usr/bin/time is there) and ratios of ours to the others.
 *
 * Usage: deno task bench:transfer [runs=3] [megabytes=200]
 */

import { join } from "node:path";
import { startSshd } from "../tests/fixtures/sshd.ts";
import { DENO, MOD } from "../tests/fixtures/tools.ts";

const RUNS = Number(Deno.args[0] ?? 3);
const MB = Number(Deno.args[1] ?? 200);
const SIZE = MB * 1024 * 1024;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const TIME = await Deno.stat("/usr/bin/time").then(() => "/usr/bin/time", () => undefined);

interface Sample {
  seconds: number;
  /** Peak resident memory in MiB, when measurable. */
  rssMb?: number;
}

/** Runs a command once; wall time from spawn to exit, max RSS via /usr/bin/time if present. */
async function timed(cmd: string, args: string[], env: Record<string, string>): Promise<Sample> {
  const rssFile = await Deno.makeTempFile();
  const [c, a] = TIME ? [TIME, ["-f", "%M", "-o", rssFile, cmd, ...args]] : [cmd, args];
  const t0 = performance.now();
  const out = await new Deno.Command(c, {
    args: a,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  })
    .output();
  const seconds = (performance.now() - t0) / 1000;
  const rssText = await Deno.readTextFile(rssFile).catch(() => "");
  await Deno.remove(rssFile).catch(() => {});
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const kb = Number(rssText.trim().split("\n").pop());
  return { seconds, rssMb: Number.isFinite(kb) && kb > 0 ? kb / 1024 : undefined };
}

async function makeFile(path: string): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < MB; i++) {
    for (let off = 0; off < block.length; off += 65536) {
      crypto.getRandomValues(block.subarray(off, off + 65536));
    }
    await f.write(block);
  }
  f.close();
}

async function sizeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

const s = await startSshd();
const local = await Deno.makeTempDir({ prefix: "pk-bench-transfer-" });
try {
  const env = s.env;
  const remoteDir = await s.userDir("bench");
  const src = join(local, "payload.bin");
  await makeFile(src);
  const userHost = `${s.user}@${s.host}`;
  const puttyAuth = [
    "-batch",
    "-q",
    "-hostkey",
    s.hostKeyFingerprint,
    "-i",
    s.userKeyPpk,
    "-noagent",
  ];
  const sshOpts = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    `UserKnownHostsFile=${join(s.dir, "known_hosts")}`,
    "-o",
    "BatchMode=yes",
    "-i",
    s.userKey,
  ];
  const ours = (args: string[]) => ["run", "-A", "--quiet", MOD, "pscp", ...puttyAuth, ...args];

  interface Tool {
    name: string;
    up: (remote: string) => [string, string[]];
    down: (remote: string, to: string) => [string, string[]];
  }
  const tools: Tool[] = [
    {
      name: "ours pscp (SFTP)",
      up: (r) => [DENO, ours(["-P", String(s.port), "-sftp", src, `${userHost}:${r}`])],
      down: (r, to) => [DENO, ours(["-P", String(s.port), "-sftp", `${userHost}:${r}`, to])],
    },
    {
      name: "ours pscp (SCP)",
      up: (r) => [DENO, ours(["-P", String(s.port), "-scp", src, `${userHost}:${r}`])],
      down: (r, to) => [DENO, ours(["-P", String(s.port), "-scp", `${userHost}:${r}`, to])],
    },
    {
      name: "OpenSSH sftp -b",
      up: () => ["sftp", [...sshOpts, "-P", String(s.port), "-b", join(local, "put"), userHost]],
      down: () => ["sftp", [...sshOpts, "-P", String(s.port), "-b", join(local, "get"), userHost]],
    },
    {
      name: "OpenSSH scp -O",
      up: (r) => ["scp", [...sshOpts, "-q", "-O", "-P", String(s.port), src, `${userHost}:${r}`]],
      down: (
        r,
        to,
      ) => ["scp", [...sshOpts, "-q", "-O", "-P", String(s.port), `${userHost}:${r}`, to]],
    },
    {
      name: "PuTTY pscp (SFTP)",
      up: (r) => ["pscp", [...puttyAuth, "-P", String(s.port), "-sftp", src, `${userHost}:${r}`]],
      down: (
        r,
        to,
      ) => ["pscp", [...puttyAuth, "-P", String(s.port), "-sftp", `${userHost}:${r}`, to]],
    },
    {
      name: "PuTTY pscp (SCP)",
      up: (r) => ["pscp", [...puttyAuth, "-P", String(s.port), "-scp", src, `${userHost}:${r}`]],
      down: (
        r,
        to,
      ) => ["pscp", [...puttyAuth, "-P", String(s.port), "-scp", `${userHost}:${r}`, to]],
    },
  ];

  const remoteFile = join(remoteDir, "payload.bin");
  const back = join(local, "back.bin");
  // sftp -b reads its commands from files.
  await Deno.writeTextFile(join(local, "put"), `put ${src} ${remoteFile}\n`);
  await Deno.writeTextFile(join(local, "get"), `get ${remoteFile} ${back}\n`);

  // Warm up: Deno's module cache, the server's first login, the page cache.
  {
    const [c, a] = tools[0].up(remoteFile);
    await timed(c, a, env);
  }

  const results: { name: string; up: Sample[]; down: Sample[] }[] = [];
  for (const tool of tools) {
    const r = { name: tool.name, up: [] as Sample[], down: [] as Sample[] };
    for (let i = 0; i < RUNS; i++) {
      await Deno.remove(remoteFile).catch(() => {});
      const [uc, ua] = tool.up(remoteFile);
      r.up.push(await timed(uc, ua, env));
      if ((await sizeOf(remoteFile)) !== SIZE) throw new Error(`${tool.name}: upload size wrong`);
      await Deno.remove(back).catch(() => {});
      const [dc, da] = tool.down(remoteFile, back);
      r.down.push(await timed(dc, da, env));
      if ((await sizeOf(back)) !== SIZE) throw new Error(`${tool.name}: download size wrong`);
    }
    results.push(r);
    console.error(`done: ${tool.name}`);
  }

  const mbps = (sec: number) => MB / sec;
  const col = (t: string, w: number) => t.padStart(w);
  const rss = (xs: Sample[]) => {
    const m = xs.map((x) => x.rssMb).filter((x): x is number => x !== undefined);
    return m.length ? `${Math.max(...m).toFixed(0)}` : "-";
  };
  console.log(
    `\n${MB} MiB file over loopback OpenSSH sshd, median of ${RUNS} runs each (wall time incl. ` +
      `connection set-up)\n`,
  );
  console.log(
    `${"tool".padEnd(20)}${col("upload s", 10)}${col("MB/s", 8)}${col("RSS MiB", 9)}` +
      `${col("download s", 12)}${col("MB/s", 8)}${col("RSS MiB", 9)}`,
  );
  const med = new Map<string, { up: number; down: number }>();
  for (const r of results) {
    const up = median(r.up.map((x) => x.seconds));
    const down = median(r.down.map((x) => x.seconds));
    med.set(r.name, { up, down });
    console.log(
      `${r.name.padEnd(20)}${col(up.toFixed(2), 10)}${col(mbps(up).toFixed(1), 8)}${
        col(rss(r.up), 9)
      }${col(down.toFixed(2), 12)}${col(mbps(down).toFixed(1), 8)}${col(rss(r.down), 9)}`,
    );
  }
  console.log("\nThroughput ratios (ours / other; > 1 means ours is faster):");
  for (const mine of ["ours pscp (SFTP)", "ours pscp (SCP)"]) {
    const m = med.get(mine)!;
    for (const other of results.map((r) => r.name).filter((n) => !n.startsWith("ours"))) {
      const o = med.get(other)!;
      console.log(
        `  ${mine.padEnd(17)} vs ${other.padEnd(18)} upload ${(o.up / m.up).toFixed(2)}x   ` +
          `download ${(o.down / m.down).toFixed(2)}x`,
      );
    }
  }
} finally {
  await s.stop();
  await Deno.remove(local, { recursive: true });
}
