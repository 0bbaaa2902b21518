/**
 * The client side of the SSH connection protocol (RFC 4254) over a PacketPort: channels with
 * flow control, channel requests, global requests and server-initiated channels.
 *
 * Every front-end uses this one implementation, whether its packets go to an upstream over the
 * sharing socket or into the in-process multiplexer that owns the real SSH connection. It imports
 * nothing heavy, so a downstream never loads ssh2 or any crypto.
 */

import type { PacketPort } from "./packet_port.ts";
import {
  DISCONNECT_BY_APPLICATION,
  fromUtf8,
  message,
  MSG,
  OPEN_FAILURE,
  SshReader,
  SshWriter,
  utf8,
  writeUint32,
} from "./wire.ts";

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

export class ChannelOpenError extends Error {
  constructor(readonly reason: number, readonly description: string) {
    super(description || openFailureText(reason));
  }
}

export function openFailureText(reason: number): string {
  switch (reason) {
    case OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED:
      return "administratively prohibited";
    case OPEN_FAILURE.CONNECT_FAILED:
      return "connect failed";
    case OPEN_FAILURE.UNKNOWN_CHANNEL_TYPE:
      return "unknown channel type";
    case OPEN_FAILURE.RESOURCE_SHORTAGE:
      return "resource shortage";
    default:
      return `open failed (reason ${reason})`;
  }
}

/** The connection went away (peer disconnected, socket closed, transport error). */
export class ConnectionClosedError extends Error {
  constructor(message: string) {
    super(message);
  }
}

/** A server-initiated CHANNEL_OPEN (forwarded-tcpip, auth-agent@openssh.com, x11). */
export interface IncomingChannel {
  type: string;
  /** Reader positioned at the type-specific data after the common fields. */
  extra: SshReader;
  accept(): Channel;
  reject(reason: number, description: string): void;
}

interface PendingOpen {
  resolve(ch: Channel): void;
  reject(err: Error): void;
}

interface PendingReply {
  resolve(ok: boolean, data: Uint8Array): void;
  reject(err: Error): void;
}

export class SshConnection {
  private readonly channels = new Map<number, Channel>();
  private readonly pendingOpens = new Map<number, { channel: Channel; pending: PendingOpen }>();
  private readonly globalReplies: PendingReply[] = [];
  private nextId = 256;
  private error?: Error;
  private closedResolve!: (err?: Error) => void;
  /** Settles when the connection is gone; carries the reason when it was not an orderly close. */
  readonly closed: Promise<Error | undefined>;
  /** Called for server-initiated channels; without a handler they are refused. */
  onChannelOpen?: (req: IncomingChannel) => void;
  /** Called for SSH_MSG_DEBUG text the peer wants shown (always_display). */
  onDebug?: (text: string) => void;
  /** Sees every packet sent and received (the -sshlog packet log). */
  onPacket?: (direction: "Incoming" | "Outgoing", payload: Uint8Array) => void;

  constructor(private readonly port: PacketPort, readonly limits: ConnectionLimits) {
    this.closed = new Promise((r) => (this.closedResolve = r));
    port.start({
      packet: (p) => {
        this.onPacket?.("Incoming", p);
        this.dispatch(p);
      },
      closed: (err) => this.teardown(err ?? new ConnectionClosedError("connection closed")),
    });
  }

  get isOpen(): boolean {
    return this.error === undefined;
  }

  /** Number of channels currently open or opening. */
  get channelCount(): number {
    return this.channels.size + this.pendingOpens.size;
  }

  send(payload: Uint8Array): void {
    if (this.error) return;
    this.onPacket?.("Outgoing", payload);
    this.port.send(payload);
  }

