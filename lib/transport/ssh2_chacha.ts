/**
 * chacha20-poly1305@openssh.com for npm:ssh2's JavaScript path (the one Deno runs), with one
 * node:crypto cipher per packet where ssh2 makes three. ssh2 makes a cipher for the 4-byte
 * length, one for the Poly1305 key and one for the payload, and each costs a Node Transform
 * stream's set-up under Deno: with the 32 KiB packets of a bulk transfer that was a fifth of the
 * time spent decrypting. Here the Poly1305 key (block 0 of the main key's stream) and the payload
 * (from block 1 on) come from one cipher, and the length's one block is computed in JavaScript.
 * The cipher is finished after its last update: Deno keeps a cipher's native state until
 * final().
 *
 * The packet format is OpenSSH's PROTOCOL.chacha20poly1305: main key K_1 = key[0..32], header
 * key K_2 = key[32..64], 64-bit nonce = the sequence number (big-endian), the MAC over the
 * encrypted length and payload. Installed on ssh2's cipher classes by ssh2_internals.ts; until
 * our Poly1305 instance is ready, ssh2's own methods run (they share the per-packet state).
 */

import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, randomFillSync } from "node:crypto";
import { FRAME_HEAD, FRAME_TAIL } from "../ssh/framed_payload.ts";
import { inboundBuffer } from "../ssh/inbound_reuse.ts";
import { type NativeChachaPoly, nativeChachaPoly } from "./openssl_chacha.ts";
import createPoly1305 from "npm:ssh2@1.17.0/lib/protocol/crypto/poly1305.js";

/** ssh2's limit on a packet (crypto.js MAX_PACKET_SIZE). */
const MAX_PACKET = 35000;

interface PolyModule {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(at: number): void;
  _poly1305_auth(
    out: number,
    m: number,
    mLen: number,
    m2: number,
    m2Len: number,
    key: number,
  ): void;
}

/**
 * A Poly1305 instance of our own (ssh2's is private to its module). An incoming packet is
 * gathered straight into its memory (see InboundPacket), where the tag is computed and from where
 * it is deciphered: no buffer of its own per packet.
 */
class Poly1305 {
  private readonly out: number;
  private readonly key: number;
  private readonly head: number;
  private readonly body: number;

  constructor(readonly mod: PolyModule) {
    this.out = mod._malloc(16);
    this.key = mod._malloc(32);
    this.head = mod._malloc(4);
    this.body = mod._malloc(MAX_PACKET);
  }

  /** The tag of head || body (at `bodyAt` in our memory, else copied there) under key[0..32]. */
  auth(
    tag: Uint8Array,
    head: Uint8Array,
    body: Uint8Array | number,
    bodyLen: number,
    key: Uint8Array,
  ) {
    // Fetched at every use: the module's memory may have grown (a new buffer) since.
    const heap = this.mod.HEAPU8;
    heap.set(key.subarray(0, 32), this.key);
    heap.set(head, this.head);
    let at = body as number;
    if (typeof body !== "number") {
      heap.set(body, this.body);
      at = this.body;
    }
    this.mod._poly1305_auth(this.out, this.head, head.length, at, bodyLen, this.key);
    tag.set(this.mod.HEAPU8.subarray(this.out, this.out + 16));
  }
}

let poly: Poly1305 | undefined;
const polyReady = (createPoly1305 as () => Promise<PolyModule>)().then((m) => {
  poly = new Poly1305(m);
});

/** Settles once the fast path is on (for tests). */
export function chachaReady(): Promise<void> {
  return polyReady;
}

/**
 * ChaCha20 block `counter` for `key` (8 words) and the 64-bit nonce 0 || seqno as OpenSSH forms
 * it, as 16 little-endian words into `out`. Plain locals, no arrays in the rounds: this runs for
 * every packet (the length's block) and for all of a small one.
 */
