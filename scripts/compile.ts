/**
 * `deno task compile`: builds the single binary dist/puttykit with `deno compile` and the
 * busybox-style symlinks dist/plink, dist/pscp, dist/psftp, dist/putty next to it.
 *
 * `deno compile` downloads Deno's runtime for the target the first time; on machines that cannot
 * reach dl.deno.land this fails with Deno's own message (use scripts/install.sh there instead).
 */

import { fileURLToPath } from "node:url";
import { TOOLS } from "../lib/dispatch.ts";
import { DENO_RUN_FLAGS } from "./deno_flags.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist`;
await Deno.mkdir(dist, { recursive: true });
const target = Deno.args[0] ? ["--target", Deno.args[0]] : [];
const out = await new Deno.Command(Deno.execPath(), {
  args: [
    "compile",
    "-A",
    ...DENO_RUN_FLAGS,
    ...target,
    "--output",
    `${dist}/puttykit`,
    `${root}mod.ts`,
  ],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!out.success) {
  console.error("compile: deno compile failed (it needs to download Deno's runtime once)");
  Deno.exit(out.code || 1);
}
for (const tool of TOOLS) {
  const link = `${dist}/${tool}`;
  await Deno.remove(link).catch(() => {});
  await Deno.symlink("puttykit", link);
}
console.log(`built ${dist}/puttykit with links ${TOOLS.join(", ")}`);
