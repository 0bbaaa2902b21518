/**
 * One SSH channel (RFC 4254 section 5) of an SshConnection: flow control both ways, incoming
 * data as chunk sources, channel requests and their replies, exit status. Like the connection,
 * it imports nothing heavy: the downstream path loads it.
 */

import { framedPayload } from "./framed_payload.ts";
import { copiedInbound } from "./inbound_reuse.ts";
import { keepRing, spareRing } from "./spare_rings.ts";
import { message, MSG, SshReader, SshWriter, writeUint32 } from "./wire.ts";

export interface ConnectionLimits {
  /** Initial window we offer for each channel we open or accept. */
  window: number;
  /** Largest data payload we accept in one packet (advertised as maximum packet size). */
  maxPacket: number;
  /** Largest data payload we send in one packet, whatever the peer allows. */
  maxSend: number;
}

export interface ExitStatus {
  /** Remote exit code, or null when the command died of a signal or reported nothing. */
  code: number | null;
  /** Signal name without "SIG" (e.g. "TERM") when the remote command was killed. */
  signal?: string;
  coreDumped?: boolean;
  message?: string;
}

/** The connection went away (peer disconnected, socket closed, transport error). */
export class ConnectionClosedError extends Error {
  constructor(message: string) {
    super(message);
  }
}

/** What a channel needs of its connection. */
export interface ChannelHost {
  readonly limits: ConnectionLimits;
  send(payload: Uint8Array): void;
  /** The channel is finished with: its id may be reused. */
  forget(id: number): void;
}

/**
 * CHANNEL_DATA (or EXTENDED_DATA type 1): this is the hot path. Framed, so that the transport
 * makes it a packet where it lies (lib/ssh/framed_payload.ts).
 */
function dataMessage(recipient: number, data: Uint8Array, stderr: boolean): Uint8Array {
  const head = stderr ? 13 : 9;
  const p = framedPayload(head + data.length);
  p[0] = stderr ? MSG.CHANNEL_EXTENDED_DATA : MSG.CHANNEL_DATA;
  writeUint32(p, 1, recipient);
  if (stderr) writeUint32(p, 5, 1);
  writeUint32(p, head - 4, data.length);
  p.set(data, head);
  return p;
}

/**
 * Incoming channel data (stdout, or stderr): chunks in the order they came. One reader at a time,
 * as with a stream's reader. Not a ReadableStream itself: Deno's streams take ~3 ms to load, a
 * good part of a warm downstream command, so `stream` makes one only for code that wants it.
 */
export interface ChunkSource extends AsyncIterable<Uint8Array> {
  /** The next chunk; null once the peer has sent EOF or closed; rejects if the channel failed. */
  read(): Promise<Uint8Array | null>;
  /**
   * Every chunk queued (at least one) as they came, not joined: for a reader that splits the
   * stream into messages itself, which a join would only copy. Null and rejection as read().
   */
  readAll(): Promise<Uint8Array[] | null>;
  /**
   * The data that has come, as one view (null once the stream has ended), left in place until
   * release() says how much of it was used. Unlike read(), the window is credited only then,
   * so it bounds what waits on its way out too, and the data is copied into one buffer the
   * channel keeps (the size of its window) rather than held in the connection's packets.
   * Once peek() has been used, read() and readAll() are not.
   */
  peek(): Promise<Uint8Array | null>;
  /** `n` bytes of what peek() showed are done with: drops them and credits the window. */
  release(n: number): void;
  /** Drops what is queued and all that comes later (the window stays open): unwanted data. */
  discard(): void;
  /** The same data as a ReadableStream, made on first use. */
  readonly stream: ReadableStream<Uint8Array>;
}

/** peek()'s buffer's first size. */
const RING_START = 32 * 1024;

/** Most bytes one read() joins together. */
const COALESCE = 256 * 1024;

/** The queue behind a ChunkSource, crediting the channel window as the reader takes chunks. */
class InboundData implements ChunkSource {
  private queue: Uint8Array[] = [];
  private ended = false;
  private failed?: Error;
  private wakers: (() => void)[] = [];
  private discarding = false;
  private asStream?: ReadableStream<Uint8Array>;

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

  async readAll(): Promise<Uint8Array[] | null> {
    await this.waitForData();
    if (this.queue.length === 0) {
      if (this.failed) throw this.failed;
      return null;
    }
    const all = this.queue;
    this.queue = [];
    let n = 0;
    for (const c of all) n += c.length;
    this.credit(n);
    return all;
  }

