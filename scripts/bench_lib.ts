/**
 * The harness behind `deno task bench` (scripts/bench.ts) and `deno task bench:share`: one
 * loopback OpenSSH sshd for the whole run (as root, the plain user pkbench whose shell is /bin/sh),
 * the command lines of our plink, PuTTY's plink and OpenSSH's ssh against it, upstreams and
 * ControlMasters started and stopped on demand, timing, statistics and the printed tables.
 *
 * A section is one file in scripts/bench/ exporting a `Section`; it gets a `BenchContext` and
 * returns tables. Adding a section is that file and one line in scripts/bench.ts.
 *
 * Absolute times drift on shared machines: compare the medians and ratios of one run.
 */

import { join } from "node:path";
import { type Sshd, startSshd } from "../tests/fixtures/sshd.ts";
import { DENO, MOD } from "../tests/fixtures/tools.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { openDownstream } from "../lib/share/downstream.ts";
import { connectionId, sharePaths } from "../lib/share/socket_path.ts";

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
}

export interface Table {
  title: string;
  /** Unit of every number in the rows ("ms", "MiB/s", "MiB"). */
  unit: string;
  rows: Row[];
  /** "ours warm / OpenSSH mux" -> 6.6 (ratio of medians). */
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

/** A long-lived helper process (an upstream, an OpenSSH master): the pid to measure, and stop. */
export interface Running {
  pid: number;
  stop(): Promise<void>;
}

export function ratio(rows: Row[], a: string, b: string): [string, number] {
  const find = (n: string) => {
    const r = rows.find((row) => row.name === n);
    if (!r) throw new Error(`no row "${n}"`);
    return r.stats.median;
  };
  return [`${a} / ${b}`, find(a) / find(b)];
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
  /** OpenSSH client options: our keys and known_hosts, no prompts, the test port. */
  readonly sshOpts: string[];
  private readonly ctlPath: string;
  private readonly running = new Set<Running>();

  constructor(readonly sshd: Sshd, readonly opts: BenchOptions) {
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
      "-p",
      String(s.port),
    ];
    this.ctlPath = join(s.dir, "ctl-%C");
  }

  get quick(): boolean {
    return this.opts.quick;
  }

  get runs(): number {
    return this.opts.runs;
  }

  /** Our plink, run the way scripts/install.sh's wrappers run it. */
  ours(args: string[]): Cmd {
    return { cmd: DENO, args: ["run", "-A", "--quiet", MOD, "plink", ...args] };
  }

  /** PuTTY 0.78's plink (putty-tools). */
  real(args: string[]): Cmd {
    return { cmd: "plink", args };
  }

  /** OpenSSH's ssh to the test server; `mux` uses the ControlMaster (startSshMaster). */
  ssh(command: string[], mux = false): Cmd {
    const m = mux ? ["-o", "ControlMaster=no", "-o", `ControlPath=${this.ctlPath}`] : [];
    return { cmd: "ssh", args: [...this.sshOpts, ...m, this.userAtHost, ...command] };
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
      const t0 = performance.now();
      const out = await new Deno.Command(c.cmd, {
        args: c.args,
        env: this.env,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      samples.push(performance.now() - t0);
      if (!out.success) {
        throw new Error(`${label}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
      }
    }
    return stats(samples);
  }

  /** Starts `plink -share -N` (ours or PuTTY's) and waits until it serves downstreams. */
  async startUpstream(which: "ours" | "real"): Promise<Running> {
    const args = ["-share", ...this.auth, ...this.target, "-N"];
    const child = this.spawn(which === "ours" ? this.ours(args) : this.real(args));
    const exited = child.status.then(() => true);
    let gone = false;
    exited.then(() => (gone = true));
    await waitUntil(
      async () => {
        if (gone) {
          const err = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
          throw new Error(`${which} upstream exited: ${err.trim()}`);
        }
        return await upstreamExists(this.connectionId);
      },
      `${which} upstream`,
    );
    // Listening comes before authenticating: wait for the greeting, sent once it is logged in.
    const probe = await openDownstream(await this.socketPath());
    probe.conn.close();
    return this.track({
      pid: child.pid,
      stop: async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        await child.output().catch(() => {});
        await waitUntil(async () => !(await upstreamExists(this.connectionId)), "socket removal");
      },
    });
  }

  /** Starts an OpenSSH ControlMaster (ssh -M -N) for `ssh(cmd, true)`; pid is the master's. */
  async startSshMaster(): Promise<Running> {
    const ctl = ["-o", `ControlPath=${this.ctlPath}`];
    await this.run({
      cmd: "ssh",
      args: [
        ...this.sshOpts,
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
      args: [...this.sshOpts, ...ctl, "-O", "check", this.userAtHost],
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
          args: [...this.sshOpts, ...ctl, "-O", "exit", this.userAtHost],
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
  return `${new Date().toISOString().slice(0, 10)}, ${cpu.replace(/\s+/g, " ")}, ` +
    `${navigator.hardwareConcurrency} cores, ${Math.round(Number(mem) / 1048576)} GiB; ` +
    `Deno ${Deno.version.deno}, PuTTY plink ${plink}, ${ssh}, loopback sshd`;
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
  const sshd = await startSshd();
  const ctx = new BenchContext(sshd, flags.opts);
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
    for (const section of chosen) {
      try {
        for (const t of await section.run(ctx)) {
          console.log(textTable(t) + "\n");
          done.push(t);
        }
      } catch (e) {
        failed++;
        console.error(`section ${section.name} failed: ${(e as Error).stack ?? e}\n`);
      } finally {
        await ctx.stopAll();
      }
    }
  } finally {
    await ctx.stopAll();
    await sshd.stop();
  }
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
  if (flags.markdown) {
    const md = [`_${machine}._`, ...done.map(markdownTable)].join("\n\n") + "\n";
    if (flags.markdown === "-") console.log("\n" + md);
    else await Deno.writeTextFile(flags.markdown, md);
  }
  if (failed) Deno.exit(1);
}
