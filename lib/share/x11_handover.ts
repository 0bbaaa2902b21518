/**
 * X11 channels through a shared connection, handed over as PuTTY's share_xchannel does: each
 * session's x11-req carries a cookie no other session uses; an X11 channel the server opens is
 * accepted here, with a small window, until its client's set-up message shows which cookie it
 * carries, and is then offered to that session's downstream as a channel of its own. A client
 * whose cookie nobody granted gets an X error ("Plink X11 proxy: Authorisation not recognised").
 */

import { failureReply, MIT_COOKIE, parseSetup, verifyAuth } from "../forward/x11_protocol.ts";
import { message, MSG, SshReader } from "../ssh/wire.ts";
import { X11_MAX_PACKET, X11_SETUP_WINDOW } from "./limits.ts";
import { cstring } from "./downstream_checks.ts";
import type { Downstream, HalfOpen, MuxChannel, X11Pending } from "./mux_state.ts";

/** A session's X11 forwarding: the (made-up) MIT cookie its x11-req gave the server. */
interface X11Grant {
  ds: Downstream;
  /** Only one X connection (x11-req's single-connection flag). */
  single: boolean;
}

/** What the hand-over needs of the multiplexer it works for. */
export interface X11Host {
  /** Sends a message to the server. */
  send(p: Uint8Array): void;
  /** A channel id of ours, unused. */
  allocId(): number;
  /** Routes `chan` from now on as an ordinary channel of its downstream. */
  adopt(chan: MuxChannel): void;
  /** Passes channel data to a downstream, split to what it takes. */
  sendData(ds: Downstream, type: number, p: Uint8Array): void;
  disconnect(ds: Downstream, reason: string): void;
}

export class X11Handover {
  /** X11 forwardings by cookie (hex): whose session an X client's channel belongs to. */
  private readonly grants = new Map<string, X11Grant>();
  /** X11 channels accepted from the server whose owner is not settled yet, by our id. */
  private readonly pending = new Map<number, X11Pending>();

  /** `appName`: how the X11 proxy names itself to X clients it refuses ("Plink", "PuTTY"). */
  constructor(private readonly host: X11Host, private readonly appName: string) {}

  /** Whether any session has X11 forwarding (else the server's X11 channels are refused). */
  get granted(): boolean {
    return this.grants.size > 0;
  }

  /** Handles a server message for one of our pending X11 channels; false when it isn't one. */
  serverMessage(upstreamId: number, type: number, p: Uint8Array): boolean {
    const x = this.pending.get(upstreamId);
    if (!x) return false;
    this.pendingMessage(x, type, p);
    return true;
  }

  /** The downstream is gone: its cookies route nothing any more. */
  forget(ds: Downstream): void {
    for (const [cookie, grant] of this.grants) {
      if (grant.ds === ds) this.grants.delete(cookie);
    }
  }

  /** The server connection is gone: nothing is pending, nothing granted. */
  clear(): void {
    this.pending.clear();
    this.grants.clear();
  }

  /**
   * A downstream's x11-req: allowed when it carries an MIT cookie no other session uses, which
   * then routes the server's X11 channels whose clients present it to this downstream. (PuTTY
   * gives the server a cookie of its own and swaps it back; passing the session's cookie on
   * routes just as well, as long as no two sessions share one.)
   */
  grant(ds: Downstream, r: SshReader): boolean {
    const single = r.bool();
    const protocol = cstring(r);
    const cookie = cstring(r).toLowerCase();
    if (protocol !== MIT_COOKIE || !/^[0-9a-f]{32}$/.test(cookie)) return false;
    const held = this.grants.get(cookie);
    if (held && held.ds !== ds) return false;
    this.grants.set(cookie, { ds, single });
    return true;
  }

