/**
 * puttykit: one program, dispatched busybox-style on the name it is run as (plink, pscp, psftp,
 * putty, with or without ".exe"), or as `puttykit <tool> args...`.
 *
 * Compiled with `deno compile`, argv[0] is the symlink's name. Under `deno run`, argv[0] is what
 * the launcher set (`exec -a plink deno run -A mod.ts ...`, as scripts/install.sh's wrappers do),
 * else the first argument names the tool.
 */

import { toolFromArgv, TOOLS } from "./lib/dispatch.ts";

export { connect } from "./lib/api/connect.ts";
export type {
  Connection,
  ConnectOptions,
  ExecOptions,
  ExecResult,
  Forwarding,
  ForwardLocalOptions,
  ForwardRemoteOptions,
  HostKeyPrompt,
  Questions,
  RemoteEntry,
  RemoteProcess,
  RemoteStat,
  Role,
  SftpSession,
} from "./lib/api/connect.ts";
export {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  HostKeyError,
  PuttykitError,
  RefusedError,
  RemoteFileError,
} from "./lib/api/errors.ts";
import { VERSION } from "./lib/version.ts";

const USAGE = `puttykit ${VERSION}: PuTTY's command-line tools with SSH connection sharing
Usage: puttykit <tool> [options...]      (or run as plink, pscp, psftp or putty)
Tools: ${TOOLS.join(", ")}
`;

/**
 * argv[0] as we were started. Deno has no API for it; node:process does, but loading it costs
 * every tool ~15 ms of start-up, so on Linux it is read from /proc instead.
 */
async function argv0(): Promise<string | undefined> {
  try {
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0")[0];
  } catch {
    return (await import("node:process")).default.argv0;
  }
}

/** Runs the tool that argv[0] or the first argument names, and exits with its code. */
async function runCommandLine(): Promise<never> {
  const picked = toolFromArgv(await argv0(), Deno.args);
  if (!picked) {
    Deno.stderr.writeSync(new TextEncoder().encode(USAGE));
    Deno.exit(/^(-h|--help)$/.test(Deno.args[0] ?? "") ? 0 : 1);
  }
  const { runTool } = await import("./cmd/main.ts");
  Deno.exit(await runTool(picked.tool, picked.args));
}

// Not awaited here: the bundle (scripts/bundle.ts) joins the warm path into this module, and the
// tools' parts it loads later import it, which they can only once it has been evaluated.
if (import.meta.main) runCommandLine();
