/**
 * The npm:ssh2 internals lib/transport/ssh2_internals.ts relies on. If ssh2 is upgraded and any of
 * them moved, these fail loudly (and say which).
 */

import assert from "node:assert/strict";
import {
  checkInternals,
  Client,
  parsePrivateKey,
  sendRawPayload,
  sendRawPayloadParts,
  SSH2_VERSION_PINNED,
  ssh2Version,
} from "../lib/transport/ssh2_internals.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DENO } from "./fixtures/tools.ts";
import { Buffer } from "node:buffer";
import ssh2Crypto from "npm:ssh2@1.17.0/lib/protocol/crypto.js";
import ssh2PacketRW from "npm:ssh2@1.17.0/lib/protocol/zlib.js";
import { openTransport } from "../lib/transport/transport.ts";
import { SshConnection } from "../lib/ssh/connection.ts";
import { DIRECT_LIMITS } from "../lib/share/limits.ts";
import { startLoopbackServer } from "../scripts/loopback_server.ts";
import {
  chachaFirstWord,
  chachaReady,
  encryptsIntoOwnBuffers,
  packetAround,
  sealFramed,
} from "../lib/transport/ssh2_chacha.ts";
import { nativeChachaPoly, useNativeChachaPoly } from "../lib/transport/openssl_chacha.ts";
import { framedPayload, isFramed, releaseFramed } from "../lib/ssh/framed_payload.ts";
import { createCipheriv } from "node:crypto";

const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));

Deno.test("ssh2 is the pinned version and exposes what we use", () => {
  assert.equal(ssh2Version(), SSH2_VERSION_PINNED);
  const c = new Client();
  c.on("error", () => {});
  c.connect({ host: "127.0.0.1", port: 9, username: "x", readyTimeout: 1000 });
  checkInternals(c);
  c.end();
});

