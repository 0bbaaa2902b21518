/**
 * The X11 protocol as much as an X11 forwarder needs it: the client's connection set-up message
 * (byte order, protocol version, authorisation name and data), read and rewritten, and the
 * failure reply a refused client gets (after PuTTY's x11fwd.c).
 */

export const MIT_COOKIE = "MIT-MAGIC-COOKIE-1";

/** 16-bit value in the client's byte order ('B' big-endian, 'l' little-endian). */
function get16(order: number, b: Uint8Array, at: number): number {
  return order === 0x42 ? (b[at] << 8) | b[at + 1] : b[at] | (b[at + 1] << 8);
}

function put16(order: number, b: Uint8Array, at: number, v: number): void {
  if (order === 0x42) {
    b[at] = v >> 8;
    b[at + 1] = v & 0xff;
  } else {
    b[at] = v & 0xff;
    b[at + 1] = v >> 8;
  }
}

const pad4 = (n: number) => (n + 3) & ~3;

/** An X connection set-up message (x11_make_greeting) with the given authorisation. */
export function makeGreeting(
  order: number,
  major: number,
  minor: number,
  protocol: string,
  data: Uint8Array,
): Uint8Array {
  const name = new TextEncoder().encode(protocol);
  const out = new Uint8Array(12 + pad4(name.length) + pad4(data.length));
  out[0] = order;
  put16(order, out, 2, major);
  put16(order, out, 4, minor);
  put16(order, out, 6, name.length);
  put16(order, out, 8, data.length);
  out.set(name, 12);
  out.set(data, 12 + pad4(name.length));
  return out;
}

/** The failure reply an X client gets instead of the server's (x11_send_init_error). */
export function failureReply(setup: Uint8Array, text: string): Uint8Array {
  const message = new TextEncoder().encode(text);
  const size = pad4(message.length);
  const out = new Uint8Array(8 + size);
  out[0] = 0; // failure
  out[1] = Math.min(message.length, 255);
  out.set(setup.subarray(2, 6), 2); // the client's protocol version
  put16(setup[0], out, 6, size >> 2);
  out.set(message, 8);
  return out;
}

/** The client's set-up message, parsed once all of it has arrived. */
export interface ClientSetup {
  order: number;
  major: number;
  minor: number;
  protocol: string;
  data: Uint8Array;
  /** Bytes after the set-up message (the client's first requests). */
  rest: Uint8Array;
}

/** Parses a complete set-up message from `buf`; undefined while more bytes are needed. */
export function parseSetup(buf: Uint8Array): ClientSetup | undefined {
  if (buf.length < 12) return undefined;
  const order = buf[0];
  const plen = get16(order, buf, 6);
  const dlen = get16(order, buf, 8);
  const end = 12 + pad4(plen) + pad4(dlen);
  if (buf.length < end) return undefined;
  return {
    order,
    major: get16(order, buf, 2),
    minor: get16(order, buf, 4),
    protocol: new TextDecoder("latin1").decode(buf.subarray(12, 12 + plen)),
    data: buf.slice(12 + pad4(plen), 12 + pad4(plen) + dlen),
    rest: buf.slice(end),
  };
}

/** Why a client's authorisation is refused (x11_verify), or undefined when it is ours. */
export function verifyAuth(setup: ClientSetup, cookie: Uint8Array): string | undefined {
  if (setup.protocol === "") return "No authorisation provided";
  if (setup.protocol !== MIT_COOKIE) {
    return `Unsupported authorisation protocol '${setup.protocol}'`;
  }
  const d = setup.data;
  if (d.length !== cookie.length || !d.every((x, i) => x === cookie[i])) {
    return "Authorisation not recognised";
  }
  return undefined;
}
