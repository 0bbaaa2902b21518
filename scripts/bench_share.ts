/**
 * `deno task bench:share`: what one short command costs, in one run against one loopback OpenSSH
 * sshd (a plain user whose shell is /bin/sh):
 *
 *   ours, warm downstream    plink -share host true, through our upstream (plink -share -N)
 *   ours, no sharing         plink host true (own connection each time)
 *   ours, cold upstream      plink -share host true with no upstream (it becomes one, then ends)
 *   OpenSSH mux              ssh -o ControlMaster=auto -o ControlPath=... host true (master warm)
 *   OpenSSH, no mux          ssh host true
 *   PuTTY plink -share       real plink 0.78 through a real plink -share -N upstream
 *   PuTTY plink, no sharing  real plink host true
 *
 * Prints median/min/max per command and ratios. Usage: deno task bench:share [runs=50]
 */

import { join } from "node:path";
import { startSshd } from "../tests/fixtures/sshd.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { connectionId } from "../lib/share/socket_path.ts";
import { DENO, MOD } from "../tests/fixtures/tools.ts";

const RUNS = Number(Deno.args[0] ?? 50);

export interface Stats {
  median: number;
  min: number;
  max: number;
  mean: number;
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], mean: s.reduce((a, b) => a + b, 0) / s.length };
}

async function timeRuns(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string>,
  runs: number,
  before?: () => Promise<void>,
): Promise<Stats> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    await before?.();
    const t0 = performance.now();
    const out = await new Deno.Command(cmd, {
      args,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    })
      .output();
    samples.push(performance.now() - t0);
    if (!out.success) {
      throw new Error(`${name}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
    }
  }
  return stats(samples);
}

async function waitUntil(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const s = await startSshd();
const children: Deno.ChildProcess[] = [];
try {
  const env = s.env;
  const target = ["-P", String(s.port), `${s.user}@${s.host}`];
  const auth = ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk, "-noagent"];
  const ours = (args: string[]) => ["run", "-A", "--quiet", MOD, "plink", ...args];
  const sshOpts = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    `UserKnownHostsFile=${join(s.dir, "known_hosts")}`,
    "-o",
    "BatchMode=yes",
    "-i",
    s.userKey,
    "-p",
    String(s.port),
  ];
  const ctlPath = join(s.dir, "ctl-%C");
  const mux = [
    "-o",
    "ControlMaster=auto",
    "-o",
    `ControlPath=${ctlPath}`,
    "-o",
    "ControlPersist=yes",
  ];
  const id = connectionId(s.host, s.port, s.user);
  const results: [string, Stats][] = [];

  // Warm everything once (Deno's module cache, the server's first-login costs).
  await timeRuns("warm-up", DENO, ours([...auth, ...target, "true"]), env, 2);

  results.push([
    "ours, no sharing",
    await timeRuns("ours direct", DENO, ours([...auth, ...target, "true"]), env, RUNS),
  ]);
  results.push([
    "ours, cold upstream",
    await timeRuns(
      "ours cold",
      DENO,
      ours(["-share", ...auth, ...target, "true"]),
      env,
      Math.min(RUNS, 20),
    ),
  ]);

  const up = new Deno.Command(DENO, { args: ours(["-share", ...auth, ...target, "-N"]), env })
    .spawn();
  children.push(up);
  await waitUntil(() => upstreamExists(id), "our upstream");
  const authBefore = await s.authCount();
  results.push([
    "ours, warm downstream",
    await timeRuns("ours warm", DENO, ours(["-share", "-batch", ...target, "true"]), env, RUNS),
  ]);
  const oursAuths = (await s.authCount()) - authBefore;
  up.kill("SIGTERM");
  await up.status;

  await timeRuns("ssh master", "ssh", [...sshOpts, ...mux, `${s.user}@${s.host}`, "true"], env, 1);
  results.push([
    "OpenSSH mux (ssh -S)",
    await timeRuns(
      "ssh mux",
      "ssh",
      [...sshOpts, ...mux, `${s.user}@${s.host}`, "true"],
      env,
      RUNS,
    ),
  ]);
  await new Deno.Command("ssh", {
    args: [...sshOpts, "-o", `ControlPath=${ctlPath}`, "-O", "exit", `${s.user}@${s.host}`],
    stderr: "null",
  }).output();
  results.push([
    "OpenSSH, no mux",
    await timeRuns("ssh", "ssh", [...sshOpts, `${s.user}@${s.host}`, "true"], env, RUNS),
  ]);

  const realUp = new Deno.Command("plink", {
    args: ["-share", ...auth, ...target, "-N"],
    env,
    stdin: "null",
  })
    .spawn();
  children.push(realUp);
  await waitUntil(() => upstreamExists(id), "real plink upstream");
  results.push([
    "PuTTY plink -share",
    await timeRuns("real share", "plink", ["-share", "-batch", ...target, "true"], env, RUNS),
  ]);
  realUp.kill("SIGTERM");
  await realUp.status;
  results.push([
    "PuTTY plink, no sharing",
    await timeRuns("real direct", "plink", [...auth, ...target, "true"], env, RUNS),
  ]);

  const by = Object.fromEntries(results);
  const warm = by["ours, warm downstream"].median;
  const fmt = (n: number) => n.toFixed(1).padStart(7);
  console.log(
    `\nPer-command wall time, ${RUNS} sequential runs each, loopback OpenSSH sshd (user ${s.user}, /bin/sh)\n`,
  );
  console.log(
    `${"command".padEnd(26)} ${"median".padStart(7)} ${"min".padStart(7)} ${
      "max".padStart(7)
    }   ms`,
  );
  for (const [name, st] of results) {
    console.log(`${name.padEnd(26)} ${fmt(st.median)} ${fmt(st.min)} ${fmt(st.max)}`);
  }
  console.log(`\nRatios (median of ours, warm downstream = ${warm.toFixed(1)} ms):`);
  for (
    const name of [
      "OpenSSH mux (ssh -S)",
      "PuTTY plink -share",
      "ours, no sharing",
      "PuTTY plink, no sharing",
      "OpenSSH, no mux",
    ]
  ) {
    console.log(`  ours warm / ${name.padEnd(24)} ${(warm / by[name].median).toFixed(2)}x`);
  }
  console.log(`\nServer authentications for ${RUNS} warm downstream commands: ${oursAuths}`);
} finally {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch { /* gone */ }
  }
  await s.stop();
}
