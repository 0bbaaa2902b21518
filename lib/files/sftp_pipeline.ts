/**
 * Whole-file SFTP transfers with many requests in flight, as OpenSSH's sftp and PuTTY's
 * xfer_download/xfer_upload do: one request per round trip would leave a loopback link idle most
 * of the time. Memory stays bounded: at most MAX_AHEAD bytes are requested but not yet handed
 * to the sink (download), or read from the source but not yet acknowledged (upload).
 */

import { concatBytes } from "../ssh/wire.ts";
import type { SftpHandle } from "../sftp/client.ts";

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
 * 1 MiB keeps a loopback link busy. More costs memory and CPU: data that waits longer in flight
 * outlives V8's young-generation collections, so the old generation fills with dead buffers
 * that only a full collection frees.
 */
const MAX_AHEAD = 1024 * 1024;
/**
 * Size of the buffer a download's data is gathered in for its sink: one buffer for the whole
 * transfer, so each byte is copied once (from the packets it came in) and nothing large is
 * allocated per block. A reply is copied in as soon as it is next in line and the sink is not
 * writing the buffer: its packets' buffers then die young, where data left waiting outlived
 * V8's young-generation collections and piled up in the old generation until a full one.
 */
const COALESCE = 512 * 1024;

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
 */
export function download(
  handle: SftpHandle,
  sink: (chunk: Uint8Array) => Promise<void>,
  opts: TransferOptions = {},
): Promise<number> {
  const start = opts.offset ?? 0;
  const block = blockSizeFor(handle, opts.blockSize, "read");
  const maxAhead = Math.max(opts.maxAhead ?? MAX_AHEAD, block);
  /** Next offset never yet requested. */
  let nextRequest = start;
  /** Next offset the sink wants. */
  let nextDeliver = start;
  /** Offset at which the server said EOF, once it has. */
  let eofAt = Infinity;
  /** Bytes requested and not yet delivered to the sink. */
  let ahead = 0;
  let inFlight = 0;
  /**
   * How far ahead we may be: starts at two blocks (a small file costs two requests, not a
   * hundred past its end) and grows with every full block, up to maxAhead.
   */
  let allowance = Math.min(maxAhead, 2 * block);
  /** Ranges to (re-)request before new ones: the tails of short reads. */
  const retries: [number, number][] = [];
  /** Data that came in, by offset, not yet gathered: the pieces it arrived in, their length. */
  const arrived = new Map<number, { pieces: Uint8Array[]; length: number }>();
  /** Next offset not yet gathered: nextDeliver plus what the sink and `gathering` hold. */
  let gathered = start;
  let gathering: Uint8Array | undefined;
  let filled = 0;
  /** Whether the sink has the buffer (lent until its write settles). */
  let lent = false;
  let sinking = false;
  let settled = false;

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
      }
      gather();
      if (!sinking && (filled > 0 || arrived.has(gathered))) deliver();
      if (finished() && !settled) {
        settled = true;
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

    const issue = (off: number, len: number) => {
      inFlight++;
      // Callbacks, not a promise (see readPiecesThen); the reply is gathered at once if it can be.
      handle.readPiecesThen(off, len, (pieces) => {
        inFlight--;
        try {
          let got = 0;
          for (const p of pieces ?? []) got += p.length;
          if (got === 0) {
            // EOF here: nothing at or after `off` exists.
            if (off < eofAt) eofAt = off;
          } else {
            arrived.set(off, { pieces: pieces!, length: got });
            if (got < len) {
              if (off + got < eofAt) retries.push([off + got, len - got]);
            } else {
              // Slow start: a full block back earns room for one more in flight.
              allowance = Math.min(maxAhead, allowance + block);
            }
          }
          gather();
          pumpSoon();
        } catch (e) {
          failWith(e);
        }
      }, (e) => {
        inFlight--;
        failWith(e);
      });
    };

    /**
     * Copies the data that follows what is gathered into the buffer, as far as it fits, unless
     * the sink has it. A reply longer than the whole buffer stays in `arrived`, for takeRun to
     * hand over as it is.
     */
    const gather = () => {
      if (lent) return;
      for (let c = arrived.get(gathered); c; c = arrived.get(gathered)) {
        if (filled + c.length > COALESCE) return;
        gathering ??= new Uint8Array(COALESCE);
        for (const p of c.pieces) {
          gathering.set(p, filled);
          filled += p.length;
        }
        arrived.delete(gathered);
        gathered += c.length;
      }
    };

    /**
     * The next run of data for the sink: what the buffer holds (the sink pays per call, an
     * async write each, not per byte), else an over-long reply as it came.
     */
    const takeRun = (): Uint8Array | undefined => {
      gather();
      if (filled > 0) {
        const run = gathering!.subarray(0, filled);
        lent = true;
        filled = 0;
        return run;
      }
      const c = arrived.get(gathered);
      if (!c) return undefined;
      arrived.delete(gathered);
      gathered += c.length;
      return c.pieces.length === 1 ? c.pieces[0] : concatBytes(c.pieces);
    };

    const deliver = async () => {
      sinking = true;
      try {
        for (;;) {
          const chunk = takeRun();
          if (!chunk) break;
          await sink(chunk);
          lent = false;
          if (settled) return;
          nextDeliver += chunk.length;
          ahead -= chunk.length;
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
 * maxAhead bytes unacknowledged. Returns the number of bytes written.
 */
export async function upload(
  handle: SftpHandle,
  source: AsyncIterable<Uint8Array>,
  opts: TransferOptions = {},
): Promise<number> {
  const start = opts.offset ?? 0;
  const block = blockSizeFor(handle, opts.blockSize, "write");
  const maxAhead = Math.max(opts.maxAhead ?? MAX_AHEAD, block);
  let offset = start;
  let unacked = 0;
  let acked = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const inflight = new Set<Promise<void>>();

  const waitForRoom = async () => {
    while (unacked + block > maxAhead && failure === undefined) {
      await new Promise<void>((r) => (wake = r));
    }
  };

  const send = (data: Uint8Array) => {
    const at = offset;
    offset += data.length;
    unacked += data.length;
    const p = handle.write(at, data).then(() => {
      unacked -= data.length;
      acked += data.length;
      opts.onProgress?.(start + acked);
    }, (e) => {
      failure ??= e;
    }).finally(() => {
      inflight.delete(p);
      const w = wake;
      wake = undefined;
      w?.();
    });
    inflight.add(p);
  };

  // Coalesce small source chunks into whole blocks; split big ones.
  let pending: Uint8Array[] = [];
  let pendingLen = 0;
  const flush = async (all: boolean) => {
    while (pendingLen >= block || (all && pendingLen > 0)) {
      await waitForRoom();
      if (failure !== undefined) return;
      const n = Math.min(block, pendingLen);
      const out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const c = pending[0];
        const k = Math.min(c.length, n - at);
        out.set(c.subarray(0, k), at);
        at += k;
        if (k === c.length) pending.shift();
        else pending[0] = c.subarray(k);
      }
      pendingLen -= n;
      send(out);
    }
  };

  for await (const chunk of source) {
    if (failure !== undefined) break;
    if (chunk.length === 0) continue;
    pending.push(chunk);
    pendingLen += chunk.length;
    await flush(false);
  }
  if (failure === undefined) await flush(true);
  pending = [];
  while (inflight.size) await Promise.all([...inflight]);
  if (failure !== undefined) throw failure;
  return offset - start;
}