  private async waitForData(): Promise<void> {
    while (this.queue.length === 0 && !this.ended && !this.failed) {
      await new Promise<void>((r) => this.wakers.push(r));
    }
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

type RequestHandler = (type: string, wantReply: boolean, data: SshReader) => boolean | undefined;

/** One open SSH channel. Data arrives on `stdout`/`stderr`; `write` honours the peer's window. */
export class Channel {
  remoteId = 0;
  private remoteWindow = 0;
  private remoteMaxPacket = 0;
  private localWindow: number;
  /** The window we offered, and keep topping up to. */
  private readonly window: number;
  private pendingCredit = 0;
  private windowWaiters: (() => void)[] = [];
  private replies: { resolve(ok: boolean): void; reject(e: Error): void }[] = [];
  private sentEof = false;
  private sentClose = false;
  private gotClose = false;
  private exitStatus?: ExitStatus;
  private error?: Error;
  private readonly out: InboundData;
  private readonly err: InboundData;
  private closeResolve!: () => void;
  /** Resolves once both sides have closed the channel (or the connection is gone). */
  readonly closed: Promise<void>;
  /** Handler for channel requests other than exit-status/exit-signal; return true to accept. */
  onRequest?: RequestHandler;
  /** Called when the peer sends EOF. */
  onEof?: () => void;

  constructor(
    private readonly conn: ChannelHost,
    readonly id: number,
    readonly type: string,
    window = conn.limits.window,
  ) {
    this.window = this.localWindow = window;
    this.closed = new Promise((r) => (this.closeResolve = r));
    const credit = (n: number) => this.credit(n);
    this.out = new InboundData(credit, window);
    this.err = new InboundData(credit, window);
  }

  /** Channel data (the remote command's stdout). */
  get stdout(): ChunkSource {
    return this.out;
  }

  /** Extended data of type 1 (the remote command's stderr). */
  get stderr(): ChunkSource {
    return this.err;
  }

  /** Exit status reported by the peer, if any (complete once `closed` resolves). */
  get exit(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /** Why the channel ended abnormally (connection lost), if it did. */
  get failure(): Error | undefined {
    return this.error;
  }

  get isClosed(): boolean {
    return this.gotClose || this.error !== undefined;
  }

  /** The window offered to the peer for this channel. */
  get offeredWindow(): number {
    return this.window;
  }

  /** @internal */
  opened(remoteId: number, window: number, maxPacket: number): void {
    this.remoteId = remoteId;
    this.remoteWindow = window;
    this.remoteMaxPacket = Math.max(1, maxPacket);
  }

  private credit(n: number): void {
    if (this.gotClose || this.error || this.sentClose) return;
    this.pendingCredit += n;
    const full = this.window;
    if (this.pendingCredit >= full / 2 || this.localWindow < full / 2) {
      const amount = this.pendingCredit;
      this.pendingCredit = 0;
      this.localWindow += amount;
      this.conn.send(
        message(MSG.CHANNEL_WINDOW_ADJUST, (w) => w.uint32(this.remoteId).uint32(amount)),
      );
    }
  }

  /** @internal */
  receiveData(data: Uint8Array, stderr: boolean): void {
    this.localWindow -= data.length;
    (stderr ? this.err : this.out).push(data);
  }

  /** @internal */
  receiveWindow(n: number): void {
    this.remoteWindow += n;
    if (this.remoteWindow > 0xffffffff) this.remoteWindow = 0xffffffff;
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiters) w();
  }

  /** @internal */
  receiveEof(): void {
    this.out.end();
    this.err.end();
    this.onEof?.();
  }

  /** @internal */
  receiveClose(): void {
    this.out.end();
    this.err.end();
    if (!this.sentClose) {
      // As PuTTY: a CLOSE implies our EOF, sent (whatever we had left to write is dropped)
      // before our CLOSE, so the channel ends the same way however soon the peer closed.
      this.eof();
      this.sendClose();
    }
    this.gotClose = true;
    this.finish();
  }

  /** @internal */
  receiveReply(ok: boolean): void {
    this.replies.shift()?.resolve(ok);
  }

  /** @internal */
  receiveRequest(type: string, wantReply: boolean, r: SshReader): void {
    let ok = false;
    if (type === "exit-status") {
      this.exitStatus = { code: r.uint32() };
      ok = true;
    } else if (type === "exit-signal") {
      const signal = r.string();
      const coreDumped = r.bool();
      const msg = r.remaining >= 4 ? r.string() : "";
      this.exitStatus = { code: null, signal, coreDumped, message: msg };
      ok = true;
    } else if (this.onRequest) {
      ok = this.onRequest(type, wantReply, r) ?? false;
    }
    if (wantReply && !this.sentClose) {
      this.conn.send(
        message(ok ? MSG.CHANNEL_SUCCESS : MSG.CHANNEL_FAILURE, (w) => w.uint32(this.remoteId)),
      );
    }
  }

  /** @internal The connection died under this channel. */
  abort(err: Error): void {
    if (this.gotClose) return;
    this.error = err;
    this.out.fail(err);
    this.err.fail(err);
    for (const r of this.replies.splice(0)) r.reject(err);
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiters) w();
    this.closeResolve();
  }

  private finish(): void {
    for (const r of this.replies.splice(0)) r.resolve(false);
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiters) w();
    this.conn.forget(this.id);
    this.closeResolve();
  }

