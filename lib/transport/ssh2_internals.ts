/**
 * Every touch of npm:ssh2's internals lives here (ssh2 is pinned to 1.17.0 in deno.json;
 * tests/ssh2_internals_test.ts fails loudly if a different version changes what we rely on).
 *
 * ssh2's Client does key exchange, host-key verification and user authentication for us. After
 * that we take over the connection layer completely: every message of types 80-100 that the
 * server sends goes to our multiplexer as a raw payload, and we send raw payloads back through
 * ssh2's packet writer (encryption, MAC, compression, rekey queueing). ssh2's own channel code is
 * never used, so its channel ids can never clash with ours.
 *
 * Touched internals: `client._protocol` (the Protocol instance), `Protocol#_onPayload` (an
 * instance property bound in the constructor, called with each decrypted payload),
 * `Protocol#_onPacket`, `Protocol#_onWrite` (the socket writer the ciphers are given),
 * `Protocol#_packetRW.{read,write}` (decompression / packet allocation),
 * `Protocol#_remoteIdentRaw`, `Protocol#_authenticated`, the private-key PEM ssh2 keeps on a
 * parsed ECDSA key (under a module-private symbol; see fixEcdsaPrivatePem), the module-level handler table in
 * lib/protocol/handlers.js, `sendPacket` from lib/protocol/utils.js, and the prototypes of the
 * chacha20-poly1305 cipher classes of lib/protocol/crypto.js (see finishOneShotCiphers, and
 * ssh2_chacha.ts, which gives them methods making one cipher per packet where ssh2 makes three). The
 * zlib packet classes of lib/protocol/zlib.js are replaced in ssh2_zlib.ts (load order), and
 * ssh2_modules.ts stands in for the two modules lib/client.js requires that we never use.
 */

import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv } from "node:crypto";
// Before "ssh2": it swaps ssh2's zlib packet classes before ssh2's modules take them.
import "./ssh2_zlib.ts";
import {
  copiesInput,
  encryptsIntoOwnBuffers,
  installChachaPoly,
  packetAround,
  sealFramed,
} from "./ssh2_chacha.ts";
import { isFramed, releaseFramed } from "../ssh/framed_payload.ts";
import { withoutUnusedSsh2Modules } from "./ssh2_modules.ts";
import ssh2Package from "npm:ssh2@1.17.0/package.json" with { type: "json" };
import type { Duplex } from "node:stream";

// ssh2's Client and key parser, not its index, which also loads its Server, key generator and
// HTTP agents (node:http, node:https, node:tls), none of which a connection uses. Imported where
// written, after ssh2_zlib.ts has swapped zlib.js's packet classes, which kex.js takes when it
// loads: static imports would be hoisted above the swap once our modules are bundled into one
// file (the installed bundle), where every -C connection failed.
const [
  { default: ssh2Client },
  { default: ssh2KeyParser },
  { default: MESSAGE_HANDLERS },
  { default: ssh2Utils },
  { default: ssh2Crypto },
  { default: ssh2PacketRW },
] = await withoutUnusedSsh2Modules(() =>
  Promise.all([
    import("npm:ssh2@1.17.0/lib/client.js"),
    import("npm:ssh2@1.17.0/lib/protocol/keyParser.js"),
    import("npm:ssh2@1.17.0/lib/protocol/handlers.js"),
    import("npm:ssh2@1.17.0/lib/protocol/utils.js"),
    import("npm:ssh2@1.17.0/lib/protocol/crypto.js"),
    import("npm:ssh2@1.17.0/lib/protocol/zlib.js"),
  ])
);

export const SSH2_VERSION_PINNED = "1.17.0";

type Payload = Uint8Array;

interface PacketWriter {
  readonly allocStart: number;
  alloc(n: number): Uint8Array;
  finalize(packet: Uint8Array): Uint8Array;
}

interface Protocol {
  _cipher: unknown;
  _decipher?: unknown;
  _kexinit?: unknown;
  _onPayload: (payload: Payload) => void;
  _onPacket: () => void;
  _onWrite: (data: Uint8Array) => void;
  _packetRW: { read: { read(p: Payload): Payload }; write: PacketWriter };
  _remoteIdentRaw?: Uint8Array;
  _authenticated?: boolean;
}

// deno-lint-ignore no-explicit-any
export type Ssh2Client = any;

export const Client: new () => Ssh2Client = ssh2Client;
// deno-lint-ignore no-explicit-any
const utils: { parseKey(key: Uint8Array | string, passphrase?: string): any } = ssh2KeyParser;

const handlers =
  MESSAGE_HANDLERS as unknown as (((p: Protocol, payload: Payload) => void) | undefined)[];
