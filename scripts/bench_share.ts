/**
 * `deno task bench:share [runs]`: the per-command latency section of `deno task bench` alone
 * (ours warm/cold/unshared vs OpenSSH mux and PuTTY's plink -share; scripts/bench/latency.ts).
 */

import { runBench } from "./bench_lib.ts";
import { latency } from "./bench/latency.ts";

await runBench([latency], Deno.args.length ? Deno.args : ["--runs=50"]);
