/**
 * The client side of the SSH connection protocol (RFC 4254) over a PacketPort: opening channels
 * (lib/ssh/channel.ts), global requests and server-initiated channels.
 *
 * Every front-end uses this one implementation, whether its packets go to an upstream over the
 * sharing socket or into the in-process multiplexer that owns the real SSH connection. It imports
 * nothing heavy, so a downstream never loads ssh2 or any crypto.
 */

import type { PacketPort } from "./packet_port.ts";
import {
  DISCONNECT_BY_APPLICATION,
  message,
  MSG,
  OPEN_FAILURE,
  SshReader,
  SshWriter,
} from "./wire.ts";
import { Channel, ConnectionClosedError, type ConnectionLimits } from "./channel.ts";
import { errorText } from "../util/error_text.ts";

const OPEN_FAILURE_NAMES = [
  "",
  "Administratively prohibited",
  "Connect failed",
  "Unknown channel type",
  "Resource shortage",
];

export class ChannelOpenError extends Error {
  constructor(readonly reason: number, readonly description: string) {
    super(description || openFailureText(reason));
  }

  /** The refusal the way PuTTY logs it: "Connect failed [Connection refused]". */
  get logText(): string {
    const name = OPEN_FAILURE_NAMES[this.reason] ||
      `unknown reason code 0x${this.reason.toString(16)}`;
    return `${name} [${this.description}]`;
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

/** A server-initiated CHANNEL_OPEN (forwarded-tcpip, auth-agent@openssh.com, x11). */
export interface IncomingChannel {
  type: string;
  /** Reader positioned at the type-specific data after the common fields. */
  extra: SshReader;
  /** Accepts, offering `window` (the connection's usual if not given). */
  accept(window?: number): Channel;
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
  /** Set once the connection has gone: the error, or the description of an orderly close. */
  private end?: Error | string;
  private opening?: Promise<Channel>;
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
      closed: (err) => this.teardown(err ?? "connection closed"),
    });
  }

  get isOpen(): boolean {
    return this.end === undefined;
  }

  /** Number of channels currently open or opening. */
  get channelCount(): number {
    return this.channels.size + this.pendingOpens.size;
  }

  send(payload: Uint8Array): void {
    if (this.end !== undefined) return;
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

  /**
   * Opens a channel of `type`; `extra` is the type-specific data after the common fields.
   * `window`: what we offer the peer, if not the connection's usual.
   */
  openChannel(type: string, extra?: Uint8Array, window?: number): Promise<Channel> {
    if (this.end !== undefined) return Promise.reject(this.failure());
    const id = this.allocId();
    const channel = new Channel(this, id, type, window);
    return new Promise<Channel>((resolve, reject) => {
      this.pendingOpens.set(id, { channel, pending: { resolve, reject } });
      this.send(message(MSG.CHANNEL_OPEN, (w) => {
        w.string(type).uint32(id).uint32(channel.offeredWindow).uint32(this.limits.maxPacket);
        if (extra) w.raw(extra);
      }));
    });
  }

  openSession(): Promise<Channel> {
    const early = this.opening;
    this.opening = undefined;
    return early ?? this.openChannel("session");
  }

  /**
   * Asks for a session channel now, for the next openSession() to take: a downstream asks the
   * moment the upstream has greeted it, and the server answers while the tool sets up.
   */
  openSessionEarly(): void {
    this.opening ??= this.openChannel("session");
    this.opening.catch(() => {});
  }

  /** direct-tcpip: a connection from the server to host:port (local port forwarding). */
  openDirectTcpip(
    host: string,
    port: number,
    originHost = "127.0.0.1",
    originPort = 0,
    window?: number,
  ): Promise<Channel> {
    const w = new SshWriter().string(host).uint32(port).string(originHost).uint32(originPort);
    return this.openChannel("direct-tcpip", w.done(), window);
  }

  /** Sends a global request; with wantReply the promise tells whether the server agreed. */
  globalRequest(
    name: string,
    wantReply: boolean,
    data?: Uint8Array,
  ): Promise<{ ok: boolean; data: Uint8Array }> {
    if (this.end !== undefined) return Promise.reject(this.failure());
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
    if (this.end !== undefined) return;
    this.send(message(MSG.DISCONNECT, (w) => {
      w.uint32(DISCONNECT_BY_APPLICATION).string(description).string("en");
    }));
    // Before the port closes, which would report a plain "connection closed".
    this.teardown(description, true);
    this.port.close();
  }

  /** @internal */
  forget(id: number): void {
    this.channels.delete(id);
  }

  /** `why`: the error, or a description of the close (made into an error only if needed). */
  private teardown(why: Error | string, orderly = false): void {
    if (this.end !== undefined) return;
    this.end = why;
    for (const { channel, pending } of this.pendingOpens.values()) {
      channel.abort(this.failure());
      pending.reject(this.failure());
    }
    this.pendingOpens.clear();
    for (const ch of [...this.channels.values()]) ch.abort(this.failure());
    this.channels.clear();
    for (const r of this.globalReplies.splice(0)) r.reject(this.failure());
    this.closedResolve(orderly ? undefined : this.failure());
  }

  /**
   * Why the connection has gone, as an error. Made the first time it is asked for: an orderly
   * close with nothing left open needs none, and the first error object of a process costs
   * Deno ~0.5 ms.
   */
  private failure(): Error {
    if (typeof this.end === "string") this.end = new ConnectionClosedError(this.end);
    return this.end ?? new ConnectionClosedError("connection closed");
  }

  private protocolError(text: string): void {
    // Teardown first: closing the port reports a plain "connection closed" straight away.
    this.teardown(`protocol error: ${text}`);
    this.port.close();
  }

  private dispatch(p: Uint8Array): void {
    if (this.end !== undefined || p.length === 0) return;
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
          this.teardown(desc || "peer disconnected");
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
      this.protocolError(errorText(e));
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
      accept: (ourWindow?: number) => {
        if (answered) throw new Error("channel open already answered");
        answered = true;
        const id = this.allocId();
        const ch = new Channel(this, id, type, ourWindow);
        ch.opened(senderId, window, maxPacket);
        this.channels.set(id, ch);
        this.send(message(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
          w.uint32(senderId).uint32(id).uint32(ch.offeredWindow).uint32(this.limits.maxPacket);
        }));
        return ch;
      },
    });
  }
}