const sendPacket = (ssh2Utils as { sendPacket: (p: Protocol, packet: Uint8Array) => boolean })
  .sendPacket;

/**
 * ssh2's chacha20-poly1305@openssh.com (the JS path, the one Deno runs: ssh2's compiled binding is
 * not built) makes three node:crypto ciphers per packet, calls update() on each once and drops it
 * without final(). Deno keeps a cipher's native state in its resource table until final(), so
 * every packet leaked about 600 bytes outside the JS heap: an upstream grew by ~11 KiB per
 * downstream command, without bound (tests/share_soak_test.ts). While ssh2's chacha20 code runs
 * (but not the payload handler it calls) each cipher is finished right after its one update();
 * for a stream cipher final() adds no output.
 */
function finishOneShotCiphers(): void {
  const info = (ssh2Crypto as { CIPHER_INFO: Record<string, { keyLen: number }> }).CIPHER_INFO[
    "chacha20-poly1305@openssh.com"
  ];
  type Cryptor = Record<string, unknown>;
  const make = ssh2Crypto as {
    createCipher(c: unknown): Cryptor;
    createDecipher(c: unknown): Cryptor;
  };
  const key = Buffer.alloc(info.keyLen);
  const common = { seqno: 0, forceNative: true };
  const cipherProto = Object.getPrototypeOf(make.createCipher({
    outbound: { ...common, onWrite() {}, cipherInfo: info, cipherKey: key },
  }));
  const decipherProto = Object.getPrototypeOf(make.createDecipher({
    inbound: { ...common, onPayload() {}, decipherInfo: info, decipherKey: key },
  }));
  if (typeof cipherProto.encrypt !== "function" || typeof decipherProto.decrypt !== "function") {
    throw new Error("npm:ssh2 internals changed: chacha20-poly1305 cipher classes");
  }
  let depth = 0;
  const [k32, iv] = [key.subarray(0, 32), Buffer.alloc(16)];
  for (
    const sample of [createCipheriv("chacha20", k32, iv), createDecipheriv("chacha20", k32, iv)]
  ) {
    sample.final();
    const proto = Object.getPrototypeOf(sample) as typeof sample;
    const update = proto.update as (this: typeof sample, ...a: unknown[]) => Buffer;
    proto.update = function (this: typeof sample, ...args: unknown[]) {
      const out = update.apply(this, args);
      if (depth > 0) this.final();
      return out;
    } as typeof proto.update;
  }
  const encrypt = cipherProto.encrypt;
  cipherProto.encrypt = function (this: Cryptor, ...args: unknown[]) {
    depth++;
    try {
      return encrypt.apply(this, args);
    } finally {
      depth--;
    }
  };
  const decrypt = decipherProto.decrypt;
  decipherProto.decrypt = function (this: Cryptor, ...args: unknown[]) {
    if (!this._pkOutside) {
      // The payload handler runs inside decrypt(): ciphers it uses are not ssh2's one-shots.
      const onPayload = this._onPayload as (...a: unknown[]) => unknown;
      this._onPayload = (...a: unknown[]) => {
        depth--;
        try {
          return onPayload(...a);
        } finally {
          depth++;
        }
      };
      this._pkOutside = true;
    }
    depth++;
    try {
      return decrypt.apply(this, args);
    } finally {
      depth--;
    }
  };
  // The fast path, over the above (which serves until it is ready).
  installChachaPoly(cipherProto, decipherProto);
}
finishOneShotCiphers();

export function ssh2Version(): string {
  return (ssh2Package as { version: string }).version;
}

/** Throws if the ssh2 in use lacks what this file relies on (a different, changed version). */
export function checkInternals(client: Ssh2Client): void {
  const proto = client._protocol as Protocol | undefined;
  const problems: string[] = [];
  if (ssh2Version() !== SSH2_VERSION_PINNED) {
    problems.push(`ssh2 version ${ssh2Version()} (pinned ${SSH2_VERSION_PINNED})`);
  }
  if (!Array.isArray(handlers) || typeof handlers[80] !== "function") {
    problems.push("lib/protocol/handlers.js table");
  }
  if (typeof sendPacket !== "function") problems.push("utils.sendPacket");
  if (!proto) problems.push("client._protocol");
  else {
    if (typeof proto._onPayload !== "function") problems.push("Protocol#_onPayload");
    if (typeof proto._onPacket !== "function") problems.push("Protocol#_onPacket");
    if (typeof proto._packetRW?.read?.read !== "function") problems.push("_packetRW.read");
    if (typeof proto._packetRW?.write?.alloc !== "function") problems.push("_packetRW.write");
  }
  if (problems.length) {
    throw new Error(`npm:ssh2 internals changed: ${problems.join(", ")}`);
  }
}

