/**
 * The "main channel" plink and putty run: a session channel with optional pty, environment, X11
 * and agent forwarding, then a command, subsystem or shell; its exit status the way PuTTY reports it.
 * Also the plain exec channels other tools run beside their own work (pscp's SCP helpers).
 */

import type { X11Request } from "../forward/x11.ts";
import { ChannelOpenError, type SshConnection } from "../ssh/connection.ts";
import type { Channel, ChunkSource } from "../ssh/channel.ts";

export interface PtyRequest {
  term: string;
  cols: number;
  rows: number;
  /** Encoded terminal modes (RFC 4254 section 8), ending with TTY_OP_END. */
  modes?: Uint8Array;
}

export interface MainChannelOptions {
  /** Remote command; with `subsystem`, the subsystem name; undefined starts a shell. */
  command?: string;
  subsystem?: boolean;
  pty?: PtyRequest;
  env?: [string, string][];
  /**
   * Ask for agent forwarding. Pass `agentForwardingPermitted(cfg)` (lib/forward/agent.ts): -A
   * and an agent, as PuTTY asks.
   */
  agentForward?: boolean;
  /** Ask for X11 forwarding with this made-up authorisation (lib/forward/x11.ts). */
  x11?: X11Request;
  /** Non-fatal notices (e.g. the server refused a pty). */
  warn?: (text: string) => void;
  /** -v event log. */
  log?: (text: string) => void;
}

/** The server said no to starting what we asked for. */
export class RemoteRefusedError extends Error {}

/** A tool's first session channel; its refusal in PuTTY's words, with the server's reason. */
export async function openMainChannel(conn: SshConnection): Promise<Channel> {
  try {
    return await conn.openSession();
  } catch (e) {
    if (!(e instanceof ChannelOpenError)) throw e;
    throw new RemoteRefusedError(`Server refused to open main channel: ${e.logText}`);
  }
}

export async function startMainChannel(
  conn: SshConnection,
  opts: MainChannelOptions,
): Promise<Channel> {
  const ch = await openMainChannel(conn);
  const warn = opts.warn ?? (() => {});
  if (opts.x11) {
    // Logged only, as PuTTY does.
    const { protocol, cookieHex, screen } = opts.x11;
    const ok = await ch.x11Forwarding(protocol, cookieHex, screen);
    opts.log?.(ok ? "X11 forwarding enabled" : "X11 forwarding refused");
  }
  if (opts.agentForward) {
    // Logged only, as PuTTY does: OpenSSH refuses all but the first request on a connection
    // (e.g. a downstream's after the upstream's), yet every later session gets the agent.
    const ok = await ch.agentForwarding();
    opts.log?.(ok ? "Agent forwarding enabled" : "Agent forwarding refused");
  }
  if (opts.pty) {
    const { term, cols, rows, modes } = opts.pty;
    if (!(await ch.pty(term, cols, rows, modes))) warn("Server refused to allocate pty");
  }
  for (const [name, value] of opts.env ?? []) {
    if (!(await ch.env(name, value))) warn(`Server refused to set environment variable ${name}`);
  }
  // PuTTY has one message for a refused subsystem, command or shell.
  let ok: boolean;
  if (opts.subsystem) ok = await ch.subsystem(opts.command ?? "");
  else if (opts.command !== undefined && opts.command !== "") ok = await ch.exec(opts.command);
  else ok = await ch.shell();
  if (!ok) throw new RemoteRefusedError("Server refused to start a shell/command");
  return ch;
}

/**
 * plink's exit code for a finished channel: the remote exit status; 128 when the command died of
 * a signal (what PuTTY 0.78 reports); undefined when the server reported neither.
 */
export function exitCodeOf(ch: Channel): number | undefined {
  const e = ch.exit;
  if (!e) return undefined;
  if (e.code !== null) return e.code;
  return 128;
}

/** Where data for a channel comes from: chunks until null (a ChunkSource, or chunksOf(file)). */
export interface ChunkInput {
  read(): Promise<Uint8Array | null>;
}

/**
 * Chunks read straight from a file or stdin (`Deno.stdin.readable` would load Deno's streams:
 * ~3 ms of a warm downstream command), into one buffer: a chunk is lent until the next read()
 * (pumpToChannel's writes have copied it into packets by then). The buffer starts small and
 * grows, up to `size`, while reads fill it: a file read is a trip to another thread, so bulk
 * input takes it in large pieces, and a command with no input keeps a small buffer.
 */
export function chunksOf(
  file: { read(p: Uint8Array): Promise<number | null> },
  size = 256 * 1024,
): ChunkInput {
  let buf = new Uint8Array(Math.min(size, 16 * 1024));
  return {
    async read() {
      const n = await file.read(buf);
      if (n === null) return null;
      const chunk = buf.subarray(0, n);
      // The next read goes to a larger buffer: this chunk is still lent.
      if (n === buf.length && buf.length < size) buf = new Uint8Array(Math.min(size, n * 4));
      return chunk;
    },
  };
}

/** Copies `src` into the channel and sends EOF at its end. Stops quietly if the channel goes. */
export async function pumpToChannel(src: ChunkInput, ch: Channel): Promise<void> {
  try {
    for (let chunk = await src.read(); chunk; chunk = await src.read()) {
      if (ch.isClosed) return;
      if (chunk.length) await ch.write(chunk);
    }
    ch.eof();
  } catch {
    // channel closed under us, or stdin unreadable: nothing more to send
  }
}

/**
 * Copies channel data to a local sink without closing the sink. A chunk is lent to `write` until
 * what it returns settles: from a channel it is a view of the channel's own buffer (peek()),
 * which the next data overwrites, where a joined copy per read cost a fresh buffer of up to
 * 256 KiB each time.
 */
export async function pumpFromChannel(
  src: ChunkInput | ChunkSource,
  write: (chunk: Uint8Array) => Promise<void> | void,
): Promise<void> {
  if ("peek" in src) {
    for (let data = await src.peek(); data; data = await src.peek()) {
      await write(data);
      src.release(data.length);
    }
    return;
  }
  for (let chunk = await src.read(); chunk; chunk = await src.read()) await write(chunk);
}

/** A session channel running `command`; `open` opens the channel. */
export async function openCommand(
  conn: SshConnection,
  command: string,
  open = (c: SshConnection) => c.openSession(),
): Promise<Channel> {
  const channel = await open(conn);
  if (!(await channel.exec(command))) {
    channel.close();
    throw new RemoteRefusedError("Server refused to start a shell/command");
  }
  return channel;
}

/** Runs `command` on the server; true when it exits with status 0. */
export async function commandSucceeds(conn: SshConnection, command: string): Promise<boolean> {
  let ch: Channel;
  try {
    ch = await openCommand(conn, command);
  } catch (e) {
    if (e instanceof RemoteRefusedError) return false;
    throw e;
  }
  ch.stdout.discard();
  ch.stderr.discard();
  await ch.closed;
  return ch.exit?.code === 0;
}