Deno.test("ssh2's SFTP client and agent code stay unloaded until an agent is used", async () => {
  // In a process of its own: this one has ssh2's index (the loopback server), which loads both.
  const internals = new URL("../lib/transport/ssh2_internals.ts", import.meta.url).href;
  const code = `
    import Module from "node:module";
    const { Client } = await import(${JSON.stringify(internals)});
    const loaded = () => Object.keys(Module._cache).filter((f) => /ssh2/.test(f))
      .map((f) => f.replace(/\\\\/g, "/").split("/lib/").pop());
    const before = loaded();
    const c = new Client();
    c.on("error", () => {});
    c.connect({ host: "127.0.0.1", port: 9, username: "x", readyTimeout: 1000, agent: "/nonexistent" });
    c.end();
    console.log(JSON.stringify({ before, after: loaded() }));`;
  const out = await new Deno.Command(DENO, {
    args: ["eval", "--config", CONFIG, code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const { before, after } = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(before.includes("client.js"), before.join(" "));
  assert.ok(!before.includes("agent.js") && !before.includes("protocol/SFTP.js"), before.join(" "));
  assert.ok(after.includes("agent.js"), `an agent connection loads it: ${after.join(" ")}`);
  assert.ok(!after.includes("protocol/SFTP.js"), after.join(" "));
});

Deno.test("raw connection layer through ssh2: exec, data both ways, exit status", async () => {
  const server = await startLoopbackServer();
  try {
    const t = await openTransport({
      host: server.host,
      port: server.port,
      credentials: () => Promise.resolve({ user: server.user }),
      password: server.password,
      addressFamily: "any",
      compression: false,
      batch: true,
      verifyHostKey: () => Promise.resolve(),
      prompt: () => Promise.resolve(undefined),
      log: () => {},
    });
    assert.match(t.serverVersion, /^ssh2js/);
    const conn = new SshConnection(t.port, DIRECT_LIMITS);
    const ch = await conn.openSession();
    assert.ok(await ch.exec("tr a-z A-Z; exit 4"));
    const out = new Response(ch.stdout.stream).text();
    await ch.write(new TextEncoder().encode("hello through ssh2\n"));
    ch.eof();
    assert.equal(await out, "HELLO THROUGH SSH2\n");
    await ch.closed;
    assert.deepEqual(ch.exit, { code: 4 });
    conn.close();
  } finally {
    await server.close();
  }
});

Deno.test("every ECDSA key signs, whatever its private scalar looks like", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (let i = 0; i < 12; i++) {
      const bits = [256, 384, 521][i % 3];
      const path = join(dir, `k${i}`);
      const out = await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ecdsa", "-b", String(bits), "-N", "", "-f", path],
      }).output();
      assert.ok(out.success);
      const key = parsePrivateKey(await Deno.readTextFile(path));
      const data = new TextEncoder().encode(`message ${i}`);
      const sig = key.sign(data);
      assert.ok(!(sig instanceof Error), `ecdsa-${bits} key ${i}: ${sig}`);
      assert.equal(key.verify(data, sig), true);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

interface Ssh2Cipher {
  allocPacket(n: number): Buffer;
  encrypt(p: Buffer): void;
}

/** ssh2's chacha20-poly1305@openssh.com cipher and decipher (ours once chachaReady settles). */
async function chacha(key: Buffer, seqno: number) {
  await chachaReady();
  const crypto = ssh2Crypto as {
    init: Promise<void>;
    CIPHER_INFO: Record<string, { keyLen: number }>;
    createCipher(c: unknown): Ssh2Cipher;
    createDecipher(c: unknown): { decrypt(data: Uint8Array, p: number, len: number): void };
  };
  await crypto.init;
  const info = crypto.CIPHER_INFO["chacha20-poly1305@openssh.com"];
  return {
    cipher: (onWrite: (b: Uint8Array) => void) =>
      crypto.createCipher({
        outbound: { onWrite, cipherInfo: info, cipherKey: key, seqno, forceNative: true },
      }),
    decipher: (onPayload: (p: Buffer) => void) =>
      crypto.createDecipher({
        inbound: { onPayload, decipherInfo: info, decipherKey: key, seqno, forceNative: true },
      }),
  };
}

for (const native of [true, false]) {
  Deno.test(
    `chacha20-poly1305 writes and reads OpenSSH's packet format (${
      native ? "libcrypto where it loads" : "node:crypto, WebAssembly and JavaScript"
    })`,
    async () => {
      useNativeChachaPoly(native);
      try {
        await packetFormat();
      } finally {
        useNativeChachaPoly(true);
      }
    },
  );
}

async function packetFormat(): Promise<void> {
  const key = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(64)));
  const [main, header] = [key.subarray(0, 32), key.subarray(32)];
  const seqnos = [0, 1, 0x01020304, 0x7fffffff, 0xfffffffe];
  // The header key's first keystream word, against node:crypto's chacha20.
  for (const seqno of seqnos) {
    const iv = Buffer.alloc(16);
    iv.writeUInt32BE(seqno, 12);
    const want = createCipheriv("chacha20", header, iv).update(Buffer.alloc(4)).readUInt32LE(0);
    const dv = new DataView(header.buffer, header.byteOffset, 32);
    const words = Uint32Array.from({ length: 8 }, (_, i) => dv.getUint32(4 * i, true));
    assert.equal(chachaFirstWord(words, seqno), want, `seqno ${seqno}`);
  }
  // Whole packets, at sequence numbers up to the wrap, against PROTOCOL.chacha20poly1305 done
  // with node:crypto's chacha20; then back through the decipher, split at every awkward point.
  const wire: Uint8Array[] = [];
  const start = 0xfffffffe;
  const ssh2 = await chacha(key, start);
  const cipher = ssh2.cipher((b) => wire.push(new Uint8Array(b)));
  const plain: Buffer[] = [];
  // Sizes on both sides of the small-packet path (enciphered in JavaScript) and the large one.
  for (const size of [1, 100, 30000, 7, 1000, 1013, 1030, 2000]) {
    const packet = cipher.allocPacket(size);
    globalThis.crypto.getRandomValues(packet.subarray(5, 5 + size));
    plain.push(Buffer.from(packet.subarray(5, 5 + size)));
    const clear = Buffer.from(packet);
    const before = wire.length;
    cipher.encrypt(packet);
    const seqno = (start + plain.length - 1) >>> 0;
    const iv = Buffer.alloc(16);
    iv.writeUInt32BE(seqno, 12);
    const head = createCipheriv("chacha20", header, iv).update(clear.subarray(0, 4));
    iv[0] = 1;
    const body = createCipheriv("chacha20", main, iv).update(clear.subarray(4));
    const sent = Buffer.concat(wire.slice(before));
    assert.deepEqual(sent.subarray(0, 4), head);
    assert.deepEqual(sent.subarray(4, sent.length - 16), body);
  }
  const stream = Buffer.concat(wire);
  for (const step of [stream.length, 1, 3, 17, 4096]) {
    const got: Buffer[] = [];
    const decipher = ssh2.decipher((p) => void got.push(Buffer.from(p)));
    for (let at = 0; at < stream.length; at += step) {
      const piece = stream.subarray(at, at + step);
      decipher.decrypt(piece, 0, piece.length);
    }
    assert.deepEqual(got, plain, `in pieces of ${step}`);
  }
  // A corrupted tag is refused.
  const bad = Buffer.from(stream.subarray(0, wire[0].length + wire[1].length + wire[2].length));
  bad[bad.length - 1] ^= 1;
  const decipher = ssh2.decipher(() => {});
  assert.throws(() => decipher.decrypt(bad, 0, bad.length), /Invalid MAC/);
}

Deno.test("framed payloads become chacha20-poly1305 packets where they lie", async () => {
  // libcrypto 3 comes with OpenSSH on Linux: there the native path must be taken.
  if (Deno.build.os === "linux") assert.ok(nativeChachaPoly(), "libcrypto.so.3 via FFI");
  const key = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(64)));
  const ssh2 = await chacha(key, 7);
  const wire: Uint8Array[] = [];
  const cipher = ssh2.cipher((b) => wire.push(new Uint8Array(b)));
  assert.ok(encryptsIntoOwnBuffers(cipher));
  const plain: Buffer[] = [];
  for (const size of [1, 2, 7, 8, 9, 15, 16, 4095, 16393, 32777, 32781]) {
    const payload = framedPayload(size);
    assert.ok(isFramed(payload));
    globalThis.crypto.getRandomValues(payload);
    plain.push(Buffer.from(payload));
    const packet = packetAround(payload);
    // As ssh2's allocPacket lays it out: same length and padding length.
    const want = cipher.allocPacket(size);
    assert.equal(packet.length, want.length, `size ${size}`);
    assert.deepEqual(packet.subarray(0, 5), want.subarray(0, 5), `size ${size}`);
    assert.equal(packet.buffer, payload.buffer);
    assert.deepEqual(packet.subarray(5, 5 + size), plain.at(-1));
    // Sealed where it lies (libcrypto), and every other one by encrypt() (node:crypto and
    // WebAssembly) into buffers of its own; either way the payload's buffer can serve again
    // once the packet is written.
    const sealed = plain.length % 2 === 1 ? sealFramed(cipher, packet) : undefined;
    if (sealed) {
      assert.equal(sealed.buffer, payload.buffer);
      assert.equal(sealed.length, packet.length + 16);
      wire.push(new Uint8Array(sealed));
    } else {
      cipher.encrypt(packet);
    }
    releaseFramed(payload);
    releaseFramed(payload);
  }
  // A downstream's largest data message (16 KiB) gets a buffer of its own size, not a spare.
  assert.ok(framedPayload(16393).buffer.byteLength < 16393 + 64);
  // A buffer handed back twice is handed out once.
  const a = framedPayload(32768);
  const b = framedPayload(32768);
  assert.notEqual(a.buffer, b.buffer);
  // Views of other buffers are not framed, whatever their offset.
  assert.ok(!isFramed(new Uint8Array(100).subarray(5, 50)));
  assert.ok(!isFramed(a.subarray(1)));
  const got: Buffer[] = [];
  const decipher = ssh2.decipher((p) => void got.push(Buffer.from(p)));
  const stream = Buffer.concat(wire);
  decipher.decrypt(stream, 0, stream.length);
  assert.deepEqual(got, plain);
});

