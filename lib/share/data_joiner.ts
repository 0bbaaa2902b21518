/**
 * Joins consecutive CHANNEL_DATA messages for one channel on their way to the server, up to the
 * channel's largest packet. A downstream's data comes in sharing-socket messages of at most
 * 16 KiB, and the upstream's encryption costs per packet as well as per byte. Anything else
 * sent, and the end of the current burst (a microtask), sends what is held first, so the
 * server sees every message in the order it was sent.
 */

import { type PacketPort, sendJoined } from "../ssh/packet_port.ts";
import { MSG, readUint32, writeUint32 } from "../ssh/wire.ts";

/** CHANNEL_DATA's type, recipient and data length. */
const DATA_HEAD = 9;

export class DataJoiner {
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private heldFor = 0;
  private heldLimit = 0;
  private flushQueued = false;

  constructor(private readonly server: PacketPort) {}

  /** A CHANNEL_DATA message, already checked against `limit` (the channel's largest packet). */
  data(p: Uint8Array, limit: number): void {
    const recipient = readUint32(p, 1);
    const n = p.length - DATA_HEAD;
    if (this.held.length && (recipient !== this.heldFor || this.heldBytes + n > this.heldLimit)) {
      this.flush();
    }
    if (n >= limit) return this.server.send(p);
    this.held.push(p);
    this.heldBytes += n;
    this.heldFor = recipient;
    this.heldLimit = limit;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  /** Any other message: what is held goes first. */
  other(p: Uint8Array): void {
    this.flush();
    this.server.send(p);
  }

  flush(): void {
    const held = this.held;
    const bytes = this.heldBytes;
    if (!held.length) return;
    this.held = [];
    this.heldBytes = 0;
    if (held.length === 1) return this.server.send(held[0]);
    const head = new Uint8Array(DATA_HEAD);
    head[0] = MSG.CHANNEL_DATA;
    writeUint32(head, 1, this.heldFor);
    writeUint32(head, 5, bytes);
    sendJoined(this.server, [head, ...held.map((p) => p.subarray(DATA_HEAD))]);
  }
}
