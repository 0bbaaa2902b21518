/**
 * The SOCKS 4/4A/5 negotiation parser used by -D, on its own: byte layouts from RFC 1928 and the
 * SOCKS 4/4A specifications, split at every possible point, and the refusals.
 */

import assert from "node:assert/strict";
import {
  ipv6Text,
  SOCKS5_REPLY,
  socks5ReplyCode,
  socksFailure,
  SocksParser,
  type SocksProgress,
  socksSuccess,
} from "../lib/forward/socks.ts";
import { OPEN_FAILURE } from "../lib/ssh/wire.ts";

const bytes = (...parts: (number[] | string)[]) => {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "string") out.push(...new TextEncoder().encode(p));
    else out.push(...p);
  }
  return new Uint8Array(out);
};

/**
 * Feeds `data` in two pieces split at `at`, merging what both pushes produced. Once the request
 * is complete the caller reads the socket itself, so the second piece then counts as `rest`.
 */
function feedSplit(data: Uint8Array, at: number): SocksProgress {
  const p = new SocksParser();
  const a = p.push(data.subarray(0, at));
  if (a.error !== undefined) return a;
  if (a.request) return { ...a, rest: bytes([...a.rest!], [...data.subarray(at)]) };
  const b = p.push(data.subarray(at));
  return { ...b, replies: [...a.replies, ...b.replies] };
}

const SOCKS5_GREETING = bytes([5, 1, 0]);

Deno.test("SOCKS 4: CONNECT to an IPv4 address, any split, with data after it", () => {
  const req = bytes([4, 1, 0x1f, 0x90, 10, 1, 2, 3], "user", [0], "GET /");
  for (let at = 0; at <= req.length; at++) {
    const p = feedSplit(req, at);
    assert.deepEqual(p.request, { version: 4, host: "10.1.2.3", port: 8080 }, `split ${at}`);
    assert.deepEqual(p.replies, []);
    assert.equal(new TextDecoder().decode(p.rest), "GET /");
  }
});

Deno.test("SOCKS 4A: a host name after the user id", () => {
  const p = new SocksParser().push(bytes([4, 1, 0, 80, 0, 0, 0, 1], [0], "example.org", [0]));
  assert.deepEqual(p.request, { version: 4, host: "example.org", port: 80 });
  assert.equal(p.rest?.length, 0);
});

Deno.test("SOCKS 4: BIND is refused with 0x5B", () => {
  const p = new SocksParser().push(bytes([4, 2, 0, 80, 1, 2, 3, 4], [0]));
  assert.equal(p.request, undefined);
  assert.match(p.error ?? "", /command 2/);
  assert.deepEqual(p.replies, [bytes([0, 0x5b, 0, 0, 0, 0, 0, 0])]);
});

Deno.test("SOCKS 5: method choice, then CONNECT by name, IPv4 and IPv6", () => {
  const cases: [number[], string][] = [
    [[3, 11, ...new TextEncoder().encode("example.org")], "example.org"],
    [[1, 192, 168, 0, 1], "192.168.0.1"],
    [[4, ...new Array(15).fill(0), 1], "::1"],
  ];
  for (const [addr, host] of cases) {
    const p = new SocksParser();
    const first = p.push(SOCKS5_GREETING);
    assert.deepEqual(first.replies, [bytes([5, 0])]);
    assert.equal(first.request, undefined);
    const second = p.push(bytes([5, 1, 0], addr, [0x01, 0xbb]));
    assert.deepEqual(second.request, { version: 5, host, port: 443 });
    assert.deepEqual(second.replies, []);
  }
});

Deno.test("SOCKS 5: greeting and request in one piece, split anywhere", () => {
  const all = bytes([5, 2, 2, 0], [5, 1, 0, 3, 9], "localhost", [0, 22], "SSH-2.0-x");
  for (let at = 0; at <= all.length; at++) {
    const p = feedSplit(all, at);
    assert.deepEqual(p.replies, [bytes([5, 0])], `split ${at}`);
    assert.deepEqual(p.request, { version: 5, host: "localhost", port: 22 });
    assert.equal(new TextDecoder().decode(p.rest), "SSH-2.0-x");
  }
});