Deno.test("a payload sent as a re-key ends but before ssh2 resets allocStart keeps its header", async () => {
  const key = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(64)));
  const ssh2 = await chacha(key, 3);
  const wire: Uint8Array[] = [];
  const PacketWriter =
    (ssh2PacketRW as { PacketWriter: new (p: unknown) => { allocStart: number } })
      .PacketWriter;
  // ssh2's state then: the exchange over (_kexinit unset, packets encrypted at once), its old
  // packet writer still in place with allocStart left at the exchange's 0.
  const proto: Record<string, unknown> = {
    _cipher: ssh2.cipher((b) => wire.push(new Uint8Array(b))),
    _kexinit: undefined,
  };
  const writer = new PacketWriter(proto);
  writer.allocStart = 0;
  proto._packetRW = { write: writer };
  const adjust = new Uint8Array([93, 0, 0, 1, 0, 0, 2, 0, 0]);
  sendRawPayload({ _protocol: proto }, adjust);
  // The same for a payload sent as its parts (joined data, lib/share/data_joiner.ts).
  const data = new Uint8Array([94, 0, 0, 0, 7, 0, 0, 0, 3, 1, 2, 3]);
  sendRawPayloadParts({ _protocol: proto }, [data.subarray(0, 9), data.subarray(9)]);
  const got: Buffer[] = [];
  const stream = Buffer.concat(wire);
  ssh2.decipher((p) => void got.push(Buffer.from(p))).decrypt(stream, 0, stream.length);
  assert.deepEqual(got, [Buffer.from(adjust), Buffer.from(data)]);
});

