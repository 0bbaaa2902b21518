/**
 * The server side of the upstream's multiplexer: one PacketPort over one or more real SSH
 * connections to the same server, so that more sessions than the server allows on one
 * connection (OpenSSH's MaxSessions, 10 by default) are not simply refused.
 *
 * A session open the server refuses while we hold other sessions on that connection is taken as
 * the server's per-connection limit: the open waits (at most `waitMs`) until one of our sessions
 * there closes, or goes to a further connection, opened when `connectMore` can log in without
 * asking anyone. Only when the wait runs out does the multiplexer see the server's own refusal.
 *
 * Channel ids: the multiplexer's own ids (the "sender" it puts in CHANNEL_OPEN) are unique, so the
 * servers' replies pass through; the servers' ids for channels can clash between connections,
 * so the multiplexer is shown ids of ours for them ("pool ids"), mapped back on the way out.
 * Global requests (remote forwarding, keepalives) go to the first connection only.
 */

import type { PacketHandlers, PacketPort } from "../ssh/packet_port.ts";
import { PacketInbox, sendJoined } from "../ssh/packet_port.ts";
import { concatBytes, message, MSG, readUint32, SshReader, writeUint32 } from "../ssh/wire.ts";
import { errorText } from "../util/error_text.ts";
import { after } from "../util/timer.ts";
import { envNumber } from "./accept_guard.ts";

export interface PoolOptions {
  /** Opens one more logged-in connection to the same server without asking anyone; throws if it can't. */
  connectMore?: () => Promise<PacketPort>;
  /** Most real connections at once, the first included. */
  maxConnections: number;
  /** How long a session open may wait for room before the server's refusal is passed on. */
  waitMs: number;
  /** How long an extra connection with no channels stays open. */
  idleMs: number;
  log: (text: string) => void;
}

/**
 * Settings from the environment (tests shorten the waits): PK_SHARE_MAX_CONNECTIONS,
 * PK_SHARE_SESSION_WAIT_MS, PK_SHARE_EXTRA_IDLE_MS.
 */
export function poolSettings(): Omit<PoolOptions, "connectMore" | "log"> {
  return {
    maxConnections: envNumber("PK_SHARE_MAX_CONNECTIONS", 4),
    waitMs: envNumber("PK_SHARE_SESSION_WAIT_MS", 30000),
    idleMs: envNumber("PK_SHARE_EXTRA_IDLE_MS", 10000),
  };
}

/**
 * The most sessions one downstream may hold (PK_SHARE_SESSIONS_PER_DOWNSTREAM, default 8, below
 * OpenSSH's default MaxSessions): once the server's capacity is known, at most half of it, so
 * that one client can never take every session the server gives us.
 */
export function sessionsPerDownstream(pool: ServerPool): () => number {
  const most = envNumber("PK_SHARE_SESSIONS_PER_DOWNSTREAM", 8);
  return () => {
    const capacity = pool.sessionCapacity();
    return capacity === undefined ? most : Math.min(most, Math.max(1, Math.floor(capacity / 2)));
  };
}

interface ServerLink {
  port: PacketPort;
  /** 1 for the connection the upstream logged in with, 2... for extra ones. */
  number: number;
  /** Session channels the server confirmed and that are not yet closed both ways. */
  sessions: number;
  /** Session opens sent on this connection and not yet answered. */
  inflight: number;
  channels: Set<PoolChannel>;
  opens: Set<PendingOpen>;
  closed: boolean;
  cancelIdle?: () => void;
  /** After a refusal, no new opens here before this time (the server may lag in freeing one). */
  pausedUntil: number;
}

interface PendingOpen {
  /** The multiplexer's id for the channel (the CHANNEL_OPEN's sender). */
  ourId: number;
  payload: Uint8Array;
  session: boolean;
  link?: ServerLink;
  /** The server's refusal of this open, passed on if it never finds room. */
  refusal?: Uint8Array;
  /** Our sessions on its connection when it was sent. */
  heldAtSend: number;
  cancelWait?: () => void;
}

