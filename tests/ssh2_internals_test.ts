/**
 * The npm:ssh2 internals lib/ssh/ssh2_internals.ts relies on. If ssh2 is upgraded and any of
 * them moved, these fail loudly (and say which).
 */

import assert from "node:assert/strict";
import {
  checkInternals,
  Client,
  parsePrivateKey,
  SSH2_VERSION_PINNED,
  ssh2Version,
} from "../lib/ssh/ssh2_internals.ts";
import { join } from "node:path";
import { openTransport } from "../lib/ssh/transport.ts";
import { SshConnection } from "../lib/ssh/connection.ts";
import { DIRECT_LIMITS } from "../lib/connect.ts";
import { startLoopbackServer } from "../scripts/loopback_server.ts";

Deno.test("ssh2 is the pinned version and exposes what we use", () => {
  assert.equal(ssh2Version(), SSH2_VERSION_PINNED);
  const c = new Client();
  c.on("error", () => {});
  c.connect({ host: "127.0.0.1", port: 9, username: "x", readyTimeout: 1000 });
  checkInternals(c);
  c.end();
});

Deno.test("raw connection layer through ssh2: exec, data both ways, exit status", async () => {
  const server = await startLoopbackServer();
  try {
    const t = await openTransport({
      host: server.host,
      port: server.port,
      user: server.user,
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
    const out = new Response(ch.stdout).text();
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
