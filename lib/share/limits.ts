/**
 * The sizes connection sharing works within, in one place: PuTTY's sharing-socket message limit
 * and what follows from it, the limits of the upstream's own in-process session, and the window
 * an X11 channel gets before its owner is known.
 */

import type { ConnectionLimits } from "../ssh/channel.ts";

/** Largest message on the sharing socket, including its 4-byte length field. */
export const MAX_SHARE_MESSAGE = 0x4010;

/** Largest CHANNEL_DATA payload that fits a sharing message (length + type + id + string len). */
export const SHARE_MAX_DATA = MAX_SHARE_MESSAGE - 4 - 1 - 4 - 4 - 4;

/** A downstream's limits over the sharing socket: every message fits MAX_SHARE_MESSAGE. */
export const SHARING_LIMITS: ConnectionLimits = {
  window: 2 * 1024 * 1024,
  maxPacket: 0x4000,
  maxSend: 0x4000,
};

/** Limits for our own session when we hold the real connection (no sharing-socket limit). */
export const DIRECT_LIMITS: ConnectionLimits = {
  window: 2 * 1024 * 1024,
  maxPacket: 32768,
  maxSend: 32768,
};

/**
 * The window we give the server on an X11 channel before its owner is known: room for a set-up
 * message with an MIT cookie (48 bytes) and then some; a client sends nothing more until the
 * X server has answered.
 */
export const X11_SETUP_WINDOW = 256;

/**
 * The largest packet the server may send on an X11 channel, fixed before its owner is known:
 * PuTTY's own (0x4000), which every downstream takes; we split larger ones for those who can't.
 */
export const X11_MAX_PACKET = 0x4000;
