/**
 * The sizes connection sharing works within, in one place: PuTTY's sharing-socket message limit
 * and what follows from it, the limits of the upstream's own in-process session, the window
 * an X11 channel gets before its owner is known, the OpenSSH control socket's sizes, and the
 * most window the server gets on a downstream's channel.
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
  // The upstream sets a downstream's pace: 4 MiB ran no faster than 1 and cost 3 MiB more.
  readAhead: 1024 * 1024,
};

/** Limits for our own session when we hold the real connection (no sharing-socket limit). */
export const DIRECT_LIMITS: ConnectionLimits = {
  window: 2 * 1024 * 1024,
  maxPacket: 32768,
  maxSend: 32768,
  // 200 MiB pscp downloads, 10 interleaved runs each: 0.78-0.87 s with 4 MiB, 0.89-0.93 s with 1.
  readAhead: 4 * 1024 * 1024,
};

/**
 * The largest packet the server may send on a channel the upstream relays, whatever smaller
 * size the downstream takes: the upstream splits it (its decryption costs per packet as well
 * as per byte, so fewer, larger packets take less of the one process every downstream shares).
 */
export const SERVER_MAX_PACKET = 32768;

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

/**
 * Largest frame on an OpenSSH control socket, either way: OpenSSH's master drops a client whose
 * message is longer (CHANNEL_MUX_MAX_PACKET), and its packet layer refuses larger packets
 * (PACKET_MAX_SIZE). A tool through a master uses DIRECT_LIMITS, well within it.
 */
export const MAX_MUX_FRAME = 256 * 1024;

/** Largest data payload our upstream sends an OpenSSH proxy client in one packet. */
export const MUX_PROXY_MAX_DATA = 65536;

/** An OpenSSH control client that lets this much of our replies pile up unread is dropped. */
export const MAX_MUX_REPLY_BACKLOG = 256 * 1024;

/**
 * The most window the server holds on one downstream's channel, whatever window the downstream
 * advertises (lib/share/window_clamp.ts): what one channel can make the upstream buffer.
 */
export const CHANNEL_WINDOW_LIMIT = 2 * 1024 * 1024;
