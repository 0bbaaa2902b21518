/**
 * Global requests through a shared connection, as PuTTY's sharing.c relays them: only
 * tcpip-forward and cancel-tcpip-forward from downstreams (with want-reply forced on, so we can
 * track them), and our own; the server answers in request order, so one FIFO matches every
 * reply to its request. A forwarded-tcpip channel the server opens goes to the downstream that
 * asked for the forwarding.
 */

import { message, MSG, type SshReader } from "../ssh/wire.ts";
import { cstring, expectEnd } from "./downstream_checks.ts";
import type { Downstream, Forwarding } from "./mux_state.ts";

interface GlobalRequest {
  ds?: Downstream;
  kind: "tcpip-forward" | "cancel-tcpip-forward" | "internal";
  wantReply: boolean;
  fwd?: Forwarding;
  resolve?: (ok: boolean) => void;
}

/** What the relay needs of the multiplexer it works for. */
export interface GlobalRequestHost {
  /** Sends a message to the server. */
  send(p: Uint8Array): void;
  downstreams(): Iterable<Downstream>;
  /** A reply for `ds` has come (it may have been the last thing a departed one waited for). */
  settled(ds: Downstream): void;
}

export class GlobalRequests {
  private readonly queue: GlobalRequest[] = [];

  constructor(private readonly host: GlobalRequestHost) {}

  /** Sends a global request of our own (e.g. keepalive) through the shared reply queue. */
  internal(name: string, wantReply: boolean): Promise<boolean> {
    this.host.send(message(MSG.GLOBAL_REQUEST, (w) => w.string(name).bool(wantReply)));
    if (!wantReply) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.queue.push({ kind: "internal", wantReply, resolve });
    });
  }

  /** The server's reply to the oldest global request. */
  reply(ok: boolean, p: Uint8Array): void {
    const req = this.queue.shift();
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
    this.host.settled(ds);
  }

  /** The downstream whose remote forwarding a forwarded-tcpip channel is for. */
  owner(host: string, port: number): Downstream | undefined {
    for (const ds of this.host.downstreams()) {
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

  /** tcpip-forward and cancel-tcpip-forward are relayed; other global requests refused. */
  fromDownstream(ds: Downstream, p: Uint8Array, r: SshReader): void {
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
      for (const other of this.host.downstreams()) {
        if (other.alive && other.forwardings.has(key)) return fail();
      }
      const fwd: Forwarding = { host, port, active: false };
      ds.forwardings.set(key, fwd);
      p[wantReplyPos] = 1;
      this.host.send(p);
      this.queue.push({ ds, kind: "tcpip-forward", wantReply, fwd });
    } else {
      const fwd = ds.forwardings.get(key);
      if (!fwd) return fail();
      p[wantReplyPos] = 1;
      this.host.send(p);
      this.queue.push({ ds, kind: "cancel-tcpip-forward", wantReply, fwd });
    }
  }

  /** Whether a reply to one of `ds`'s requests is still to come. */
  waitingFor(ds: Downstream): boolean {
    return this.queue.some((g) => g.ds === ds);
  }

  /** Cancels the remote forwardings `ds` set up (it has gone). */
  cancelAll(ds: Downstream): void {
    for (const [key, fwd] of ds.forwardings) {
      if (!fwd.active) continue;
      this.host.send(message(MSG.GLOBAL_REQUEST, (w) => {
        w.string("cancel-tcpip-forward").bool(false).string(fwd.host).uint32(fwd.port);
      }));
      ds.forwardings.delete(key);
    }
  }

  /** The server is gone: our own requests fail. */
  failAll(): void {
    for (const q of this.queue.splice(0)) q.resolve?.(false);
  }
}

function fwdKey(host: string, port: number): string {
  return `${host}\0${port}`;
}
