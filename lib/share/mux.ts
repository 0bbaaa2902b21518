/**
 * The upstream's channel-number NAT, after PuTTY's ssh/sharing.c: many downstreams speak the SSH
 * connection protocol as if they were alone; we rewrite their channel ids onto ids of ours before
 * passing their messages to the server, and route the server's replies back to the owner.
 *
 * Downstream -> server: CHANNEL_OPEN and OPEN_CONFIRMATION get our id in place of the
 * downstream's; every other channel message names the server's id, which we check belongs to this
 * downstream (PuTTY does not check; we do, so one downstream can never touch another's channels).
 * Server -> downstream: the recipient id (ours) is replaced by the downstream's own id. Windows
 * are end-to-end: we never buffer beyond what the downstream's window allows.
 *
 * Global requests from downstreams: only tcpip-forward / cancel-tcpip-forward are relayed (with
 * want-reply forced on so we can track them); the server's replies come back in request order,
 * matched against one FIFO. Forwarded-tcpip channels opened by the server go to the downstream
 * that asked for the forwarding. Agent channels go to the agent handler, if any (only one agent
 * can be forwarded through a shared connection, as in PuTTY). X11 channels are accepted here until
 * the X client's set-up message shows its cookie, then handed to the session whose x11-req gave
 * the server that cookie (as PuTTY's share_xchannel does).
 *
 * A downstream that sends a malformed or out-of-place message is disconnected with a
 * DISCONNECT naming the problem; the upstream and every other downstream carry on. "Malformed"
 * is judged as OpenSSH's sshd would (serverloop.c, session.c, channels.c, ttymodes.c): whatever
 * it treats as fatal for the whole connection must never reach it -- truncated fields, trailing
 * bytes, a NUL inside a string it reads as a C string, terminal modes cut short, a second pty-req
 * on one session, extended data after EOF (tests/share_fuzz_test.ts throws 1,000 at it).
 */

import { failureReply, MIT_COOKIE, parseSetup, verifyAuth } from "../forward/x11_protocol.ts";
import type { PacketPort } from "../ssh/packet_port.ts";
import {
  DISCONNECT_PROTOCOL_ERROR,
  message,
  MSG,
  OPEN_FAILURE,
  readUint32,
  SshReader,
  writeUint32,
} from "../ssh/wire.ts";

type ChanState = "unacknowledged" | "open" | "sent_close" | "rcvd_close";

interface MuxChannel {
  ds: Downstream;
  downstreamId: number;
  upstreamId: number;
  serverId: number;
  state: ChanState;
  /** Bytes the server will still accept from the downstream, and its largest packet. */
  serverWindow: number;
  serverMaxPacket: number;
  /** Bytes the downstream has said it will still accept from the server. */
  downstreamWindow: number;
  /** The downstream has sent EOF / asked for a pty on this channel. */
  sentEof?: boolean;
  askedPty?: boolean;
}

/** A server-initiated channel waiting for the downstream's answer. */
interface HalfOpen {
  serverWindow: number;
  serverMaxPacket: number;
  /** An X11 channel we have already accepted from the server, being handed over. */
  x11?: X11Pending;
}

/** A session's X11 forwarding: the (made-up) MIT cookie its x11-req gave the server. */
interface X11Grant {
  ds: Downstream;
  /** Only one X connection (x11-req's single-connection flag). */
  single: boolean;
}

/**
 * An X11 channel the server opened, which we accept ourselves until its client's set-up message
 * says whose cookie it carries (PuTTY's share_xchannel).
 */
interface X11Pending {
  upstreamId: number;
  serverId: number;
  serverWindow: number;
  serverMaxPacket: number;
  /** The CHANNEL_OPEN's originator address and port, passed on to the owner. */
  originator: Uint8Array;
  /** What the client has sent so far. */
  data: Uint8Array;
  /** Handed to this downstream, waiting for its answer. */
  owner?: Downstream;
  rcvdEof?: boolean;
  rcvdClose?: boolean;
  sentClose?: boolean;
}

/**
 * The window we give the server on an X11 channel before its owner is known: room for a set-up
 * message with an MIT cookie (48 bytes) and then some; a client sends nothing more until the
 * X server has answered.
 */
const X11_SETUP_WINDOW = 256;
/**
 * The largest packet the server may send on an X11 channel, fixed before its owner is known:
 * PuTTY's own (0x4000), which every downstream takes; we split larger ones for those who can't.
 */
const X11_MAX_PACKET = 0x4000;

interface Forwarding {
  host: string;
  port: number;
  active: boolean;
}

