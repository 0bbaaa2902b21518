/**
 * PuTTY's host key cache on Unix (unix/storage.c), in PuTTY's own format, plus host key
 * fingerprints and -hostkey matching (ssh/common.c verify_ssh_host_key, sshpubk.c).
 *
 * The file is $PUTTYSSHHOSTKEYS, else <PuTTY dir>/sshhostkeys (the directory as in putty_dir.ts);
 * one line per key:
 *
 *   <cache id>@<port>:<host> <cache string>
 *
 * with the cache ids and strings of PuTTY's key algorithms (crypto/*.c .cache_id / .cache_str):
 *
 *   ssh-ed25519           0x<x>,0x<y>                 affine point, x recovered from the blob
 *   ssh-ed448             0x<x>,0x<y>
 *   ecdsa-sha2-nistp256   nistp256,0x<x>,0x<y>        (nistp384, nistp521 likewise)
 *   rsa2                  0x<e>,0x<n>
 *   dss                   0x<p>,0x<q>,0x<g>,0x<y>
 *   opensshcert-<base id> the certified key's cache string (e.g. opensshcert-ssh-ed25519)
 *
 * Numbers are lower-case hex without leading zeros (mp_get_hex). A lookup takes the first line
 * whose "<id>@<port>:<host> " prefix matches: same value = match, other value = mismatch.
 * Storing rewrites the file through a temporary file and rename(), dropping lines with the same
 * prefix and appending the new one at the end.
 *
 * Only loaded on the direct-connection path (uses node:crypto).
 */

import { createHash } from "node:crypto";
import { SshReader, TruncatedMessage } from "../ssh/wire.ts";
import { canonicalManualHostKey } from "./manual_host_key.ts";
import { replaceFile } from "./settings_file.ts";
import { puttyDir } from "./putty_dir.ts";
import { type Env, processEnv } from "./types.ts";

export type HostKeyStatus = "match" | "mismatch" | "unknown";

export interface HostKeyInfo {
  /** The SSH key type name in the blob (e.g. "ssh-ed25519", "ssh-rsa"). */
  algorithm: string;
  /** PuTTY's host key cache id ("ssh-ed25519", "rsa2", "ecdsa-sha2-nistp256", ...). */
  cacheId: string;
  /** PuTTY's cache string for the key. */
  cacheValue: string;
  /** Key size as PuTTY shows it in fingerprints (255 for Ed25519, modulus bits for RSA). */
  bits: number;
}

// ---------------------------------------------------------------------------------------------
// Blob reading.

/** An SSH mpint from a host key; negative values are refused (no host key has one). */
function mpint(r: SshReader): bigint {
  const b = r.bytes();
  if (b.length && b[0] & 0x80) throw new Error("negative mpint in host key blob");
  return bytesToBigBE(b);
}

/** Runs `read` over a key blob: a blob cut short is reported as such. */
function readingBlob<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof TruncatedMessage) throw new Error("truncated host key blob");
    throw e;
  }
}

function bytesToBigBE(b: Uint8Array): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function bytesToBigLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}

