/**
 * Joins a local stream socket (TCP or Unix) to an SSH channel, both ways, with back-pressure:
 * we read from the socket only once the previous chunk fits the channel's window, and credit
 * the channel's window only once the socket has taken what came. So neither side can make us
 * buffer more than one chunk, or one window.
 *
 * End of stream is passed on as half-closes (socket EOF -> CHANNEL_EOF, CHANNEL_EOF -> shutdown
 * of the socket's write side); the channel is closed once both directions have ended (PuTTY's
 * default want_close), or at once when either side fails.
 */

import { ChannelOpenError, type IncomingChannel, type SshConnection } from "../ssh/connection.ts";
import { type Channel } from "../ssh/channel.ts";
import { osErrorText } from "../util/error_text.ts";

/**
 * Bytes read from the socket at once. One read of whatever has queued up (written out as
 * several packets in one go) costs less per byte than a read per packet: a 100 MiB upload
 * through -L took a fifth less CPU with 128 KiB than with 32 KiB.
 */
const CHUNK = 128 * 1024;
const CHUNK_START = 16 * 1024;

/**
 * The window a forwarded connection's channel offers: what the peer may send before the socket
 * has taken it, and so the size of the buffer the channel copies it into (see peek()): 20
 * downloads at once hold 5 MiB of it, where 2 MiB windows let the queued packets alone reach
 * 40 MiB. Half a MiB was no faster through loopback (bench runs of each: -L downloads at 1.08x
 * and 1.28x PuTTY's, the larger window first) and the forwarder peaked 8-15 MiB higher after 200
 * MiB up, down and 20 at once; a quarter (128 KiB) halved a single download's speed.
 */
export const FORWARD_WINDOW = 256 * 1024;

export interface Bridged {
  /** Settles when both the channel and the socket are closed. */
  done: Promise<void>;
  /** Drops the connection at once (both sides). */
  abort(): void;
}

/** Writes all of `data` to a socket. */
export async function writeAll(sock: Deno.Conn, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.length) at += await sock.write(data.subarray(at));
}

export function bridge(sock: Deno.Conn, ch: Channel): Bridged {
  let closed = false;
  const abort = () => {
    ch.close();
    if (closed) return;
    closed = true;
    try {
      sock.close();
    } catch { /* already closed */ }
  };

  // socket -> channel
  const up = (async () => {
    // Small until a read fills it: an idle or interactive connection keeps a small buffer.
    let buf = new Uint8Array(CHUNK_START);
    try {
      for (;;) {
        const n = await sock.read(buf);
        if (n === null) {
          ch.eof();
          return true;
        }
        // write() has copied the data into a packet by the time it resolves: buf is reusable.
        await ch.write(buf.subarray(0, n));
        if (n === buf.length && n < CHUNK) buf = new Uint8Array(CHUNK);
      }
    } catch {
      return false;
    }
  })();

  // channel -> socket
  const down = (async () => {
    try {
      for (let data = await ch.stdout.peek(); data; data = await ch.stdout.peek()) {
        await writeAll(sock, data);
        // Only now: the window then bounds what waits here as well as what is queued.
        ch.stdout.release(data.length);
      }
      await sock.closeWrite();
      return true;
    } catch {
      ch.stdout.discard();
      return false;
    }
  })();
  // Forwarded connections carry no stderr; drain it so it can never hold the window.
  ch.stderr.discard();

  // A write into a channel the peer has closed fails too; then `done` below drains what the
  // peer sent before its close rather than dropping it.
  up.then((ok) => ok || ch.isClosed || abort());
  down.then((ok) => ok || abort());

  const done = (async () => {
    // Normal end: both directions finished. Or the peer closed the channel: let what it sent
    // before closing reach the socket, then drop the socket.
    await Promise.race([Promise.all([up, down]), ch.closed.then(() => down)]);
    abort();
    await ch.closed;
  })();
  return { done, abort };
}

/** What the forwarding code needs from its owner: the connection, logging, bookkeeping. */
export interface ForwardEnv {
  conn: SshConnection;
  /** -v event log line. */
  log(text: string): void;
  /** A line the user should see even without -v. */
  warn(text: string): void;
  /** Live forwarded connections, so that stopping the forwardings can end them. */
  live: Set<Bridged>;
}

/** Bridges a forwarded connection, keeps it in `env.live` while it lasts, logs its end. */
export async function runForwarded(env: ForwardEnv, sock: Deno.Conn, ch: Channel): Promise<void> {
  const b = bridge(sock, ch);
  env.live.add(b);
  try {
    await b.done;
  } finally {
    env.live.delete(b);
  }
  env.log("Forwarded port closed");
}

/** Accepts a server-initiated channel for `sock`; if that cannot be done, closes `sock`. */
export function acceptFor(req: IncomingChannel, sock: Deno.Conn): Channel | undefined {
  try {
    return req.accept(FORWARD_WINDOW);
  } catch {
    sock.close();
    return undefined;
  }
}

/** "127.0.0.1:5000" / "[::1]:5000", as PuTTY describes a socket's peer. */
export function peerText(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return "local socket";
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** Why a channel open failed, the way PuTTY logs it: "Connect failed [Connection refused]". */
export function openFailureLogText(e: unknown): string {
  return e instanceof ChannelOpenError ? e.logText : osErrorText(e);
}
