/**
 * One SSH channel (RFC 4254 section 5) of an SshConnection: flow control both ways, incoming
 * data as chunk sources, channel requests and their replies, exit status. Like the connection,
 * it imports nothing heavy: the downstream path loads it.
 */

import { framedPayload } from "./framed_payload.ts";
import { type ChunkSource, InboundData } from "./inbound_data.ts";
import { message, MSG, SshReader, SshWriter, writeUint32 } from "./wire.ts";

export type { ChunkSource } from "./inbound_data.ts";

export interface ConnectionLimits {
  /** Initial window we offer for each channel we open or accept. */
  window: number;
  /** Largest data payload we accept in one packet (advertised as maximum packet size). */
  maxPacket: number;
  /** Largest data payload we send in one packet, whatever the peer allows. */
  maxSend: number;
  /**
   * Bytes of file data worth having requested ahead (SFTP reads in flight): enough to keep the
   * connection busy, where more only costs memory.
   */
  readAhead?: number;
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

  /** Whether write() of `n` bytes would send them all before it returns (the window has room). */
  writesAtOnce(n: number): boolean {
    return this.canSend && this.remoteWindow >= n;
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