  get sendBacklog(): number {
    return this.port.backlog;
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xfffffff0 ? 256 : this.nextId + 1;
      if (!this.channels.has(id) && !this.pendingOpens.has(id)) return id;
    }
  }

  /** Opens a channel of `type`; `extra` is the type-specific data after the common fields. */
  openChannel(type: string, extra?: Uint8Array): Promise<Channel> {
    if (this.error) return Promise.reject(this.error);
    const id = this.allocId();
    const channel = new Channel(this, id, type);
    return new Promise<Channel>((resolve, reject) => {
      this.pendingOpens.set(id, { channel, pending: { resolve, reject } });
      this.send(message(MSG.CHANNEL_OPEN, (w) => {
        w.string(type).uint32(id).uint32(this.limits.window).uint32(this.limits.maxPacket);
        if (extra) w.raw(extra);
      }));
    });
  }

  openSession(): Promise<Channel> {
    return this.openChannel("session");
  }

  /** direct-tcpip: a connection from the server to host:port (local port forwarding). */
  openDirectTcpip(
    host: string,
    port: number,
    originHost = "127.0.0.1",
    originPort = 0,
  ): Promise<Channel> {
    const w = new SshWriter().string(host).uint32(port).string(originHost).uint32(originPort);
    return this.openChannel("direct-tcpip", w.done());
  }

  /** Sends a global request; with wantReply the promise tells whether the server agreed. */
  globalRequest(
    name: string,
    wantReply: boolean,
    data?: Uint8Array,
  ): Promise<{ ok: boolean; data: Uint8Array }> {
    if (this.error) return Promise.reject(this.error);
    this.send(message(MSG.GLOBAL_REQUEST, (w) => {
      w.string(name).bool(wantReply);
      if (data) w.raw(data);
    }));
    if (!wantReply) return Promise.resolve({ ok: true, data: new Uint8Array() });
    return new Promise((resolve, reject) => {
      this.globalReplies.push({ resolve: (ok, d) => resolve({ ok, data: d }), reject });
    });
  }

  /** Orderly close: tells the peer we are leaving and closes the port. */
  close(description = "closed by user"): void {
    if (this.error) return;
    this.send(message(MSG.DISCONNECT, (w) => {
      w.uint32(DISCONNECT_BY_APPLICATION).string(description).string("en");
    }));
    this.port.close();
    this.teardown(new ConnectionClosedError(description), true);
  }

  /** @internal */
  forget(id: number): void {
    this.channels.delete(id);
  }

  private teardown(err: Error, orderly = false): void {
    if (this.error) return;
    this.error = err;
    for (const { channel, pending } of this.pendingOpens.values()) {
      channel.abort(err);
      pending.reject(err);
    }
    this.pendingOpens.clear();
    for (const ch of [...this.channels.values()]) ch.abort(err);
    this.channels.clear();
    for (const r of this.globalReplies.splice(0)) r.reject(err);
    this.closedResolve(orderly ? undefined : err);
  }

  private protocolError(text: string): void {
    // Teardown first: closing the port reports a plain "connection closed" straight away.
    this.teardown(new ConnectionClosedError(`protocol error: ${text}`));
    this.port.close();
  }

  private dispatch(p: Uint8Array): void {
    if (this.error || p.length === 0) return;
    const r = new SshReader(p, 1);
    try {
      switch (p[0]) {
        case MSG.CHANNEL_DATA: {
          const ch = this.channels.get(r.uint32());
          ch?.receiveData(r.bytes(), false);
          return;
        }
        case MSG.CHANNEL_EXTENDED_DATA: {
          const ch = this.channels.get(r.uint32());
          const kind = r.uint32();
          const data = r.bytes();
          ch?.receiveData(data, kind === 1);
          return;
        }
        case MSG.CHANNEL_WINDOW_ADJUST: {
          const ch = this.channels.get(r.uint32());
          ch?.receiveWindow(r.uint32());
          return;
        }
        case MSG.CHANNEL_EOF:
          this.channels.get(r.uint32())?.receiveEof();
          return;
        case MSG.CHANNEL_CLOSE:
          this.channels.get(r.uint32())?.receiveClose();
          return;
        case MSG.CHANNEL_REQUEST: {
          const ch = this.channels.get(r.uint32());
          const type = r.string();
          const wantReply = r.bool();
          if (ch) ch.receiveRequest(type, wantReply, r);
          return;
        }
        case MSG.CHANNEL_SUCCESS:
        case MSG.CHANNEL_FAILURE:
          this.channels.get(r.uint32())?.receiveReply(p[0] === MSG.CHANNEL_SUCCESS);
          return;
        case MSG.CHANNEL_OPEN_CONFIRMATION: {
          const id = r.uint32();
          const entry = this.pendingOpens.get(id);
          if (!entry) return this.protocolError(`confirmation for unknown channel ${id}`);
          this.pendingOpens.delete(id);
          entry.channel.opened(r.uint32(), r.uint32(), r.uint32());
          this.channels.set(id, entry.channel);
          entry.pending.resolve(entry.channel);
          return;
        }
        case MSG.CHANNEL_OPEN_FAILURE: {
          const id = r.uint32();
          const entry = this.pendingOpens.get(id);
          if (!entry) return this.protocolError(`open failure for unknown channel ${id}`);
          this.pendingOpens.delete(id);
          const reason = r.uint32();
          const desc = r.remaining >= 4 ? r.string() : "";
          entry.pending.reject(new ChannelOpenError(reason, desc));
          return;
        }
        case MSG.CHANNEL_OPEN:
          return this.receiveOpen(r);
        case MSG.GLOBAL_REQUEST: {
          r.string();
          if (r.bool()) this.send(message(MSG.REQUEST_FAILURE));
          return;
        }
        case MSG.REQUEST_SUCCESS:
        case MSG.REQUEST_FAILURE: {
          const waiter = this.globalReplies.shift();
          waiter?.resolve(p[0] === MSG.REQUEST_SUCCESS, r.rest());
          return;
        }
        case MSG.DISCONNECT: {
          r.uint32();
          const desc = r.remaining >= 4 ? r.string() : "";
          this.teardown(new ConnectionClosedError(desc || "peer disconnected"));
          this.port.close();
          return;
        }
        case MSG.DEBUG: {
          const display = r.bool();
          const text = r.string();
          if (display) this.onDebug?.(text);
          return;
        }
        case MSG.IGNORE:
        case MSG.UNIMPLEMENTED:
          return;
        default:
          this.send(message(MSG.UNIMPLEMENTED, (w) => w.uint32(0)));
      }
    } catch (e) {
      this.protocolError(e instanceof Error ? e.message : String(e));
    }
  }

  private receiveOpen(r: SshReader): void {
    const type = r.string();
    const senderId = r.uint32();
    const window = r.uint32();
    const maxPacket = r.uint32();
    let answered = false;
    const reject = (reason: number, description: string) => {
      if (answered) return;
      answered = true;
      this.send(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
        w.uint32(senderId).uint32(reason).string(description).string("en");
      }));
    };
    if (!this.onChannelOpen) {
      return reject(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, `${type} channels not accepted`);
    }
    this.onChannelOpen({
      type,
      extra: r,
      reject,
      accept: () => {
        if (answered) throw new Error("channel open already answered");
        answered = true;
        const id = this.allocId();
        const ch = new Channel(this, id, type);
        ch.opened(senderId, window, maxPacket);
        this.channels.set(id, ch);
        this.send(message(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
          w.uint32(senderId).uint32(id).uint32(this.limits.window).uint32(this.limits.maxPacket);
        }));
        return ch;
      },
    });
  }
}

