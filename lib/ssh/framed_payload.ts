/**
 * Outgoing payloads with room around them for the SSH packet they become: the transport can write
 * the packet's length and padding fields in front of the payload and the padding behind it, and
 * encrypt it where it lies, instead of allocating a packet and copying the payload in. Once the
 * packet is encrypted the transport hands the buffer back (releaseFramed) and the next bulk
 * payload reuses it, so a bulk upload allocates no buffer per packet here.
 *
 * Light on purpose: the connection layer (and so the downstream path) builds these.
 */

import { SpareBuffers } from "./spare_buffers.ts";

/** Room before the payload: uint32 packet_length and byte padding_length (RFC 4253 6). */
export const FRAME_HEAD = 5;
/** Room after it: the most random padding a packet takes (4 + a cipher block of 16, rounded). */
export const FRAME_TAIL = 32;

/** The spare buffers' size: a CHANNEL_EXTENDED_DATA header and 32 KiB of data, framed. */
const POOLED_SIZE = FRAME_HEAD + 13 + 32768 + FRAME_TAIL;
/**
 * Payloads longer than this come from the spare buffers: bulk data on a connection of our own.
 * A smaller one gets a buffer of its own size, so a held-up message never pins a buffer twice its
 * size (a downstream's data, at most 16 KiB a message, queued for the sharing socket).
 */
const POOLED_MIN = POOLED_SIZE / 2;
/**
 * Spare buffers kept: what one burst of packets needs (an upload writes 512 KiB at a time, 16
 * packets), and some. With 8, a 200 MiB SFTP upload made fresh buffers for half of each burst:
 * 1.23 s and 0.89 s of CPU, against 1.15 s and 0.82 s.
 */
const SPARES_KEPT = 32;

const framed = new WeakSet<ArrayBuffer>();
const pooled = new SpareBuffers(POOLED_SIZE, SPARES_KEPT);

/** A payload of `size` bytes, framed. A reused buffer keeps old bytes: the caller fills it all. */
export function framedPayload(size: number): Uint8Array {
  if (size > POOLED_MIN && size <= POOLED_SIZE - FRAME_HEAD - FRAME_TAIL) {
    const buf = pooled.take();
    framed.add(buf);
    return new Uint8Array(buf, FRAME_HEAD, size);
  }
  const buf = new ArrayBuffer(FRAME_HEAD + size + FRAME_TAIL);
  framed.add(buf);
  return new Uint8Array(buf, FRAME_HEAD, size);
}

/** Whether `p` came from framedPayload, so the room around it is free to write. */
export function isFramed(p: Uint8Array): boolean {
  return p.byteOffset === FRAME_HEAD && framed.has(p.buffer as ArrayBuffer) &&
    p.byteOffset + p.length + FRAME_TAIL <= p.buffer.byteLength;
}

/**
 * The holder of a framed payload is done with it and nothing else refers to it: its buffer may
 * be handed out again. Only its last holder (the transport, after encrypting it) may say so.
 */
export function releaseFramed(p: Uint8Array): void {
  pooled.give(p.buffer as ArrayBuffer);
}
