/**
 * Argon2 (RFC 9106: Argon2d, Argon2i, Argon2id, version 0x13) and the BLAKE2b it is built on
 * (RFC 7693, any output length), for PuTTY's version 3 key files, whose passphrases go through
 * Argon2 (puttygen's default: Argon2id, 8 MiB, 13 or so passes, one lane). node:crypto in Deno
 * has neither Argon2 nor a BLAKE2b of other lengths than 64 bytes.
 *
 * 64-bit words are kept as two 32-bit halves (low word first) in Uint32Arrays: JavaScript has no
 * fast 64-bit integers, and Argon2's memory (8 MiB by default) is touched a hundred thousand
 * times a block at a time.
 */

// ---------------------------------------------------------------------------------------------
// BLAKE2b

const BLAKE2B_IV = new Uint32Array([
  0xf3bcc908,
  0x6a09e667,
  0x84caa73b,
  0xbb67ae85,
  0xfe94f82b,
  0x3c6ef372,
  0x5f1d36f1,
  0xa54ff53a,
  0xade682d1,
  0x510e527f,
  0x2b3e6c1f,
  0x9b05688c,
  0xfb41bd6b,
  0x1f83d9ab,
  0x137e2179,
  0x5be0cd19,
]);

/** The message word order of each of BLAKE2b's 12 rounds (rounds 10 and 11 repeat 0 and 1). */
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
].map((round) => round.map((i) => i * 2));

/** v[x] += v[y] + (mLo, mHi), as 64-bit words (x, y are indices of low halves). */
function add3(v: Uint32Array, x: number, y: number, mLo: number, mHi: number): void {
  const lo = v[x] + v[y] + mLo;
  v[x + 1] = v[x + 1] + v[y + 1] + mHi + Math.floor(lo / 0x100000000);
  v[x] = lo;
}

/** v[d] = (v[d] ^ v[a]) rotated right by n (16, 24, 32 or 63). */
function xorRotr(v: Uint32Array, d: number, a: number, n: number): void {
  const lo = v[d] ^ v[a];
  const hi = v[d + 1] ^ v[a + 1];
  if (n === 32) {
    v[d] = hi;
    v[d + 1] = lo;
  } else if (n === 63) {
    v[d] = (lo << 1) | (hi >>> 31);
    v[d + 1] = (hi << 1) | (lo >>> 31);
  } else {
    v[d] = (lo >>> n) | (hi << (32 - n));
    v[d + 1] = (hi >>> n) | (lo << (32 - n));
  }
}

function blake2bMix(
  v: Uint32Array,
  m: Uint32Array,
  a: number,
  b: number,
  c: number,
  d: number,
  x: number,
  y: number,
): void {
  add3(v, a, b, m[x], m[x + 1]);
  xorRotr(v, d, a, 32);
  add3(v, c, d, 0, 0);
  xorRotr(v, b, c, 24);
  add3(v, a, b, m[y], m[y + 1]);
  xorRotr(v, d, a, 16);
  add3(v, c, d, 0, 0);
  xorRotr(v, b, c, 63);
}

function blake2bCompress(h: Uint32Array, block: Uint8Array, bytes: number, last: boolean): void {
  const m = new Uint32Array(32);
  const dv = new DataView(block.buffer, block.byteOffset, 128);
  for (let i = 0; i < 32; i++) m[i] = dv.getUint32(i * 4, true);
  const v = new Uint32Array(32);
  v.set(h);
  v.set(BLAKE2B_IV, 16);
  v[24] ^= bytes >>> 0; // t, low 64 bits (files and passphrases are far below 2^53)
  v[25] ^= Math.floor(bytes / 0x100000000);
  if (last) {
    v[28] = ~v[28];
    v[29] = ~v[29];
  }
  for (let r = 0; r < 12; r++) {
    const s = SIGMA[r % 10];
    blake2bMix(v, m, 0, 8, 16, 24, s[0], s[1]);
    blake2bMix(v, m, 2, 10, 18, 26, s[2], s[3]);
    blake2bMix(v, m, 4, 12, 20, 28, s[4], s[5]);
    blake2bMix(v, m, 6, 14, 22, 30, s[6], s[7]);
    blake2bMix(v, m, 0, 10, 20, 30, s[8], s[9]);
    blake2bMix(v, m, 2, 12, 22, 24, s[10], s[11]);
    blake2bMix(v, m, 4, 14, 16, 26, s[12], s[13]);
    blake2bMix(v, m, 6, 8, 18, 28, s[14], s[15]);
  }
  for (let i = 0; i < 16; i++) h[i] ^= v[i] ^ v[i + 16];
}

