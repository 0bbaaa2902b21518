/**
 * Private key files for -i: OpenSSH keys are handed to ssh2 as they are; PuTTY .ppk files
 * (versions 2 and 3) are read here and re-expressed as an unencrypted OpenSSH key for ssh2, which
 * itself only knows unencrypted-or-v2 RSA/DSA .ppk files.
 *
 * Only loaded on the direct-connection path (it uses node:crypto).
 */

import { createDecipheriv, createHash, createHmac } from "node:crypto";
import { Buffer } from "node:buffer";
import { SshReader, SshWriter } from "../ssh/wire.ts";
import { argon2 } from "./argon2.ts";
import { errorText } from "../util/error_text.ts";

export class KeyFileError extends Error {}

export interface LoadedKey {
  /** Key text ssh2's parseKey accepts. */
  key: string;
  /** Passphrase for ssh2 when the OpenSSH key itself is encrypted. */
  passphrase?: string;
  comment: string;
}

export function isPpk(text: string): boolean {
  return /^PuTTY-User-Key-File-[23]:/.test(text);
}

/** True when the file needs a passphrase (so the caller can prompt for one). */
export function needsPassphrase(text: string): boolean {
  if (isPpk(text)) return !/^Encryption: none\s*$/m.test(text);
  if (text.includes("BEGIN OPENSSH PRIVATE KEY")) {
    const b64 = text.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    const bin = Buffer.from(b64, "base64");
    const r = new SshReader(new Uint8Array(bin), 15);
    return r.string() !== "none";
  }
  return /Proc-Type: 4,ENCRYPTED/.test(text);
}

interface PpkFile {
  version: 2 | 3;
  algorithm: string;
  encryption: string;
  comment: string;
  publicBlob: Uint8Array;
  privateBlob: Uint8Array;
  mac: string;
  headers: Map<string, string>;
}

function parsePpk(text: string): PpkFile {
  const lines = text.split(/\r?\n/);
  const headers = new Map<string, string>();
  let i = 0;
  let publicB64 = "";
  let privateB64 = "";
  while (i < lines.length) {
    const line = lines[i++];
    const m = /^([A-Za-z0-9-]+): ?(.*)$/.exec(line);
    if (!m) continue;
    const [, name, value] = m;
    if (name === "Public-Lines" || name === "Private-Lines") {
      const n = Number(value);
      const body = lines.slice(i, i + n).join("");
      i += n;
      if (name === "Public-Lines") publicB64 = body;
      else privateB64 = body;
    } else {
      headers.set(name, value);
    }
  }
  const first = /^PuTTY-User-Key-File-([23])$/.exec(lines[0].split(":")[0]);
  if (!first) throw new KeyFileError("not a PuTTY key file");
  return {
    version: Number(first[1]) as 2 | 3,
    algorithm: headers.get(`PuTTY-User-Key-File-${first[1]}`) ?? "",
    encryption: headers.get("Encryption") ?? "none",
    comment: headers.get("Comment") ?? "",
    publicBlob: new Uint8Array(Buffer.from(publicB64, "base64")),
    privateBlob: new Uint8Array(Buffer.from(privateB64, "base64")),
    mac: headers.get("Private-MAC") ?? "",
    headers,
  };
}

function ppkMacInput(f: PpkFile, privatePlain: Uint8Array): Uint8Array {
  return new SshWriter().string(f.algorithm).string(f.encryption).string(f.comment)
    .string(f.publicBlob).string(privatePlain).done();
}

async function decryptPpk(f: PpkFile, passphrase: string): Promise<Uint8Array> {
  if (f.encryption === "none") {
    const macKey = f.version === 2
      ? createHash("sha1").update("putty-private-key-file-mac-key").digest()
      : Buffer.alloc(0);
    checkMac(f, f.privateBlob, macKey);
    return f.privateBlob;
  }
  if (f.encryption !== "aes256-cbc") {
    throw new KeyFileError(`unsupported key encryption "${f.encryption}"`);
  }
  const pass = Buffer.from(passphrase, "utf8");
  if (f.version === 3) {
    const { key, iv, macKey } = await ppkV3Keys(f, pass);
    const decipher = createDecipheriv("aes-256-cbc", key, iv);
    decipher.setAutoPadding(false);
    const plain = new Uint8Array(
      Buffer.concat([decipher.update(f.privateBlob), decipher.final()]),
    );
    checkMac(f, plain, macKey, "wrong passphrase");
    return plain;
  }
  const h = (n: number) =>
    createHash("sha1").update(Buffer.from([0, 0, 0, n])).update(pass).digest();
  const key = Buffer.concat([h(0), h(1)]).subarray(0, 32);
  const decipher = createDecipheriv("aes-256-cbc", key, Buffer.alloc(16));
  decipher.setAutoPadding(false);
  const plain = new Uint8Array(
    Buffer.concat([decipher.update(f.privateBlob), decipher.final()]),
  );
  const macKey = createHash("sha1").update("putty-private-key-file-mac-key").update(pass).digest();
  checkMac(f, plain, macKey, "wrong passphrase");
  return plain;
}

/**
 * PPK version 3: the passphrase through Argon2 (the file's flavour, memory, passes, lanes and
 * salt) gives 80 bytes: the AES-256 key, the CBC IV and the HMAC-SHA-256 key, as PuTTY does.
 */
