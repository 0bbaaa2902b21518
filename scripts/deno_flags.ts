/**
 * The `deno run` / `deno compile` flags our tools are run with (scripts/compile.ts bakes them
 * into the binary; scripts/install.sh's wrappers and scripts/build_image.sh take them from
 * `deno run scripts/deno_flags.ts [--bundle]`, which prints them, and the benchmark passes the
 * same when it runs ours).
 *
 * --max-semi-space-size=1 (MiB): a small young generation. Copying a file allocates a buffer or
 * two per SSH packet; with V8's default young generation those pile up to tens of MiB before a
 * scavenge. Measured on 200 MB pscp transfers: peak RSS 160-175 -> 120-150 MiB, no slower (a
 * little faster), and no slower to start.
 *
 * --no-concurrent-array-buffer-sweeping: the memory behind dead ArrayBuffers (each SSH packet
 * makes several) is freed when the collector finds them, not later by a background thread, so a
 * long download stops growing. Paired pscp downloads (two runs each way): peak RSS 97 MiB for
 * 100 MiB and 131-133 MiB for 1 GiB without it, 108 and 112-113 MiB with it; same speed.
 *
 * --no-lazy: every function is compiled with its module, so Deno's code cache (made when a module
 * is first compiled) holds them all and later runs deserialise them instead of compiling each on
 * its first call. A warm `plink -share host true`, paired with `deno run hello.ts` in one
 * latency run each: 1.73x -> 1.59x the wall time and 1.54x -> 1.42x the CPU; its peak RSS
 * 37.4 -> 37.6 MiB. A process that loads ssh2 holds its whole bytecode: +2-3 MiB (pscp 100 MiB
 * peak 76 -> 79, the -L forwarder 103 -> 106).
 *
 * --max-opt=2: hot functions are optimised by Maglev and never by TurboFan, whose code (pages of
 * Deno's executable) and working memory a long transfer would otherwise bring in. Paired runs,
 * 200 MiB over SFTP with pscp on its own connection: the same speed or better (1.16x, median of
 * six pairs) and a peak of 82.7 MiB against 84.5; pscp through a downstream (100 MiB) 46.5-48.9
 * MiB against 49.6-50.6; the -L forwarder after 200 MiB up, down and 20 at once 93-97 MiB
 * against 97-100, as fast.
 */
export const DENO_RUN_FLAGS = [
  "--v8-flags=--max-semi-space-size=1,--no-concurrent-array-buffer-sweeping,--no-lazy,--max-opt=2",
];

/**
 * Added for the bundle (scripts/bundle.ts), whose npm packages are installed into its own
 * node_modules from deno.lock when it is built, integrity checked then: at run time Deno reads
 * no deno.json or lock file (nor any in the caller's folder) and resolves npm imports there, as
 * Node does. Deno sets up its lock file's npm packages at every start, used or not: a warm
 * `plink -share host true` peaks at 36.4 MiB with these flags against 37.9 without (hello world:
 * 28.0), alternating runs.
 */
const BUNDLE_FLAGS = ["--no-config", "--node-modules-dir=manual"];

/** The flags for running the bundle (`bundle`) or the sources. */
export function runFlags(bundle: boolean): string[] {
  return bundle ? [...DENO_RUN_FLAGS, ...BUNDLE_FLAGS] : DENO_RUN_FLAGS;
}

if (import.meta.main) console.log(runFlags(Deno.args[0] === "--bundle").join(" "));
