/**
 * The upstream against a server that allows 10 sessions per connection (sshd `MaxSessions 10`):
 * more sessions at once than that still all run (queued for room, or over extra connections
 * logged in with the upstream's key), a session that can find no room gets the server's own
 * refusal after a bounded wait, and a client holding sessions by the hundred is refused while
 * the others are served. Downstreams are in-process clients (lib/share/downstream.ts) and a
 * raw-socket one for the hog; the upstream is a real `plink -share -N` of ours.
 */

import assert from "node:assert/strict";
import { type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startUpstream, upstreamId } from "./fixtures/upstream.ts";
import { collect } from "./fixtures/tools.ts";
import { RawDownstream } from "./fixtures/raw_downstream.ts";
import { openDownstream } from "../lib/share/downstream.ts";
import { sharePaths } from "../lib/share/socket_path.ts";
import { message, MSG, readUint32 } from "../lib/ssh/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const LIMIT = 10;

/** One downstream running `command`: its output, or the error that stopped it. */
async function run(socket: string, command: string): Promise<string> {
  const { conn } = await openDownstream(socket);
  try {
    const ch = await conn.openSession();
    assert.ok(await ch.exec(command), "exec refused");
    const out = await new Response(ch.stdout.stream).text();
    await ch.closed;
    return out;
  } catch (e) {
    return `error: ${e instanceof Error ? e.message : e}`;
  } finally {
    conn.close();
  }
}

async function withUpstream(
  env: Record<string, string>,
  body: (s: Sshd, socket: string) => Promise<void>,
): Promise<string> {
  const s = await startSshd({ config: [`MaxSessions ${LIMIT}`] });
  const up = await startUpstream(s, "ours", { env, args: ["-v"] });
  const done = collect(up, { timeoutMs: 180000 });
  try {
    const { socket } = await sharePaths(upstreamId(s));
    (await openDownstream(socket)).conn.close(); // greeted: the upstream has logged in
    await body(s, socket);
  } finally {
    try {
      up.kill("SIGTERM");
    } catch { /* gone */ }
    await s.stop();
  }
  return (await done).stderr;
}

Deno.test(
  "share limits: 40 sessions at once against MaxSessions 10 all run, over more connections",
  opts,
  async () => {
    let logins = 0;
    const log = await withUpstream({}, async (s, socket) => {
      const before = await s.authCount();
      const outs = await Promise.all(
        Array.from({ length: 40 }, (_, i) => run(socket, `sleep 1; echo ok ${i}`)),
      );
      outs.forEach((out, i) => assert.equal(out, `ok ${i}\n`, `session ${i}`));
      logins = (await s.authCount()) - before;
    });
    assert.match(log, /server allows 10 sessions per connection/);
    assert.match(log, /connection #2 is up/);
    assert.ok(logins >= 1 && logins <= 3, `${logins} extra logins (at most 3 more connections)`);
  },
);

Deno.test("share limits: with one connection only, sessions wait for room", opts, async () => {
  const log = await withUpstream({ PK_SHARE_MAX_CONNECTIONS: "1" }, async (s, socket) => {
    const before = await s.authCount();
    const outs = await Promise.all(
      Array.from({ length: 25 }, (_, i) => run(socket, `sleep 1; echo ok ${i}`)),
    );
    outs.forEach((out, i) => assert.equal(out, `ok ${i}\n`, `session ${i}`));
    assert.equal(await s.authCount(), before, "no more logins");
  });
  assert.match(log, /server allows 10 sessions per connection; further ones wait for room\n/);
});

Deno.test(
  "share limits: a session that finds no room gets the server's refusal in bounded time",
  opts,
  async () => {
    await withUpstream({
      PK_SHARE_MAX_CONNECTIONS: "1",
      PK_SHARE_SESSION_WAIT_MS: "1500",
    }, async (_s, socket) => {
      // Ten clients hold every session the server allows on the connection.
      const holders = Array.from({ length: LIMIT }, () => openDownstream(socket));
      const held = await Promise.all(holders.map(async (h) => {
        const ch = await (await h).conn.openSession();
        assert.ok(await ch.exec("sleep 60"));
        return ch;
      }));
      const t0 = Date.now();
      const out = await run(socket, "echo never");
      const waited = Date.now() - t0;
      assert.match(out, /^error: .*open failed/);
      assert.ok(waited >= 1400, `refused after ${waited} ms, before the wait was up`);
      assert.ok(waited < 15000, `refused after ${waited} ms`);
      for (const h of holders) (await h).conn.close();
      assert.equal(held.length, LIMIT);
    });
  },
);

Deno.test(
  "share limits: a client opening 300 sessions is refused its excess; the others are served",
  opts,
  async () => {
    await withUpstream({ PK_SHARE_MAX_CONNECTIONS: "1" }, async (_s, socket) => {
      const hog = await RawDownstream.open(socket);
      for (let id = 0; id < 300; id++) {
        await hog.sendPacket(message(MSG.CHANNEL_OPEN, (w) => {
          w.string("session").uint32(id).uint32(0x200000).uint32(0x4000);
        }));
      }
      let confirmed = 0;
      let refused = 0;
      let refusal = "";
      while (confirmed + refused < 300) {
        const p = await hog.next(
          (p) => p[0] === MSG.CHANNEL_OPEN_CONFIRMATION || p[0] === MSG.CHANNEL_OPEN_FAILURE,
          30000,
        );
        if (!p) break;
        if (p[0] === MSG.CHANNEL_OPEN_CONFIRMATION) confirmed++;
        else {
          refused++;
          refusal ||= new TextDecoder().decode(p.subarray(13, 13 + readUint32(p, 9)));
        }
      }
      assert.ok(!hog.closed, "the hog is refused sessions, not disconnected");
      assert.ok(confirmed >= 1 && confirmed < LIMIT, `the hog got ${confirmed} sessions`);
      assert.equal(confirmed + refused, 300);
      assert.match(refusal, /too many sessions through this shared connection/);
      // Everyone else still gets sessions, while the hog holds its share.
      const outs = await Promise.all(
        Array.from({ length: 5 }, (_, i) => run(socket, `echo ok ${i}`)),
      );
      outs.forEach((out, i) => assert.equal(out, `ok ${i}\n`, `session ${i}`));
      hog.close();
    });
  },
);
