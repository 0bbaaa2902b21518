/**
 * A PacketPort carries bare SSH connection-layer payloads (first byte = message type) between two
 * parties. The same interface fronts the sharing socket (downstream side and upstream side), the
 * real SSH transport behind an upstream, and an in-process pair used when a tool is its own
 * upstream or connects directly.
 */

import { concatBytes } from "./wire.ts";

export interface PacketHandlers {
  /** One inbound payload. The buffer belongs to the receiver from here on. */
  packet(payload: Uint8Array): void;
  /** The port is gone; `err` says why when it was not an orderly close. */
  closed(err?: Error): void;
}

export interface PacketPort {
  /**
   * Queues one payload for sending; payloads arrive in order. Ignored once closed. The buffer is
   * the port's from then on: the caller must not change it.
   */
  send(payload: Uint8Array): void;
  /**
   * send() of the payload made of `parts` joined, where the port can join them as it writes
   * (one copy, not two). The parts are the port's from then on, as send()'s payload.
   */
  sendParts?(parts: Uint8Array[]): void;
  /** Attaches the receiver. Payloads that arrived before are delivered first. */
  start(handlers: PacketHandlers): void;
  /** Closes the port; the peer sees `closed()`. */
  close(err?: Error): void;
  /** Bytes accepted by send() but not yet handed to the operating system. */
  readonly backlog: number;
  /** Called when the backlog has gone down (some of it was written), if set. */
  onDrain?: () => void;
}

/** Sends the payload `parts` make: as its parts where `port` joins them itself, else joined. */
export function sendJoined(port: PacketPort, parts: Uint8Array[]): void {
  if (port.sendParts) port.sendParts(parts);
  else port.send(concatBytes(parts));
}

/**
 * Receiver-side buffering shared by port implementations: holds payloads and the close event
 * until start() is called, then forwards directly.
 */
export class PacketInbox {
  private handlers?: PacketHandlers;
  private early: Uint8Array[] = [];
  private closedWith?: { err?: Error };
  private done = false;

  start(handlers: PacketHandlers): void {
    if (this.handlers) throw new Error("PacketPort already started");
    this.handlers = handlers;
    const early = this.early;
    this.early = [];
    for (const p of early) {
      if (this.done) return;
      handlers.packet(p);
    }
    if (this.closedWith) this.finish(this.closedWith.err);
  }

  deliver(payload: Uint8Array): void {
    if (this.done || this.closedWith) return;
    if (this.handlers) this.handlers.packet(payload);
    else this.early.push(payload);
  }

  close(err?: Error): void {
    if (this.done || this.closedWith) return;
    this.closedWith = { err };
    if (this.handlers) this.finish(err);
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  private finish(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.handlers!.closed(err);
  }
}

/**
 * Two connected in-process ports: what one sends, the other receives, in order; asynchronously,
 * except what the second sends when `secondDeliversAtOnce`: that reaches the first's receiver
 * before send() returns (unless a delivery is under way, then right after it). For the mux's
 * link to our own session: node:net reads on while data is there, and a fast download's packets
 * otherwise wait for the microtask queue, megabytes at a time, while the channel's ring is there
 * to take them.
 */
export function portPair(secondDeliversAtOnce = false): [PacketPort, PacketPort] {
  const a = new MemoryPort(false);
  const b = new MemoryPort(secondDeliversAtOnce);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryPort implements PacketPort {
  peer!: MemoryPort;
  readonly inbox = new PacketInbox();
  private queue: Uint8Array[] = [];
  private scheduled = false;
  private closed = false;
  private delivering = false;
  backlog = 0;

  /** `atOnce`: send() delivers before it returns (see portPair). */
  constructor(private readonly atOnce: boolean) {}

  send(payload: Uint8Array): void {
    if (this.closed) return;
    this.queue.push(payload);
    this.backlog += payload.length;
    if (this.atOnce) {
      if (!this.delivering) this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    this.delivering = true;
    try {
      // Sent while delivering: at once, in this same loop; otherwise at the next flush.
      do {
        const q = this.queue;
        this.queue = [];
        this.backlog = 0;
        for (const p of q) this.peer.inbox.deliver(p);
      } while (this.atOnce && this.queue.length);
    } finally {
      this.delivering = false;
    }
  }

  start(handlers: PacketHandlers): void {
    this.inbox.start(handlers);
  }

  close(err?: Error): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.inbox.close(err);
    // The peer learns of the close after anything already sent.
    queueMicrotask(() => this.peer.inbox.close(err));
  }
}

/**
 * Sender-side queue shared by the socket ports: frames go out in order, and what queued up while
 * a write was under way goes out joined, as one write.
 */
export class PacketOutbox {
  private queue: Uint8Array[] = [];
  private writing = false;
  private stopped = false;
  /** Bytes queued and not yet handed to the operating system. */
  backlog = 0;
  /** Called after each write that brought the backlog down. */
  onDrain?: () => void;

  /** `idle` runs each time the queue has been written out, with the error if a write failed. */
  constructor(
    private readonly conn: Deno.Conn,
    private readonly idle: (writeError?: unknown) => void,
  ) {}

  /** Whether a write is under way. */
  get busy(): boolean {
    return this.writing;
  }

  /** Queues `frames`, which go out together: a write starting now takes all of them. */
  push(...frames: Uint8Array[]): void {
    if (this.stopped) return;
    for (const frame of frames) {
      this.queue.push(frame);
      this.backlog += frame.length;
    }
    if (!this.writing) this.drain();
  }

  /** Writes nothing more (the socket is being closed). */
  stop(): void {
    this.stopped = true;
    this.queue = [];
  }

  private async drain(): Promise<void> {
    this.writing = true;
    let writeError: unknown;
    try {
      while (this.queue.length && !this.stopped) {
        const frames = this.queue;
        this.queue = [];
        const buf = frames.length === 1 ? frames[0] : concatBytes(frames);
        let off = 0;
        while (off < buf.length) off += await this.conn.write(buf.subarray(off));
        this.backlog -= buf.length;
        this.onDrain?.();
      }
    } catch (e) {
      writeError = e;
    } finally {
      this.writing = false;
    }
    this.idle(writeError);
  }
}

/** A socket port whose frames go out through a PacketOutbox: its backlog and onDrain are the outbox's. */
export abstract class OutboxPort {
  protected abstract readonly outbox: PacketOutbox;

  get backlog(): number {
    return this.outbox.backlog;
  }

  get onDrain(): (() => void) | undefined {
    return this.outbox.onDrain;
  }

  set onDrain(f: (() => void) | undefined) {
    this.outbox.onDrain = f;
  }
}
