/**
 * `deno task bench:share`: the connection-sharing benchmark on its own. 50 sequential
 * `plink -share host true` through one upstream of ours, against 50 without sharing, OpenSSH
 * through a warm ControlMaster (`ssh -o ControlPath=...`) and PuTTY's plink through PuTTY's own
 * upstream, in one run against one loopback sshd: the latency section of scripts/bench.ts.
 * Takes scripts/bench.ts's flags (--runs=N, --markdown=FILE, --quick).
 */

import { runBench } from "./bench_lib.ts";
import { latency } from "./bench/latency.ts";

if (import.meta.main) {
  const chosen = Deno.args.some((a) => /^(--quick|--runs=\d+|\d+)$/.test(a));
  await runBench([latency], chosen ? Deno.args : ["--runs=50", ...Deno.args]);
}