function chachaBlock(key: Uint32Array, seqno: number, counter: number, out: Uint32Array): void {
  let x0 = 0x61707865, x1 = 0x3320646e, x2 = 0x79622d32, x3 = 0x6b206574;
  let x4 = key[0], x5 = key[1], x6 = key[2], x7 = key[3];
  let x8 = key[4], x9 = key[5], x10 = key[6], x11 = key[7];
  // Words 12, 13: the block counter. Words 14, 15: the nonce's bytes read little-endian.
  const n15 = (seqno >>> 24) | ((seqno >>> 8) & 0xff00) | ((seqno << 8) & 0xff0000) | (seqno << 24);
  let x12 = counter, x13 = 0, x14 = 0, x15 = n15;
  for (let i = 0; i < 10; i++) {
    // Columns.
    x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 16) | (x12 >>> 16);
    x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 8) | (x12 >>> 24);
    x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 16) | (x13 >>> 16);
    x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 8) | (x13 >>> 24);
    x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 16) | (x14 >>> 16);
    x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 8) | (x14 >>> 24);
    x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 16) | (x15 >>> 16);
    x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 8) | (x15 >>> 24);
    x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 7) | (x7 >>> 25);
    // Diagonals.
    x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 16) | (x15 >>> 16);
    x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 8) | (x15 >>> 24);
    x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 16) | (x12 >>> 16);
    x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 8) | (x12 >>> 24);
    x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 16) | (x13 >>> 16);
    x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 8) | (x13 >>> 24);
    x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 16) | (x14 >>> 16);
    x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 8) | (x14 >>> 24);
    x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 7) | (x4 >>> 25);
  }
  out[0] = x0 + 0x61707865, out[1] = x1 + 0x3320646e, out[2] = x2 + 0x79622d32;
  out[3] = x3 + 0x6b206574, out[4] = x4 + key[0], out[5] = x5 + key[1], out[6] = x6 + key[2];
  out[7] = x7 + key[3], out[8] = x8 + key[4], out[9] = x9 + key[5], out[10] = x10 + key[6];
  out[11] = x11 + key[7], out[12] = x12 + counter, out[13] = x13, out[14] = x14;
  out[15] = x15 + n15;
}

const BLOCK = new Uint32Array(16);

/** The first word of block 0: XORed into the big-endian packet length. */
export function chachaFirstWord(key: Uint32Array, seqno: number): number {
  chachaBlock(key, seqno, 0, BLOCK);
  return BLOCK[0];
}

/**
 * Packets up to this long are enciphered here, in JavaScript: a node:crypto cipher costs ~10 us
 * to make when one is made every few microseconds, and ~90 us when one is made now and then (a
 * shared command's few packets), where a block here is a fraction of a microsecond. Only longer
 * ones go to libcrypto, so it is loaded (6-13 ms, 3 MiB of its pages) once bulk data flows, not
 * by every connection for its key exchange and a short command.
 */
const SMALL_PACKET = 1024;

const POLY_KEY = new Uint8Array(32);

/** The Poly1305 key for packet `seqno`: the first 32 bytes of block 0 (in a shared buffer). */
function polyKeyOf(key: Uint32Array, seqno: number): Uint8Array {
  chachaBlock(key, seqno, 0, BLOCK);
  for (let i = 0; i < 32; i++) POLY_KEY[i] = BLOCK[i >> 2] >>> ((i & 3) * 8);
  return POLY_KEY;
}

/** XORs the keystream from block 1 on into `data`, in place. */
function xorKeystream(key: Uint32Array, seqno: number, data: Uint8Array): void {
  for (let at = 0, counter = 1; at < data.length; at += 64, counter++) {
    chachaBlock(key, seqno, counter, BLOCK);
    const n = Math.min(64, data.length - at);
    for (let i = 0; i < n; i++) data[at + i] ^= BLOCK[i >> 2] >>> ((i & 3) * 8);
  }
}