  private sendClose(): void {
    this.sentClose = true;
    this.conn.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(this.remoteId)));
  }

  /** Whether data may still be sent: no EOF or close either way, no failure. */
  private get canSend(): boolean {
    return !this.sentEof && !this.sentClose && !this.gotClose && !this.error;
  }

  /** Sends data, waiting for window space as needed. Rejects if the channel is gone. */
  async write(data: Uint8Array, stderr = false): Promise<void> {
    let at = 0;
    const limit = Math.min(this.remoteMaxPacket, this.conn.limits.maxSend);
    while (at < data.length) {
      if (!this.canSend) {
        throw this.error ?? new ConnectionClosedError("channel closed");
      }
      if (this.remoteWindow <= 0) {
        await new Promise<void>((r) => this.windowWaiters.push(r));
        continue;
      }
      const n = Math.min(data.length - at, limit, this.remoteWindow);
      const chunk = data.subarray(at, at + n);
      this.remoteWindow -= n;
      at += n;
      this.conn.send(dataMessage(this.remoteId, chunk, stderr));
    }
  }

  /** A WritableStream over write(); closing it sends EOF. */
  writable(): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.eof(),
    });
  }

  eof(): void {
    if (!this.canSend) return;
    this.sentEof = true;
    this.conn.send(message(MSG.CHANNEL_EOF, (w) => w.uint32(this.remoteId)));
  }

  /** Closes the channel; `closed` resolves when the peer confirms. */
  close(): void {
    if (this.sentClose || this.gotClose || this.error) return;
    this.sendClose();
  }

  /** Sends a channel request; with wantReply, resolves to whether the peer accepted it. */
  request(type: string, wantReply: boolean, data?: Uint8Array): Promise<boolean> {
    if (this.sentClose || this.gotClose || this.error) {
      return Promise.reject(this.error ?? new ConnectionClosedError("channel closed"));
    }
    this.conn.send(message(MSG.CHANNEL_REQUEST, (w) => {
      w.uint32(this.remoteId).string(type).bool(wantReply);
      if (data) w.raw(data);
    }));
    if (!wantReply) return Promise.resolve(true);
    return new Promise((resolve, reject) => this.replies.push({ resolve, reject }));
  }

  exec(command: string): Promise<boolean> {
    return this.request("exec", true, new SshWriter().string(command).done());
  }

  shell(): Promise<boolean> {
    return this.request("shell", true);
  }

  subsystem(name: string): Promise<boolean> {
    return this.request("subsystem", true, new SshWriter().string(name).done());
  }

  env(name: string, value: string): Promise<boolean> {
    return this.request("env", true, new SshWriter().string(name).string(value).done());
  }

  /** pty-req; `modes` is the encoded terminal-modes string (ending with TTY_OP_END). */
  pty(
    term: string,
    cols: number,
    rows: number,
    modes: Uint8Array = new Uint8Array([0]),
  ): Promise<boolean> {
    const w = new SshWriter().string(term).uint32(cols).uint32(rows).uint32(0).uint32(0).string(
      modes,
    );
    return this.request("pty-req", true, w.done());
  }

  windowChange(cols: number, rows: number): void {
    const w = new SshWriter().uint32(cols).uint32(rows).uint32(0).uint32(0);
    this.request("window-change", false, w.done()).catch(() => {});
  }

  signal(name: string): void {
    this.request("signal", false, new SshWriter().string(name).done()).catch(() => {});
  }

  /** x11-req: forwarding with this (made-up) authorisation for the given screen. */
  x11Forwarding(protocol: string, cookieHex: string, screen: number): Promise<boolean> {
    const w = new SshWriter().bool(false).string(protocol).string(cookieHex).uint32(screen);
    return this.request("x11-req", true, w.done());
  }

  agentForwarding(): Promise<boolean> {
    return this.request("auth-agent-req@openssh.com", true);
  }
}