/**
 * Diverts every connection-layer message (types 80-100) the server sends after user
 * authentication succeeds to `deliver`, as a buffer of its own. Everything else
 * (transport messages, rekeying, authentication) stays with ssh2.
 *
 * Must be called straight after `client.connect()`: ssh2 hands `_onPayload` to each decipher it
 * creates, so it has to be replaced before the first key exchange completes.
 */
export function divertConnectionLayer(
  client: Ssh2Client,
  deliver: (payload: Payload) => void,
): void {
  checkInternals(client);
  const proto = client._protocol as Protocol;
  const original = proto._onPayload;
  let authenticated = false;
  proto._onPayload = function (this: Protocol, payload: Payload) {
    if (!authenticated) {
      // Before authentication nothing is ours; watch for USERAUTH_SUCCESS (52) going by.
      original(payload);
      if (this._authenticated) authenticated = true;
      return;
    }
    this._onPacket();
    if (payload.length === 0) return;
    payload = this._packetRW.read.read(payload);
    const type = payload[0];
    if (type >= 80 && type <= 100) {
      // A view, not a copy: once encryption is on, each of ssh2's deciphers (and our
      // decompressor) hands over a buffer made for this one packet and never touched again.
      deliver(new Uint8Array(payload.buffer, payload.byteOffset, payload.length));
      return;
    }
    const handler = handlers[type];
    if (handler) handler(this, payload);
  }.bind(proto);
}

/**
 * Makes each run of ssh2's socket writes one system call. ssh2's JavaScript chacha20-poly1305
 * writes every packet as three buffers (length, body, MAC), and a burst of SFTP requests is
 * many packets: written one by one that was three writes per packet, each a costly trip through
 * Deno's node:net. The socket is corked at the first write and uncorked once the code that wrote
 * is done, which hands everything written meanwhile to the kernel in one writev.
 *
 * Must be called straight after `client.connect()`, with the divert: ssh2 hands `_onWrite` to
 * each cipher it creates at key exchange.
 */
export function coalesceSocketWrites(client: Ssh2Client): void {
  const proto = client._protocol as Protocol;
  const write = proto._onWrite;
  const sock = client._sock as Duplex | undefined;
  if (typeof write !== "function" || !sock || typeof sock.cork !== "function") return;
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  const cork = () => {
    if (corked) return;
    corked = true;
    sock.cork();
    queueMicrotask(uncork);
  };
  proto._onWrite = (data: Uint8Array) => {
    cork();
    write(data);
  };
  writersWithDone.set(proto, (data, done) => {
    // As ssh2's own writer (its isWritable): nothing goes to a socket that is ending.
    const readable = (sock as unknown as { _readableState?: { ended: boolean } })._readableState;
    if (!sock.writable || readable?.ended !== false) return;
    cork();
    sock.write(data, (err) => err || done());
  });
}

/**
 * A connection's socket writer that says when the socket is done with a buffer (installed by
 * coalesceSocketWrites, with the same coalescing): how a sealed packet's buffer comes back.
 */
const writersWithDone = new WeakMap<Protocol, (data: Uint8Array, done: () => void) => void>();

/** ssh2's packet writer for uncompressed packets (ssh2_zlib.ts replaces the compressing one). */
const PlainPacketWriter = (ssh2PacketRW as { PacketWriter: new (...a: never[]) => PacketWriter })
  .PacketWriter;

/**
 * Sends one raw payload through ssh2's encryption and rekey queue. A framed payload
 * (lib/ssh/framed_payload.ts) becomes its packet where it lies when nothing stands between it
 * and our chacha20-poly1305 cipher (no compression, no key exchange under way to queue it),
 * and its buffer is handed back once it has been encrypted or copied.
 */
export function sendRawPayload(client: Ssh2Client, payload: Payload): void {
  const proto = client._protocol as Protocol;
  const w = proto._packetRW.write;
  const framed = isFramed(payload);
  if (
    framed && proto._kexinit === undefined && w instanceof PlainPacketWriter &&
    encryptsIntoOwnBuffers(proto._cipher)
  ) {
    const packet = packetAround(payload);
    const sealed = sealFramed(proto._cipher, packet);
    if (sealed) {
      const write = writersWithDone.get(proto);
      if (write) write(sealed, () => releaseFramed(payload));
      else proto._onWrite(sealed);
      return;
    }
    sendPacket(proto, packet);
    releaseFramed(payload);
    return;
  }
  sendRawPayloadParts(client, [payload]);
  if (framed) releaseFramed(payload);
}

