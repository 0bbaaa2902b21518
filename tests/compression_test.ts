/**
 * -C (SSH compression) against OpenSSH: the bytes on the wire really shrink (a counting relay
 * between plink and sshd), data comes back intact both ways, compression goes on across the
 * server's re-keys (sshd's RekeyLimit), and a shared upstream started with -C serves downstreams.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { loginArgs, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { runOurs } from "./fixtures/tools.ts";
import { startUpstream, stopUpstream } from "./fixtures/upstream.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A TCP relay to the sshd that counts the bytes going each way. */
function countingRelay(s: Sshd) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const counts = { toServer: 0, fromServer: 0 };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, key: keyof typeof counts) => {
    const buf = new Uint8Array(65536);
    try {
      for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
        counts[key] += n;
        let at = 0;
        while (at < n) at += await to.write(buf.subarray(at, n));
      }
    } catch { /* either side gone */ }
    try {
      to.closeWrite();
    } catch { /* closed */ }
  };
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: s.host, port: s.port });
      // Without this, every key exchange's small packets wait out delayed ACKs.
      client.setNoDelay(true);
      server.setNoDelay(true);
      pipe(client, server, "toServer");
      pipe(server, client, "fromServer");
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, counts, close: () => listener.close() };
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

Deno.test("-C: compressed on the wire, intact both ways, across re-keys", opts, async (t) => {
  // The server re-keys often (every 256 KiB of its accounting), each time with new zlib streams.
  const s = await startSshd({ config: ["RekeyLimit 256K"] });
  const relay = countingRelay(s);
  const viaRelay = { ...s, port: relay.port };
  try {
    await t.step("4 MB of zeros from the server cost a few KB with -C, 4 MB without", async () => {
      const cmd = "head -c 4000000 /dev/zero";
      const before = relay.counts.fromServer;
      const r = await runOurs("plink", [...loginArgs(viaRelay, "-C", "-v"), cmd], {
        env: s.env,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.out.length, 4000000);
      assert.ok(r.out.every((b) => b === 0));
      assert.match(r.stderr, /Will enable zlib \(RFC1950\) compression after user authentication/);
      const compressed = relay.counts.fromServer - before;
      assert.ok(compressed < 200000, `${compressed} bytes on the wire`);

      const plain = relay.counts.fromServer;
      const r2 = await runOurs("plink", [...loginArgs(viaRelay), cmd], { env: s.env });
      assert.equal(r2.code, 0, r2.stderr);
      assert.ok(relay.counts.fromServer - plain > 4000000, "uncompressed for comparison");
    });

    await t.step("4 MB of mixed data round-trips through cat, with re-keys under way", async () => {
      const data = new Uint8Array(4 * 1024 * 1024);
      crypto.getRandomValues(data.subarray(0, 65536));
      for (let i = 65536; i < data.length; i++) data[i] = (i * 7) % 251 < 40 ? data[i % 65536] : 65;
      const before = relay.counts.toServer;
      const r = await runOurs("plink", [...loginArgs(viaRelay, "-C", "-v"), "cat"], {
        env: s.env,
        stdin: data,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(r.out), sha256(data));
      assert.ok(relay.counts.toServer - before < data.length / 2, "compressed upwards too");
      const kex = r.stderr.match(/^Key exchange /gm)?.length ?? 0;
      assert.ok(kex >= 3, `the server re-keyed during the transfer (${kex} key exchanges)`);
    });

    await t.step("a -C upstream serves downstreams; pscp -C works", async () => {
      const up = await startUpstream(s, "ours", { args: ["-C"] });
      try {
        const r = await runOurs("plink", [
          "-share",
          "-batch",
          "-P",
          String(s.port),
          `${s.user}@${s.host}`,
          "head -c 3000000 /dev/zero | wc -c",
        ], { env: s.env });
        assert.equal(r.stdout.trim(), "3000000", r.stderr);
      } finally {
        await stopUpstream(up);
      }
      const dir = await s.userDir("compressed");
      const local = await Deno.makeTempFile();
      try {
        await Deno.writeFile(local, new Uint8Array(1 << 20).fill(120));
        const p = await runOurs("pscp", [
          ...loginArgs(s, "-C", "-q").slice(0, -1),
          local,
          `${s.user}@${s.host}:${dir}/f`,
        ], { env: s.env });
        assert.equal(p.code, 0, p.stderr);
        assert.equal((await Deno.stat(`${dir}/f`)).size, 1 << 20);
      } finally {
        await Deno.remove(local);
      }
    });
  } finally {
    relay.close();
    await s.stop();
  }
});