/** The length XOR mask as a big-endian number, from the keystream's first four bytes. */
function lengthMask(key: Uint32Array, seqno: number): number {
  const w = chachaFirstWord(key, seqno);
  return (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0;
}

function keyWords(key: Uint8Array): Uint32Array {
  const dv = new DataView(key.buffer, key.byteOffset, 32);
  return Uint32Array.from({ length: 8 }, (_, i) => dv.getUint32(4 * i, true));
}

/** Written afresh for every cipher: node:crypto copies the IV when it makes one. */
const ivScratch = Buffer.alloc(16);

/** IV for node:crypto's chacha20: counter 0 (4 bytes LE), then the nonce 0 || seqno (BE). */
function ivFor(seqno: number): Buffer {
  ivScratch.writeUInt32BE(seqno, 12);
  return ivScratch;
}

const ZEROS_BLOCK = Buffer.alloc(64);

/** Whether two 16-byte tags are equal, in time independent of where they differ. */
function sameTag(a: Uint8Array, b: Uint8Array): boolean {
  let diff = 0;
  for (let i = 0; i < 16; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
const BAD_LENGTH = "Bad packet length";

type Cryptor = Record<string, unknown>;

interface DecipherState {
  inSeqno: number;
  _onPayload: (payload: Buffer) => unknown;
  _decKeyMain: Buffer;
  _decKeyPktLen: Buffer;
  _len: number;
  _lenBuf: Buffer;
  _lenPos: number;
  _packet: Uint8Array | null;
  _pktLen: number;
  _mac: Buffer;
  _calcMac: Buffer;
  _macPos: number;
  _pkHeaderKey?: Uint32Array;
  _pkMainKey?: Uint32Array;
  /** The packet being gathered for libcrypto: its encrypted length, then its body. */
  _pkWhole?: Uint8Array;
  /** Where in Poly1305's memory this decipher gathers a packet (without libcrypto). */
  _pkInbound?: number;
}

interface CipherState {
  outSeqno: number;
  _onWrite: (data: Uint8Array) => void;
  _encKeyMain: Buffer;
  _encKeyPktLen: Buffer;
  _dead: boolean;
  _pkHeaderKey?: Uint32Array;
  _pkMainKey?: Uint32Array;
}

/** ssh2's ChaChaPolyDecipherNative#decrypt, with one cipher per packet. */
function decrypt(
  this: DecipherState,
  fallback: (data: Uint8Array, p: number, dataLen: number) => unknown,
  data: Uint8Array,
  p: number,
  dataLen: number,
): unknown {
  const mac = poly;
  if (!mac) return fallback.call(this, data, p, dataLen);
  const headerKey = this._pkHeaderKey ??= keyWords(this._decKeyPktLen);
  while (p < dataLen) {
    if (this._lenPos < 4) {
      while (this._lenPos < 4 && p < dataLen) this._lenBuf[this._lenPos++] = data[p++];
      if (this._lenPos < 4) return;
      this._len = (this._lenBuf.readUInt32BE(0) ^ lengthMask(headerKey, this.inSeqno)) >>> 0;
      if (this._len > MAX_PACKET || this._len < 8 || (this._len & 7) !== 0) {
        throw new Error(BAD_LENGTH);
      }
    }
    const native = this._len > SMALL_PACKET ? nativeChachaPoly() : undefined;
    if (native && !this._pkWhole) {
      // Gathered in a buffer of its own: libcrypto deciphers it there, and it becomes the packet.
      this._pkWhole = inboundBuffer(4 + this._len);
      this._pkWhole.set(this._lenBuf);
    }
    const whole = this._pkWhole;
    const inbound = whole ? 0 : this._pkInbound ??= mac.mod._malloc(MAX_PACKET);
    const into = whole ? (bytes: Uint8Array, at: number) => whole.set(bytes, 4 + at) : (
      bytes: Uint8Array,
      at: number,
    ) => mac.mod.HEAPU8.set(bytes, inbound + at);
    if (this._packet) {
      // What ssh2's own decrypt gathered before the fast path was ready.
      into(this._packet.subarray(0, this._pktLen), 0);
      this._packet = null;
    }
    if (this._pktLen < this._len) {
      if (p >= dataLen) return;
      const nb = Math.min(this._len - this._pktLen, dataLen - p);
      into(data.subarray(p, p + nb), this._pktLen);
      p += nb;
      this._pktLen += nb;
      if (this._pktLen < this._len || p >= dataLen) return;
    }
    {
      const nb = Math.min(16 - this._macPos, dataLen - p);
      this._mac.set(data.subarray(p, p + nb), this._macPos);
      p += nb;
      this._macPos += nb;
      if (this._macPos < 16) return;
    }
    let packet: Uint8Array;
    if (whole && native) {
      native.authenticate(this._decKeyMain, this.inSeqno, whole, this._calcMac);
      if (!sameTag(this._calcMac, this._mac)) throw new Error("Invalid MAC");
      packet = whole.subarray(4);
      native.decipher(packet);
      this._pkWhole = undefined;
    } else if (this._len <= SMALL_PACKET) {
      const key = this._pkMainKey ??= keyWords(this._decKeyMain);
      mac.auth(this._calcMac, this._lenBuf, inbound, this._len, polyKeyOf(key, this.inSeqno));
      if (!sameTag(this._calcMac, this._mac)) throw new Error("Invalid MAC");
      packet = mac.mod.HEAPU8.slice(inbound, inbound + this._len);
      xorKeystream(key, this.inSeqno, packet);
    } else {
      const cipher = createDecipheriv("chacha20", this._decKeyMain, ivFor(this.inSeqno));
      try {
        mac.auth(this._calcMac, this._lenBuf, inbound, this._len, cipher.update(ZEROS_BLOCK));
        if (!sameTag(this._calcMac, this._mac)) throw new Error("Invalid MAC");
        packet = cipher.update(mac.mod.HEAPU8.subarray(inbound, inbound + this._len));
      } finally {
        cipher.final();
      }
    }
    const payload = Buffer.from(
      packet.buffer,
      packet.byteOffset + 1,
      packet.length - packet[0] - 1,
    );
    this.inSeqno = (this.inSeqno + 1) >>> 0;
    this._len = 0;
    this._lenPos = 0;
    this._packet = null;
    this._pktLen = 0;
    this._macPos = 0;
    const ret = this._onPayload(payload);
    if (ret !== undefined) return ret === false ? p : ret;
  }
}

/** ssh2's ChaChaPolyCipherNative#encrypt: with libcrypto, else one cipher per packet. */
function encrypt(
  this: CipherState,
  fallback: (packet: Buffer) => unknown,
  packet: Buffer,
): unknown {
  const mac = poly;
  if (!mac) return fallback.call(this, packet);
  if (this._dead) return;
  const headerKey = this._pkHeaderKey ??= keyWords(this._encKeyPktLen);
  const native = packet.length - 4 > SMALL_PACKET ? nativeChachaPoly() : undefined;
  if (native) {
    // Sealed in a copy with room for the tag, one write: the packet may be a framed payload's
    // buffer, handed out again once this returns.
    const sealed = Buffer.allocUnsafe(packet.length + 16);
    sealed.set(packet);
    this._onWrite(sealWithTagRoom(native, this, sealed, packet.length));
    return;
  }
  let polyKey: Uint8Array;
  let body: Buffer;
  if (packet.length - 4 <= SMALL_PACKET) {
    const key = this._pkMainKey ??= keyWords(this._encKeyMain);
    polyKey = polyKeyOf(key, this.outSeqno);
    body = Buffer.from(packet.subarray(4));
    xorKeystream(key, this.outSeqno, body);
  } else {
    const cipher = createCipheriv("chacha20", this._encKeyMain, ivFor(this.outSeqno));
    try {
      polyKey = cipher.update(ZEROS_BLOCK);
      body = cipher.update(packet.subarray(4));
    } finally {
      cipher.final();
    }
  }
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE((packet.readUInt32BE(0) ^ lengthMask(headerKey, this.outSeqno)) >>> 0, 0);
  const tag = Buffer.allocUnsafe(16);
  mac.auth(tag, head, body, body.length, polyKey);
  this._onWrite(head);
  this._onWrite(body);
  this._onWrite(tag);
  this.outSeqno = (this.outSeqno + 1) >>> 0;
}

/** Random bytes for packet padding, taken in turn (a random fill per packet costs more). */
const padding = Buffer.alloc(4096);
let paddingAt = padding.length;

/** ssh2's chacha20-poly1305 cipher class (its prototype), once installChachaPoly has run. */
let chachaCipherProto: Cryptor | undefined;

/**
 * Whether `cipher` (a Protocol's outbound cipher) is ours with the fast path on: it encrypts a
 * packet into buffers of its own and keeps no view of it, so the packet's buffer is free again
 * once encrypt() has returned.
 */
export function encryptsIntoOwnBuffers(cipher: unknown): boolean {
  return poly !== undefined && typeof cipher === "object" && cipher !== null &&
    Object.getPrototypeOf(cipher) === chachaCipherProto && !(cipher as CipherState)._dead;
}

/** ssh2's chacha20-poly1305 decipher class (its prototype), once installChachaPoly has run. */
let chachaDecipherProto: Cryptor | undefined;

/**
 * Whether `decipher` (a Protocol's inbound decipher) is ours with the fast path on: it copies
 * every byte it keeps out of the chunks it is given, so a chunk's buffer is free again once
 * decrypt() has returned.
 */
export function copiesInput(decipher: unknown): boolean {
  return poly !== undefined && typeof decipher === "object" && decipher !== null &&
    Object.getPrototypeOf(decipher) === chachaDecipherProto;
}

/**
 * The packet for a framed payload (lib/ssh/framed_payload.ts), written around it as ssh2's
 * ChaChaPolyCipherNative#allocPacket lays one out: packet_length, padding_length, the payload,
 * 4 to 11 bytes of random padding to a multiple of 8.
 */
export function packetAround(payload: Uint8Array): Buffer {
  const bodyLen = 1 + payload.length;
  let padLen = 8 - (bodyLen & 7);
  if (padLen < 4) padLen += 8;
  // Room for the padding and, behind it, the tag (sealFramed).
  if (padLen + 16 > FRAME_TAIL) throw new Error("framed payload: padding exceeds its room");
  const packet = Buffer.from(
    payload.buffer,
    payload.byteOffset - FRAME_HEAD,
    FRAME_HEAD + payload.length + padLen,
  );
  packet.writeUInt32BE(bodyLen + padLen, 0);
  packet[4] = padLen;
  if (paddingAt + padLen > padding.length) {
    randomFillSync(padding);
    paddingAt = 0;
  }
  packet.set(padding.subarray(paddingAt, paddingAt + padLen), FRAME_HEAD + payload.length);
  paddingAt += padLen;
  return packet;
}

/**
 * Encrypts a packet from packetAround where it lies, with libcrypto (openssl_chacha.ts), and
 * writes its tag into the room behind it: the packet as it goes on the wire, in the payload's
 * buffer, for the caller to write (no buffer of its own for the ciphertext, one write where
 * encrypt() makes three). Undefined, having done nothing, without libcrypto or for a small packet.
 */
export function sealFramed(cipher: unknown, packet: Buffer): Buffer | undefined {
  const native = packet.length - 4 > SMALL_PACKET ? nativeChachaPoly() : undefined;
  if (!native) return undefined;
  const whole = Buffer.from(packet.buffer, packet.byteOffset, packet.length + 16);
  return sealWithTagRoom(native, cipher as CipherState, whole, packet.length);
}

/**
 * Seals the clear packet in `buf[0..len)` where it lies, its tag into the 16 bytes after it, as
 * the cipher's next packet: the length XORed with the header key's mask, the body and tag from
 * libcrypto. Returns `buf`, ready for the wire.
 */
function sealWithTagRoom(
  native: NativeChachaPoly,
  c: CipherState,
  buf: Buffer,
  len: number,
): Buffer {
  const headerKey = c._pkHeaderKey ??= keyWords(c._encKeyPktLen);
  const seqno = c.outSeqno;
  buf.writeUInt32BE((buf.readUInt32BE(0) ^ lengthMask(headerKey, seqno)) >>> 0, 0);
  native.seal(c._encKeyMain, seqno, buf.subarray(0, len), buf.subarray(len, len + 16));
  c.outSeqno = (seqno + 1) >>> 0;
  return buf;
}

/** Puts the one-cipher methods on ssh2's chacha20-poly1305 classes (their prototypes). */
export function installChachaPoly(cipherProto: Cryptor, decipherProto: Cryptor): void {
  chachaCipherProto = cipherProto;
  chachaDecipherProto = decipherProto;
  const ownEncrypt = cipherProto.encrypt as (packet: Buffer) => unknown;
  const ownDecrypt = decipherProto.decrypt as (d: Uint8Array, p: number, n: number) => unknown;
  const ownFree = decipherProto.free as () => void;
  decipherProto.free = function (this: DecipherState) {
    if (this._pkInbound !== undefined) poly?.mod._free(this._pkInbound);
    this._pkInbound = undefined;
    return ownFree.call(this);
  };
  cipherProto.encrypt = function (this: CipherState, packet: Buffer) {
    return encrypt.call(this, ownEncrypt, packet);
  };
  decipherProto.decrypt = function (this: DecipherState, d: Uint8Array, p: number, n: number) {
    return decrypt.call(this, ownDecrypt, d, p, n);
  };
}