/** BLAKE2b (unkeyed) of the concatenated `parts`, `outLength` bytes (1 to 64). */
export function blake2b(outLength: number, ...parts: Uint8Array[]): Uint8Array {
  if (outLength < 1 || outLength > 64) throw new RangeError("BLAKE2b output is 1 to 64 bytes");
  const h = new Uint32Array(BLAKE2B_IV);
  h[0] ^= 0x01010000 ^ outLength; // parameter block: digest length, no key, fanout 1, depth 1
  const block = new Uint8Array(128);
  let fill = 0;
  let total = 0;
  for (const part of parts) {
    for (let at = 0; at < part.length;) {
      if (fill === 128) {
        // Only a block known not to be the last is compressed here.
        blake2bCompress(h, block, total, false);
        fill = 0;
      }
      const n = Math.min(128 - fill, part.length - at);
      block.set(part.subarray(at, at + n), fill);
      fill += n;
      total += n;
      at += n;
    }
  }
  block.fill(0, fill);
  blake2bCompress(h, block, total, true);
  const out = new Uint8Array(64);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 16; i++) dv.setUint32(i * 4, h[i], true);
  return out.slice(0, outLength);
}

// ---------------------------------------------------------------------------------------------
// Argon2

export type Argon2Flavour = "Argon2d" | "Argon2i" | "Argon2id";

export interface Argon2Params {
  flavour: Argon2Flavour;
  /** Memory in KiB (1 KiB blocks). */
  memoryKiB: number;
  passes: number;
  /** Lanes. */
  parallelism: number;
  salt: Uint8Array;
  /** Output length in bytes. */
  tagLength: number;
  secret?: Uint8Array;
  associatedData?: Uint8Array;
}

const TYPE_CODE: Record<Argon2Flavour, number> = { Argon2d: 0, Argon2i: 1, Argon2id: 2 };
const VERSION = 0x13;
const BLOCK_WORDS = 256; // 32-bit words in a 1 KiB block
const SYNC_POINTS = 4;

function le32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

/** RFC 9106's H': any length, from BLAKE2b. */
function hashLong(outLength: number, ...parts: Uint8Array[]): Uint8Array {
  if (outLength <= 64) return blake2b(outLength, le32(outLength), ...parts);
  const out = new Uint8Array(outLength);
  let v = blake2b(64, le32(outLength), ...parts);
  let at = 0;
  const r = Math.ceil(outLength / 32) - 2;
  for (let i = 0; i < r; i++) {
    if (i > 0) v = blake2b(64, v);
    out.set(v.subarray(0, 32), at);
    at += 32;
  }
  out.set(blake2b(outLength - 32 * r, v), at);
  return out;
}

/** The high 32 bits of the 64-bit product of two 32-bit numbers (in 16-bit pieces). */
function mulHi(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const mid = al * bh + ah * bl + ((al * bl) >>> 16);
  return ah * bh + Math.floor(mid / 0x10000);
}

/**
 * Argon2's G on 64-bit words a, b, c, d of `v` (given by their low halves' indices): BLAKE2b's
 * mixing with products added, x + y + 2 * lo32(x) * lo32(y). The hot loop of Argon2, so the
 * words live in locals while it runs.
 */
