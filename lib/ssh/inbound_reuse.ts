/**
 * Buffers for incoming bulk packets that come back once their data has been copied where it goes,
 * for later packets. Without them each bulk packet (32 KiB) is a fresh buffer, and dead ones pile
 * up between young-generation collections: tens of MiB with 20 forwarded downloads at once.
 *
 * The transport gathers (and deciphers) a packet in inboundBuffer(), and a sharing socket a
 * message; the packet's last holder, once it has copied what it keeps, says so with
 * copiedInbound(). That may come later than the payload handler (a packet can wait in an
 * in-process port's queue). Only a holder that knows no view of the packet survives may say so:
 * a channel whose ring took all of the data (or a reader that consumed it as it came), never code
 * that queued a view of it. A buffer nobody hands back is collected as any other.
 */

import { SpareBuffers } from "./spare_buffers.ts";

/** A reusable buffer's size: 32 KiB of channel data (the most our channels ask for) and headers. */
const SPARE_SIZE = 4 + 33 * 1024;
/** Buffers kept for reuse: what one read from the socket brings, and some. */
const SPARES_KEPT = 32;

const pooled = new SpareBuffers(SPARE_SIZE, SPARES_KEPT);

/**
 * Below this, a packet gets a buffer of its own size: a small one (a request, a reply, an
 * upstream's message on its way to a downstream) is rarely handed back, and a reusable buffer
 * for it would be 33 KiB of memory until collected.
 */
const SMALLEST_SPARE = 8 * 1024;

/** A buffer of `size` bytes for one incoming packet; it holds old data: fill all of it. */
export function inboundBuffer(size: number): Uint8Array {
  if (size > SPARE_SIZE || size < SMALLEST_SPARE) return new Uint8Array(size);
  return new Uint8Array(pooled.take(), 0, size);
}

/** `data` (a view of an incoming payload) has been copied, and nothing refers to its packet. */
export function copiedInbound(data: Uint8Array): void {
  pooled.give(data.buffer as ArrayBuffer);
}
