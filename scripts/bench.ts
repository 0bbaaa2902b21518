/**
 * `deno task bench`: every benchmark section in one run against one loopback OpenSSH sshd, ours
 * next to OpenSSH and PuTTY 0.78 measured in the same run (medians, min/max, ratios).
 *
 *   deno task bench                     all sections (a few minutes)
 *   deno task bench --quick             small sizes, few runs: a smoke test of every section
 *   deno task bench --only=latency,memory --runs=50
 *   deno task bench --markdown=out.md   also write the tables as Markdown (for the README)
 *   deno task bench:transfer            = bench --only=transfer (likewise bench:forward, and
 *                                         bench:share, scripts/bench_share.ts, is the latency
 *                                         section with 50 runs)
 *
 * A section is one file in scripts/bench/ (see Section in scripts/bench_lib.ts); add it below.
 */

import { runBench, type Section } from "./bench_lib.ts";
import { latency } from "./bench/latency.ts";
import { parallel } from "./bench/parallel.ts";
import { sessionLimit } from "./bench/session_limit.ts";
import { throughput } from "./bench/throughput.ts";
import { transfer } from "./bench/transfer.ts";
import { transferMemory } from "./bench/transfer_memory.ts";
import { forward } from "./bench/forward.ts";
import { memory } from "./bench/memory.ts";
import { startup } from "./bench/startup.ts";

export const SECTIONS: Section[] = [
  latency,
  parallel,
  sessionLimit,
  throughput,
  transfer,
  transferMemory,
  forward,
  memory,
  startup,
];

if (import.meta.main) await runBench(SECTIONS, Deno.args);