function mixMul(v: Uint32Array, a: number, b: number, c: number, d: number): void {
  let al = v[a], ah = v[a + 1], bl = v[b], bh = v[b + 1];
  let cl = v[c], ch = v[c + 1], dl = v[d], dh = v[d + 1];
  let lo: number, hi: number, t: number;

  // a = a + b + 2ab; d = (d ^ a) >>> 32
  hi = mulHi(al, bl);
  t = Math.imul(al, bl) >>> 0;
  lo = al + bl + ((t << 1) >>> 0);
  ah = (ah + bh + ((hi << 1) | (t >>> 31)) + Math.floor(lo / 0x100000000)) >>> 0;
  al = lo >>> 0;
  t = dl ^ al;
  dl = (dh ^ ah) >>> 0;
  dh = t >>> 0;
  // c = c + d + 2cd; b = (b ^ c) >>> 24
  hi = mulHi(cl, dl);
  t = Math.imul(cl, dl) >>> 0;
  lo = cl + dl + ((t << 1) >>> 0);
  ch = (ch + dh + ((hi << 1) | (t >>> 31)) + Math.floor(lo / 0x100000000)) >>> 0;
  cl = lo >>> 0;
  lo = bl ^ cl;
  hi = bh ^ ch;
  bl = ((lo >>> 24) | (hi << 8)) >>> 0;
  bh = ((hi >>> 24) | (lo << 8)) >>> 0;
  // a = a + b + 2ab; d = (d ^ a) >>> 16
  hi = mulHi(al, bl);
  t = Math.imul(al, bl) >>> 0;
  lo = al + bl + ((t << 1) >>> 0);
  ah = (ah + bh + ((hi << 1) | (t >>> 31)) + Math.floor(lo / 0x100000000)) >>> 0;
  al = lo >>> 0;
  lo = dl ^ al;
  hi = dh ^ ah;
  dl = ((lo >>> 16) | (hi << 16)) >>> 0;
  dh = ((hi >>> 16) | (lo << 16)) >>> 0;
  // c = c + d + 2cd; b = (b ^ c) >>> 63
  hi = mulHi(cl, dl);
  t = Math.imul(cl, dl) >>> 0;
  lo = cl + dl + ((t << 1) >>> 0);
  ch = (ch + dh + ((hi << 1) | (t >>> 31)) + Math.floor(lo / 0x100000000)) >>> 0;
  cl = lo >>> 0;
  lo = bl ^ cl;
  hi = bh ^ ch;
  bl = ((lo << 1) | (hi >>> 31)) >>> 0;
  bh = ((hi << 1) | (lo >>> 31)) >>> 0;

  v[a] = al;
  v[a + 1] = ah;
  v[b] = bl;
  v[b + 1] = bh;
  v[c] = cl;
  v[c + 1] = ch;
  v[d] = dl;
  v[d + 1] = dh;
}

/** BLAKE2b's round without message on 16 words given by their (low half) indices. */
function permute(v: Uint32Array, w: number[]): void {
  mixMul(v, w[0], w[4], w[8], w[12]);
  mixMul(v, w[1], w[5], w[9], w[13]);
  mixMul(v, w[2], w[6], w[10], w[14]);
  mixMul(v, w[3], w[7], w[11], w[15]);
  mixMul(v, w[0], w[5], w[10], w[15]);
  mixMul(v, w[1], w[6], w[11], w[12]);
  mixMul(v, w[2], w[7], w[8], w[13]);
  mixMul(v, w[3], w[4], w[9], w[14]);
}

/** The (low half) word indices of each row and each column of a block's 8x8 grid of 16-byte cells. */
const ROWS: number[][] = [];
const COLUMNS: number[][] = [];
for (let i = 0; i < 8; i++) {
  ROWS.push(Array.from({ length: 16 }, (_, k) => (16 * i + k) * 2));
  COLUMNS.push(Array.from({ length: 16 }, (_, k) => (2 * i + (k & 1) + 16 * (k >> 1)) * 2));
}

/**
 * Argon2's compression G(X, Y) into `out`: R = X ^ Y, P on rows then columns, result R ^ P(R);
 * with `xor`, also ^ what `out` held (passes after the first, version 0x13).
 */
class Compressor {
  private readonly r = new Uint32Array(BLOCK_WORDS);
  private readonly q = new Uint32Array(BLOCK_WORDS);

  run(
    x: Uint32Array,
    xAt: number,
    y: Uint32Array,
    yAt: number,
    out: Uint32Array,
    outAt: number,
    xor: boolean,
  ): void {
    const { r, q } = this;
    for (let i = 0; i < BLOCK_WORDS; i++) r[i] = x[xAt + i] ^ y[yAt + i];
    q.set(r);
    for (const row of ROWS) permute(q, row);
    for (const col of COLUMNS) permute(q, col);
    if (xor) {
      for (let i = 0; i < BLOCK_WORDS; i++) out[outAt + i] ^= q[i] ^ r[i];
    } else {
      for (let i = 0; i < BLOCK_WORDS; i++) out[outAt + i] = q[i] ^ r[i];
    }
  }
}

function blockFromBytes(bytes: Uint8Array, out: Uint32Array, at: number): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 1024);
  for (let i = 0; i < BLOCK_WORDS; i++) out[at + i] = dv.getUint32(i * 4, true);
}