async function ppkV3Keys(f: PpkFile, pass: Uint8Array) {
  const flavour = f.headers.get("Key-Derivation") ?? "";
  if (flavour !== "Argon2id" && flavour !== "Argon2i" && flavour !== "Argon2d") {
    throw new KeyFileError(`unsupported key derivation "${flavour}"`);
  }
  const num = (name: string) => {
    const v = f.headers.get(name) ?? "";
    if (!/^\d+$/.test(v)) throw new KeyFileError(`bad or missing ${name}`);
    return Number(v);
  };
  const saltHex = f.headers.get("Argon2-Salt") ?? "";
  if (!/^([0-9a-fA-F]{2})+$/.test(saltHex)) throw new KeyFileError("bad or missing Argon2-Salt");
  // puttygen writes a key without encryption when given an empty passphrase, so an empty one
  // cannot be right (and Argon2 here cannot take it).
  if (pass.length === 0) throw new KeyFileError("wrong passphrase");
  const derived = await argon2(pass, {
    flavour,
    memoryKiB: num("Argon2-Memory"),
    passes: num("Argon2-Passes"),
    parallelism: num("Argon2-Parallelism"),
    salt: new Uint8Array(Buffer.from(saltHex, "hex")),
    tagLength: 32 + 16 + 32,
  });
  return {
    key: derived.subarray(0, 32),
    iv: derived.subarray(32, 48),
    macKey: derived.subarray(48),
  };
}

function checkMac(f: PpkFile, plain: Uint8Array, key: Uint8Array, what = "MAC check failed"): void {
  const algo = f.version === 2 ? "sha1" : "sha256";
  const mac = createHmac(algo, key).update(ppkMacInput(f, plain)).digest("hex");
  if (mac.toLowerCase() !== f.mac.toLowerCase()) throw new KeyFileError(what);
}

/** Builds an unencrypted "openssh-key-v1" PEM from a public blob and the private fields. */
function opensshPem(publicBlob: Uint8Array, privateFields: Uint8Array, comment: string): string {
  const check = crypto.getRandomValues(new Uint32Array(1))[0];
  const priv = new SshWriter().uint32(check).uint32(check).raw(privateFields).string(comment);
  for (let pad = 1; priv.length % 8 !== 0; pad++) priv.byte(pad);
  const body = new SshWriter().raw(new TextEncoder().encode("openssh-key-v1\0"))
    .string("none").string("none").string("").uint32(1)
    .string(publicBlob).string(priv.done()).done();
  const b64 = Buffer.from(body).toString("base64").replace(/(.{70})/g, "$1\n");
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

function mpintBytes(r: SshReader): Uint8Array {
  return r.bytes();
}

function ppkToOpenssh(f: PpkFile, privatePlain: Uint8Array): string {
  const pub = new SshReader(f.publicBlob);
  const type = pub.string();
  const priv = new SshReader(privatePlain);
  const w = new SshWriter().string(type);
  if (type === "ssh-ed25519") {
    const a = pub.bytes();
    const seed = priv.bytes();
    const seed32 = new Uint8Array(32);
    seed32.set(seed.subarray(0, 32));
    const both = new Uint8Array(64);
    both.set(seed32);
    both.set(a, 32);
    w.string(a).string(both);
  } else if (type === "ssh-rsa") {
    const e = mpintBytes(pub);
    const n = mpintBytes(pub);
    const d = mpintBytes(priv);
    const p = mpintBytes(priv);
    const q = mpintBytes(priv);
    const iqmp = mpintBytes(priv);
    w.string(n).string(e).string(d).string(iqmp).string(p).string(q);
  } else if (type.startsWith("ecdsa-sha2-")) {
    const curve = pub.string();
    const point = pub.bytes();
    const d = mpintBytes(priv);
    w.string(curve).string(point).string(d);
  } else {
    throw new KeyFileError(`unsupported key type "${type}" in PuTTY key file`);
  }
  return opensshPem(f.publicBlob, w.done(), f.comment);
}

/**
 * Reads a key file's text (`path` names the key); `passphrase` is needed only when
 * needsPassphrase() said so. Throws KeyFileError with the reason alone.
 */
export async function loadPrivateKey(
  path: string,
  text: string,
  passphrase?: string,
): Promise<LoadedKey> {
  if (isPpk(text)) {
    let f: PpkFile;
    try {
      f = parsePpk(text);
    } catch (e) {
      if (e instanceof KeyFileError) throw e;
      throw new KeyFileError("unreadable PuTTY key file");
    }
    try {
      const plain = await decryptPpk(f, passphrase ?? "");
      return { key: ppkToOpenssh(f, plain), comment: f.comment };
    } catch (e) {
      throw e instanceof KeyFileError ? e : new KeyFileError(errorText(e));
    }
  }
  if (text.includes("PRIVATE KEY")) {
    return { key: text, passphrase, comment: path };
  }
  if (/^(ssh-|ecdsa-)/.test(text)) {
    throw new KeyFileError("this is a public key; -i needs the private key file");
  }
  throw new KeyFileError("not a private key file PuTTY or OpenSSH would recognise");
}
