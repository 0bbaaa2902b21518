/**
 * What the multiplexer keeps per downstream and per channel: the routing state behind its
 * channel-number NAT (lib/share/mux.ts) and the X11 hand-over (lib/share/x11_handover.ts).
 */

import type { PacketPort } from "../ssh/packet_port.ts";

export type ChanState = "unacknowledged" | "open" | "sent_close" | "rcvd_close";

export interface MuxChannel {
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
  /** The most data one message to the downstream carries on this channel, if less than its own. */
  downstreamMaxData?: number;
  /** Bytes the server may still send (at most CHANNEL_WINDOW_LIMIT: see window_clamp.ts). */
  granted: number;
  /** The downstream has sent EOF / asked for a pty on this channel. */
  sentEof?: boolean;
  askedPty?: boolean;
  /** A session channel the downstream opened (counted against its share of sessions). */
  session?: boolean;
}

/** A server-initiated channel waiting for the downstream's answer. */
export interface HalfOpen {
  serverWindow: number;
  serverMaxPacket: number;
  /** An X11 channel we have already accepted from the server, being handed over. */
  x11?: X11Pending;
}

/**
 * An X11 channel the server opened, which we accept ourselves until its client's set-up message
 * says whose cookie it carries (PuTTY's share_xchannel).
 */
export interface X11Pending {
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

export interface Forwarding {
  host: string;
  port: number;
  active: boolean;
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
  /** Session channels it opened that are not yet gone (in any state). */
  sessions = 0;
  /** A channel of its waits for window until it takes what is queued for it. */
  owesWindow = false;
  alive = true;
  removed = false;
  constructor(readonly port: PacketPort, readonly info: DownstreamInfo) {}
}
