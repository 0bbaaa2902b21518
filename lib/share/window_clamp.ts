/**
 * How much window the upstream gives the server on a downstream's channel. Passing on whatever
 * window a downstream advertises would let one that never reads make us hold up to 4 GiB per
 * channel; instead the server gets at most CHANNEL_WINDOW_LIMIT at a time, and more only while
 * the downstream both has window left and is actually taking what we write to it.
 */

import { message, MSG } from "../ssh/wire.ts";
import { envNumber } from "./accept_guard.ts";
import type { Downstream, MuxChannel } from "./mux_state.ts";
import { CHANNEL_WINDOW_LIMIT as DEFAULT_LIMIT } from "./limits.ts";

/** Most window the server holds on one channel (PK_SHARE_CHANNEL_WINDOW for tests). */
const CHANNEL_WINDOW_LIMIT = envNumber("PK_SHARE_CHANNEL_WINDOW", DEFAULT_LIMIT);

export interface MeteredWindow {
  /** Bytes the server may still send us on the channel. */
  granted: number;
  /** Bytes the downstream has said it will still accept. */
  downstreamWindow: number;
}

/** The window to give the server in place of the downstream's `window` when the channel opens. */
export function initialGrant(window: number): number {
  return Math.min(window, CHANNEL_WINDOW_LIMIT);
}

/**
 * How much more window to give the server now: 0 for none yet (it still has over half of what
 * it may have), or -1 when the downstream has not taken what we queued for it (`backlog`
 * bytes): ask again once it has.
 */
export function windowToGrant(c: MeteredWindow, backlog: number): number {
  const target = Math.min(CHANNEL_WINDOW_LIMIT, c.downstreamWindow);
  const add = target - c.granted;
  if (add <= 0 || c.granted > target / 2) return 0;
  return backlog >= CHANNEL_WINDOW_LIMIT ? -1 : add;
}

/** Gives the server more window on `chan` if its downstream has room and is keeping up. */
export function topUp(chan: MuxChannel, toServer: (p: Uint8Array) => void): void {
  if (chan.state !== "open" || !chan.ds.alive) return;
  const add = windowToGrant(chan, chan.ds.port.backlog);
  if (add < 0) {
    chan.ds.owesWindow = true;
  } else if (add > 0) {
    chan.granted += add;
    toServer(message(MSG.CHANNEL_WINDOW_ADJUST, (w) => w.uint32(chan.serverId).uint32(add)));
  }
}

/** The downstream has taken some of what was queued for it: top up what waited on that. */
export function drained(ds: Downstream, toServer: (p: Uint8Array) => void): void {
  if (!ds.owesWindow) return;
  ds.owesWindow = false;
  for (const chan of ds.byServer.values()) topUp(chan, toServer);
}
