/**
 * SSH binary encoding (RFC 4251 section 5) and the connection-protocol message numbers.
 * Kept free of any crypto or ssh2 import: the downstream path loads this.
 */

export const MSG = {
  DISCONNECT: 1,
  IGNORE: 2,
  UNIMPLEMENTED: 3,
  DEBUG: 4,
  GLOBAL_REQUEST: 80,
  REQUEST_SUCCESS: 81,
  REQUEST_FAILURE: 82,
  CHANNEL_OPEN: 90,
  CHANNEL_OPEN_CONFIRMATION: 91,
  CHANNEL_OPEN_FAILURE: 92,
  CHANNEL_WINDOW_ADJUST: 93,
  CHANNEL_DATA: 94,
  CHANNEL_EXTENDED_DATA: 95,
  CHANNEL_EOF: 96,
  CHANNEL_CLOSE: 97,
  CHANNEL_REQUEST: 98,
  CHANNEL_SUCCESS: 99,
  CHANNEL_FAILURE: 100,
} as const;

/** SSH_OPEN_* reason codes for CHANNEL_OPEN_FAILURE. */
export const OPEN_FAILURE = {
  ADMINISTRATIVELY_PROHIBITED: 1,
  CONNECT_FAILED: 2,
  UNKNOWN_CHANNEL_TYPE: 3,
  RESOURCE_SHORTAGE: 4,
} as const;

export const DISCONNECT_PROTOCOL_ERROR = 2;
export const DISCONNECT_BY_APPLICATION = 11;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

export function fromUtf8(b: Uint8Array): string {
  return decoder.decode(b);
}

/** Thrown by SshReader when a message is shorter than its fields claim. */
export class TruncatedMessage extends Error {
  constructor() {
    super("truncated SSH message");
  }
}

/** Sequential reader over one SSH message payload. */
export class SshReader {
  pos = 0;
  private readonly view: DataView;
  constructor(readonly buf: Uint8Array, start = 0) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new TruncatedMessage();
  }
  byte(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  bool(): boolean {
    return this.byte() !== 0;
  }
  uint32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  uint64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return Number(v);
  }
  /** An SSH `string` as raw bytes (a view, not a copy). */
  bytes(): Uint8Array {
    const n = this.uint32();
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  string(): string {
    return fromUtf8(this.bytes());
  }
  rest(): Uint8Array {
    const out = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return out;
  }
}

/** Growable writer building one SSH message payload. */
export class SshWriter {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;
  constructor(initial = 64) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  byte(v: number): this {
    this.reserve(1);
    this.buf[this.length++] = v;
    return this;
  }
  bool(v: boolean): this {
    return this.byte(v ? 1 : 0);
  }
  uint32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
    return this;
  }
  uint64(v: number): this {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v));
    this.length += 8;
    return this;
  }
  raw(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  string(v: string | Uint8Array): this {
    const b = typeof v === "string" ? utf8(v) : v;
    this.uint32(b.length);
    return this.raw(b);
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Builds a message: type byte followed by whatever `fill` writes. */
export function message(type: number, fill?: (w: SshWriter) => void): Uint8Array {
  const w = new SshWriter();
  w.byte(type);
  fill?.(w);
  return w.done();
}

export function readUint32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

export function writeUint32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