function hex(n: bigint): string {
  return "0x" + n.toString(16);
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  base %= m;
  if (base < 0n) base += m;
  while (exp > 0n) {
    if (exp & 1n) r = (r * base) % m;
    base = (base * base) % m;
    exp >>= 1n;
  }
  return r;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

// ---------------------------------------------------------------------------------------------
// Edwards curves: recover x from the encoded y and the sign bit (RFC 8032 5.1.3 / 5.2.3).

const P25519 = 2n ** 255n - 19n;
const D25519 = mod(-121665n * modPow(121666n, P25519 - 2n, P25519), P25519);
const SQRTM1_25519 = modPow(2n, (P25519 - 1n) / 4n, P25519);

function ed25519Point(pk: Uint8Array): [bigint, bigint] {
  if (pk.length !== 32) throw new Error("bad Ed25519 public key length");
  const bytes = pk.slice();
  const sign = bytes[31] >> 7;
  bytes[31] &= 0x7f;
  const p = P25519;
  const y = bytesToBigLE(bytes);
  if (y >= p) throw new Error("bad Ed25519 public key");
  const u = mod(y * y - 1n, p);
  const v = mod(D25519 * y * y + 1n, p);
  // x = u v^3 (u v^7)^((p-5)/8)
  const v3 = (v * v % p) * v % p;
  let x = u * v3 % p * modPow(u * v3 % p * v3 % p * v % p, (p - 5n) / 8n, p) % p;
  const vx2 = v * x % p * x % p;
  if (vx2 === mod(-u, p)) x = x * SQRTM1_25519 % p;
  else if (vx2 !== u) throw new Error("bad Ed25519 public key (not on the curve)");
  if (x === 0n && sign) throw new Error("bad Ed25519 public key");
  if (Number(x & 1n) !== sign) x = p - x;
  return [x, y];
}

const P448 = 2n ** 448n - 2n ** 224n - 1n;
const D448 = mod(-39081n, P448);

function ed448Point(pk: Uint8Array): [bigint, bigint] {
  if (pk.length !== 57) throw new Error("bad Ed448 public key length");
  const sign = pk[56] >> 7;
  if (pk[56] & 0x7f) throw new Error("bad Ed448 public key");
  const p = P448;
  const y = bytesToBigLE(pk.subarray(0, 56));
  if (y >= p) throw new Error("bad Ed448 public key");
  const u = mod(y * y - 1n, p);
  const v = mod(D448 * y * y - 1n, p);
  // x = u^3 v (u^5 v^3)^((p-3)/4)
  const u2 = u * u % p;
  const u3 = u2 * u % p;
  const u5 = u3 * u2 % p;
  const v3 = v * v % p * v % p;
  let x = u3 * v % p * modPow(u5 * v3 % p, (p - 3n) / 4n, p) % p;
  if (v * x % p * x % p !== u) throw new Error("bad Ed448 public key (not on the curve)");
  if (x === 0n && sign) throw new Error("bad Ed448 public key");
  if (Number(x & 1n) !== sign) x = p - x;
  return [x, y];
}

// ---------------------------------------------------------------------------------------------
// NIST curves: only the uncompressed point form (what every SSH server sends).

const NIST: Record<string, { bits: number; bytes: number }> = {
  nistp256: { bits: 256, bytes: 32 },
  nistp384: { bits: 384, bytes: 48 },
  nistp521: { bits: 521, bytes: 66 },
};

function ecdsaPoint(curve: string, q: Uint8Array): [bigint, bigint] {
  const c = NIST[curve];
  if (q.length !== 1 + 2 * c.bytes || q[0] !== 4) {
    throw new Error(`unsupported ${curve} point encoding`);
  }
  return [bytesToBigBE(q.subarray(1, 1 + c.bytes)), bytesToBigBE(q.subarray(1 + c.bytes))];
}

// ---------------------------------------------------------------------------------------------

/** Reads the key fields for a base key type from `r`; returns [cache id, value, bits]. */
function readBaseKey(algorithm: string, r: SshReader): [string, string, number] {
  switch (algorithm) {
    case "ssh-ed25519": {
      const [x, y] = ed25519Point(r.bytes());
      return ["ssh-ed25519", `${hex(x)},${hex(y)}`, 255];
    }
    case "ssh-ed448": {
      const [x, y] = ed448Point(r.bytes());
      return ["ssh-ed448", `${hex(x)},${hex(y)}`, 448];
    }
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384":
    case "ecdsa-sha2-nistp521": {
      const curve = algorithm.slice("ecdsa-sha2-".length);
      if (r.string() !== curve) throw new Error("ECDSA curve name does not match the key type");
      const [x, y] = ecdsaPoint(curve, r.bytes());
      return [algorithm, `${curve},${hex(x)},${hex(y)}`, NIST[curve].bits];
    }
    case "ssh-rsa": {
      const e = mpint(r);
      const n = mpint(r);
      return ["rsa2", `${hex(e)},${hex(n)}`, bitLength(n)];
    }
    case "ssh-dss": {
      const p = mpint(r);
      const q = mpint(r);
      const g = mpint(r);
      const y = mpint(r);
      return ["dss", [p, q, g, y].map(hex).join(","), bitLength(p)];
    }
    default:
      throw new Error(`unsupported host key type "${algorithm}"`);
  }
}

const CERT_SUFFIX = "-cert-v01@openssh.com";

/** Decode an SSH public key blob (RFC 4253 6.6 format) into PuTTY's cache terms. */
export function parseHostKeyBlob(blob: Uint8Array): HostKeyInfo {
  return readingBlob(() => readHostKeyBlob(new SshReader(blob)));
}

function readHostKeyBlob(r: SshReader): HostKeyInfo {
  const algorithm = r.string();
  if (algorithm.endsWith(CERT_SUFFIX)) {
    const base = algorithm.slice(0, -CERT_SUFFIX.length);
    r.bytes(); // nonce
    const [, value, bits] = readBaseKey(base, r);
    return { algorithm, cacheId: `opensshcert-${base}`, cacheValue: value, bits };
  }
  const [cacheId, cacheValue, bits] = readBaseKey(algorithm, r);
  return { algorithm, cacheId, cacheValue, bits };
}

/** PuTTY's cache id ("key type") and cache string for a host key blob. */
export function hostKeyCacheEntry(blob: Uint8Array): { keyType: string; value: string } {
  const info = parseHostKeyBlob(blob);
  return { keyType: info.cacheId, value: info.cacheValue };
}

/** The cache file: $PUTTYSSHHOSTKEYS, else <PuTTY dir>/sshhostkeys. */
export function hostKeysPath(env: Env = processEnv): string {
  return env("PUTTYSSHHOSTKEYS") ?? `${puttyDir(env)}/sshhostkeys`;
}

function readLines(path: string): string[] {
  let text: string;
  try {
    text = new TextDecoder().decode(Deno.readFileSync(path));
  } catch {
    return [];
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function entryPrefix(keyType: string, host: string, port: number): string {
  return `${keyType}@${port}:${host} `;
}

/** check_stored_host_key() for a cache id and string. */
export function checkStoredHostKey(
  host: string,
  port: number,
  keyType: string,
  value: string,
  env: Env = processEnv,
): HostKeyStatus {
  const prefix = entryPrefix(keyType, host, port);
  for (const line of readLines(hostKeysPath(env))) {
    if (line.startsWith(prefix)) return line.slice(prefix.length) === value ? "match" : "mismatch";
  }
  return "unknown";
}

/** Whether the cache knows this key for host:port ("mismatch": it holds another of that type). */
export function checkHostKey(
  host: string,
  port: number,
  blob: Uint8Array,
  env: Env = processEnv,
): HostKeyStatus {
  const { keyType, value } = hostKeyCacheEntry(blob);
  return checkStoredHostKey(host, port, keyType, value, env);
}

/**
 * The cache ids stored for host:port, in file order. PuTTY (have_ssh_host_key) uses this to put
 * host key algorithms it already has a key for first in its KEXINIT (PreferKnownHostKeys), so a
 * server with a new key of another type doesn't cause a prompt when a cached type is on offer.
 */
export function storedHostKeyTypes(host: string, port: number, env: Env = processEnv): string[] {
  const suffix = `@${port}:${host} `;
  const types: string[] = [];
  for (const line of readLines(hostKeysPath(env))) {
    const at = line.indexOf(suffix);
    if (at > 0 && !line.slice(0, at).includes(" ")) {
      const type = line.slice(0, at);
      if (!types.includes(type)) types.push(type);
    }
  }
  return types;
}

/** store_host_key() for a cache id and string. */
export function storeCacheEntry(
  host: string,
  port: number,
  keyType: string,
  value: string,
  env: Env = processEnv,
): void {
  const path = hostKeysPath(env);
  const newLine = `${entryPrefix(keyType, host, port)}${value}`;
  const header = entryPrefix(keyType, host, port);
  const kept = readLines(path).filter((line) => !line.startsWith(header));
  kept.push(newLine);
  replaceFile(path, kept.join("\n") + "\n", 0o644, puttyDir(env));
}

/** Remember a server's host key for host:port, replacing any key of the same type. */
export function storeHostKey(
  host: string,
  port: number,
  blob: Uint8Array,
  env: Env = processEnv,
): void {
  const { keyType, value } = hostKeyCacheEntry(blob);
  storeCacheEntry(host, port, keyType, value, env);
}

// ---------------------------------------------------------------------------------------------
// Fingerprints.

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** "SHA256:" + unpadded base64 of SHA-256(blob), as PuTTY and OpenSSH print it. */
export function fingerprintSha256(blob: Uint8Array): string {
  return "SHA256:" + base64(createHash("sha256").update(blob).digest()).replace(/=+$/, "");
}

/** MD5(blob) as colon-separated lower-case hex (PuTTY's form; OpenSSH prefixes "MD5:"). */
export function fingerprintMd5(blob: Uint8Array): string {
  return [...createHash("md5").update(blob).digest()].map((b) => b.toString(16).padStart(2, "0"))
    .join(":");
}

/** For a certificate, the blob of the certified key (PuTTY fingerprints that by default). */
function baseKeyBlob(blob: Uint8Array): Uint8Array {
  return readingBlob(() => readBaseKeyBlob(blob, new SshReader(blob)));
}

function readBaseKeyBlob(blob: Uint8Array, r: SshReader): Uint8Array {
  const algorithm = r.string();
  if (!algorithm.endsWith(CERT_SUFFIX)) return blob;
  const base = algorithm.slice(0, -CERT_SUFFIX.length);
  r.bytes(); // nonce
  const parts: Uint8Array[] = [new TextEncoder().encode(base)];
  const count = base === "ssh-rsa"
    ? 2
    : base === "ssh-dss"
    ? 4
    : base.startsWith("ecdsa-sha2-")
    ? 2
    : 1;
  for (let i = 0; i < count; i++) parts.push(r.bytes());
  const len = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(len);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of parts) {
    view.setUint32(off, p.length);
    out.set(p, off + 4);
    off += 4 + p.length;
  }
  return out;
}

/**
 * ssh2_fingerprint_blob(): "<algorithm> <bits> <hash>", e.g.
 * "ssh-ed25519 255 SHA256:ypoSlRGI8Mmnn9Si5DsrveC51r0sM7oLQHi3Uovx8EY". For a certificate the
 * hash is of the certified key, as PuTTY does by default.
 */
export function hostKeyFingerprint(blob: Uint8Array, type: "sha256" | "md5" = "sha256"): string {
  const info = parseHostKeyBlob(blob);
  const hashed = baseKeyBlob(blob);
  const fp = type === "sha256" ? fingerprintSha256(hashed) : fingerprintMd5(hashed);
  return `${info.algorithm} ${info.bits} ${fp}`;
}

/**
 * verify_ssh_host_key()'s manual list check (-hostkey, SSHManualHostKeys): true if any entry is
 * this key's SHA256 or MD5 fingerprint (of the key, or for a certificate of the certificate too)
 * or its base64 blob. Entries are canonicalised as -hostkey does (so "MD5:AA:BB:…",
 * "ssh-rsa 2048 aa:bb:…" and OpenSSH .pub lines work); invalid entries never match.
 */
export function hostKeyMatchesManual(list: readonly string[], blob: Uint8Array): boolean {
  const wanted = new Set<string>();
  for (const b of new Set([baseKeyBlob(blob), blob])) {
    wanted.add(fingerprintSha256(b));
    wanted.add(fingerprintMd5(b));
  }
  wanted.add(base64(blob));
  return list.some((entry) => {
    const key = canonicalManualHostKey(entry);
    return key !== undefined && wanted.has(key);
  });
}
