/**
 * OpenSSH's ControlMaster protocol (PROTOCOL.mux; the proxy-mode numbers are only in mux.c):
 * messages are `uint32 length, uint32 type, body`, most requests carrying a request id that the
 * reply echoes. After MUX_C_PROXY / MUX_S_PROXY the same socket carries unencrypted SSH packets,
 * `uint32 length, byte padding length, byte type, payload`: connection-layer traffic only.
 * Light: the downstream path loads this.
 */

import { SshReader, SshWriter } from "../ssh/wire.ts";

export const MUX_VERSION = 4;

export const MUX = {
  HELLO: 0x00000001,
  C_NEW_SESSION: 0x10000002,
  C_ALIVE_CHECK: 0x10000004,
  C_TERMINATE: 0x10000005,
  C_OPEN_FWD: 0x10000006,
  C_CLOSE_FWD: 0x10000007,
  C_NEW_STDIO_FWD: 0x10000008,
  C_STOP_LISTENING: 0x10000009,
  C_PROXY: 0x1000000f,
  S_OK: 0x80000001,
  S_PERMISSION_DENIED: 0x80000002,
  S_FAILURE: 0x80000003,
  S_EXIT_MESSAGE: 0x80000004,
  S_ALIVE: 0x80000005,
  S_SESSION_OPENED: 0x80000006,
  S_REMOTE_PORT: 0x80000007,
  S_TTY_ALLOC_FAIL: 0x80000008,
  S_PROXY: 0x8000000f,
} as const;

/** The peer broke the mux protocol (bad version, malformed or unexpected message). */
export class MuxProtocolError extends Error {}

/** A mux message body (without the length field): type, then whatever `fill` adds. */
export function muxMessage(type: number, fill?: (w: SshWriter) => void): Uint8Array {
  const w = new SshWriter(32).uint32(type);
  fill?.(w);
  return w.done();
}

export function helloMessage(): Uint8Array {
  return muxMessage(MUX.HELLO, (w) => w.uint32(MUX_VERSION));
}

/** Checks a peer's MUX_MSG_HELLO (version 4; extensions are name/value pairs we ignore). */
export function checkHello(body: Uint8Array): void {
  const r = new SshReader(body);
  const type = r.uint32();
  if (type !== MUX.HELLO) {
    throw new MuxProtocolError(`expected a mux hello, got message type 0x${hex(type)}`);
  }
  const version = r.uint32();
  if (version !== MUX_VERSION) {
    throw new MuxProtocolError(
      `unsupported multiplexing protocol version ${version} (expected ${MUX_VERSION})`,
    );
  }
  while (r.remaining > 0) {
    r.bytes();
    r.bytes();
  }
}

/** A status reply's text: MUX_S_FAILURE / MUX_S_PERMISSION_DENIED carry a reason. */
export function replyReason(r: SshReader): string {
  return r.remaining >= 4 ? r.string() : "";
}

export function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}