/** sendRawPayload() of the payload made of `parts` joined: each part is copied once, into the packet. */
export function sendRawPayloadParts(client: Ssh2Client, parts: Uint8Array[]): void {
  const proto = client._protocol as Protocol;
  const w = proto._packetRW.write;
  let n = 0;
  for (const part of parts) n += part.length;
  const packet = w.alloc(n);
  // A whole packet (length, padding length, payload, padding) or the bare payload (compression
  // or a key exchange under way), as alloc() made it: not allocStart, which ssh2 leaves at a key
  // exchange's 0 for a while after the exchange, until the host key has been checked again.
  let at = packet.length === n ? 0 : 5;
  for (const part of parts) {
    packet.set(part, at);
    at += part.length;
  }
  sendPacket(proto, w.finalize(packet));
}

/**
 * Whether the connection's decipher right now copies out all it keeps of the chunks it parses,
 * so that a chunk's buffer may be reused once ssh2 has parsed it (socket_reads.ts).
 */
export function deciphersByCopying(client: Ssh2Client): boolean {
  return copiesInput((client._protocol as Protocol | undefined)?._decipher);
}

/** The server's software version as PuTTY's upstream reports it: the ident minus "SSH-2.0-". */
export function serverSoftwareVersion(client: Ssh2Client): string {
  const raw = (client._protocol as Protocol)._remoteIdentRaw;
  const ident = raw ? new TextDecoder("latin1").decode(raw) : "SSH-2.0-unknown";
  let rest = ident;
  for (let i = 0; i < 2; i++) {
    const dash = rest.indexOf("-");
    rest = dash < 0 ? "" : rest.slice(dash + 1);
  }
  return rest.trim();
}

/** An ssh2 parsed key, as `utils.parseKey` returns it. */
// deno-lint-ignore no-explicit-any
export type ParsedKey = any;

const CURVE_BYTES: Record<string, number> = {
  "ecdsa-sha2-nistp256": 32,
  "ecdsa-sha2-nistp384": 48,
  "ecdsa-sha2-nistp521": 66,
};

/**
 * Parses a private key with ssh2, repairing what Deno's node:crypto cannot read: ssh2 builds a
 * SEC1 "EC PRIVATE KEY" whose private scalar is OpenSSH's mpint as is (33 bytes when the top bit
 * is set, fewer when it starts with zeros), which OpenSSL tolerates but Deno's strict SEC1 parser
 * rejects ("invalid SEC1 private key") -- so about half of all ECDSA keys failed to sign. We
 * rewrite the scalar at the curve's fixed size.
 */
export function parsePrivateKey(key: string, passphrase?: string): ParsedKey {
  const parsed = utils.parseKey(key, passphrase);
  if (parsed instanceof Error) throw parsed;
  const k = Array.isArray(parsed) ? parsed[0] : parsed;
  const size = CURVE_BYTES[k.type as string];
  if (size) fixEcdsaPrivatePem(k, size);
  return k;
}

function fixEcdsaPrivatePem(k: ParsedKey, size: number): void {
  for (const sym of Object.getOwnPropertySymbols(k)) {
    const v = k[sym];
    if (typeof v !== "string" || !v.includes("BEGIN EC PRIVATE KEY")) continue;
    const b64 = v.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    const der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const fixed = resizeSec1Scalar(der, size);
    if (!fixed) return;
    const body = btoa(String.fromCharCode(...fixed)).replace(/(.{64})/g, "$1\n");
    k[sym] = `-----BEGIN EC PRIVATE KEY-----\n${body}\n-----END EC PRIVATE KEY-----`;
    return;
  }
}

/** DER length prefix. */
function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/** Reads one DER element at `at`: [tag, content start, content end]. */
function derElement(b: Uint8Array, at: number): [number, number, number] {
  const tag = b[at];
  let len = b[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[start + i];
    start += n;
  }
  return [tag, start, start + len];
}

/**
 * SEC1 ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, [0] params, [1] pubkey }:
 * returns it with privateKey left-padded or stripped to exactly `size` bytes.
 */
export function resizeSec1Scalar(der: Uint8Array, size: number): Uint8Array | undefined {
  const [seqTag, seqStart, seqEnd] = derElement(der, 0);
  if (seqTag !== 0x30) return undefined;
  const [verTag, , verEnd] = derElement(der, seqStart);
  if (verTag !== 0x02) return undefined;
  const [octTag, octStart, octEnd] = derElement(der, verEnd);
  if (octTag !== 0x04) return undefined;
  let d = der.subarray(octStart, octEnd);
  while (d.length > size && d[0] === 0) d = d.subarray(1);
  if (d.length > size) return undefined;
  const scalar = new Uint8Array(size);
  scalar.set(d, size - d.length);
  const inner = [
    ...der.subarray(seqStart, verEnd),
    0x04,
    ...derLength(size),
    ...scalar,
    ...der.subarray(octEnd, seqEnd),
  ];
  return new Uint8Array([0x30, ...derLength(inner.length), ...inner]);
}