interface PoolChannel {
  link: ServerLink;
  poolId: number;
  serverId: number;
  /** The multiplexer's id, once known (server-initiated channels: when it accepts). */
  ourId?: number;
  session: boolean;
  sentClose: boolean;
  rcvdClose: boolean;
}

/**
 * How long a connection is left alone after the server refused a session there: sshd frees a
 * closed session a moment after the channel's last CLOSE, so an open sent straight after can
 * still be refused.
 */
const REFUSED_PAUSE_MS = 100;

/** Pool ids stay clear of 0 so that a stray zero is never a live channel. */
const FIRST_POOL_ID = 1;

export class ServerPool implements PacketPort {
  private readonly inbox = new PacketInbox();
  private readonly links: ServerLink[] = [];
  private readonly primary: ServerLink;
  private readonly opens = new Map<number, PendingOpen>();
  private readonly byPool = new Map<number, PoolChannel>();
  private readonly byOurs = new Map<number, PoolChannel>();
  private readonly queue: PendingOpen[] = [];
  private nextPoolId = FIRST_POOL_ID;
  private nextLinkNumber = 2;
  private connecting = 0;
  private cannotConnect = false;
  private closed = false;
  private pumpScheduled = false;
  /** Sessions the server allows on one connection, once it has refused one. */
  private limit?: number;
  /** The server's last refusal at its limit, for opens that never got one of their own. */
  private limitRefusal?: { reason: number; text: string };

  constructor(first: PacketPort, private readonly opts: PoolOptions) {
    this.primary = this.addLink(first, 1);
  }

  get backlog(): number {
    let n = 0;
    for (const l of this.links) n += l.port.backlog;
    return n;
  }

  /** Real connections open now. */
  get connectionCount(): number {
    return this.links.length;
  }

  /**
   * How many sessions the server will give us in all, once its per-connection limit is known:
   * that limit times the connections we have or may still open.
   */
  sessionCapacity(): number | undefined {
    if (this.limit === undefined) return undefined;
    const links = this.opts.connectMore && !this.cannotConnect
      ? this.opts.maxConnections
      : this.links.length;
    return this.limit * links;
  }