interface GlobalRequest {
  ds?: Downstream;
  kind: "tcpip-forward" | "cancel-tcpip-forward" | "internal";
  wantReply: boolean;
  fwd?: Forwarding;
  resolve?: (ok: boolean) => void;
}

export interface MuxOptions {
  /** Log line for -v (e.g. "downstream #2 connected"). */
  log?: (text: string) => void;
  /** Whether downstreams may ask for agent forwarding (the upstream forwards its own agent). */
  agentForwarding?: boolean;
  /** Handles an auth-agent@openssh.com channel the server opens; undefined refuses them. */
  agentChannels?: Downstream;
  /** Called whenever the number of live downstreams drops to zero. */
  onIdle?: () => void;
  /** How the X11 proxy names itself to X clients it refuses ("Plink X11 proxy: ..."). */
  appName?: string;
}

export interface DownstreamInfo {
  label: string;
  /**
   * Largest data payload this downstream can take in one message. The sharing socket limits
   * messages to 0x4010 bytes; an in-process downstream has no such limit.
   */
  maxData: number;
  /**
   * The upstream's own session, in-process: it holds the real connection, so a lost connection
   * is reported to it as it is, not as something an upstream lost.
   */
  local?: boolean;
  /**
   * An in-process helper of the upstream (e.g. the one serving agent channels), not a client:
   * it does not count as a live downstream, so it never keeps the upstream waiting.
   */
  service?: boolean;
}

/** One downstream's state: its channels (by server id), half-open channels, forwardings. */
export class Downstream {
  readonly byServer = new Map<number, MuxChannel>();
  readonly byDownstreamId = new Map<number, MuxChannel>();
  readonly halfOpen = new Map<number, HalfOpen>();
  readonly forwardings = new Map<string, Forwarding>();
  alive = true;
  removed = false;
  constructor(
    readonly mux: ConnectionMux,
    readonly port: PacketPort,
    readonly info: DownstreamInfo,
  ) {}
}

export class ConnectionMux {
  private readonly byUpstream = new Map<number, MuxChannel>();
  private readonly downstreams = new Set<Downstream>();
  private readonly globalQueue: GlobalRequest[] = [];
  private nextId = 0x100;
  private serverGone?: Error;
  /** X11 forwardings by cookie (hex): whose session an X client's channel belongs to. */
  private readonly x11Grants = new Map<string, X11Grant>();
  /** X11 channels accepted from the server whose owner is not settled yet, by our id. */
  private readonly x11Pending = new Map<number, X11Pending>();
  private readonly log: (text: string) => void;

  constructor(private readonly server: PacketPort, private readonly opts: MuxOptions = {}) {
    this.log = opts.log ?? (() => {});
    server.start({
      packet: (p) => this.fromServer(p),
      closed: (err) => this.serverClosed(err ?? new Error("server closed the connection")),
    });
  }

  /** Live downstreams (including the upstream's own in-process session, if attached). */
  get downstreamCount(): number {
    let n = 0;
    for (const ds of this.downstreams) if (ds.alive && !ds.info.service) n++;
    return n;
  }

  /** Channels currently routed (any state). */
  get channelCount(): number {
    return this.byUpstream.size;
  }

  get closedError(): Error | undefined {
    return this.serverGone;
  }

  setAgentHandler(ds: Downstream | undefined): void {
    this.opts.agentChannels = ds;
  }

  addDownstream(port: PacketPort, info: DownstreamInfo): Downstream {
    const ds = new Downstream(this, port, info);
    if (this.serverGone) {
      port.close(this.serverGone);
      ds.alive = false;
      return ds;
    }
    this.downstreams.add(ds);
    port.start({
      packet: (p) => this.fromDownstream(ds, p),
      closed: () => this.downstreamGone(ds),
    });
    return ds;
  }

