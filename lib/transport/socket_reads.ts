/**
 * The SSH connection's TCP socket, read into one buffer of ours (node:net's `onread`) rather than
 * a fresh buffer per read, which is what node:net's 'data' events give: a download made one 64 KiB
 * buffer of garbage per read, as much again as its packets. The chunk goes to ssh2 as a 'data'
 * event all the same, and ssh2 parses all of it before the event returns.
 *
 * The buffer is handed over itself only while the decipher copies every byte it keeps out of its
 * input (`copiesInput`: our chacha20-poly1305 path); before that (the version line, the first key
 * exchange) and with any other decipher, ssh2 gets a copy, since it may keep views of a chunk.
 */

import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";

/** Bytes read at once: a larger read is fewer trips through the event loop per MiB. */
const READ_SIZE = 256 * 1024;

export function connectReadingInto(
  host: string,
  port: number,
  family: 0 | 4 | 6,
  copiesInput: () => boolean,
): Socket {
  const buffer = Buffer.allocUnsafe(READ_SIZE);
  let early: Buffer[] = [];
  const sock = connect({
    host,
    port,
    family,
    onread: {
      buffer,
      callback(n: number) {
        const read = buffer.subarray(0, n);
        // Not before ssh2 listens (it does so once connected): kept until then.
        if (sock.listenerCount("data") === 0) early.push(Buffer.from(read));
        else sock.emit("data", copiesInput() ? read : Buffer.from(read));
        return true;
      },
    },
  });
  const on = sock.on as (
    this: Socket,
    event: string,
    listener: (...a: unknown[]) => void,
  ) => Socket;
  sock.on = function (this: Socket, event: string, listener: (...a: unknown[]) => void) {
    on.call(this, event, listener);
    if (event === "data" && early.length) {
      const held = early;
      early = [];
      queueMicrotask(() => {
        for (const c of held) sock.emit("data", c);
      });
    }
    return this;
  } as Socket["on"];
  return sock;
}
