/**
 * `deno task bundle [OUTDIR]` (default dist/bundle): puttykit as a few generated JavaScript files,
 * the way scripts/install.sh installs it for `deno run`. Start-up is what a short shared command
 * costs, and from source Deno checks, reads and evaluates each of our ~45 TypeScript modules on
 * the warm path; the bundle's entry loads far fewer, smaller files.
 *
 * The bundle is split at our dynamic imports (`--code-splitting`), so a downstream still never
 * loads ssh2, the transport or key code, and npm packages stay outside it (`--external npm:*`),
 * installed from the copied deno.lock into the bundle's own node_modules, where it is run with
 * deno_flags.ts's runFlags(true) (no config or lock file read at start-up). Deno resolves every
 * dynamic import it can read at start-up, the npm ones included (~2 ms and ~2 MiB a run, used
 * or not), so the bundle's dynamic imports are rewritten to a form it cannot read ahead.
 *
 * The output replaces OUTDIR whole, or not at all.
 */

import { fileURLToPath } from "node:url";
import { joinWarmPath } from "./bundle_merge.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The files besides the bundle that install its npm packages as the sources pin them. */
const CONFIG_FILES = ["deno.json", "deno.lock"];

/** A dynamic import of a string literal (a chunk, an npm package): Deno resolves it at start-up. */
const READABLE_IMPORT = /\bimport\("([^"\\]+)"\)/g;

/** `deno bundle` for Deno, npm packages left outside, with `args` (output and entry). */
async function runBundle(deno: string, args: string[]): Promise<void> {
  const built = await new Deno.Command(deno, {
    args: [
      "bundle",
      "--quiet",
      "--config",
      `${ROOT}deno.json`,
      "--platform",
      "deno",
      "--external",
      "npm:*",
      ...args,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!built.success) {
    throw new Error(`deno bundle failed: ${new TextDecoder().decode(built.stderr).trim()}`);
  }
}

/** Installs the npm packages deno.lock pins into `dir`/node_modules, checked against it. */
async function installPackages(deno: string, dir: string): Promise<void> {
  const installed = await new Deno.Command(deno, {
    args: ["install", "--quiet", "--frozen", "--node-modules-dir=auto"],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!installed.success) {
    throw new Error(`deno install failed: ${new TextDecoder().decode(installed.stderr).trim()}`);
  }
}

async function rewriteDynamicImports(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".js")) continue;
    const file = `${dir}/${e.name}`;
    const code = await Deno.readTextFile(file);
    const next = code.replace(READABLE_IMPORT, 'import(String("$1"))');
    if (next !== code) await Deno.writeTextFile(file, next);
  }
}

/**
 * Minifies each file on its own, its siblings and npm packages left outside: less source for Deno
 * to read and hash and for V8 to hold. A warm `plink -share host true`, paired runs: 38.5 -> 36.8
 * ms (hello world: 25.9). Names are not kept: `--keep-names` sets each function's name at start-up
 * (0.5 ms of CPU in a warm command, 60 alternating rounds) and nothing reads them; the error
 * classes that users see name themselves. It runs before the dynamic imports are rewritten
 * (rewriteDynamicImports), since minifying would fold the rewritten form back to a string literal.
 */
async function minifyEach(deno: string, dir: string): Promise<void> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".js")) files.push(e.name);
  }
  for (const name of files) {
    const siblings = files.filter((f) => f !== name).flatMap((f) => ["--external", `./${f}`]);
    const file = `${dir}/${name}`;
    await runBundle(deno, ["--minify", ...siblings, "-o", `${file}.min`, file]);
    await Deno.rename(`${file}.min`, file);
  }
}

/** The file esbuild made for the module `base`.ts that is loaded lazily (cmd/main.ts: "main"). */
async function chunkOf(dir: string, base: string): Promise<string> {
  const found: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (new RegExp(`^${base}-[A-Z0-9]+\\.js$`).test(e.name)) found.push(e.name);
  }
  if (found.length !== 1) throw new Error(`no single chunk for ${base}.ts: ${found.join(", ")}`);
  return found[0];
}

/** Builds the bundle of mod.ts into `outDir`; returns the entry (outDir/mod.js). */
export async function buildBundle(outDir: string, deno = Deno.execPath()): Promise<string> {
  const out = outDir.replace(/\/+$/, "");
  const staging = `${out}.tmp-${Deno.pid}`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    await runBundle(deno, ["--code-splitting", "--outdir", staging, `${ROOT}mod.ts`]);
    const rebundle = (entry: string, externals: string[], out: string) =>
      runBundle(deno, [...externals.flatMap((x) => ["--external", x]), "-o", out, entry]);
    const warm = [await chunkOf(staging, "main"), await chunkOf(staging, "plink")];
    await joinWarmPath(staging, "mod.js", warm, rebundle);
    await minifyEach(deno, staging);
    await rewriteDynamicImports(staging);
    for (const name of CONFIG_FILES) await Deno.copyFile(`${ROOT}${name}`, `${staging}/${name}`);
    await installPackages(deno, staging);
    await Deno.stat(`${staging}/mod.js`);
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.rename(staging, out);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  return `${out}/mod.js`;
}

if (import.meta.main) {
  const outDir = Deno.args[0] ?? `${ROOT}dist/bundle`;
  try {
    console.log(`built ${await buildBundle(outDir)}`);
  } catch (e) {
    console.error(`bundle: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
