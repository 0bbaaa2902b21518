/**
 * A channel's incoming data (its stdout, or its stderr), in the order it came, with the window
 * credited as the reader takes it. Light: the downstream path loads it with the channel.
 */

import { copiedInbound } from "./inbound_reuse.ts";
import { keepRing, spareRing } from "./spare_rings.ts";

/**
 * Incoming channel data (stdout, or stderr): chunks in the order they came. One reader at a time,
 * as with a stream's reader. Not a ReadableStream itself: Deno's streams take ~3 ms to load, a
 * good part of a warm downstream command, so `stream` makes one only for code that wants it.
 */
export interface ChunkSource extends AsyncIterable<Uint8Array> {
  /** The next chunk; null once the peer has sent EOF or closed; rejects if the channel failed. */
  read(): Promise<Uint8Array | null>;
  /**
   * The data that has come, as one view (null once the stream has ended), left in place until
   * release() says how much of it was used. Unlike read(), the window is credited only then,
   * so it bounds what waits on its way out too, and the data is copied into one buffer the
   * channel keeps (the size of its window) rather than held in the connection's packets.
   * Once peek() has been used, read() is not.
   */
  peek(): Promise<Uint8Array | null>;
  /** `n` bytes of what peek() showed are done with: drops them and credits the window. */
  release(n: number): void;
  /** Drops what is queued and all that comes later (the window stays open): unwanted data. */
  discard(): void;
  /**
   * Hands every chunk to `take` as it comes (those queued first), during the call only, and
   * credits the window once `take` returns: for a reader that copies what it keeps at once,
   * so nothing holds the connection's packets. Settles when the stream ends (rejects if the
   * channel failed). Nothing else reads the source after this. `take` runs inside the
   * connection's packet handling, so it must not throw.
   */
  consume(take: (chunk: Uint8Array) => void): Promise<void>;
  /** The same data as a ReadableStream, made on first use. */
  readonly stream: ReadableStream<Uint8Array>;
}

/** peek()'s buffer's first size. */
const RING_START = 32 * 1024;

/** Most bytes one read() joins together. */
const COALESCE = 256 * 1024;

/** The queue behind a ChunkSource, crediting the channel window as the reader takes chunks. */
export class InboundData implements ChunkSource {
  private queue: Uint8Array[] = [];
  private ended = false;
  private failed?: Error;
  private wakers: (() => void)[] = [];
  private discarding = false;
  private asStream?: ReadableStream<Uint8Array>;
  private consumer?: (chunk: Uint8Array) => void;

  /**
   * peek()'s buffer, made on first use: data is copied in as it comes. It starts small and
   * doubles while data does not fit, up to `capacity`: a connection that carries little keeps
   * a little buffer.
   */
  private ring?: Uint8Array;
  private ringHead = 0;
  private ringUsed = 0;

  /** `capacity`: the ring's size, the channel's window (what the peer may send unread). */
  constructor(private readonly credit: (n: number) => void, private readonly capacity: number) {}

  /**
   * Chunks that have piled up come as one (up to COALESCE bytes): a reader slower than the
   * packets (stdout, a socket) then makes one write where it would have made dozens.
   */
  async read(): Promise<Uint8Array | null> {
    await this.waitForData();
    let k = 0;
    let n = 0;
    while (k < this.queue.length && n + this.queue[k].length <= COALESCE) {
      n += this.queue[k++].length;
    }
    if (k > 1) {
      const all = new Uint8Array(n);
      let at = 0;
      for (const c of this.queue.splice(0, k)) {
        all.set(c, at);
        at += c.length;
      }
      this.credit(n);
      return all;
    }
    const chunk = this.queue.shift();
    if (chunk) {
      this.credit(chunk.length);
      return chunk;
    }
    if (this.failed) throw this.failed;
    return null;
  }

  private async waitForData(): Promise<void> {
    while (this.queue.length === 0 && !this.ended && !this.failed) {
      await new Promise<void>((r) => this.wakers.push(r));
    }
  }

  async consume(take: (chunk: Uint8Array) => void): Promise<void> {
    this.consumer = take;
    const queued = this.queue;
    this.queue = [];
    for (const c of queued) {
      take(c);
      this.credit(c.length);
    }
    while (!this.ended && !this.failed) await new Promise<void>((r) => this.wakers.push(r));
    if (this.failed) throw this.failed;
  }