/** CHANNEL_DATA (or EXTENDED_DATA type 1), built in one allocation: this is the hot path. */
function dataMessage(recipient: number, data: Uint8Array, stderr: boolean): Uint8Array {
  const head = stderr ? 13 : 9;
  const p = new Uint8Array(head + data.length);
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
  /** Drops what is queued and all that comes later (the window stays open): unwanted data. */
  discard(): void;
  /** The same data as a ReadableStream, made on first use. */
  readonly stream: ReadableStream<Uint8Array>;
}

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

  constructor(private readonly credit: (n: number) => void) {}

  /**
   * Chunks that have piled up come as one (up to COALESCE bytes): a reader slower than the
   * packets (stdout, a socket) then makes one write where it would have made dozens.
   */
  async read(): Promise<Uint8Array | null> {
    while (this.queue.length === 0 && !this.ended && !this.failed) {
      await new Promise<void>((r) => this.wakers.push(r));
    }
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
    let n = 0;
    for (const c of this.queue) n += c.length;
    this.queue = [];
    if (n) this.credit(n);
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
    if (this.discarding) return this.credit(data.length);
    this.queue.push(data);
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

  constructor(private readonly conn: SshConnection, readonly id: number, readonly type: string) {
    this.localWindow = conn.limits.window;
    this.closed = new Promise((r) => (this.closeResolve = r));
    const credit = (n: number) => this.credit(n);
    this.out = new InboundData(credit);
    this.err = new InboundData(credit);
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

  /** @internal */
  opened(remoteId: number, window: number, maxPacket: number): void {
    this.remoteId = remoteId;
    this.remoteWindow = window;
    this.remoteMaxPacket = Math.max(1, maxPacket);
  }

  private credit(n: number): void {
    if (this.gotClose || this.error || this.sentClose) return;
    this.pendingCredit += n;
    const full = this.conn.limits.window;
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
    this.gotClose = true;
    this.out.end();
    this.err.end();
    if (!this.sentClose) this.sendClose();
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

  private get writable_(): boolean {
    return !this.sentEof && !this.sentClose && !this.gotClose && !this.error;
  }

  /** Sends data, waiting for window space as needed. Rejects if the channel is gone. */
  async write(data: Uint8Array, stderr = false): Promise<void> {
    let at = 0;
    const limit = Math.min(this.remoteMaxPacket, this.conn.limits.maxSend);
    while (at < data.length) {
      if (!this.writable_) {
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
    if (!this.writable_) return;
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

export { fromUtf8, utf8 };
