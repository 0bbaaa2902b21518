/**
 * Whole-file SFTP transfers with many requests in flight, as OpenSSH's sftp and PuTTY's
 * xfer_download/xfer_upload do: one request per round trip would leave a loopback link idle most
 * of the time. Memory stays bounded: at most MAX_AHEAD bytes are requested but not yet handed
 * to the sink (download), or read from the source but not yet acknowledged (upload).
 */

import type { SftpHandle } from "../sftp/client.ts";
import { SftpProtocolError } from "../sftp/protocol.ts";

export interface TransferOptions {
  /** Start offset (resume: reget/reput). Default 0. */
  offset?: number;
  /** Called with the total bytes done so far, including the start offset. */
  onProgress?: (done: number) => void;
  /** Bytes per request (clamped to the server's limits@openssh.com when it has them). */
  blockSize?: number;
  /** Bytes requested or sent but not yet consumed/acknowledged. */
  maxAhead?: number;
}

/** 32 KiB is what every SFTP server accepts (OpenSSH's sftp uses it by default). */
const DEFAULT_BLOCK = 32 * 1024;
const LARGE_BLOCK = 128 * 1024;
/**
 * Bytes requested or sent but not yet consumed or acknowledged, where neither the caller nor the
 * connection (its limits' readAhead, for downloads) says: PuTTY keeps 1 MiB of requests in flight.
 */
const MAX_AHEAD = 1024 * 1024;
/**
 * Most bytes handed to the sink at once: it pays per call (an async write each), and while it
 * writes, what it holds is not yet free for new requests.
 */
const SINK_RUN = 256 * 1024;

/**
 * A download's buffer, kept for the next download (psftp's mget, pscp -r): a download of many
 * small files would otherwise make one per file.
 */
let spareRing: Uint8Array | undefined;

function blockSizeFor(handle: SftpHandle, wanted: number | undefined, kind: "read" | "write") {
  if (wanted) return wanted;
  const limits = handle.sftp.limits;
  if (!limits) return DEFAULT_BLOCK;
  const max = kind === "read" ? limits.maxRead : limits.maxWrite;
  return max > 0 ? Math.min(LARGE_BLOCK, max) : DEFAULT_BLOCK;
}

/**
 * Reads the remote file from `offset` to its end, handing each chunk to `sink` in file order.
 * A chunk is lent: it is valid until the promise `sink` returns settles, then overwritten (a
 * sink that keeps data copies it). Short reads (a server may return fewer bytes than asked) are
 * re-requested. Returns the number of bytes transferred (not counting the start offset).
 *
 * Data is copied once, from the channel's packets as they come, into one buffer of maxAhead
 * bytes indexed by file offset: every byte requested lies within maxAhead of the next one the
 * sink wants, so each has its own place there, whatever order the replies come in.
 */
