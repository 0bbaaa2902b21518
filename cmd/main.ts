/**
 * The command-line program behind mod.ts: runs one tool and works out the code to exit with. The
 * tools' modules are imported only when chosen, so each run loads one front-end.
 */

import type { ToolName } from "../lib/dispatch.ts";
import { finalExitCode } from "./console.ts";

/** Runs `tool` with `args`; the code to exit with (a signal's, once its clean-up is done). */
export async function runTool(tool: ToolName, args: string[]): Promise<number> {
  return await finalExitCode(await start(tool, args));
}

async function start(tool: ToolName, args: string[]): Promise<number> {
  switch (tool) {
    case "plink":
      return (await import("./plink.ts")).main(args);
    case "pscp":
      return (await import("./pscp.ts")).main(args);
    case "psftp":
      return (await import("./psftp.ts")).main(args);
    case "putty":
      return (await import("./putty.ts")).main(args);
  }
}