  /** Sends a global request of our own (e.g. keepalive) through the shared reply queue. */
  internalGlobalRequest(name: string, wantReply: boolean): Promise<boolean> {
    if (this.serverGone) return Promise.resolve(false);
    this.server.send(message(MSG.GLOBAL_REQUEST, (w) => w.string(name).bool(wantReply)));
    if (!wantReply) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.globalQueue.push({ kind: "internal", wantReply, resolve });
    });
  }

  /** Ends every downstream (e.g. the server connection died). */
  shutdown(reason: Error): void {
    this.serverClosed(reason);
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xfffffff0 ? 0x100 : this.nextId + 1;
      if (!this.byUpstream.has(id)) return id;
    }
  }

  // ---- server -> downstreams ------------------------------------------------------------------

  private fromServer(p: Uint8Array): void {
    if (p.length === 0) return;
    const type = p[0];
    try {
      switch (type) {
        case MSG.REQUEST_SUCCESS:
        case MSG.REQUEST_FAILURE:
          return this.globalReply(type === MSG.REQUEST_SUCCESS, p);
        case MSG.GLOBAL_REQUEST: {
          const r = new SshReader(p, 1);
          r.string();
          if (r.bool()) this.server.send(message(MSG.REQUEST_FAILURE));
          return;
        }
        case MSG.CHANNEL_OPEN:
          return this.serverOpen(p);
        case MSG.CHANNEL_OPEN_CONFIRMATION:
        case MSG.CHANNEL_OPEN_FAILURE:
        case MSG.CHANNEL_WINDOW_ADJUST:
        case MSG.CHANNEL_DATA:
        case MSG.CHANNEL_EXTENDED_DATA:
        case MSG.CHANNEL_EOF:
        case MSG.CHANNEL_CLOSE:
        case MSG.CHANNEL_REQUEST:
        case MSG.CHANNEL_SUCCESS:
        case MSG.CHANNEL_FAILURE:
          return this.serverChannelMessage(type, p);
        default:
          return;
      }
    } catch (e) {
      this.log(`ignoring malformed message type ${type} from server: ${errText(e)}`);
    }
  }

  private globalReply(ok: boolean, p: Uint8Array): void {
    const req = this.globalQueue.shift();
    if (!req) return;
    if (req.kind === "internal") return req.resolve?.(ok);
    const ds = req.ds!;
    const fwd = req.fwd!;
    if (req.kind === "tcpip-forward") {
      if (ok) fwd.active = true;
      else ds.forwardings.delete(fwdKey(fwd.host, fwd.port));
    } else if (ok) {
      ds.forwardings.delete(fwdKey(fwd.host, fwd.port));
    }
    if (req.wantReply && ds.alive) ds.port.send(p);
    if (!ds.alive) this.tryCleanup(ds);
  }

  private serverOpen(p: Uint8Array): void {
    const r = new SshReader(p, 1);
    const type = r.string();
    const serverId = r.uint32();
    const half: HalfOpen = { serverWindow: r.uint32(), serverMaxPacket: r.uint32() };
    const refuse = (reason: number, text: string) =>
      this.server.send(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
        w.uint32(serverId).uint32(reason).string(text).string("en");
      }));
    let target: Downstream | undefined;
    if (type === "forwarded-tcpip") {
      const host = r.string();
      const port = r.uint32();
      target = this.forwardingOwner(host, port);
      if (!target) {
        return refuse(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "no such forwarding");
      }
    } else if (type === "x11") {
      if (this.x11Grants.size === 0) {
        return refuse(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "X11 forwarding not enabled");
      }
      return this.acceptX11(serverId, half, p.subarray(r.pos));
    } else if (type === "auth-agent@openssh.com") {
      target = this.opts.agentChannels;
      if (!target?.alive) {
        return refuse(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "agent forwarding not enabled");
      }
    } else {
      return refuse(OPEN_FAILURE.UNKNOWN_CHANNEL_TYPE, `unsupported channel type ${type}`);
    }
    target.halfOpen.set(serverId, half);
    target.port.send(p);
  }

  private forwardingOwner(host: string, port: number): Downstream | undefined {
    for (const ds of this.downstreams) {
      if (!ds.alive) continue;
      const f = ds.forwardings.get(fwdKey(host, port));
      if (f) return ds;
      // A server may report the bound address differently (e.g. "" vs "0.0.0.0").
      for (const g of ds.forwardings.values()) {
        if (g.port === port && g.active) return ds;
      }
    }
    return undefined;
  }

  private serverChannelMessage(type: number, p: Uint8Array): void {
    if (p.length < 5) return;
    const pending = this.x11Pending.get(readUint32(p, 1));
    if (pending) return this.x11PendingMessage(pending, type, p);
    const chan = this.byUpstream.get(readUint32(p, 1));
    if (!chan) return;
    const ds = chan.ds;
    if (type === MSG.CHANNEL_OPEN_CONFIRMATION) {
      if (chan.state !== "unacknowledged" || p.length < 17) return;
      chan.serverId = readUint32(p, 5);
      chan.serverWindow = readUint32(p, 9);
      chan.serverMaxPacket = readUint32(p, 13);
      chan.state = "open";
      ds.byServer.set(chan.serverId, chan);
      if (!ds.alive) {
        // The downstream left while the open was in flight: close it straight away.
        this.server.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.serverId)));
        chan.state = "sent_close";
        return;
      }
    } else if (type === MSG.CHANNEL_OPEN_FAILURE) {
      this.removeChannel(chan);
      if (!ds.alive) return this.tryCleanup(ds);
    } else if (type === MSG.CHANNEL_WINDOW_ADJUST) {
      if (p.length >= 9) {
        chan.serverWindow = Math.min(0xffffffff, chan.serverWindow + readUint32(p, 5));
      }
    } else if (type === MSG.CHANNEL_DATA && p.length >= 9) {
      chan.downstreamWindow -= readUint32(p, 5);
    } else if (type === MSG.CHANNEL_EXTENDED_DATA && p.length >= 13) {
      chan.downstreamWindow -= readUint32(p, 9);
    } else if (type === MSG.CHANNEL_CLOSE) {
      if (chan.state === "sent_close") {
        this.removeChannel(chan);
        if (!ds.alive) return this.tryCleanup(ds);
      } else {
        chan.state = "rcvd_close";
      }
    }
    if (!ds.alive) return;
    writeUint32(p, 1, chan.downstreamId);
    if (type === MSG.CHANNEL_DATA || type === MSG.CHANNEL_EXTENDED_DATA) {
      this.sendData(ds, type, p);
    } else {
      ds.port.send(p);
    }
  }

  /** Passes data on, splitting it if the downstream cannot take it in one message. */
  private sendData(ds: Downstream, type: number, p: Uint8Array): void {
    const header = type === MSG.CHANNEL_DATA ? 9 : 13;
    if (p.length - header <= ds.info.maxData) return ds.port.send(p);
    const r = new SshReader(p, header - 4);
    const data = r.bytes();
    for (let at = 0; at < data.length; at += ds.info.maxData) {
      const piece = data.subarray(at, at + ds.info.maxData);
      ds.port.send(message(type, (w) => {
        w.raw(p.subarray(1, header - 4));
        w.string(piece);
      }));
    }
  }

  // ---- downstream -> server -------------------------------------------------------------------

  private fromDownstream(ds: Downstream, p: Uint8Array): void {
    if (!ds.alive) return;
    try {
      this.handleDownstream(ds, p);
    } catch (e) {
      this.disconnect(ds, `malformed message from downstream: ${errText(e)}`);
    }
  }

  private handleDownstream(ds: Downstream, p: Uint8Array): void {
    const type = p[0];
    const r = new SshReader(p, 1);
    switch (type) {
      case MSG.DISCONNECT:
        ds.port.close();
        return this.downstreamGone(ds);
      case MSG.IGNORE:
      case MSG.DEBUG:
      case MSG.UNIMPLEMENTED:
        return;
      case MSG.GLOBAL_REQUEST:
        return this.downstreamGlobalRequest(ds, p, r);
      case MSG.CHANNEL_OPEN: {
        const channelType = cstring(r);
        const idPos = r.pos;
        const downstreamId = r.uint32();
        const window = r.uint32();
        const maxPos = r.pos;
        const maxPacket = r.uint32();
        checkOpenExtra(channelType, r);
        this.relayOpen(ds, p, { downstreamId, idPos, maxPos, maxPacket }, {
          serverId: 0,
          state: "unacknowledged",
          serverWindow: 0,
          serverMaxPacket: 0,
          downstreamWindow: window,
        });
        return;
      }
      case MSG.CHANNEL_OPEN_CONFIRMATION: {
        const serverId = r.uint32();
        const idPos = r.pos;
        const downstreamId = r.uint32();
        const window = r.uint32();
        const maxPos = r.pos;
        const maxPacket = r.uint32();
        expectEnd(r);
        const half = ds.halfOpen.get(serverId);
        if (!half) {
          return this.disconnect(
            ds,
            `CHANNEL_OPEN_CONFIRMATION packet cited unknown channel ${serverId}`,
          );
        }
        if (half.x11) return this.x11Confirmed(ds, half.x11, downstreamId, window);
        const relayed = this.relayOpen(ds, p, { downstreamId, idPos, maxPos, maxPacket }, {
          serverId,
          state: "open",
          serverWindow: half.serverWindow,
          serverMaxPacket: half.serverMaxPacket,
          downstreamWindow: window,
        });
        if (relayed) ds.halfOpen.delete(serverId);
        return;
      }
      case MSG.CHANNEL_OPEN_FAILURE: {
        const serverId = r.uint32();
        r.uint32();
        cstring(r);
        r.string();
        expectEnd(r);
        const half = ds.halfOpen.get(serverId);
        if (!half) {
          return this.disconnect(
            ds,
            `CHANNEL_OPEN_FAILURE packet cited unknown channel ${serverId}`,
          );
        }
        ds.halfOpen.delete(serverId);
        if (half.x11) return this.x11Close(half.x11);
        this.server.send(p);
        return;
      }
      case MSG.CHANNEL_WINDOW_ADJUST:
      case MSG.CHANNEL_DATA:
      case MSG.CHANNEL_EXTENDED_DATA:
      case MSG.CHANNEL_EOF:
      case MSG.CHANNEL_CLOSE:
      case MSG.CHANNEL_REQUEST:
      case MSG.CHANNEL_SUCCESS:
      case MSG.CHANNEL_FAILURE: {
        const serverId = r.uint32();
        const chan = ds.byServer.get(serverId);
        if (!chan || chan.state === "unacknowledged") {
          return this.disconnect(ds, `message for channel ${serverId}, which is not yours`);
        }
        // Check everything the server would treat as fatal for the whole connection.
        if (type === MSG.CHANNEL_WINDOW_ADJUST) {
          const n = r.uint32();
          expectEnd(r);
          if (chan.downstreamWindow + n > 0xffffffff) {
            return this.disconnect(ds, `window adjust on channel ${serverId} overflows the window`);
          }
          chan.downstreamWindow += n;
        } else if (type === MSG.CHANNEL_DATA || type === MSG.CHANNEL_EXTENDED_DATA) {
          if (type === MSG.CHANNEL_EXTENDED_DATA) {
            if (chan.sentEof) {
              return this.disconnect(ds, `extended data after EOF on channel ${serverId}`);
            }
            r.uint32();
          }
          const n = r.bytes().length;
          expectEnd(r);
          if (n > chan.serverWindow || n > chan.serverMaxPacket) {
            return this.disconnect(
              ds,
              `data on channel ${serverId} exceeds the window or packet size`,
            );
          }
          chan.serverWindow -= n;
        } else if (type === MSG.CHANNEL_REQUEST) {
          const name = cstring(r);
          const wantReply = r.bool();
          const dataPos = r.pos;
          checkRequestData(name, r);
          if (
            (name === "auth-agent-req@openssh.com" && !this.opts.agentForwarding) ||
            (name === "x11-req" && !this.grantX11(ds, new SshReader(p, dataPos))) ||
            // sshd drops the whole connection on a second pty for one session
            (name === "pty-req" && chan.askedPty)
          ) {
            if (wantReply && chan.state === "open") {
              ds.port.send(message(MSG.CHANNEL_FAILURE, (w) => w.uint32(chan.downstreamId)));
            }
            return;
          }
          if (name === "pty-req") chan.askedPty = true;
        } else {
          expectEnd(r);
          if (type === MSG.CHANNEL_EOF) chan.sentEof = true;
        }
        if (chan.state === "sent_close") return; // nothing may follow our CLOSE
        this.server.send(p);
        if (type === MSG.CHANNEL_CLOSE) {
          if (chan.state === "rcvd_close") this.removeChannel(chan);
          else chan.state = "sent_close";
        }
        return;
      }
      default:
        return this.disconnect(ds, `unexpected packet type ${type}`);
    }
  }

  /**
   * Registers a channel the downstream opens (CHANNEL_OPEN) or accepts (OPEN_CONFIRMATION) and
   * passes the message on with our id in place of the downstream's and the maximum packet size
   * capped at what the downstream can receive.
   */
  private relayOpen(
    ds: Downstream,
    p: Uint8Array,
    f: { downstreamId: number; idPos: number; maxPos: number; maxPacket: number },
    init: Omit<MuxChannel, "ds" | "downstreamId" | "upstreamId">,
  ): boolean {
    if (ds.byDownstreamId.has(f.downstreamId)) {
      this.disconnect(ds, `channel id ${f.downstreamId} is already in use`);
      return false;
    }
    const chan: MuxChannel = {
      ds,
      downstreamId: f.downstreamId,
      upstreamId: this.allocId(),
      ...init,
    };
    this.byUpstream.set(chan.upstreamId, chan);
    ds.byDownstreamId.set(chan.downstreamId, chan);
    if (chan.state !== "unacknowledged") ds.byServer.set(chan.serverId, chan);
    writeUint32(p, f.idPos, chan.upstreamId);
    if (f.maxPacket > ds.info.maxData) writeUint32(p, f.maxPos, ds.info.maxData);
    this.server.send(p);
    return true;
  }

  private downstreamGlobalRequest(ds: Downstream, p: Uint8Array, r: SshReader): void {
    const name = r.string();
    const wantReplyPos = r.pos;
    const wantReply = r.bool();
    const fail = () => {
      if (wantReply) ds.port.send(message(MSG.REQUEST_FAILURE));
    };
    if (name !== "tcpip-forward" && name !== "cancel-tcpip-forward") return fail();
    const host = cstring(r);
    const port = r.uint32();
    expectEnd(r);
    const key = fwdKey(host, port);
    if (name === "tcpip-forward") {
      for (const other of this.downstreams) {
        if (other.alive && other.forwardings.has(key)) return fail();
      }
      const fwd: Forwarding = { host, port, active: false };
      ds.forwardings.set(key, fwd);
      p[wantReplyPos] = 1;
      this.server.send(p);
      this.globalQueue.push({ ds, kind: "tcpip-forward", wantReply, fwd });
    } else {
      const fwd = ds.forwardings.get(key);
      if (!fwd) return fail();
      p[wantReplyPos] = 1;
      this.server.send(p);
      this.globalQueue.push({ ds, kind: "cancel-tcpip-forward", wantReply, fwd });
    }
  }

  private disconnect(ds: Downstream, reason: string): void {
    this.log(`${ds.info.label}: ${reason}; disconnecting it`);
    ds.port.send(message(MSG.DISCONNECT, (w) => {
      w.uint32(DISCONNECT_PROTOCOL_ERROR).string(reason).string("en");
    }));
    ds.port.close();
    this.downstreamGone(ds);
  }

  // ---- cleanup --------------------------------------------------------------------------------

  private removeChannel(chan: MuxChannel): void {
    this.byUpstream.delete(chan.upstreamId);
    chan.ds.byDownstreamId.delete(chan.downstreamId);
    if (chan.state !== "unacknowledged") chan.ds.byServer.delete(chan.serverId);
  }

  private downstreamGone(ds: Downstream): void {
    if (!ds.alive) return;
    ds.alive = false;
    if (this.serverGone) return this.forgetDownstream(ds);
    this.log(`${ds.info.label} disconnected`);
    this.tryCleanup(ds);
  }

  /** PuTTY's share_try_cleanup: undo everything the downstream left behind on the server. */
  private tryCleanup(ds: Downstream): void {
    if (this.serverGone) return this.forgetDownstream(ds);
    for (const [serverId, half] of ds.halfOpen) {
      if (half.x11) {
        this.x11Close(half.x11);
        continue;
      }
      this.server.send(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
        w.uint32(serverId).uint32(OPEN_FAILURE.CONNECT_FAILED)
          .string("PuTTY downstream no longer available").string("en");
      }));
    }
    ds.halfOpen.clear();
    for (const chan of [...ds.byDownstreamId.values()]) {
      if (chan.state === "open") {
        this.server.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.serverId)));
        chan.state = "sent_close";
      } else if (chan.state === "rcvd_close") {
        this.server.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.serverId)));
        this.removeChannel(chan);
      }
    }
    for (const [key, fwd] of ds.forwardings) {
      if (!fwd.active) continue;
      this.server.send(message(MSG.GLOBAL_REQUEST, (w) => {
        w.string("cancel-tcpip-forward").bool(false).string(fwd.host).uint32(fwd.port);
      }));
      ds.forwardings.delete(key);
    }
    const waitingReply = this.globalQueue.some((g) => g.ds === ds);
    if (ds.byDownstreamId.size === 0 && !waitingReply) this.forgetDownstream(ds);
  }

  private forgetDownstream(ds: Downstream): void {
    if (ds.removed) return;
    ds.removed = true;
    ds.alive = false;
    this.downstreams.delete(ds);
    for (const [cookie, grant] of this.x11Grants) {
      if (grant.ds === ds) this.x11Grants.delete(cookie);
    }
    for (const chan of ds.byDownstreamId.values()) this.byUpstream.delete(chan.upstreamId);
    ds.byDownstreamId.clear();
    ds.byServer.clear();
    if (this.downstreamCount === 0) this.opts.onIdle?.();
  }

  private serverClosed(err: Error): void {
    if (this.serverGone) return;
    this.serverGone = err;
    this.server.close();
    for (const q of this.globalQueue.splice(0)) q.resolve?.(false);
    for (const ds of [...this.downstreams]) {
      if (ds.alive) {
        ds.port.send(message(MSG.DISCONNECT, (w) => {
          w.uint32(DISCONNECT_PROTOCOL_ERROR)
            .string(
              ds.info.local
                ? err.message
                : `upstream lost its connection to the server: ${err.message}`,
            ).string("en");
        }));
        ds.port.close(err);
      }
      ds.alive = false;
      this.forgetDownstream(ds);
    }
    this.byUpstream.clear();
    this.x11Pending.clear();
    this.x11Grants.clear();
  }

  // ---- X11 ------------------------------------------------------------------------------------

  /**
   * A downstream's x11-req: allowed when it carries an MIT cookie no other session uses, which
   * then routes the server's X11 channels whose clients present it to this downstream. (PuTTY
   * gives the server a cookie of its own and swaps it back; passing the session's cookie on
   * routes just as well, as long as no two sessions share one.)
   */
  private grantX11(ds: Downstream, r: SshReader): boolean {
    const single = r.bool();
    const protocol = cstring(r);
    const cookie = cstring(r).toLowerCase();
    if (protocol !== MIT_COOKIE || !/^[0-9a-f]{32}$/.test(cookie)) return false;
    const held = this.x11Grants.get(cookie);
    if (held && held.ds !== ds) return false;
    this.x11Grants.set(cookie, { ds, single });
    return true;
  }

  private acceptX11(serverId: number, half: HalfOpen, originator: Uint8Array): void {
    const pending: X11Pending = {
      upstreamId: this.allocId(),
      serverId,
      serverWindow: half.serverWindow,
      serverMaxPacket: half.serverMaxPacket,
      originator: originator.slice(),
      data: new Uint8Array(0),
    };
    this.x11Pending.set(pending.upstreamId, pending);
    this.server.send(message(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
      w.uint32(serverId).uint32(pending.upstreamId).uint32(X11_SETUP_WINDOW)
        .uint32(X11_MAX_PACKET);
    }));
  }

  private x11PendingMessage(x: X11Pending, type: number, p: Uint8Array): void {
    const r = new SshReader(p, 5);
    switch (type) {
      case MSG.CHANNEL_DATA: {
        const data = r.bytes();
        const all = new Uint8Array(x.data.length + data.length);
        all.set(x.data);
        all.set(data, x.data.length);
        x.data = all;
        if (x.data.length > X11_SETUP_WINDOW) return this.x11Close(x);
        if (!x.owner) this.routeX11(x);
        return;
      }
      case MSG.CHANNEL_WINDOW_ADJUST:
        x.serverWindow = Math.min(0xffffffff, x.serverWindow + r.uint32());
        return;
      case MSG.CHANNEL_EOF:
        x.rcvdEof = true;
        if (!x.owner) this.x11Close(x);
        return;
      case MSG.CHANNEL_CLOSE:
        x.rcvdClose = true;
        if (x.sentClose) {
          this.x11Pending.delete(x.upstreamId);
        } else if (!x.owner) {
          this.x11Close(x);
        }
        return;
      case MSG.CHANNEL_REQUEST: {
        r.string();
        if (r.bool() && !x.sentClose) {
          this.server.send(message(MSG.CHANNEL_FAILURE, (w) => w.uint32(x.serverId)));
        }
        return;
      }
      default:
        return;
    }
  }

  /** Once the client's set-up message is complete: hand the channel to its cookie's owner. */
  private routeX11(x: X11Pending): void {
    const setup = parseSetup(x.data);
    if (!setup) return;
    const hex = [...setup.data].map((b) => b.toString(16).padStart(2, "0")).join("");
    const grant = setup.protocol === MIT_COOKIE ? this.x11Grants.get(hex) : undefined;
    let refusal: string | undefined;
    if (setup.protocol !== MIT_COOKIE) {
      refusal = verifyAuth(setup, new Uint8Array(0)); // no or an unsupported authorisation
    } else if (!grant?.ds.alive) {
      refusal = "Authorisation not recognised";
    }
    if (refusal || !grant) {
      const reply = failureReply(x.data, `${this.opts.appName ?? "Plink"} X11 proxy: ${refusal}\n`);
      if (reply.length <= x.serverWindow) {
        this.server.send(message(MSG.CHANNEL_DATA, (w) => w.uint32(x.serverId).string(reply)));
      }
      this.server.send(message(MSG.CHANNEL_EOF, (w) => w.uint32(x.serverId)));
      return this.x11Close(x);
    }
    if (grant.single) this.x11Grants.delete(hex);
    const ds = grant.ds;
    x.owner = ds;
    ds.halfOpen.set(x.serverId, {
      serverWindow: x.serverWindow,
      serverMaxPacket: x.serverMaxPacket,
      x11: x,
    });
    ds.port.send(message(MSG.CHANNEL_OPEN, (w) => {
      w.string("x11").uint32(x.serverId).uint32(x.serverWindow).uint32(x.serverMaxPacket)
        .raw(x.originator);
    }));
  }

  /**
   * The owner accepted the X11 channel: from now on it is an ordinary channel of its own. The
   * server has already been told the channel is open (with our small window); the owner gets
   * what the client sent so far, and the server's window is brought up to the owner's.
   */
  private x11Confirmed(ds: Downstream, x: X11Pending, downstreamId: number, window: number): void {
    ds.halfOpen.delete(x.serverId);
    this.x11Pending.delete(x.upstreamId);
    if (ds.byDownstreamId.has(downstreamId)) {
      this.x11Close(x);
      return this.disconnect(ds, `channel id ${downstreamId} is already in use`);
    }
    const chan: MuxChannel = {
      ds,
      downstreamId,
      upstreamId: x.upstreamId,
      serverId: x.serverId,
      state: x.rcvdClose ? "rcvd_close" : "open",
      serverWindow: x.serverWindow,
      serverMaxPacket: x.serverMaxPacket,
      downstreamWindow: window - x.data.length,
      sentEof: false,
    };
    this.byUpstream.set(chan.upstreamId, chan);
    ds.byDownstreamId.set(downstreamId, chan);
    ds.byServer.set(chan.serverId, chan);
    if (window > X11_SETUP_WINDOW) {
      this.server.send(message(MSG.CHANNEL_WINDOW_ADJUST, (w) => {
        w.uint32(x.serverId).uint32(window - X11_SETUP_WINDOW);
      }));
    }
    if (x.data.length) {
      this.sendData(
        ds,
        MSG.CHANNEL_DATA,
        message(MSG.CHANNEL_DATA, (w) => {
          w.uint32(downstreamId).string(x.data);
        }),
      );
    }
    if (x.rcvdEof) ds.port.send(message(MSG.CHANNEL_EOF, (w) => w.uint32(downstreamId)));
    if (x.rcvdClose) ds.port.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(downstreamId)));
  }

  /** Ends an X11 channel nobody took: closes it on the server, forgotten once both closes are seen. */
  private x11Close(x: X11Pending): void {
    x.owner?.halfOpen.delete(x.serverId);
    x.owner = undefined;
    if (!x.sentClose) {
      x.sentClose = true;
      this.server.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(x.serverId)));
    }
    if (x.rcvdClose) this.x11Pending.delete(x.upstreamId);
    else this.x11Pending.set(x.upstreamId, x);
  }
}

