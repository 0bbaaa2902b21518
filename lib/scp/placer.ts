/**
 * Putting SCP uploads in place on the server. The remote `scp -t` writes each file where it is
 * told, so pscp sends it under a temporary name beside its target and, once the server has
 * confirmed the whole file, has a short POSIX sh script move it into place: `mv` when nothing is
 * at the target yet, otherwise `cat temp > target` (what an in-place write does: the existing
 * file keeps its permissions, a symbolic link is written through, a device gets the data), then
 * with -p the file's mode and times. A transfer cut short leaves the target as it was; a
 * temporary file whose copy into place failed is kept, so its data is not lost.
 *
 * The steps run in batches, one exec channel at a time, beside the SCP session.
 */

import { type SshConnection } from "../ssh/connection.ts";
import { ConnectionClosedError } from "../ssh/channel.ts";
import type { Reporter } from "../files/endpoint.ts";
import { printable } from "../util/printable.ts";
import { openCommand } from "../session/main_channel.ts";
import { errorText } from "../util/error_text.ts";

/**
 * Arguments, in order: "p TEMP FINAL", "P TEMP FINAL MODE" (with -p) or "r TEMP" (remove). One
 * line with single-quote-free text, so any login shell (sh, bash, zsh, csh, fish) passes it to
 * sh unchanged.
 */
const SCRIPT = "s=0; while [ $# -gt 0 ]; do case $1 in " +
  'r) rm -f -- "$2"; shift 2;; ' +
  '*) if [ -e "$3" ] || [ -h "$3" ]; then ' +
  'if cat -- "$2" > "$3"; then ' +
  'if [ "$1" = P ]; then chmod "$4" "$3" 2>/dev/null; touch -r "$2" "$3" 2>/dev/null; fi; ' +
  'rm -f -- "$2"; else s=1; fi; ' +
  'elif mv -f -- "$2" "$3"; then :; else s=1; fi; ' +
  'if [ "$1" = P ]; then shift 4; else shift 3; fi;; ' +
  "esac; done; exit $s";

/** The command line running the script on `args` (shell words), with `tool` as its $0. */
export function placeCommand(tool: string, args: string[]): string {
  return `sh -c ${shellWord(SCRIPT)} ${tool} ${args.join(" ")}`;
}

/** Keeps each command line well below any system's ARG_MAX. */
const BATCH_BYTES = 32 * 1024;

/**
 * A shell word for `text` as it stands: single-quoted, a quote as '\'' (which sh, csh and fish
 * all read back as one quote).
 */
export function shellWord(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

export class RemotePlacer {
  private queue: string[][] = [];
  private running?: Promise<void>;

  /** `tool` names the script's $0 on the server ("pscp"). */
  constructor(
    private readonly conn: SshConnection,
    private readonly reporter: Reporter,
    private readonly tool: string,
  ) {}

  /**
   * Moves `temp` to `final` (both shell text: the remote shell expands them as it did the scp
   * target). With `mode` (-p), the target gets that mode and the temporary file's times.
   */
  place(temp: string, final: string, mode?: number): void {
    this.enqueue(
      mode === undefined
        ? ["p", temp, final]
        : ["P", temp, final, mode.toString(8).padStart(4, "0")],
    );
  }

  /** Removes a temporary file whose transfer failed. */
  remove(temp: string): void {
    this.enqueue(["r", temp]);
  }

  /** Resolves once every step asked for so far has run (or failed, reported). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private enqueue(op: string[]): void {
    this.queue.push(op);
    this.running ??= this.runAll();
  }

  private async runAll(): Promise<void> {
    try {
      while (this.queue.length) {
        const args: string[] = [];
        let bytes = 0;
        while (this.queue.length && (args.length === 0 || bytes < BATCH_BYTES)) {
          const op = this.queue.shift()!;
          args.push(...op);
          for (const a of op) bytes += a.length + 1;
        }
        await this.runBatch(args);
      }
    } finally {
      // In the same step as the last look at the queue: a step asked for later starts a new run.
      this.running = undefined;
    }
  }

  private async runBatch(args: string[]): Promise<void> {
    const command = placeCommand(this.tool, args);
    const dec = new TextDecoder();
    try {
      const ch = await openCommand(this.conn, command);
      ch.stdout.discard(); // nothing expected
      let err = "";
      for await (const c of ch.stderr) err += dec.decode(c, { stream: true });
      await ch.closed;
      for (const line of printable(err).split("\n")) if (line) this.reporter.error(line);
      if (ch.exit?.code !== 0 && !err) {
        this.reporter.error(`${this.tool}: files could not be put in place on the server`);
      }
    } catch (e) {
      // A lost connection is reported where the transfer noticed it.
      if (e instanceof ConnectionClosedError) return;
      this.reporter.error(
        `${this.tool}: files could not be put in place: ${errorText(e)}`,
      );
    }
  }
}