  async peek(): Promise<Uint8Array | null> {
    this.ring ??= spareRing(this.capacity) ??
      new Uint8Array(Math.min(RING_START, Math.max(this.capacity, 1)));
    for (;;) {
      this.refill();
      const ring = this.ring;
      if (this.ringUsed) {
        return ring.subarray(this.ringHead, Math.min(this.ringHead + this.ringUsed, ring.length));
      }
      if (this.failed) throw this.failed;
      if (this.ended) {
        // The reader has released all it was shown, and is told there is no more.
        this.giveUpRing();
        return null;
      }
      await new Promise<void>((r) => this.wakers.push(r));
    }
  }

  release(n: number): void {
    const ring = this.ring;
    if (!ring || n <= 0 || n > this.ringUsed) return;
    this.ringHead = (this.ringHead + n) % ring.length;
    this.ringUsed -= n;
    this.credit(n);
  }

  /** Copies queued chunks into the ring while there is room (a peer may overrun its window). */
  private refill(): void {
    let k = 0;
    while (k < this.queue.length) {
      const c = this.queue[k];
      const n = this.copyIn(c);
      if (n < c.length) {
        this.queue[k] = c.subarray(n);
        break;
      }
      k++;
    }
    if (k) this.queue.splice(0, k);
  }

  /** A larger ring (doubled until it holds `need`, at most `capacity`), the data moved in. */
  private grow(need: number): Uint8Array {
    const old = this.ring!;
    let size = old.length;
    while (size < need && size < this.capacity) size *= 2;
    const ring = new Uint8Array(Math.min(size, this.capacity));
    const first = Math.min(this.ringUsed, old.length - this.ringHead);
    ring.set(old.subarray(this.ringHead, this.ringHead + first));
    ring.set(old.subarray(0, this.ringUsed - first), first);
    this.ringHead = 0;
    return this.ring = ring;
  }

  /** Copies as much of `data` into the ring as there is room for; the count. */
  private copyIn(data: Uint8Array): number {
    let ring = this.ring!;
    if (ring.length - this.ringUsed < data.length && ring.length < this.capacity) {
      ring = this.grow(this.ringUsed + data.length);
    }
    const n = Math.min(data.length, ring.length - this.ringUsed);
    const tail = (this.ringHead + this.ringUsed) % ring.length;
    const first = Math.min(n, ring.length - tail);
    ring.set(data.subarray(0, first), tail);
    if (first < n) ring.set(data.subarray(first, n), 0);
    this.ringUsed += n;
    return n;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    let finished = false;
    try {
      for (let c = await this.read(); c; c = await this.read()) yield c;
      finished = true;
    } finally {
      // Leaving the loop early means the rest is unwanted (as cancelling a stream).
      if (!finished) this.discard();
    }
  }

  discard(): void {
    this.discarding = true;
    let n = this.ringUsed;
    for (const c of this.queue) n += c.length;
    this.queue = [];
    this.ringUsed = 0;
    if (n) this.credit(n);
    this.giveUpRing();
  }

  /** The ring goes to a later channel; peek() after this finds an empty one (a new one). */
  private giveUpRing(): void {
    if (!this.ring) return;
    keepRing(this.ring);
    this.ring = undefined;
    this.ringHead = 0;
    this.ringUsed = 0;
  }

  get stream(): ReadableStream<Uint8Array> {
    return this.asStream ??= new ReadableStream<Uint8Array>({
      pull: async (ctrl) => {
        const chunk = await this.read();
        if (chunk) ctrl.enqueue(chunk);
        else ctrl.close();
      },
      cancel: () => this.discard(),
    }, { highWaterMark: 0 });
  }

  private poke(): void {
    for (const w of this.wakers.splice(0)) w();
  }

  push(data: Uint8Array): void {
    if (this.ended || this.failed) return;
    if (this.discarding) {
      this.credit(data.length);
      return copiedInbound(data);
    }
    if (this.consumer) {
      this.consumer(data);
      this.credit(data.length);
      return copiedInbound(data);
    }
    if (this.ring && this.queue.length === 0) {
      const n = this.copyIn(data);
      if (n < data.length) this.queue.push(data.subarray(n));
      else copiedInbound(data);
    } else {
      this.queue.push(data);
    }
    this.poke();
  }

  end(): void {
    this.ended = true;
    this.poke();
  }

  fail(err: Error): void {
    if (this.ended) return;
    this.failed = err;
    this.poke();
  }
}