  start(handlers: PacketHandlers): void {
    this.inbox.start(handlers);
  }

  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const o of this.queue.splice(0)) o.cancelWait?.();
    for (const l of [...this.links]) this.dropLink(l);
    this.inbox.close(err);
  }

  // ---- multiplexer -> servers -----------------------------------------------------------------

  send(p: Uint8Array): void {
    if (this.closed || p.length === 0) return;
    const type = p[0];
    if (type === MSG.CHANNEL_OPEN) return this.open(p);
    // OPEN_CONFIRMATION ... FAILURE: everything naming a channel of the server's.
    if (type >= MSG.CHANNEL_OPEN_CONFIRMATION && type <= MSG.CHANNEL_FAILURE) {
      return this.channelMessage(p);
    }
    this.primary.port.send(p);
  }

  private open(p: Uint8Array): void {
    const r = new SshReader(p, 1);
    const type = r.string();
    const ourId = r.uint32();
    const o: PendingOpen = { ourId, payload: p, session: type === "session", heldAtSend: 0 };
    if (!o.session) return this.sendOpen(o, this.primary);
    const link = this.roomyLink();
    if (link) return this.sendOpen(o, link);
    this.enqueue(o);
  }

  private sendOpen(o: PendingOpen, link: ServerLink): void {
    o.link = link;
    o.heldAtSend = link.sessions;
    link.opens.add(o);
    if (o.session) link.inflight++;
    this.opens.set(o.ourId, o);
    link.cancelIdle?.();
    link.cancelIdle = undefined;
    // The payload may be sent again on another connection: ssh2 must not keep a view of it.
    link.port.send(o.payload.slice());
  }

  /** send() of a channel message made of `parts` joined (parts[0] holds type and channel). */
  sendParts(parts: Uint8Array[]): void {
    const head = parts[0];
    if (this.closed || head.length < 5) return;
    if (head[0] >= MSG.CHANNEL_OPEN_CONFIRMATION && head[0] <= MSG.CHANNEL_FAILURE) {
      return this.channelMessage(head, parts);
    }
    this.send(concatBytes(parts));
  }

  /** `p`, or the head of the message `parts` make (channel ids are rewritten in it). */
  private channelMessage(p: Uint8Array, parts?: Uint8Array[]): void {
    if (p.length < 5) return;
    const chan = this.byPool.get(readUint32(p, 1));
    if (!chan) return;
    const type = p[0];
    if (chan.link.closed) {
      if (type === MSG.CHANNEL_CLOSE) {
        chan.sentClose = true;
        this.maybeForget(chan);
      }
      return;
    }
    writeUint32(p, 1, chan.serverId);
    if (type === MSG.CHANNEL_OPEN_CONFIRMATION && p.length >= 9) {
      chan.ourId = readUint32(p, 5);
      this.byOurs.set(chan.ourId, chan);
    }
    const port = chan.link.port;
    if (parts) sendJoined(port, parts);
    else port.send(p);
    if (type === MSG.CHANNEL_OPEN_FAILURE) {
      this.forget(chan);
    } else if (type === MSG.CHANNEL_CLOSE) {
      chan.sentClose = true;
      this.maybeForget(chan);
    }
  }

  // ---- servers -> multiplexer -----------------------------------------------------------------

  private fromServer(link: ServerLink, p: Uint8Array): void {
    if (this.closed || p.length === 0) return;
    switch (p[0]) {
      case MSG.CHANNEL_OPEN:
        return this.serverOpen(link, p);
      case MSG.CHANNEL_OPEN_CONFIRMATION:
        return this.confirmed(link, p);
      case MSG.CHANNEL_OPEN_FAILURE:
        return this.refused(link, p);
      case MSG.CHANNEL_CLOSE: {
        const chan = p.length >= 5 ? this.byOurs.get(readUint32(p, 1)) : undefined;
        if (chan && chan.link === link) {
          chan.rcvdClose = true;
          this.inbox.deliver(p);
          return this.maybeForget(chan);
        }
        return this.inbox.deliver(p);
      }
      case MSG.GLOBAL_REQUEST:
      case MSG.REQUEST_SUCCESS:
      case MSG.REQUEST_FAILURE:
        if (link === this.primary) return this.inbox.deliver(p);
        // Global requests are only ever made on the first connection.
        if (p[0] === MSG.GLOBAL_REQUEST) this.refuseGlobal(link, p);
        return;
      default:
        return this.inbox.deliver(p);
    }
  }

  private refuseGlobal(link: ServerLink, p: Uint8Array): void {
    try {
      const r = new SshReader(p, 1);
      r.string();
      if (r.bool()) link.port.send(message(MSG.REQUEST_FAILURE));
    } catch { /* malformed: nothing to answer */ }
  }

  private serverOpen(link: ServerLink, p: Uint8Array): void {
    let at: number;
    try {
      const r = new SshReader(p, 1);
      r.string();
      at = r.pos;
      r.uint32();
    } catch {
      return;
    }
    const chan: PoolChannel = {
      link,
      poolId: this.allocPoolId(),
      serverId: readUint32(p, at),
      session: false,
      sentClose: false,
      rcvdClose: false,
    };
    this.byPool.set(chan.poolId, chan);
    link.channels.add(chan);
    writeUint32(p, at, chan.poolId);
    this.inbox.deliver(p);
  }

  private confirmed(link: ServerLink, p: Uint8Array): void {
    if (p.length < 9) return;
    const o = this.opens.get(readUint32(p, 1));
    if (!o || o.link !== link) return;
    this.settled(o);
    const chan: PoolChannel = {
      link,
      poolId: this.allocPoolId(),
      serverId: readUint32(p, 5),
      ourId: o.ourId,
      session: o.session,
      sentClose: false,
      rcvdClose: false,
    };
    if (o.session) link.sessions++;
    this.byPool.set(chan.poolId, chan);
    this.byOurs.set(chan.ourId!, chan);
    link.channels.add(chan);
    writeUint32(p, 5, chan.poolId);
    this.inbox.deliver(p);
  }

  private refused(link: ServerLink, p: Uint8Array): void {
    if (p.length < 5) return;
    const o = this.opens.get(readUint32(p, 1));
    if (!o || o.link !== link) return;
    this.settled(o);
    const held = Math.max(link.sessions, o.heldAtSend);
    if (o.session && (held > 0 || this.limit !== undefined)) {
      // Refused while we hold others there: the server's per-connection limit. Once that is
      // known, a refusal just after our sessions closed is sshd not having freed them yet.
      o.refusal = p;
      if (held > 0) this.learnLimit(p, held);
      this.queue.unshift(o);
      this.startWait(o);
      link.pausedUntil = Date.now() + REFUSED_PAUSE_MS;
      this.pumpLater(REFUSED_PAUSE_MS);
      return this.pump();
    }
    this.inbox.deliver(p);
  }

  private learnLimit(p: Uint8Array, held: number): void {
    try {
      const r = new SshReader(p, 5);
      this.limitRefusal = { reason: r.uint32(), text: r.string() };
    } catch { /* keep the last one */ }
    // The most seen at once: a refusal just after a close can come below the real limit.
    if (this.limit !== undefined && this.limit >= held) return;
    this.limit = held;
    this.opts.log(
      `server allows ${this.limit} sessions per connection; further ones wait for room` +
        (this.opts.connectMore && this.opts.maxConnections > 1
          ? ` or go over up to ${this.opts.maxConnections - 1} more connections`
          : ""),
    );
  }

  /** An open has its answer (or is being moved): it no longer counts on its connection. */
  private settled(o: PendingOpen): void {
    this.opens.delete(o.ourId);
    if (o.link) {
      o.link.opens.delete(o);
      if (o.session) o.link.inflight--;
      o.link = undefined;
    }
  }

  // ---- waiting for room -----------------------------------------------------------------------

  private roomyLink(): ServerLink | undefined {
    const now = Date.now();
    for (const l of this.links) {
      if (l.closed || l.pausedUntil > now) continue;
      if (this.limit === undefined || l.sessions + l.inflight < this.limit) return l;
    }
    return undefined;
  }

  private pumpLater(ms: number): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    after(ms, () => {
      this.pumpScheduled = false;
      if (!this.closed) this.pump();
    });
  }

  private enqueue(o: PendingOpen): void {
    this.queue.push(o);
    this.startWait(o);
    this.pump();
  }

  private startWait(o: PendingOpen): void {
    if (o.cancelWait) return;
    o.cancelWait = after(this.opts.waitMs, () => {
      const i = this.queue.indexOf(o);
      if (i < 0) return;
      this.queue.splice(i, 1);
      this.inbox.deliver(o.refusal ?? this.refusalFor(o.ourId));
    });
  }

  private refusalFor(ourId: number): Uint8Array {
    const { reason, text } = this.limitRefusal ?? { reason: 1, text: "open failed" };
    return message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
      w.uint32(ourId).uint32(reason).string(text).string("");
    });
  }

  /** Gives waiting opens what room there is, and asks for more connections if that is not enough. */
  private pump(): void {
    while (this.queue.length) {
      const link = this.roomyLink();
      if (!link) break;
      const o = this.queue.shift()!;
      o.cancelWait?.();
      o.cancelWait = undefined;
      this.sendOpen(o, link);
    }
    if (!this.queue.length) return;
    // A connection paused after a refusal gets another look when its pause ends, even if no
    // session closes meanwhile (a second refusal may have extended the pause).
    const now = Date.now();
    const resume = Math.min(
      ...this.links.filter((l) => !l.closed && l.pausedUntil > now).map((l) => l.pausedUntil),
    );
    if (Number.isFinite(resume)) this.pumpLater(resume - now);
    this.connectMoreIfUseful();
  }

  private connectMoreIfUseful(): void {
    const more = this.opts.connectMore;
    if (!more || this.cannotConnect || this.limit === undefined || this.limit < 1) return;
    const wanted = Math.ceil(this.queue.length / this.limit) - this.connecting;
    const room = this.opts.maxConnections - this.links.length - this.connecting;
    for (let i = 0; i < Math.min(wanted, room); i++) {
      const number = this.nextLinkNumber++;
      this.connecting++;
      this.opts.log(`opening connection #${number} to the server for waiting sessions`);
      more().then(
        (port) => {
          this.connecting--;
          if (this.closed) return port.close();
          this.addLink(port, number);
          this.opts.log(`connection #${number} is up: sharing over ${this.links.length}`);
          this.pump();
        },
        (e) => {
          this.connecting--;
          this.cannotConnect = true;
          this.opts.log(`could not open connection #${number}: ${errorText(e)}; sessions wait`);
        },
      );
    }
  }

  // ---- connections and channels ---------------------------------------------------------------

  private addLink(port: PacketPort, number: number): ServerLink {
    const link: ServerLink = {
      port,
      number,
      sessions: 0,
      inflight: 0,
      channels: new Set(),
      opens: new Set(),
      closed: false,
      pausedUntil: 0,
    };
    this.links.push(link);
    port.start({
      packet: (p) => this.fromServer(link, p),
      closed: (err) => this.linkLost(link, err),
    });
    return link;
  }

  private linkLost(link: ServerLink, err?: Error): void {
    if (link.closed || this.closed) return;
    if (link === this.primary) return this.close(err ?? new Error("server closed the connection"));
    this.opts.log(`connection #${link.number} lost${err ? `: ${err.message}` : ""}`);
    this.dropLink(link);
    // Its channels are gone with it; its unanswered opens try elsewhere.
    for (const chan of [...link.channels]) {
      if (chan.ourId !== undefined && !chan.rcvdClose) {
        chan.rcvdClose = true;
        this.inbox.deliver(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan.ourId!)));
      }
      this.maybeForget(chan);
    }
    for (const o of [...link.opens]) {
      this.settled(o);
      if (o.session) {
        this.queue.unshift(o);
        this.startWait(o);
      } else {
        this.inbox.deliver(message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
          w.uint32(o.ourId).uint32(2).string("connection to the server lost").string("");
        }));
      }
    }
    this.pump();
  }

  private dropLink(link: ServerLink): void {
    if (link.closed) return;
    link.closed = true;
    link.cancelIdle?.();
    const i = this.links.indexOf(link);
    if (i >= 0) this.links.splice(i, 1);
    link.port.close();
  }

  private maybeForget(chan: PoolChannel): void {
    if (chan.rcvdClose && (chan.sentClose || chan.link.closed)) this.forget(chan);
  }

  private forget(chan: PoolChannel): void {
    if (!this.byPool.delete(chan.poolId)) return;
    if (chan.ourId !== undefined && this.byOurs.get(chan.ourId) === chan) {
      this.byOurs.delete(chan.ourId);
    }
    const link = chan.link;
    link.channels.delete(chan);
    if (chan.session) link.sessions--;
    if (link.closed) return;
    if (chan.session) this.pump();
    if (link !== this.primary && link.channels.size === 0 && link.opens.size === 0) {
      link.cancelIdle?.();
      link.cancelIdle = after(this.opts.idleMs, () => {
        if (link.channels.size || link.opens.size) return;
        this.opts.log(`connection #${link.number} idle; closing it`);
        this.dropLink(link);
      });
    }
  }

  private allocPoolId(): number {
    for (;;) {
      const id = this.nextPoolId;
      this.nextPoolId = id >= 0xfffffff0 ? FIRST_POOL_ID : id + 1;
      if (!this.byPool.has(id)) return id;
    }
  }
}
