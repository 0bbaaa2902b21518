/**
 * ChaCha20 and Poly1305 from the system's OpenSSL 3 libcrypto, through Deno's FFI, for the
 * chacha20-poly1305@openssh.com fast path (ssh2_chacha.ts): packets sealed where they lie.
 * Measured on 32 KiB packets here: Poly1305 6.6 us against 46 us in ssh2's WebAssembly (which
 * also wants the data copied into its memory), ChaCha20 8.8 us against 32 us through node:crypto
 * (which allocates its output). Bulk data spent most of its time in these two.
 *
 * Optional: without FFI permission, or without a libcrypto to load, nativeChachaPoly() is
 * undefined and the callers keep to node:crypto and WebAssembly.
 */

/** Where libcrypto 3 is found on Linux, macOS and Windows (the loader's own search paths). */
const LIBRARY_NAMES = ["libcrypto.so.3", "libcrypto.3.dylib", "libcrypto-3-x64.dll"];

const SYMBOLS = {
  EVP_CIPHER_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex2: {
    parameters: ["pointer", "pointer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_MAC_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  EVP_MAC_CTX_new: { parameters: ["pointer"], result: "pointer" },
  EVP_MAC_init: { parameters: ["pointer", "buffer", "usize", "pointer"], result: "i32" },
  EVP_MAC_update: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  EVP_MAC_final: { parameters: ["pointer", "buffer", "buffer", "usize"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** One packet's ChaCha20 and Poly1305, as PROTOCOL.chacha20poly1305 uses them. */
export class NativeChachaPoly {
  private readonly cipherCtx: Deno.PointerValue;
  private readonly macCtx: Deno.PointerValue;
  /** IV: block counter 0 (4 bytes, little-endian), then the nonce 0 || seqno (big-endian). */
  private readonly iv = new Uint8Array(16);
  private readonly ivView = new DataView(this.iv.buffer);
  private readonly zeros = new Uint8Array(64);
  /** Keystream block 0: its first 32 bytes are the Poly1305 key. */
  private readonly block0 = new Uint8Array(64);
  private readonly outLen = new Uint8Array(8);

  constructor(
    private readonly lib: Lib,
    private readonly chacha: Deno.PointerValue,
    mac: Deno.PointerValue,
  ) {
    this.cipherCtx = lib.EVP_CIPHER_CTX_new();
    this.macCtx = lib.EVP_MAC_CTX_new(mac);
    if (this.cipherCtx === null || this.macCtx === null) throw new Error("libcrypto: no context");
  }

  /** Starts the keystream of `key` (32 bytes) for packet `seqno`; returns the Poly1305 key. */
  private start(key: Uint8Array, seqno: number): Uint8Array {
    this.ivView.setUint32(12, seqno);
    const lib = this.lib;
    if (lib.EVP_EncryptInit_ex2(this.cipherCtx, this.chacha, key, this.iv, null) !== 1) {
      throw new Error("libcrypto: ChaCha20 init failed");
    }
    this.xor(this.zeros, this.block0);
    return this.block0.subarray(0, 32);
  }

  /** XORs the next `src.length` keystream bytes into `dst` (which may be `src`). */
  private xor(src: Uint8Array, dst: Uint8Array): void {
    if (src.length === 0) return;
    if (this.lib.EVP_EncryptUpdate(this.cipherCtx, dst, this.outLen, src, src.length) !== 1) {
      throw new Error("libcrypto: ChaCha20 failed");
    }
  }

  /** The Poly1305 tag of `data` under `key`, written to `tag` (16 bytes). */
  private mac(key: Uint8Array, data: Uint8Array, tag: Uint8Array): void {
    const lib = this.lib;
    if (
      lib.EVP_MAC_init(this.macCtx, key, 32n, null) !== 1 ||
      lib.EVP_MAC_update(this.macCtx, data, BigInt(data.length)) !== 1 ||
      lib.EVP_MAC_final(this.macCtx, tag, this.outLen, 16n) !== 1
    ) {
      throw new Error("libcrypto: Poly1305 failed");
    }
  }

  /**
   * Seals packet `seqno` where it lies: `packet` is its encrypted length (4 bytes, done by the
   * caller) and its clear body; the body is encrypted in place under `key` (K_1) from block 1 on,
   * and the tag over all of it written to `tag`.
   */
  seal(key: Uint8Array, seqno: number, packet: Uint8Array, tag: Uint8Array): void {
    const polyKey = this.start(key, seqno);
    const body = packet.subarray(4);
    this.xor(body, body);
    this.mac(polyKey, packet, tag);
  }

  /**
   * Opens packet `seqno` where it lies, seal()'s reverse: `packet` is its encrypted length and
   * body as they came. The tag over them is computed into `calcTag` for the caller to check
   * against the one received; `decipher()` then deciphers the body in place.
   */
  authenticate(key: Uint8Array, seqno: number, packet: Uint8Array, calcTag: Uint8Array): void {
    this.mac(this.start(key, seqno), packet, calcTag);
  }

  /** Deciphers `body` in place: the keystream authenticate() started, from block 1 on. */
  decipher(body: Uint8Array): void {
    this.xor(body, body);
  }
}

let loaded: NativeChachaPoly | null | undefined;
let switchedOff = false;

/** The native primitives, or undefined when they cannot be had (loaded once). */
export function nativeChachaPoly(): NativeChachaPoly | undefined {
  if (switchedOff) return undefined;
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

/** @internal For tests: turns the native path off (and on again), to reach the fallback. */
export function useNativeChachaPoly(on: boolean): void {
  switchedOff = !on;
}

function load(): NativeChachaPoly | null {
  try {
    // Asking would prompt; only a grant already made counts.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  } catch {
    return null;
  }
  const name = (s: string) => new TextEncoder().encode(s + "\0");
  for (const path of LIBRARY_NAMES) {
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch {
      continue;
    }
    try {
      const chacha = lib.symbols.EVP_CIPHER_fetch(null, name("ChaCha20"), null);
      const mac = lib.symbols.EVP_MAC_fetch(null, name("POLY1305"), null);
      if (chacha !== null && mac !== null) return new NativeChachaPoly(lib.symbols, chacha, mac);
    } catch { /* not a usable libcrypto 3 */ }
    lib.close();
  }
  return null;
}
