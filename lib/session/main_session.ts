/**
 * The main channel run against the local terminal, as plink and putty do it: a pty request made
 * from the local terminal (type, size, modes), raw mode while the session runs, window-size
 * changes forwarded on SIGWINCH, and the terminal restored however the session ends.
 *
 *   const terminal = new RawTerminal();      // lib/terminal/raw.ts; restored on signals too
 *   const code = await runMainSession(conn, { ptyTerm: cfg.termType, terminal, io: {...} });
 *
 * Bytes go through untouched in both directions (no decoding), so any encoding survives.
 */

import type { SshConnection } from "../ssh/connection.ts";
import {
  type ChunkInput,
  exitCodeOf,
  type MainChannelOptions,
  type PtyRequest,
  pumpFromChannel,
  pumpToChannel,
  startMainChannel,
} from "./main_channel.ts";
import {
  encodeTerminalModes,
  puttyDefaultSettings,
  readLocalTerminalSettings,
  type TerminalSettings,
} from "../terminal/modes.ts";
import type { RawTerminal } from "../terminal/raw.ts";

/** The local terminal's size in characters; 80x24 when there is none. */
export function terminalSize(): { cols: number; rows: number } {
  try {
    const { columns, rows } = Deno.consoleSize();
    if (columns > 0 && rows > 0) return { cols: columns, rows };
  } catch { /* not a terminal */ }
  return { cols: 80, rows: 24 };
}

/**
 * A pty request for terminal type `term` from the local terminal: its size and its modes (read
 * with stty; PuTTY's own defaults if that fails). Without a local terminal, as plink does, no
 * modes but the line speeds.
 */
export async function localPtyRequest(term: string): Promise<PtyRequest> {
  let settings: TerminalSettings = { modes: new Map() };
  if (Deno.stdin.isTerminal()) {
    settings = (await readLocalTerminalSettings()) ??
      puttyDefaultSettings((name) => Deno.env.get(name));
  }
  const { cols, rows } = terminalSize();
  return { term: term || "xterm", cols, rows, modes: encodeTerminalModes(settings) };
}

/** Where the session's data comes from and goes to. */
export interface SessionIo {
  input: ChunkInput;
  stdout: (chunk: Uint8Array) => Promise<void>;
  stderr: (chunk: Uint8Array) => Promise<void>;
}

export interface MainSessionOptions extends Omit<MainChannelOptions, "pty"> {
  /** Request a pty of this terminal type, made from the local terminal. */
  ptyTerm?: string;
  /**
   * With a pty and stdin a terminal: raw mode for the session's length, and SIGWINCH forwarded
   * as window-change. The terminal is restored before this returns or throws.
   */
  terminal?: RawTerminal;
  io: SessionIo;
}

/**
 * Starts the main channel and copies data both ways until the remote side closes it. Returns the
 * exit code (see exitCodeOf); throws when the server refuses the session or the connection dies.
 */
export async function runMainSession(
  conn: SshConnection,
  opts: MainSessionOptions,
): Promise<number | undefined> {
  const pty = opts.ptyTerm !== undefined ? await localPtyRequest(opts.ptyTerm) : undefined;
  const ch = await startMainChannel(conn, { ...opts, pty });
  const terminal = pty && Deno.stdin.isTerminal() ? opts.terminal : undefined;
  let size = pty && { cols: pty.cols, rows: pty.rows };
  const resize = () => {
    const now = terminalSize();
    if (size && now.cols === size.cols && now.rows === size.rows) return;
    size = now;
    ch.windowChange(now.cols, now.rows);
  };
  try {
    if (terminal) {
      terminal.enter();
      Deno.addSignalListener("SIGWINCH", resize);
      resize(); // in case the size changed while the channel was being set up
    }
    pumpToChannel(opts.io.input, ch);
    await Promise.all([
      pumpFromChannel(ch.stdout, opts.io.stdout),
      pumpFromChannel(ch.stderr, opts.io.stderr),
    ]);
    await ch.closed;
  } finally {
    if (terminal) {
      Deno.removeSignalListener("SIGWINCH", resize);
      terminal.restore();
    }
  }
  if (ch.failure) throw ch.failure;
  return exitCodeOf(ch);
}
