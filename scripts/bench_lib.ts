/**
 * The harness behind `deno task bench` (scripts/bench.ts; bench:share, bench:transfer and
 * bench:forward are its --only=latency, transfer and forward): one loopback OpenSSH sshd for the
 * whole run (as root, the plain user pkbench whose shell is /bin/sh), the command lines of our
 * tools, PuTTY's and OpenSSH's against it, upstreams, ControlMasters and other long-lived
 * processes started and stopped on demand, timing (with peak RSS), statistics and the printed
 * tables.
 *
 * A section is one file in scripts/bench/ exporting a `Section`; it gets a `BenchContext` and
 * returns tables. Adding a section is that file and one line in scripts/bench.ts.
 *
 * Absolute times drift on shared machines: compare the medians and ratios of one run.
 */

import { join } from "node:path";
import { descendants, type Sshd, startSshd } from "../tests/fixtures/sshd.ts";
import { DENO, MOD } from "../tests/fixtures/tools.ts";
import { buildBundle } from "./bundle.ts";
import { runFlags } from "./deno_flags.ts";
import { after } from "../lib/util/timer.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { openDownstream } from "../lib/share/downstream.ts";
import { connectionId, sharePaths } from "../lib/share/socket_path.ts";

export const MiB = 1024 * 1024;

/**
 * Where the files a run transfers are kept: a tmpfs (/dev/shm) when there is one. On a disk the
 * same 1 GiB of writes took 0.7 to 3.2 s from one run to the next here (the kernel writing back
 * earlier runs' data), which swamped the difference between the tools; on tmpfs 0.45-0.5 s.
 */
export function scratchRoot(): string | undefined {
  try {
    const shm = Deno.statSync("/dev/shm");
    if (shm.isDirectory && ((shm.mode ?? 0) & 0o002)) return "/dev/shm";
  } catch { /* none */ }
  return undefined;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  mean: number;
  n: number;
}

export function stats(samples: number[]): Stats {
  if (samples.length === 0) throw new Error("no samples");
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { median, min: s[0], max: s[s.length - 1], mean, n: s.length };
}

export interface Row {
  name: string;
  stats: Stats;
  /**
   * The samples in round order, where every round measured each row of the table once: then
   * ratio() pairs them round by round, so load that comes and goes hits both sides alike.
   */
  rounds?: number[];
}

export interface Table {
  title: string;
  /** Unit of every number in the rows ("ms", "MiB/s", "MiB"). */
  unit: string;
  rows: Row[];
  /** "ours warm / OpenSSH mux" -> 6.6 (ratio of medians, or paired: see ratio()). */
  ratios: [string, number][];
  notes: string[];
}

export interface Section {
  /** Short name for --only (e.g. "latency"). */
  name: string;
  run(ctx: BenchContext): Promise<Table[]>;
}

/** A program and its arguments. */
export interface Cmd {
  cmd: string;
  args: string[];
}

/** One timed run of a command. */
export interface Timing {
  ms: number;
  /** Stopped at the time limit (ms is the limit): what it was doing is unfinished. */
  stopped?: boolean;
  /** Peak resident memory (MiB) of the command and the children it waited for, if measured. */
  peakRssMiB?: number;
  /** CPU time (user + system, ms) of the command and the children it waited for, if measured. */
  cpuMs?: number;
}

/** The longest one timed run may take (see BenchContext.stopped); PK_BENCH_RUN_LIMIT_S sets it. */
const RUN_LIMIT_MS = 1000 * Number(Deno.env.get("PK_BENCH_RUN_LIMIT_S") || 60);

/** GNU time, which reports a finished command's peak RSS (Debian package "time"). */
const GNU_TIME = "/usr/bin/time";
const haveGnuTime = Deno.stat(GNU_TIME).then((s) => s.isFile, () => false);

/** A long-lived helper process (an upstream, an OpenSSH master): the pid to measure, and stop. */
export interface Running {
  pid: number;
  stop(): Promise<void>;
}

/**
 * CPU time (user + system, ms) of every child process this one has waited for so far, from
 * getrusage(RUSAGE_CHILDREN) (microseconds; GNU time's %U/%S are centiseconds, too coarse for a
 * 20 ms command); undefined where libc cannot be opened. Sequential runs: the difference across
 * one run is that run's CPU, its waited-for children included.
 */
export function childrenCpuMs(): number | undefined {
  rusage ??= openRusage();
  return rusage ? rusage() : undefined;
}

let rusage: (() => number) | null | undefined;

