/**
 * psftp's main loops (PuTTY's do_sftp): commands from the user, or from a batch file (-b) with
 * optional echo (-bc) and carrying on after failures (-be).
 *
 * Interactive: every command runs whatever the last one did; end of input prints "quit".
 * Batch: each line (echoed after a "psftp> " prompt with -bc) runs in turn; the first failing
 * command ends the script and psftp's exit status is then 2 (PuTTY 0.78's value), unless -be.
 */

import { runCommandLine } from "./commands.ts";
import type { PsftpSession } from "./state.ts";

export const PROMPT = "psftp> ";

/**
 * Runs commands read by `readLine` (which shows the prompt; undefined at end of input) until
 * "quit" or end of input. Returns psftp's exit status (0).
 */
export async function runInteractive(
  s: PsftpSession,
  readLine: (prompt: string) => Promise<string | undefined>,
): Promise<number> {
  for (;;) {
    const line = await readLine(PROMPT);
    if (line === undefined) {
      s.print("quit\n");
      return 0;
    }
    if (await runCommandLine(s, line) === "quit") return 0;
  }
}

export interface BatchOptions {
  /** -bc: show each command after a prompt. */
  echo: boolean;
  /** -be: carry on after a failing command. */
  keepGoing: boolean;
}

/** Splits a batch file into lines as fgetline() reads them (a last line may lack its newline). */
export function batchLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** Runs a batch file's lines. Returns psftp's exit status: 2 if a command failed, else 0. */
export async function runBatch(
  s: PsftpSession,
  lines: readonly string[],
  opts: BatchOptions,
): Promise<number> {
  let result = "ok";
  for (let i = 0;; i++) {
    if (opts.echo) s.print(PROMPT);
    if (i >= lines.length) {
      if (opts.echo) s.print("quit\n");
      return 0;
    }
    const line = lines[i].replace(/[\r\n].*$/s, "");
    if (opts.echo) s.print(line + "\n");
    result = await runCommandLine(s, line);
    if (result === "quit") return 0;
    if (result === "failed" && !opts.keepGoing) return 2;
  }
}
