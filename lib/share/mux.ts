/**
 * The upstream's channel-number NAT, after PuTTY's ssh/sharing.c: many downstreams speak the SSH
 * connection protocol as if they were alone; we rewrite their channel ids onto ids of ours before
 * passing their messages to the server, and route the server's replies back to the owner.
 *
 * Downstream -> server: CHANNEL_OPEN and OPEN_CONFIRMATION get our id in place of the
 * downstream's; every other channel message names the server's id, which we check belongs to this
 * downstream (PuTTY does not check; we do, so one downstream can never touch another's channels).
 * Server -> downstream: the recipient id (ours) is replaced by the downstream's own id. The
 * window the server sees is clamped (./window_clamp.ts): whatever window a downstream offers, we
 * never hold more than a fixed amount per channel that it has not yet read.
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

import { type PacketPort, sendJoined } from "../ssh/packet_port.ts";
import {
  DISCONNECT_PROTOCOL_ERROR,
  message,
  MSG,
  OPEN_FAILURE,
  readUint32,
  SshReader,
  writeUint32,
} from "../ssh/wire.ts";
import { checkOpenExtra, checkRequestData, cstring, expectEnd } from "./downstream_checks.ts";
import { Downstream, type DownstreamInfo, type HalfOpen, type MuxChannel } from "./mux_state.ts";
import { GlobalRequests } from "./global_requests.ts";
import { X11Handover } from "./x11_handover.ts";
import { errorText } from "../util/error_text.ts";
import { drained, initialGrant, topUp } from "./window_clamp.ts";
import { SERVER_MAX_PACKET } from "./limits.ts";
import { DataJoiner } from "./data_joiner.ts";

export type { Downstream, DownstreamInfo };

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
  /** The most session channels one downstream may hold at once (unlimited if undefined). */
  sessionsPerDownstream?: () => number;
}

export class ConnectionMux {
  private readonly byUpstream = new Map<number, MuxChannel>();
  private readonly downstreams = new Set<Downstream>();
  private readonly globals: GlobalRequests;
  private nextId = 0x100;
  private serverGone?: Error;
  private readonly x11: X11Handover;
  private readonly log: (text: string) => void;
  /** Every message to the server goes through here (see DataJoiner). */
  private readonly joiner: DataJoiner;
  private readonly toServer = (p: Uint8Array) => this.joiner.other(p);

  constructor(private readonly server: PacketPort, private readonly opts: MuxOptions = {}) {
    this.joiner = new DataJoiner(server);
    this.log = opts.log ?? (() => {});
    this.globals = new GlobalRequests({
      send: this.toServer,
      downstreams: () => this.downstreams,
      settled: (ds) => {
        if (!ds.alive) this.tryCleanup(ds);
      },
    });
    this.x11 = new X11Handover({
      send: this.toServer,
      allocId: () => this.allocId(),
      adopt: (chan) => {
        this.byUpstream.set(chan.upstreamId, chan);
        chan.ds.byDownstreamId.set(chan.downstreamId, chan);
        chan.ds.byServer.set(chan.serverId, chan);
        topUp(chan, this.toServer);
      },
      sendData: (ds, type, p) => this.sendData(ds, type, p),
      disconnect: (ds, reason) => this.disconnect(ds, reason),
    }, opts.appName ?? "Plink");
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
    const ds = new Downstream(port, info);
    if (this.serverGone) {
      port.close(this.serverGone);
      ds.alive = false;
      return ds;
    }
    this.downstreams.add(ds);
    port.onDrain = () => drained(ds, this.toServer);
    port.start({
      packet: (p) => this.fromDownstream(ds, p),
      closed: () => this.downstreamGone(ds),
    });
    return ds;
  }

  /** Sends a global request of our own (e.g. keepalive) through the shared reply queue. */
  internalGlobalRequest(name: string, wantReply: boolean): Promise<boolean> {
    if (this.serverGone) return Promise.resolve(false);
    return this.globals.internal(name, wantReply);
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
          return this.globals.reply(type === MSG.REQUEST_SUCCESS, p);
        case MSG.GLOBAL_REQUEST: {
          const r = new SshReader(p, 1);
          r.string();
          if (r.bool()) this.toServer(message(MSG.REQUEST_FAILURE));
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
      this.log(`ignoring malformed message type ${type} from server: ${errorText(e)}`);
    }
  }