function openRusage(): (() => number) | null {
  try {
    const libc = Deno.dlopen("libc.so.6", {
      getrusage: { parameters: ["i32", "buffer"], result: "i32" },
    });
    // struct rusage: ru_utime, ru_stime (struct timeval: 64-bit seconds, microseconds), ...
    const buf = new BigInt64Array(18);
    const RUSAGE_CHILDREN = -1;
    return () => {
      if (libc.symbols.getrusage(RUSAGE_CHILDREN, buf) !== 0) throw new Error("getrusage failed");
      return Number(buf[0] + buf[2]) * 1000 + Number(buf[1] + buf[3]) / 1000;
    };
  } catch {
    return null;
  }
}

/**
 * The order in which round `round` runs `count` things: turned by one from the round before, so
 * load that comes and goes on the machine hits all of them alike.
 */
export function turningOrder(round: number, count: number): number[] {
  return Array.from({ length: count }, (_, k) => (k + round) % count);
}

/** A row of samples taken one a round (see Row.rounds): ratio() pairs it with its likes. */
export function roundsRow(name: string, samples: number[]): Row {
  return { name, stats: stats(samples), rounds: samples };
}

/** Median over the rounds of a's value / b's value in the same round (rounds with both). */
export function pairedRatio(a: number[], b: number[]): number {
  return stats(a.map((v, i) => v / b[i]).filter(Number.isFinite)).median;
}

/**
 * Row a's figure over row b's: the median of their round-by-round ratios when both have rounds
 * (labelled "paired"), else the ratio of their medians.
 */
export function ratio(rows: Row[], a: string, b: string): [string, number] {
  const find = (n: string) => {
    const r = rows.find((row) => row.name === n);
    if (!r) throw new Error(`no row "${n}"`);
    return r;
  };
  const [ra, rb] = [find(a), find(b)];
  if (ra.rounds && rb.rounds && ra.rounds.length === rb.rounds.length && ra.rounds.length > 1) {
    return [`${a} / ${b}, paired`, pairedRatio(ra.rounds, rb.rounds)];
  }
  return [`${a} / ${b}`, ra.stats.median / rb.stats.median];
}

export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 20000,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface BenchOptions {
  /** Small sizes and few runs: a smoke test of every section. */
  quick: boolean;
  /** Sequential runs per single-command timing. */
  runs: number;
}

export class BenchContext {
  readonly env: Record<string, string>;
  /** -P port user@host, for plink. */
  readonly target: string[];
  /** What makes plink authenticate unattended (an upstream or a direct connection). */
  readonly auth: string[];
  readonly userAtHost: string;
  readonly connectionId: string;
  /** OpenSSH client options: our keys and known_hosts, no prompts (not the port). */
  readonly sshOpts: string[];
  /** The ControlMaster's socket (OpenSSH's %C: ours expands it the same way). */
  readonly ctlPath: string;
  private readonly running = new Set<Running>();
  /**
   * Runs stopped at RUN_LIMIT_MS, for the notes under the section's tables: a tool that gets
   * stuck (PuTTY 0.78's pscp uploading over SFTP to OpenSSH's internal-sftp has crawled at a
   * fraction of a MiB/s here, once) must not hold up the whole benchmark.
   */
  readonly stopped: string[] = [];

