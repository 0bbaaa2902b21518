/** Which tool a puttykit invocation means (see mod.ts). Pure, so it can be tested directly. */

export const TOOLS = ["plink", "pscp", "psftp", "putty"] as const;
export type ToolName = typeof TOOLS[number];

/** "plink", "/usr/bin/plink", "PLINK.EXE" -> "plink"; else undefined. */
export function toolFromName(name: string | undefined): ToolName | undefined {
  if (!name) return undefined;
  const base = name.replace(/\\/g, "/").split("/").pop()!.toLowerCase()
    .replace(/\.exe$/, "");
  return (TOOLS as readonly string[]).includes(base) ? base as ToolName : undefined;
}

/**
 * argv0: the process's argv[0]; args: the arguments after the program (or script). Returns the
 * tool and its arguments, or undefined when none is named.
 */
export function toolFromArgv(
  argv0: string | undefined,
  args: readonly string[],
): { tool: ToolName; args: string[] } | undefined {
  const byName = toolFromName(argv0);
  if (byName) return { tool: byName, args: [...args] };
  const byArg = toolFromName(args[0]);
  if (byArg && !args[0].includes("/")) return { tool: byArg, args: args.slice(1) };
  return undefined;
}
