/**
 * A PacketPort carries bare SSH connection-layer payloads (first byte = message type) between two
 * parties. The same interface fronts the sharing socket (downstream side and upstream side), the
 * real SSH transport behind an upstream, and an in-process pair used when a tool is its own
 * upstream or connects directly.
 */

export interface PacketHandlers {
  /** One inbound payload. The buffer belongs to the receiver from here on. */
  packet(payload: Uint8Array): void;
  /** The port is gone; `err` says why when it was not an orderly close. */
  closed(err?: Error): void;
}

export interface PacketPort {
  /** Queues one payload for sending; payloads arrive in order. Ignored once closed. */
  send(payload: Uint8Array): void;
  /** Attaches the receiver. Payloads that arrived before are delivered first. */
  start(handlers: PacketHandlers): void;
  /** Closes the port; the peer sees `closed()`. */
  close(err?: Error): void;
  /** Bytes accepted by send() but not yet handed to the operating system. */
  readonly backlog: number;
  /** Called when the backlog has gone down (some of it was written), if set. */
  onDrain?: () => void;
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

/** Two connected in-process ports: what one sends, the other receives (asynchronously, in order). */
export function portPair(): [PacketPort, PacketPort] {
  const a = new MemoryPort();
  const b = new MemoryPort();
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
  backlog = 0;

  send(payload: Uint8Array): void {
    if (this.closed) return;
    this.queue.push(payload);
    this.backlog += payload.length;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    this.backlog = 0;
    for (const p of q) this.peer.inbox.deliver(p);
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