Deno.test("without FFI permission, chacha20-poly1305 keeps to node:crypto", async () => {
  const module = new URL("../lib/transport/openssl_chacha.ts", import.meta.url).href;
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { nativeChachaPoly } from "${module}";\nconsole.log(String(nativeChachaPoly()));\n`,
    );
    const out = await new Deno.Command(DENO, {
      args: ["run", "--no-prompt", "--allow-read", "--config", CONFIG, script],
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "undefined");
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("chacha20-poly1305 packets leave no native memory behind", async () => {
  // Measured in a process of its own: test files running in parallel share this one's RSS.
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "--config", CONFIG, fileURLToPath(import.meta.url), "--chacha-rss"],
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const { encrypt, decrypt } = JSON.parse(new TextDecoder().decode(out.stdout));
  // Unfixed, each packet left three cipher contexts in Deno's resource table: ~30 MiB each way.
  assert.ok(encrypt < 10, `RSS grew ${encrypt.toFixed(1)} MiB encrypting 40,000 packets`);
  assert.ok(decrypt < 10, `RSS grew ${decrypt.toFixed(1)} MiB decrypting 40,000 packets`);
});

/** RSS growth (MiB) over 40,000 chacha20-poly1305 packets each way through ssh2's ciphers. */
async function chachaRssGrowth(): Promise<{ encrypt: number; decrypt: number }> {
  type Cryptor = {
    allocPacket(n: number): Uint8Array;
    encrypt(p: Uint8Array): void;
    decrypt(data: Uint8Array, p: number, len: number): void;
  };
  const crypto = ssh2Crypto as {
    init: Promise<void>;
    CIPHER_INFO: Record<string, { keyLen: number }>;
    createCipher(c: unknown): Cryptor;
    createDecipher(c: unknown): Cryptor;
  };
  await crypto.init;
  const info = crypto.CIPHER_INFO["chacha20-poly1305@openssh.com"];
  const key = Buffer.alloc(info.keyLen, 7);
  const wire: Uint8Array[] = [];
  const cipher = crypto.createCipher({
    outbound: {
      onWrite: () => {},
      cipherInfo: info,
      cipherKey: key,
      seqno: 0,
      forceNative: true,
    },
  });
  let payloads = 0;
  const decipher = crypto.createDecipher({
    inbound: {
      onPayload: () => void payloads++,
      decipherInfo: info,
      decipherKey: key,
      seqno: 0,
      forceNative: true,
    },
  });
  const rss = () => Deno.memoryUsage().rss / 1048576;
  const packets = 40000;
  // Encrypting (what is written is dropped as it goes), after a warm-up that lets V8's heap
  // grow to its working size...
  for (let i = 0; i < packets / 2; i++) cipher.encrypt(cipher.allocPacket(100));
  let before = rss();
  for (let i = 0; i < packets; i++) cipher.encrypt(cipher.allocPacket(100));
  const encryptGrowth = rss() - before;
  // ...and decrypting, from a recording of the wire.
  const recorder = crypto.createCipher({
    outbound: {
      onWrite: (b: Uint8Array) => wire.push(new Uint8Array(b)),
      cipherInfo: info,
      cipherKey: key,
      seqno: 0,
      forceNative: true,
    },
  });
  for (let i = 0; i < packets * 1.5; i++) recorder.encrypt(recorder.allocPacket(100));
  const warmUp = wire.splice(0, wire.length / 3);
  for (const b of warmUp) decipher.decrypt(b, 0, b.length);
  before = rss();
  for (const b of wire) decipher.decrypt(b, 0, b.length);
  const decryptGrowth = rss() - before;
  assert.equal(payloads, packets * 1.5);
  return { encrypt: encryptGrowth, decrypt: decryptGrowth };
}

if (import.meta.main && Deno.args[0] === "--chacha-rss") {
  console.log(JSON.stringify(await chachaRssGrowth()));
}