  private serverOpen(p: Uint8Array): void {
    const r = new SshReader(p, 1);
    const type = r.string();
    const serverId = r.uint32();
    const half: HalfOpen = { serverWindow: r.uint32(), serverMaxPacket: r.uint32() };
    const refuse = (reason: number, text: string) =>
      this.toServer(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
        w.uint32(serverId).uint32(reason).string(text).string("en");
      }));
    let target: Downstream | undefined;
    if (type === "forwarded-tcpip") {
      const host = r.string();
      const port = r.uint32();
      target = this.globals.owner(host, port);
      if (!target) {
        return refuse(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "no such forwarding");
      }
    } else if (type === "x11") {
      if (!this.x11.granted) {
        return refuse(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "X11 forwarding not enabled");
      }
      return this.x11.accept(serverId, half, p.subarray(r.pos));
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

  private serverChannelMessage(type: number, p: Uint8Array): void {
    if (p.length < 5) return;
    if (this.x11.serverMessage(readUint32(p, 1), type, p)) return;
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
        this.toServer(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.serverId)));
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
      const n = readUint32(p, 5);
      chan.downstreamWindow -= n;
      chan.granted -= n;
    } else if (type === MSG.CHANNEL_EXTENDED_DATA && p.length >= 13) {
      const n = readUint32(p, 9);
      chan.downstreamWindow -= n;
      chan.granted -= n;
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
      this.sendData(ds, type, p, chan.downstreamMaxData);
      topUp(chan, this.toServer);
    } else {
      ds.port.send(p);
    }
  }

  /** Passes data on, splitting it if the downstream cannot take it in one message. */
  private sendData(ds: Downstream, type: number, p: Uint8Array, most = ds.info.maxData): void {
    const header = type === MSG.CHANNEL_DATA ? 9 : 13;
    if (p.length - header <= most) return ds.port.send(p);
    const r = new SshReader(p, header - 4);
    const data = r.bytes();
    for (let at = 0; at < data.length; at += most) {
      const piece = data.subarray(at, at + most);
      const head = p.slice(0, header);
      writeUint32(head, header - 4, piece.length);
      sendJoined(ds.port, [head, piece]);
    }
  }

  // ---- downstream -> server -------------------------------------------------------------------

  private fromDownstream(ds: Downstream, p: Uint8Array): void {
    if (!ds.alive) return;
    try {
      this.handleDownstream(ds, p);
    } catch (e) {
      this.disconnect(ds, `malformed message from downstream: ${errorText(e)}`);
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
        return this.globals.fromDownstream(ds, p, r);
      case MSG.CHANNEL_OPEN: {
        const channelType = cstring(r);
        const idPos = r.pos;
        const downstreamId = r.uint32();
        const window = r.uint32();
        const maxPos = r.pos;
        const maxPacket = r.uint32();
        checkOpenExtra(channelType, r);
        const session = channelType === "session";
        const most = session ? this.opts.sessionsPerDownstream?.() : undefined;
        if (most !== undefined && ds.sessions >= most && !ds.info.local) {
          // Its share of the server's sessions is taken: refuse it, not everyone else.
          this.log(`${ds.info.label}: refusing a session beyond its share of ${most}`);
          ds.port.send(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
            w.uint32(downstreamId).uint32(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED)
              .string(`too many sessions through this shared connection (at most ${most})`)
              .string("en");
          }));
          return;
        }
        writeUint32(p, maxPos - 4, initialGrant(window));
        this.relayOpen(ds, p, { downstreamId, idPos, maxPos, maxPacket }, {
          serverId: 0,
          state: "unacknowledged",
          serverWindow: 0,
          serverMaxPacket: 0,
          downstreamWindow: window,
          granted: initialGrant(window),
          session,
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
        if (half.x11) return this.x11.confirmed(ds, half.x11, downstreamId, window);
        writeUint32(p, maxPos - 4, initialGrant(window));
        const relayed = this.relayOpen(ds, p, { downstreamId, idPos, maxPos, maxPacket }, {
          serverId,
          state: "open",
          serverWindow: half.serverWindow,
          serverMaxPacket: half.serverMaxPacket,
          downstreamWindow: window,
          granted: initialGrant(window),
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
        if (half.x11) return this.x11.close(half.x11);
        this.toServer(p);
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
          // Not passed on as it is: the server gets window as the downstream drains.
          if (chan.state === "open") topUp(chan, this.toServer);
          return;
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
            (name === "x11-req" && !this.x11.grant(ds, new SshReader(p, dataPos))) ||
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
        if (type === MSG.CHANNEL_DATA) return this.joiner.data(p, chan.serverMaxPacket);
        this.toServer(p);
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
   * passes the message on with our id in place of the downstream's and our maximum packet size
   * (SERVER_MAX_PACKET) in place of its: sendData splits what the downstream cannot take whole.
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
      downstreamMaxData: Math.max(1, Math.min(f.maxPacket, ds.info.maxData)),
      ...init,
    };
    this.byUpstream.set(chan.upstreamId, chan);
    ds.byDownstreamId.set(chan.downstreamId, chan);
    if (chan.session) ds.sessions++;
    if (chan.state !== "unacknowledged") ds.byServer.set(chan.serverId, chan);
    writeUint32(p, f.idPos, chan.upstreamId);
    writeUint32(p, f.maxPos, SERVER_MAX_PACKET);
    this.toServer(p);
    return true;
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
    if (chan.session && this.byUpstream.get(chan.upstreamId) === chan) chan.ds.sessions--;
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
        this.x11.close(half.x11);
        continue;
      }
      this.toServer(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
        w.uint32(serverId).uint32(OPEN_FAILURE.CONNECT_FAILED)
          .string("PuTTY downstream no longer available").string("en");
      }));
    }
    ds.halfOpen.clear();
    for (const chan of [...ds.byDownstreamId.values()]) {
      if (chan.state === "open") {
        this.toServer(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.serverId)));
        chan.state = "sent_close";
      } else if (chan.state === "rcvd_close") {
        this.toServer(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.serverId)));
        this.removeChannel(chan);
      }
    }
    this.globals.cancelAll(ds);
    const waitingReply = this.globals.waitingFor(ds);
    if (ds.byDownstreamId.size === 0 && !waitingReply) this.forgetDownstream(ds);
  }

  private forgetDownstream(ds: Downstream): void {
    if (ds.removed) return;
    ds.removed = true;
    ds.alive = false;
    this.downstreams.delete(ds);
    this.x11.forget(ds);
    for (const chan of ds.byDownstreamId.values()) this.byUpstream.delete(chan.upstreamId);
    ds.byDownstreamId.clear();
    ds.byServer.clear();
    if (this.downstreamCount === 0) this.opts.onIdle?.();
  }

  private serverClosed(err: Error): void {
    if (this.serverGone) return;
    this.serverGone = err;
    this.server.close();
    this.globals.failAll();
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
    this.x11.clear();
  }
}