  accept(serverId: number, half: HalfOpen, originator: Uint8Array): void {
    const pending: X11Pending = {
      upstreamId: this.host.allocId(),
      serverId,
      serverWindow: half.serverWindow,
      serverMaxPacket: half.serverMaxPacket,
      originator: originator.slice(),
      data: new Uint8Array(0),
    };
    this.pending.set(pending.upstreamId, pending);
    this.host.send(message(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
      w.uint32(serverId).uint32(pending.upstreamId).uint32(X11_SETUP_WINDOW)
        .uint32(X11_MAX_PACKET);
    }));
  }

  private pendingMessage(x: X11Pending, type: number, p: Uint8Array): void {
    const r = new SshReader(p, 5);
    switch (type) {
      case MSG.CHANNEL_DATA: {
        const data = r.bytes();
        const all = new Uint8Array(x.data.length + data.length);
        all.set(x.data);
        all.set(data, x.data.length);
        x.data = all;
        if (x.data.length > X11_SETUP_WINDOW) return this.close(x);
        if (!x.owner) this.route(x);
        return;
      }
      case MSG.CHANNEL_WINDOW_ADJUST:
        x.serverWindow = Math.min(0xffffffff, x.serverWindow + r.uint32());
        return;
      case MSG.CHANNEL_EOF:
        x.rcvdEof = true;
        if (!x.owner) this.close(x);
        return;
      case MSG.CHANNEL_CLOSE:
        x.rcvdClose = true;
        if (x.sentClose) {
          this.pending.delete(x.upstreamId);
        } else if (!x.owner) {
          this.close(x);
        }
        return;
      case MSG.CHANNEL_REQUEST: {
        r.string();
        if (r.bool() && !x.sentClose) {
          this.host.send(message(MSG.CHANNEL_FAILURE, (w) => w.uint32(x.serverId)));
        }
        return;
      }
      default:
        return;
    }
  }

  /** Once the client's set-up message is complete: hand the channel to its cookie's owner. */
  private route(x: X11Pending): void {
    const setup = parseSetup(x.data);
    if (!setup) return;
    const hex = [...setup.data].map((b) => b.toString(16).padStart(2, "0")).join("");
    const grant = setup.protocol === MIT_COOKIE ? this.grants.get(hex) : undefined;
    let refusal: string | undefined;
    if (setup.protocol !== MIT_COOKIE) {
      refusal = verifyAuth(setup, new Uint8Array(0)); // no or an unsupported authorisation
    } else if (!grant?.ds.alive) {
      refusal = "Authorisation not recognised";
    }
    if (refusal || !grant) {
      const reply = failureReply(x.data, `${this.appName} X11 proxy: ${refusal}\n`);
      if (reply.length <= x.serverWindow) {
        this.host.send(message(MSG.CHANNEL_DATA, (w) => w.uint32(x.serverId).string(reply)));
      }
      this.host.send(message(MSG.CHANNEL_EOF, (w) => w.uint32(x.serverId)));
      return this.close(x);
    }
    if (grant.single) this.grants.delete(hex);
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
  confirmed(ds: Downstream, x: X11Pending, downstreamId: number, window: number): void {
    ds.halfOpen.delete(x.serverId);
    this.pending.delete(x.upstreamId);
    if (ds.byDownstreamId.has(downstreamId)) {
      this.close(x);
      return this.host.disconnect(ds, `channel id ${downstreamId} is already in use`);
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
      granted: X11_SETUP_WINDOW - x.data.length,
      sentEof: false,
    };
    // Adopted, it gets the rest of its window as any channel does (window_clamp.ts).
    this.host.adopt(chan);
    if (x.data.length) {
      this.host.sendData(
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
  close(x: X11Pending): void {
    x.owner?.halfOpen.delete(x.serverId);
    x.owner = undefined;
    if (!x.sentClose) {
      x.sentClose = true;
      this.host.send(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(x.serverId)));
    }
    if (x.rcvdClose) this.pending.delete(x.upstreamId);
    else this.pending.set(x.upstreamId, x);
  }
}