/** Rejects trailing bytes: OpenSSH treats them as fatal for the whole connection. */
function expectEnd(r: SshReader): void {
  if (r.remaining !== 0) throw new Error(`${r.remaining} unexpected trailing bytes`);
}

/**
 * A string sshd reads with sshpkt_get_cstring(): a NUL inside it is fatal for the connection.
 */
function cstring(r: SshReader): string {
  const b = r.bytes();
  if (b.includes(0)) throw new Error("NUL byte inside a string");
  return new TextDecoder().decode(b);
}

/** The type-specific part of a CHANNEL_OPEN must parse exactly, for the types sshd parses. */
function checkOpenExtra(type: string, r: SshReader): void {
  if (type === "session") return expectEnd(r);
  if (type === "direct-tcpip") {
    cstring(r);
    r.uint32();
    cstring(r);
    r.uint32();
    return expectEnd(r);
  }
  if (type === "direct-streamlocal@openssh.com") {
    cstring(r);
    cstring(r);
    r.uint32();
    return expectEnd(r);
  }
  if (type === "tun@openssh.com") {
    r.uint32();
    r.uint32();
    return expectEnd(r);
  }
  // Other types the server refuses without parsing further.
}

/**
 * Terminal modes as sshd parses them (ttymodes.c): opcode 0 or >= 160 ends the list, every
 * other opcode takes a uint32; running out of bytes before that is fatal there.
 */
function checkTtyModes(modes: Uint8Array): void {
  const r = new SshReader(modes);
  while (r.remaining > 0) {
    const op = r.byte();
    if (op === 0 || op >= 160) return;
    r.uint32();
  }
}

/** Channel requests the server parses: their data must be well-formed and complete. */
function checkRequestData(name: string, r: SshReader): void {
  switch (name) {
    case "exec":
    case "subsystem":
    case "signal":
      cstring(r);
      break;
    case "env":
      cstring(r);
      cstring(r);
      break;
    case "pty-req":
      cstring(r);
      r.uint32();
      r.uint32();
      r.uint32();
      r.uint32();
      checkTtyModes(r.bytes());
      break;
    case "window-change":
      r.uint32();
      r.uint32();
      r.uint32();
      r.uint32();
      break;
    case "break":
      r.uint32();
      break;
    case "x11-req":
      r.bool();
      cstring(r);
      cstring(r);
      r.uint32();
      break;
    case "shell":
    case "auth-agent-req@openssh.com":
    case "eow@openssh.com":
      break;
    default:
      return; // unknown requests are refused by the server without parsing
  }
  expectEnd(r);
}

function fwdKey(host: string, port: number): string {
  return `${host}\0${port}`;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
