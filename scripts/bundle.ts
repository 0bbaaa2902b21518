/**
 * `deno task bundle [OUTDIR]` (default dist/bundle): puttykit as a few generated JavaScript files,
 * the way scripts/install.sh installs it for `deno run`. Start-up is what a short shared command
 * costs, and from source Deno checks, reads and evaluates each of our ~45 TypeScript modules on
 * the warm path; the bundle's entry loads far fewer, smaller files.
 *
 * The bundle is split at our dynamic imports (`--code-splitting`), so a downstream still never
 * loads ssh2, the transport or key code, and npm packages stay outside it (`--external npm:*`),
 * resolved through the copied deno.json and deno.lock as from source. Deno resolves every
 * dynamic import it can read at start-up, the npm ones included (~2 ms and ~2 MiB a run, used
 * or not), so the bundle's dynamic imports are rewritten to a form it cannot read ahead.
 *
 * The output replaces OUTDIR whole, or not at all.
 */

import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The files besides the bundle that resolve its npm imports as from source. */
const CONFIG_FILES = ["deno.json", "deno.lock"];

/** A dynamic import of a string literal (a chunk, an npm package): Deno resolves it at start-up. */
const READABLE_IMPORT = /\bimport\("([^"\\]+)"\)/g;

/** Builds the bundle of mod.ts into `outDir`; returns the entry (outDir/mod.js). */
export async function buildBundle(outDir: string, deno = Deno.execPath()): Promise<string> {
  const out = outDir.replace(/\/+$/, "");
  const staging = `${out}.tmp-${Deno.pid}`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    const built = await new Deno.Command(deno, {
      args: [
        "bundle",
        "--quiet",
        "--config",
        `${ROOT}deno.json`,
        "--platform",
        "deno",
        "--code-splitting",
        "--external",
        "npm:*",
        "--outdir",
        staging,
        `${ROOT}mod.ts`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!built.success) {
      throw new Error(`deno bundle failed: ${new TextDecoder().decode(built.stderr).trim()}`);
    }
    for await (const e of Deno.readDir(staging)) {
      if (!e.isFile || !e.name.endsWith(".js")) continue;
      const file = `${staging}/${e.name}`;
      const code = await Deno.readTextFile(file);
      await Deno.writeTextFile(file, code.replace(READABLE_IMPORT, 'import(String("$1"))'));
    }
    for (const name of CONFIG_FILES) await Deno.copyFile(`${ROOT}${name}`, `${staging}/${name}`);
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
