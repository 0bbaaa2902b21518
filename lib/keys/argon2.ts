/**
 * Argon2 (RFC 9106, version 0x13) for PuTTY's version 3 key files, whose passphrases go through
 * it (puttygen's default: Argon2id, 8 MiB, one lane, as many passes as fit in about 100 ms).
 * node:crypto in Deno has no Argon2; hash-wasm's WebAssembly build computes it several times
 * faster than JavaScript can. It is imported only when such a key is unlocked, so no other path
 * pays for loading it.
 */

export type Argon2Flavour = "Argon2d" | "Argon2i" | "Argon2id";

export interface Argon2Params {
  flavour: Argon2Flavour;
  salt: Uint8Array;
  /** The optional key K (PuTTY's key files have none). */
  secret?: Uint8Array;
  memoryKiB: number;
  passes: number;
  parallelism: number;
  tagLength: number;
}

/** The Argon2 tag of `password`; RangeError for parameters RFC 9106 does not allow. */
export async function argon2(password: Uint8Array, p: Argon2Params): Promise<Uint8Array> {
  if (!Number.isInteger(p.parallelism) || p.parallelism < 1 || p.parallelism > 0xffffff) {
    throw new RangeError("Argon2 parallelism must be 1 to 2^24-1");
  }
  if (!Number.isInteger(p.passes) || p.passes < 1) {
    throw new RangeError("Argon2 needs at least one pass");
  }
  if (!Number.isInteger(p.memoryKiB) || p.memoryKiB < 8 * p.parallelism) {
    throw new RangeError("Argon2 memory must be at least 8 KiB per lane");
  }
  if (!Number.isInteger(p.tagLength) || p.tagLength < 4) {
    throw new RangeError("Argon2 tags are at least 4 bytes");
  }
  if (p.salt.length < 8) throw new RangeError("Argon2 salts are at least 8 bytes");
  // RFC 9106 allows an empty password; hash-wasm does not.
  if (password.length === 0) throw new RangeError("Argon2 here needs a non-empty password");
  const hw = await import("npm:hash-wasm@4.13.0");
  const run = p.flavour === "Argon2d"
    ? hw.argon2d
    : p.flavour === "Argon2i"
    ? hw.argon2i
    : hw.argon2id;
  return await run({
    password,
    salt: p.salt,
    secret: p.secret,
    iterations: p.passes,
    parallelism: p.parallelism,
    memorySize: p.memoryKiB,
    hashLength: p.tagLength,
    outputType: "binary",
  });
}