  /**
   * `entry`: what runs ours, the bundle scripts/install.sh installs (scripts/bundle.ts, built
   * for this run); sourceEntry() runs mod.ts itself.
   */
  constructor(readonly sshd: Sshd, readonly opts: BenchOptions, readonly entry = MOD) {
    const s = sshd;
    this.env = s.env;
    this.userAtHost = `${s.user}@${s.host}`;
    this.target = ["-P", String(s.port), this.userAtHost];
    this.auth = ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk, "-noagent"];
    this.connectionId = connectionId(s.host, s.port, s.user);
    this.sshOpts = [
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      `UserKnownHostsFile=${join(s.dir, "known_hosts")}`,
      "-o",
      "BatchMode=yes",
      "-o",
      "LogLevel=ERROR",
      "-i",
      s.userKey,
    ];
    this.ctlPath = join(s.dir, "ctl-%C");
  }

  /** sshOpts and the test port, for ssh itself. */
  private get sshToServer(): string[] {
    return [...this.sshOpts, "-p", String(this.sshd.port)];
  }

  get quick(): boolean {
    return this.opts.quick;
  }

  get runs(): number {
    return this.opts.runs;
  }

  /** Our plink (or pscp, psftp), run the way scripts/install.sh's wrappers run it. */
  ours(args: string[], tool: "plink" | "pscp" | "psftp" = "plink", entry = this.entry): Cmd {
    return {
      cmd: DENO,
      args: ["run", "-A", "--quiet", ...runFlags(entry !== MOD), entry, tool, ...args],
    };
  }

  /** Ours run from the sources (`deno run mod.ts`), not from the installed bundle. */
  oursFromSource(args: string[], tool: "plink" | "pscp" | "psftp" = "plink"): Cmd {
    return this.ours(args, tool, MOD);
  }

  /** PuTTY 0.78's plink (or pscp, psftp) from putty-tools. */
  real(args: string[], tool: "plink" | "pscp" | "psftp" = "plink"): Cmd {
    return { cmd: tool, args };
  }

  /**
   * OpenSSH's ssh to the test server running `command`, with `options` (e.g. -L) before the
   * destination; `mux` uses the ControlMaster (startSshMaster).
   */
  ssh(command: string[], mux = false, options: string[] = []): Cmd {
    const m = mux ? ["-o", "ControlMaster=no", "-o", `ControlPath=${this.ctlPath}`] : [];
    return {
      cmd: "ssh",
      args: [...this.sshToServer, ...m, ...options, this.userAtHost, ...command],
    };
  }

  /** OpenSSH's scp or sftp with our options and the test port; `args` name the files/host. */
  openssh(tool: "scp" | "sftp", args: string[]): Cmd {
    return { cmd: tool, args: [...this.sshOpts, "-P", String(this.sshd.port), ...args] };
  }

  /** The sharing socket our and PuTTY's upstreams listen on for this server. */
  async socketPath(): Promise<string> {
    return (await sharePaths(this.connectionId)).socket;
  }

  spawn(c: Cmd, stdin: "null" | "piped" = "null"): Deno.ChildProcess {
    return new Deno.Command(c.cmd, {
      args: c.args,
      env: this.env,
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Runs to completion; throws with the command's stderr unless it succeeded. */
  async run(c: Cmd, label = c.cmd): Promise<Uint8Array> {
    const out = await new Deno.Command(c.cmd, {
      args: c.args,
      env: this.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`${label}: exit ${out.code}: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return out.stdout;
  }

  /**
   * One run to completion (output discarded): wall time from spawn to exit, CPU time and, with
   * `rss` where GNU time is installed, peak RSS. Throws with the command's stderr unless it
   * succeeded. `limitMs` replaces the time limit for a run known to be long (a 1 GiB file).
   */
  async once(
    c: Cmd,
    label = c.cmd,
    opts: { rss?: boolean; limitMs?: number } = {},
  ): Promise<Timing> {
    const rssFile = opts.rss && await haveGnuTime ? await Deno.makeTempFile() : undefined;
    const [cmd, args] = rssFile
      ? [GNU_TIME, ["-f", "%M", "-o", rssFile, c.cmd, ...c.args]]
      : [c.cmd, c.args];
    try {
      const cpu0 = childrenCpuMs();
      const t0 = performance.now();
      const child = new Deno.Command(cmd, {
        args,
        env: this.env,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let stopped = false;
      const cancel = after(opts.limitMs ?? RUN_LIMIT_MS, () => {
        stopped = true;
        // The tool itself too, under GNU time.
        for (const pid of [...descendants(child.pid), child.pid]) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      });
      const out = await child.output();
      cancel();
      const ms = performance.now() - t0;
      if (stopped) {
        // Counted at the limit: slower than that, by how much unknown.
        this.stopped.push(label);
        return { ms, stopped: true };
      }
      if (!out.success) {
        throw new Error(`${label}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
      }
      const cpu1 = childrenCpuMs();
      const cpuMs = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
      if (!rssFile) return { ms, cpuMs };
      // The last line (a failing command's status line would come first).
      const kib = Number((await Deno.readTextFile(rssFile)).trim().split("\n").pop());
      return { ms, cpuMs, peakRssMiB: kib > 0 ? kib / 1024 : undefined };
    } finally {
      if (rssFile) await Deno.remove(rssFile).catch(() => {});
    }
  }

  /** Whether once(..., {rss: true}) can measure peak RSS (GNU time is installed). */
  measuresPeakRss(): Promise<boolean> {
    return haveGnuTime;
  }

  /** Wall time (ms) of `runs` sequential runs; `before` runs untimed ahead of each. */
  async time(
    label: string,
    c: Cmd,
    runs = this.runs,
    before?: () => Promise<void>,
  ): Promise<Stats> {
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      await before?.();
      samples.push((await this.once(c, label)).ms);
    }
    return stats(samples);
  }

  /**
   * Starts a long-lived process (an upstream, a forwarder) and waits until `ready()`; stopped
   * with SIGTERM by stop() or at the end of the section. Fails with its stderr if it exits first.
   */
  async start(
    label: string,
    c: Cmd,
    ready: () => boolean | Promise<boolean>,
    afterStop?: () => Promise<void>,
  ): Promise<Running> {
    const child = this.spawn(c);
    let gone = false;
    child.status.then(() => (gone = true));
    await waitUntil(
      async () => {
        if (gone) {
          const err = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
          throw new Error(`${label} exited: ${err.trim()}`);
        }
        return await ready();
      },
      label,
    );
    return this.track({
      pid: child.pid,
      stop: async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        await child.output().catch(() => {});
        await afterStop?.();
      },
    });
  }

  /** Starts `plink -share -N` (ours or PuTTY's) and waits until it serves downstreams. */
  async startUpstream(which: "ours" | "real"): Promise<Running> {
    const args = ["-share", ...this.auth, ...this.target, "-N"];
    const up = await this.start(
      `${which} upstream`,
      which === "ours" ? this.ours(args) : this.real(args),
      () => upstreamExists(this.connectionId),
      () => waitUntil(async () => !(await upstreamExists(this.connectionId)), "socket removal"),
    );
    // Listening comes before authenticating: wait for the greeting, sent once it is logged in.
    const probe = await openDownstream(await this.socketPath());
    probe.conn.close();
    return up;
  }

  /** Starts an OpenSSH ControlMaster (ssh -M -N) for `ssh(cmd, true)`; pid is the master's. */
  async startSshMaster(): Promise<Running> {
    const ctl = ["-o", `ControlPath=${this.ctlPath}`];
    await this.run({
      cmd: "ssh",
      args: [
        ...this.sshToServer,
        ...ctl,
        "-o",
        "ControlPersist=yes",
        "-M",
        "-N",
        "-f",
        this.userAtHost,
      ],
    }, "ssh master");
    const check = await new Deno.Command("ssh", {
      args: [...this.sshToServer, ...ctl, "-O", "check", this.userAtHost],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(check.stderr);
    const m = /pid=(\d+)/.exec(text);
    if (!m) throw new Error(`ssh -O check: ${text.trim()}`);
    return this.track({
      pid: Number(m[1]),
      stop: async () => {
        await new Deno.Command("ssh", {
          args: [...this.sshToServer, ...ctl, "-O", "exit", this.userAtHost],
          stdout: "null",
          stderr: "null",
        }).output();
      },
    });
  }

  private track(r: Running): Running {
    this.running.add(r);
    const stop = r.stop;
    r.stop = async () => {
      if (!this.running.delete(r)) return;
      await stop();
    };
    return r;
  }

  /** Stops whatever a section left running. */
  async stopAll(): Promise<void> {
    for (const r of [...this.running]) await r.stop().catch(() => {});
  }
}

const fmtNum = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

export function textTable(t: Table): string {
  const w = Math.max(30, ...t.rows.map((r) => r.name.length + 2));
  const lines = [
    `${t.title}`,
    `  ${"".padEnd(w)}${"median".padStart(9)}${"min".padStart(9)}${"max".padStart(9)}  ${t.unit}`,
  ];
  for (const r of t.rows) {
    const s = r.stats;
    lines.push(
      `  ${r.name.padEnd(w)}${fmtNum(s.median).padStart(9)}${fmtNum(s.min).padStart(9)}${
        fmtNum(s.max).padStart(9)
      }`,
    );
  }
  for (const [label, v] of t.ratios) lines.push(`  ratio ${label}: ${v.toFixed(2)}x`);
  for (const n of t.notes) lines.push(`  ${n}`);
  return lines.join("\n");
}

export function markdownTable(t: Table): string {
  const lines = [
    `**${t.title}**`,
    "",
    `| | median ${t.unit} | min | max |`,
    "|---|---:|---:|---:|",
  ];
  for (const r of t.rows) {
    const s = r.stats;
    lines.push(`| ${r.name} | ${fmtNum(s.median)} | ${fmtNum(s.min)} | ${fmtNum(s.max)} |`);
  }
  const extra = [
    ...t.ratios.map(([label, v]) => `${label}: **${v.toFixed(2)}x**`),
    ...t.notes,
  ];
  if (extra.length) lines.push("", extra.join("; ") + ".");
  return lines.join("\n");
}

/** One line naming the machine and software the numbers come from. */
export async function machineLine(): Promise<string> {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ??
    "unknown CPU";
  const mem = /^MemTotal:\s+(\d+) kB$/m.exec(await Deno.readTextFile("/proc/meminfo"))?.[1];
  const version = async (cmd: string, args: string[]) => {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output()
      .catch(() => undefined);
    if (!out) return "?";
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.split("\n").find((l) => l.trim())?.trim() ?? "?";
  };
  const plink = (await version("plink", ["-V"])).replace(/^plink: /, "");
  const ssh = (await version("ssh", ["-V"])).split(",")[0];
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  return `${new Date().toISOString().slice(0, 10)}, ${cpu.replace(/\s+/g, " ")}, ` +
    `${navigator.hardwareConcurrency} cores, ${Math.round(Number(mem) / 1048576)} GiB; ` +
    `Deno ${Deno.version.deno}, PuTTY ${plink}, ${ssh}, loopback sshd; ` +
    `load average ${load} at the start`;
}

interface Flags {
  opts: BenchOptions;
  only?: string[];
  markdown?: string;
}

export function parseFlags(argv: string[]): Flags {
  let quick = false;
  let runs: number | undefined;
  let only: string[] | undefined;
  let markdown: string | undefined;
  for (const a of argv) {
    if (a === "--quick") quick = true;
    else if (/^(--runs=)?\d+$/.test(a)) runs = Number(a.replace("--runs=", ""));
    else if (a.startsWith("--only=")) only = a.slice(7).split(",");
    else if (a === "--markdown") markdown = "-";
    else if (a.startsWith("--markdown=")) markdown = a.slice(11);
    else {
      throw new Error(
        `unknown argument ${a}\nusage: bench [--quick] [--runs=N] [--only=a,b] [--markdown[=file]]`,
      );
    }
  }
  return { opts: { quick, runs: runs ?? (quick ? 3 : 30) }, only, markdown };
}

/**
 * Runs `sections` against one fresh sshd and prints every table as it is ready; with --markdown
 * also the whole set as Markdown (for the README). Exits non-zero if any section failed.
 */
/** "<label>: 2 runs stopped at the 60 s limit", once per label. */
function stoppedNotes(labels: string[]): string[] {
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([label, n]) =>
    `${label}: ${n === 1 ? "a run" : `${n} runs`} stopped at the ${RUN_LIMIT_MS / 1000} s limit`
  );
}

export async function runBench(sections: Section[], argv: string[]): Promise<void> {
  let flags: Flags;
  try {
    flags = parseFlags(argv);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const chosen = flags.only ? sections.filter((s) => flags.only!.includes(s.name)) : sections;
  if (flags.only && chosen.length !== flags.only.length) {
    console.error(`unknown section in --only (have: ${sections.map((s) => s.name).join(", ")})`);
    Deno.exit(2);
  }
  const bundleDir = await Deno.makeTempDir({ prefix: "pk-bench-bundle-" });
  const entry = await buildBundle(bundleDir);
  const sshd = await startSshd({ baseDir: scratchRoot() });
  const ctx = new BenchContext(sshd, flags.opts, entry);
  const done: Table[] = [];
  let failed = 0;
  const started = performance.now();
  const machine = await machineLine();
  console.log(`puttykit benchmarks: ${machine}`);
  console.log(
    `user ${sshd.user} (shell /bin/sh), ${flags.opts.quick ? "quick mode, " : ""}` +
      `${flags.opts.runs} runs per single-command timing\n`,
  );
  try {
    // Deno's module cache and the server's first-login costs, before anything is timed.
    await ctx.time("warm-up", ctx.ours([...ctx.auth, ...ctx.target, "true"]), 2);
    ctx.stopped.length = 0;
    for (const section of chosen) {
      try {
        const tables = await section.run(ctx);
        const stopped = stoppedNotes(ctx.stopped.splice(0));
        for (const t of tables) {
          t.notes.push(...stopped);
          console.log(textTable(t) + "\n");
          done.push(t);
        }
      } catch (e) {
        failed++;
        ctx.stopped.length = 0;
        console.error(`section ${section.name} failed: ${(e as Error).stack ?? e}\n`);
      } finally {
        await ctx.stopAll();
      }
    }
  } finally {
    await ctx.stopAll();
    await sshd.stop();
    await Deno.remove(bundleDir, { recursive: true });
  }
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
  if (flags.markdown) {
    const md = [`_${machine}._`, ...done.map(markdownTable)].join("\n\n") + "\n";
    if (flags.markdown === "-") console.log("\n" + md);
    else await Deno.writeTextFile(flags.markdown, md);
  }
  if (failed) Deno.exit(1);
}