export function download(
  handle: SftpHandle,
  sink: (chunk: Uint8Array) => Promise<void>,
  opts: TransferOptions = {},
): Promise<number> {
  const start = opts.offset ?? 0;
  const block = blockSizeFor(handle, opts.blockSize, "read");
  const size = Math.max(opts.maxAhead ?? handle.sftp.readAhead ?? MAX_AHEAD, block);
  /** Next offset never yet requested. */
  let nextRequest = start;
  /** Next offset the sink wants. */
  let nextDeliver = start;
  /** Offset at which the server said EOF, once it has. */
  let eofAt = Infinity;
  /** Bytes requested and not yet delivered to the sink: at most `size`. */
  let ahead = 0;
  let inFlight = 0;
  /**
   * How far ahead we may be: starts at two blocks (a small file costs two requests, not a
   * hundred past its end) and grows with every full block, up to `size`.
   */
  let allowance = Math.min(size, 2 * block);
  /** Ranges to (re-)request before new ones: the tails of short reads. */
  const retries: [number, number][] = [];
  /** Replies that came ahead of `received`: offset -> length. */
  const arrived = new Map<number, number>();
  /** Every byte from nextDeliver up to here has come. */
  let received = start;
  let ring: Uint8Array | undefined;
  let sinking = false;
  let settled = false;

  /** Where file offset `at` lies in the ring. */
  const place = (at: number) => (at - start) % size;

  return new Promise<number>((resolve, reject) => {
    const failWith = (e: unknown) => {
      if (settled) return;
      settled = true;
      reject(e);
    };

    const finished = () =>
      inFlight === 0 && !sinking && nextDeliver >= Math.min(eofAt, nextRequest);

    const pump = () => {
      if (settled) return;
      while (true) {
        let off: number;
        let len: number;
        if (retries.length) {
          [off, len] = retries.shift()!;
        } else {
          if (nextRequest >= eofAt || ahead + block > allowance) break;
          off = nextRequest;
          len = block;
          nextRequest += block;
          ahead += block;
        }
        issue(off, len);
        // A client that has failed rejects a request at once: then nothing more goes to the sink.
        if (settled) return;
      }
      if (!sinking && received > nextDeliver) deliver();
      if (finished() && !settled) {
        settled = true;
        if (ring?.length === size) spareRing = ring;
        resolve(nextDeliver - start);
      }
    };

    /**
     * Replies come in bursts (all the packets one socket read held): the pump runs once after
     * them, so they reach the sink in one write, not one each.
     */
    let pumpQueued = false;
    const pumpSoon = () => {
      if (pumpQueued) return;
      pumpQueued = true;
      queueMicrotask(() => {
        pumpQueued = false;
        pump();
      });
    };

    const copyIn = (chunk: Uint8Array, at: number) => {
      if (!ring) {
        ring = spareRing?.length === size ? spareRing : new Uint8Array(size);
        spareRing = undefined;
      }
      const p = place(at);
      const first = Math.min(chunk.length, size - p);
      ring.set(first === chunk.length ? chunk : chunk.subarray(0, first), p);
      if (first < chunk.length) ring.set(chunk.subarray(first), 0);
    };

    const issue = (off: number, len: number) => {
      inFlight++;
      let overrun = false;
      handle.readInto(off, len, (chunk, at) => {
        if (settled) return;
        if (at + chunk.length > len) overrun = true;
        else copyIn(chunk, off + at);
      }, (got) => {
        inFlight--;
        if (settled) return;
        if (overrun || (got ?? 0) > len) {
          return failWith(new SftpProtocolError("SFTP server sent more data than was asked for"));
        }
        if (!got) {
          // EOF here: nothing at or after `off` exists.
          if (off < eofAt) eofAt = off;
        } else {
          arrived.set(off, got);
          if (got < len) {
            if (off + got < eofAt) retries.push([off + got, len - got]);
          } else {
            // Slow start: a full block back earns room for one more in flight.
            allowance = Math.min(size, allowance + block);
          }
          for (let n = arrived.get(received); n; n = arrived.get(received)) {
            arrived.delete(received);
            received += n;
          }
        }
        pumpSoon();
      }, (e) => {
        inFlight--;
        failWith(e);
      });
    };

    const deliver = async () => {
      sinking = true;
      try {
        while (received > nextDeliver) {
          const p = place(nextDeliver);
          const n = Math.min(received - nextDeliver, size - p, SINK_RUN);
          await sink(ring!.subarray(p, p + n));
          if (settled) return;
          nextDeliver += n;
          ahead -= n;
          opts.onProgress?.(nextDeliver);
        }
      } catch (e) {
        failWith(e);
        return;
      } finally {
        sinking = false;
      }
      // Requests past EOF were never delivered: release their budget.
      if (nextDeliver >= eofAt) ahead = 0;
      pump();
    };

    pump();
  });
}

/**
 * Writes everything `source` yields to the remote file, starting at `offset`, with up to
 * maxAhead bytes unacknowledged. Returns the number of bytes written. A chunk from `source` is
 * copied before the next is asked for (it may be lent), straight into the packet of the WRITE
 * it goes in; a packet is used again once the server has answered its WRITE.
 */
export async function upload(
  handle: SftpHandle,
  source: AsyncIterable<Uint8Array>,
  opts: TransferOptions = {},
): Promise<number> {
  const start = opts.offset ?? 0;
  const block = blockSizeFor(handle, opts.blockSize, "write");
  const maxAhead = Math.max(opts.maxAhead ?? MAX_AHEAD, block);
  const head = handle.writeHeaderLength;
  let offset = start;
  let unacked = 0;
  let acked = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const inflight = new Set<Promise<void>>();
  /** Packets whose WRITE has been answered. */
  const spares: Uint8Array[] = [];

  const waitForRoom = async () => {
    while (unacked + block > maxAhead && failure === undefined) {
      await new Promise<void>((r) => (wake = r));
    }
  };

  const send = (packet: Uint8Array, n: number) => {
    const at = offset;
    offset += n;
    unacked += n;
    const p = handle.writePacket(packet, at, n).then(() => {
      unacked -= n;
      acked += n;
      opts.onProgress?.(start + acked);
    }, (e) => {
      failure ??= e;
    }).finally(() => {
      inflight.delete(p);
      spares.push(packet);
      const w = wake;
      wake = undefined;
      w?.();
    });
    inflight.add(p);
  };

  // Small source chunks are gathered into whole blocks, big ones split.
  let packet: Uint8Array | undefined;
  let filled = 0;
  for await (const chunk of source) {
    if (failure !== undefined) break;
    for (let at = 0; at < chunk.length;) {
      if (!packet) {
        await waitForRoom();
        if (failure !== undefined) break;
        packet = spares.pop() ?? new Uint8Array(head + block);
        filled = 0;
      }
      const k = Math.min(chunk.length - at, block - filled);
      packet.set(chunk.subarray(at, at + k), head + filled);
      filled += k;
      at += k;
      if (filled === block) {
        send(packet, filled);
        packet = undefined;
      }
    }
  }
  if (failure === undefined && packet && filled > 0) send(packet, filled);
  while (inflight.size) await Promise.all([...inflight]);
  if (failure !== undefined) throw failure;
  return offset - start;
}
