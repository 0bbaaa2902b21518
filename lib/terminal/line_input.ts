/**
 * Reading one answer line, as PuTTY's console prompts do: from stdin a byte at a time (so
 * nothing after the line is consumed), from a terminal with echo on, or in raw mode with echo
 * off doing backspace, ^U, ^C and ^D ourselves.
 */

/** ^C typed at a secret prompt (raw mode, so no signal was sent). */
export const INTERRUPTED = Symbol("interrupted");

const enc = new TextEncoder();

/** The controlling terminal, for reading and writing; undefined when there is none. */
export function openTty(): Deno.FsFile | undefined {
  try {
    return Deno.openSync("/dev/tty", { read: true, write: true });
  } catch {
    return undefined;
  }
}

/**
 * Reads one line from stdin a byte at a time, so nothing after the line is consumed (it may be
 * meant for the remote command). PuTTY reads host-key answers from stdin like this.
 */
export async function readStdinLine(): Promise<string | undefined> {
  const bytes: number[] = [];
  const b = new Uint8Array(1);
  for (;;) {
    const n = await Deno.stdin.read(b);
    if (n === null) {
      return bytes.length ? new TextDecoder().decode(new Uint8Array(bytes)) : undefined;
    }
    if (b[0] === 10) break;
    bytes.push(b[0]);
  }
  return new TextDecoder().decode(new Uint8Array(bytes)).replace(/\r$/, "");
}

/** A line from a terminal in its usual (cooked, echoing) mode. */
export async function readEchoedLine(tty: Deno.FsFile): Promise<string | undefined> {
  const buf = new Uint8Array(1024);
  let line = "";
  for (;;) {
    const n = await tty.read(buf);
    if (n === null) return line.length ? line : undefined;
    line += new TextDecoder().decode(buf.subarray(0, n));
    const nl = line.indexOf("\n");
    if (nl >= 0) return line.slice(0, nl).replace(/\r$/, "");
  }
}

/** Reads a line in raw mode, doing backspace, ^U, ^C and ^D ourselves. */
export async function readSecretLine(
  tty: Deno.FsFile,
): Promise<string | undefined | typeof INTERRUPTED> {
  const bytes: number[] = [];
  const b = new Uint8Array(1);
  for (;;) {
    const n = await tty.read(b);
    if (n === null) return undefined;
    const c = b[0];
    if (c === 13 || c === 10) break;
    if (c === 3 || c === 4) {
      tty.writeSync(enc.encode("\r\n"));
      return c === 3 ? INTERRUPTED : undefined;
    }
    if (c === 127 || c === 8) bytes.pop();
    else if (c === 21) bytes.length = 0;
    else bytes.push(c);
  }
  tty.writeSync(enc.encode("\r\n"));
  return new TextDecoder().decode(new Uint8Array(bytes));
}
