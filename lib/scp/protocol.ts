/**
 * The SCP (rcp) protocol as spoken with OpenSSH's `scp -t` (sink) and `scp -f` (source), and
 * the way PuTTY's pscp drives it:
 *
 *   remote command  scp [-v] [-r] [-p] [-d] -t|-f PATH   (PATH unquoted: the remote shell expands
 *                                                          it, which is how SCP wildcards work)
 *   records         "T<mtime> 0 <atime> 0\n"   times of the next file (-p)
 *                   "C<mode> <size> <name>\n"  a file; then <size> bytes and one status byte
 *                   "D<mode> 0 <name>\n"       enter a directory (-r) ... "E\n" leave it
 *   status/replies  "\0" ok, "\1<text>\n" error (this file), "\2<text>\n" fatal
 */

import type { Channel } from "../ssh/channel.ts";
import { FatalError } from "../util/error_text.ts";
import { ByteReader, StreamEnded } from "./reader.ts";

export interface ScpCommandOptions {
  verbose?: boolean;
  recursive?: boolean;
  preserve?: boolean;
  /** -d: the target must be a directory (several sources). */
  targetIsDir?: boolean;
}

/** The command pscp runs on the server: "scp -v -r -p -d -t target" (PuTTY's order). */
export function scpCommand(
  direction: "to" | "from",
  path: string,
  o: ScpCommandOptions,
): string {
  return "scp" + (o.verbose ? " -v" : "") + (o.recursive ? " -r" : "") +
    (o.preserve ? " -p" : "") + (o.targetIsDir ? " -d" : "") +
    (direction === "to" ? " -t " : " -f ") + path;
}

const enc = new TextEncoder();

/** A status reply: undefined for OK, else the error text (a \1 record). */
export type Status = string | undefined;

/** One SCP conversation over a channel running scp: records out, replies in. */
export class ScpStream {
  readonly reader: ByteReader;

  constructor(readonly channel: Channel) {
    this.reader = new ByteReader(channel.stdout);
  }

  /** Sends bytes or text; a dead channel is fatal. */
  async send(data: string | Uint8Array): Promise<void> {
    try {
      await this.channel.write(typeof data === "string" ? enc.encode(data) : data);
    } catch (e) {
      throw lost(e);
    }
  }

  /**
   * PuTTY's response(): reads one status. OK gives undefined; an error record gives its text
   * (the caller reports it); a fatal record, an unexpected byte or the end of the stream throws.
   */
  async response(): Promise<Status> {
    let b: number | undefined;
    try {
      b = await this.reader.byte();
    } catch (e) {
      throw lost(e);
    }
    if (b === undefined) throw new FatalError("Lost connection");
    if (b === 0) return undefined;
    let text: string;
    try {
      text = await this.reader.line(2047);
    } catch (e) {
      throw e instanceof StreamEnded ? new FatalError("Protocol error: Lost connection") : lost(e);
    }
    if (b === 1) return text;
    throw new FatalError(b === 2 ? text : String.fromCharCode(b) + text);
  }

  /** Sends an error record ("\1" + text, text ending in a newline). */
  async sendError(text: string): Promise<void> {
    await this.send("\x01" + (text.endsWith("\n") ? text : text + "\n"));
  }
}

/** A connection loss while talking SCP, as PuTTY reports it. */
export function lost(e: unknown): Error {
  if (e instanceof FatalError) return e;
  const why = e instanceof Error && !(e instanceof StreamEnded) ? ` (${e.message})` : "";
  return new FatalError(`Lost connection${why}`);
}

/** "T<mtime> 0 <atime> 0": PuTTY's sscanf("%lu %*d %lu %*d"). */
export function parseTimes(text: string): { mtime: number; atime: number } | undefined {
  const m = /^\s*(\d+)\s+[-+]?\d+\s+(\d+)\s+[-+]?\d+/.exec(text);
  if (!m) return undefined;
  return { mtime: Number(m[1]), atime: Number(m[2]) };
}

/**
 * "C<mode> <size> <name>" / "D<mode> 0 <name>" after the letter. The name is everything after the
 * single space that follows the size (as OpenSSH's scp reads it), so names with leading spaces
 * survive.
 */
export function parseEntry(text: string): { mode: number; size: number; name: string } | undefined {
  const m = /^\s*([0-7]+) +(\d+) ([^]*)$/.exec(text);
  if (!m) return undefined;
  return { mode: parseInt(m[1], 8), size: Number(m[2]), name: m[3] };
}

export function entryRecord(kind: "C" | "D", mode: number, size: number, name: string): string {
  return `${kind}${(mode & 0o7777).toString(8).padStart(4, "0")} ${size} ${name}\n`;
}

export function timesRecord(mtime: number, atime: number): string {
  return `T${mtime} 0 ${atime} 0\n`;
}