Deno.test("SOCKS 5: a client without 'no authentication' gets 0xFF", () => {
  const p = new SocksParser().push(bytes([5, 1, 2]));
  assert.deepEqual(p.replies, [bytes([5, 0xff])]);
  assert.match(p.error ?? "", /authentication/);
});

Deno.test("SOCKS 5: UDP ASSOCIATE and unknown address types are refused", () => {
  const udp = new SocksParser();
  udp.push(SOCKS5_GREETING);
  const u = udp.push(bytes([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  assert.equal(u.request, undefined);
  assert.equal(u.replies[0][1], SOCKS5_REPLY.COMMAND_NOT_SUPPORTED);

  const odd = new SocksParser();
  odd.push(SOCKS5_GREETING);
  const o = odd.push(bytes([5, 1, 0, 9, 1, 2, 3]));
  assert.equal(o.replies[0][1], SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED);
  assert.match(o.error ?? "", /address type 9/);
});

Deno.test("SOCKS: an unknown version is dropped without a reply", () => {
  const p = new SocksParser().push(bytes("GET / HTTP/1.1\r\n"));
  assert.match(p.error ?? "", /unknown SOCKS version 71/);
  assert.deepEqual(p.replies, []);
});

Deno.test("SOCKS: endless user id is cut off with a refusal", () => {
  const p = new SocksParser();
  let last = p.push(bytes([4, 1, 0, 80, 1, 2, 3, 4]));
  for (let i = 0; i < 20 && last.error === undefined; i++) {
    last = p.push(new Uint8Array(100).fill(65));
  }
  assert.match(last.error ?? "", /too long/);
  assert.deepEqual(last.replies, [bytes([0, 0x5b, 0, 0, 0, 0, 0, 0])]);
});

Deno.test("SOCKS replies: success, and failures mapped from the server's open failure", () => {
  assert.deepEqual(socksSuccess(4), bytes([0, 0x5a, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(socksSuccess(5), bytes([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(
    socksFailure(4, OPEN_FAILURE.CONNECT_FAILED, "Connection refused"),
    bytes([0, 0x5b, 0, 0, 0, 0, 0, 0]),
  );
  const code = (reason: number, text: string) => socksFailure(5, reason, text)[1];
  assert.equal(code(OPEN_FAILURE.CONNECT_FAILED, "Connection refused"), 5);
  assert.equal(code(OPEN_FAILURE.CONNECT_FAILED, "Name or service not known"), 4);
  assert.equal(code(OPEN_FAILURE.CONNECT_FAILED, "No route to host"), 4);
  assert.equal(code(OPEN_FAILURE.CONNECT_FAILED, "Network is unreachable"), 3);
  assert.equal(code(OPEN_FAILURE.CONNECT_FAILED, "Connection timed out"), 6);
  assert.equal(code(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "no"), 2);
  assert.equal(socks5ReplyCode(OPEN_FAILURE.RESOURCE_SHORTAGE, ""), 1);
});

Deno.test("IPv6 text is RFC 5952's", () => {
  const v6 = (...groups: number[]) => {
    const b = new Uint8Array(16);
    groups.forEach((g, i) => {
      b[2 * i] = g >> 8;
      b[2 * i + 1] = g & 0xff;
    });
    return ipv6Text(b);
  };
  assert.equal(v6(0, 0, 0, 0, 0, 0, 0, 1), "::1");
  assert.equal(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), "2001:db8::1");
  assert.equal(v6(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1), "2001:db8:0:1::1");
  assert.equal(v6(1, 0, 2, 3, 4, 5, 6, 7), "1:0:2:3:4:5:6:7");
  assert.equal(v6(0, 0, 0, 0, 0, 0, 0, 0), "::");
});
