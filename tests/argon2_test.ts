import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { argon2, blake2b } from "../lib/keys/argon2.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("BLAKE2b: RFC 7693's 'abc', and node:crypto's blake2b512 at every block boundary", () => {
  assert.equal(
    hex(blake2b(64, new TextEncoder().encode("abc"))),
    "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1" +
      "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
  );
  for (const n of [0, 1, 127, 128, 129, 255, 256, 257, 1000]) {
    const data = new Uint8Array(n).map((_, i) => i * 7 + 3);
    const split = [data.subarray(0, n >> 1), data.subarray(n >> 1)];
    const expected = createHash("blake2b512").update(data).digest("hex");
    assert.equal(hex(blake2b(64, data)), expected, `${n} bytes`);
    assert.equal(hex(blake2b(64, ...split)), expected, `${n} bytes in two parts`);
  }
  // Shorter outputs are a different hash (the length is in the parameter block), not a prefix.
  assert.notEqual(
    hex(blake2b(32, new Uint8Array(3))),
    hex(blake2b(64, new Uint8Array(3))).slice(0, 64),
  );
  assert.throws(() => blake2b(65, new Uint8Array(0)), RangeError);
});

Deno.test("Argon2d, Argon2i and Argon2id: RFC 9106's test vectors", () => {
  const params = {
    salt: new Uint8Array(16).fill(2),
    secret: new Uint8Array(8).fill(3),
    associatedData: new Uint8Array(12).fill(4),
    memoryKiB: 32,
    passes: 3,
    parallelism: 4,
    tagLength: 32,
  };
  const password = new Uint8Array(32).fill(1);
  const expected = {
    Argon2d: "512b391b6f1162975371d30919734294f868e3be3984f3c1a13a4db9fabe4acb",
    Argon2i: "c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8",
    Argon2id: "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
  };
  for (const [flavour, tag] of Object.entries(expected)) {
    const out = argon2(password, { ...params, flavour: flavour as keyof typeof expected });
    assert.equal(hex(out), tag, flavour);
  }
});

Deno.test("Argon2: parameters it cannot run with are refused", () => {
  const base = {
    flavour: "Argon2id" as const,
    salt: new Uint8Array(16),
    memoryKiB: 64,
    passes: 1,
    parallelism: 1,
    tagLength: 32,
  };
  assert.throws(() => argon2(new Uint8Array(0), { ...base, parallelism: 0 }), RangeError);
  assert.throws(() => argon2(new Uint8Array(0), { ...base, passes: 0 }), RangeError);
  assert.throws(() => argon2(new Uint8Array(0), { ...base, memoryKiB: 4 }), RangeError);
});