export function argon2(password: Uint8Array, p: Argon2Params): Uint8Array {
  const lanes = p.parallelism;
  if (!(lanes >= 1 && lanes <= 0xffffff)) throw new RangeError("Argon2: bad parallelism");
  if (!(p.passes >= 1)) throw new RangeError("Argon2: bad number of passes");
  if (!(p.memoryKiB >= 8 * lanes)) throw new RangeError("Argon2: too little memory");
  if (!(p.tagLength >= 4)) throw new RangeError("Argon2: tag too short");
  const type = TYPE_CODE[p.flavour];
  const secret = p.secret ?? new Uint8Array(0);
  const ad = p.associatedData ?? new Uint8Array(0);

  const h0 = blake2b(
    64,
    le32(lanes),
    le32(p.tagLength),
    le32(p.memoryKiB),
    le32(p.passes),
    le32(VERSION),
    le32(type),
    le32(password.length),
    password,
    le32(p.salt.length),
    p.salt,
    le32(secret.length),
    secret,
    le32(ad.length),
    ad,
  );

  const segment = Math.floor(p.memoryKiB / (SYNC_POINTS * lanes));
  const laneLength = segment * SYNC_POINTS;
  const blocks = laneLength * lanes;
  const mem = new Uint32Array(blocks * BLOCK_WORDS);
  const at = (lane: number, col: number) => (lane * laneLength + col) * BLOCK_WORDS;
  const g = new Compressor();

  for (let l = 0; l < lanes; l++) {
    blockFromBytes(hashLong(1024, h0, le32(0), le32(l)), mem, at(l, 0));
    blockFromBytes(hashLong(1024, h0, le32(1), le32(l)), mem, at(l, 1));
  }

  const zero = new Uint32Array(BLOCK_WORDS);
  const input = new Uint32Array(BLOCK_WORDS);
  const addresses = new Uint32Array(BLOCK_WORDS);
  const nextAddresses = () => {
    input[12]++; // the counter, word 6 (low half)
    g.run(zero, 0, input, 0, addresses, 0, false);
    g.run(zero, 0, addresses, 0, addresses, 0, false);
  };

  for (let pass = 0; pass < p.passes; pass++) {
    for (let slice = 0; slice < SYNC_POINTS; slice++) {
      for (let lane = 0; lane < lanes; lane++) {
        const independent = type === 1 || (type === 2 && pass === 0 && slice < SYNC_POINTS / 2);
        if (independent) {
          input.fill(0);
          input[0] = pass;
          input[2] = lane;
          input[4] = slice;
          input[6] = blocks;
          input[8] = p.passes;
          input[10] = type;
        }
        let start = 0;
        if (pass === 0 && slice === 0) {
          start = 2; // the first two blocks of each lane are made from H0
          if (independent) nextAddresses();
        }
        for (let index = start; index < segment; index++) {
          const col = slice * segment + index;
          const prevCol = col === 0 ? laneLength - 1 : col - 1;
          let j1: number;
          let j2: number;
          if (independent) {
            if (index % 128 === 0) nextAddresses();
            j1 = addresses[(index % 128) * 2];
            j2 = addresses[(index % 128) * 2 + 1];
          } else {
            const prev = at(lane, prevCol);
            j1 = mem[prev];
            j2 = mem[prev + 1];
          }
          const refLane = pass === 0 && slice === 0 ? lane : j2 % lanes;
          const sameLane = refLane === lane;
          // The blocks it may refer to: those already made (and finished, in other lanes),
          // leaving out the one just before.
          let area: number;
          if (pass === 0) {
            area = sameLane ? slice * segment + index - 1 : slice * segment - (index === 0 ? 1 : 0);
          } else {
            area = sameLane
              ? laneLength - segment + index - 1
              : laneLength - segment - (index === 0 ? 1 : 0);
          }
          const x = mulHi(j1, j1);
          const relative = area - 1 - mulHi(area, x);
          const startPos = pass === 0 || slice === SYNC_POINTS - 1 ? 0 : (slice + 1) * segment;
          const refCol = (startPos + relative) % laneLength;
          g.run(
            mem,
            at(lane, prevCol),
            mem,
            at(refLane, refCol),
            mem,
            at(lane, col),
            pass > 0,
          );
        }
      }
    }
  }

  const last = new Uint32Array(BLOCK_WORDS);
  for (let l = 0; l < lanes; l++) {
    const b = at(l, laneLength - 1);
    for (let i = 0; i < BLOCK_WORDS; i++) last[i] ^= mem[b + i];
  }
  const bytes = new Uint8Array(1024);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < BLOCK_WORDS; i++) dv.setUint32(i * 4, last[i], true);
  return hashLong(p.tagLength, bytes);
}
