/**
 * 1,000 malformed packets from a fake downstream on the raw sharing socket: random
 * types and lengths, truncated fields, trailing bytes, foreign and random channel ids, NUL bytes
 * in strings, oversize and zero length prefixes, frames cut short. Meanwhile a well-behaved
 * downstream (our plink) streams data through the same upstream; it must arrive intact, the
 * upstream must stay up and keep serving, and no server re-authentication may happen.
 *
 * After every packet the fake downstream sends a "ping" (a channel request on a second session
 * channel, which OpenSSH answers with CHANNEL_FAILURE) and waits for the answer or for the
 * upstream to hang up on it, so each packet's effect is known before the next; when it is hung
 * up on, it reconnects. The generator is a seeded PRNG: PK_FUZZ_SEED=n reproduces a run.
 */

import assert from "node:assert/strict";
import { type Sshd, startSshd } from "./fixtures/sshd.ts";
import { collect, runOurs, spawnOurs, waitFor } from "./fixtures/tools.ts";
import { RawDownstream } from "./fixtures/raw_downstream.ts";
import { fdCount } from "./fixtures/proc.ts";
import { openDownstream } from "../lib/share/downstream.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { connectionId, sharePaths } from "../lib/share/socket_path.ts";
import { MAX_SHARE_MESSAGE } from "../lib/share/limits.ts";
import { message, MSG, readUint32, type SshWriter } from "../lib/ssh/wire.ts";

const SEED = Number(Deno.env.get("PK_FUZZ_SEED") ?? 20261125);
const PACKETS = 1000;

/** mulberry32: small, fast, and the same sequence everywhere for one seed. */
class Rand {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = Math.imul(this.s ^ (this.s >>> 15), 1 | this.s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  u32(): number {
    return this.int(0x100000000);
  }
}

/** Server-side channel ids the fake downstream knows about on its current connection. */
interface Ids {
  /** Its own session channel, the target of most packets. */
  own: number;
  /** The channel it pings on; never named by a fuzz packet. */
  ping: number;
}

/** Commands a well-formed exec may carry: harmless whatever order they run in. */
const SAFE_COMMANDS = ["true", "cat", "exit 3", "echo fuzz", "sleep 0.2", "head -c 100 /dev/zero"];
const REQUEST_NAMES = [
  "exec",
  "env",
  "pty-req",
  "window-change",
  "signal",
  "break",
  "subsystem",
  "shell",
  "x11-req",
  "auth-agent-req@openssh.com",
  "eow@openssh.com",
  "keepalive@openssh.com",
  "pk-unknown@test",
];

function requestData(r: Rand, name: string, w: SshWriter): void {
  switch (name) {
    case "exec":
      w.string(r.pick(SAFE_COMMANDS));
      break;
    case "subsystem":
      w.string(r.pick(["sftp", "nonesuch"]));
      break;
    case "env":
      w.string(`PK_FUZZ_${r.int(9)}`).string("value");
      break;
    case "pty-req": {
      w.string("xterm").uint32(r.int(300)).uint32(r.int(100)).uint32(0).uint32(0);
      // Terminal modes: opcode + uint32 pairs, TTY_OP_END; sometimes cut short.
      const modes: number[] = [];
      for (let i = r.int(4); i > 0; i--) modes.push(1 + r.int(159), 0, 0, 0, r.int(2));
      if (r.chance(0.3)) modes.length = Math.max(0, modes.length - 1 - r.int(4));
      else modes.push(0);
      w.string(new Uint8Array(modes));
      break;
    }
    case "window-change":
      w.uint32(r.int(300)).uint32(r.int(100)).uint32(0).uint32(0);
      break;
    case "signal":
      w.string(r.pick(["TERM", "KILL", "HUP", "NOPE"]));
      break;
    case "break":
      w.uint32(r.int(1000));
      break;
    case "x11-req":
      w.bool(false).string("MIT-MAGIC-COOKIE-1").string("00").uint32(0);
      break;
    default:
      if (r.chance(0.5)) w.raw(r.bytes(r.int(20)));
  }
}

/** A message of a known shape, well-formed, aimed at `chan` where it names a channel. */
function wellFormed(r: Rand, chan: number): Uint8Array {
  const kind = r.int(16);
  switch (kind) {
    case 0:
      return message(MSG.CHANNEL_WINDOW_ADJUST, (w) => {
        w.uint32(chan).uint32(r.pick([1, 1024, 65536, 0x7fffffff, 0xffffffff, r.u32()]));
      });
    case 1:
      return message(MSG.CHANNEL_DATA, (w) => w.uint32(chan).string(r.bytes(r.int(600))));
    case 2:
      return message(MSG.CHANNEL_EXTENDED_DATA, (w) => {
        w.uint32(chan).uint32(r.pick([1, 2, r.u32()])).string(r.bytes(r.int(300)));
      });
    case 3:
      return message(MSG.CHANNEL_EOF, (w) => w.uint32(chan));
    case 4:
      return message(r.pick([MSG.CHANNEL_SUCCESS, MSG.CHANNEL_FAILURE]), (w) => w.uint32(chan));
    case 5:
    case 6:
    case 7: {
      const name = r.pick(REQUEST_NAMES);
      return message(MSG.CHANNEL_REQUEST, (w) => {
        w.uint32(chan).string(name).bool(r.chance(0.5));
        requestData(r, name, w);
      });
    }
    case 8: {
      const type = r.pick(["session", "direct-tcpip", "direct-streamlocal@openssh.com", "x11"]);
      return message(MSG.CHANNEL_OPEN, (w) => {
        w.string(type).uint32(r.pick([0, 1, 7, r.u32()])).uint32(r.pick([0, 65536, r.u32()]))
          .uint32(r.pick([0, 1, 0x4000, r.u32()]));
        if (type === "direct-tcpip") w.string("127.0.0.1").uint32(1).string("127.0.0.1").uint32(0);
        if (type === "direct-streamlocal@openssh.com") {
          w.string("/nonexistent/pk-fuzz").string("").uint32(0);
        }
      });
    }
    case 9:
      return message(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
        w.uint32(r.pick([chan, r.u32()])).uint32(r.u32()).uint32(65536).uint32(0x4000);
      });
    case 10:
      return message(MSG.CHANNEL_OPEN_FAILURE, (w) => {
        w.uint32(r.pick([chan, r.u32()])).uint32(2).string("no").string("en");
      });
    case 11: {
      const name = r.pick([
        "tcpip-forward",
        "cancel-tcpip-forward",
        "keepalive@openssh.com",
        "no-more-sessions@openssh.com",
        "pk-unknown@test",
      ]);
      return message(MSG.GLOBAL_REQUEST, (w) => {
        w.string(name).bool(r.chance(0.5));
        if (name.endsWith("tcpip-forward")) w.string("127.0.0.1").uint32(0);
      });
    }
    case 12:
      return message(r.pick([MSG.IGNORE, MSG.DEBUG, MSG.UNIMPLEMENTED]), (w) => {
        w.raw(r.bytes(r.int(40)));
      });
    case 13:
      return message(MSG.CHANNEL_CLOSE, (w) => w.uint32(chan));
    case 14:
      return message(MSG.DISCONNECT, (w) => w.uint32(11).string("fuzz bye").string(""));
    default:
      return message(MSG.CHANNEL_REQUEST, (w) => {
        w.uint32(chan).string("exec").bool(true).string(r.pick(SAFE_COMMANDS));
      });
  }
}

/** Puts a NUL byte inside the first non-empty SSH string after the type byte, if any. */
function nulInString(r: Rand, p: Uint8Array): Uint8Array {
  for (let at = 1; at + 4 <= p.length; at++) {
    const n = readUint32(p, at);
    if (n > 0 && n < 64 && at + 4 + n <= p.length && r.chance(0.5)) {
      const q = p.slice();
      q[at + 4 + r.int(n)] = 0;
      return q;
    }
  }
  return p;
}

/** What goes on the wire: a framed payload, or raw bytes (and then whether to hang up). */
type Shot =
  | { framed: Uint8Array; what: string }
  | { raw: Uint8Array; hangUp: boolean; what: string };

function nextShot(r: Rand, ids: Ids): Shot {
  const foreign = () => {
    let id: number;
    do id = r.pick([r.int(32), r.u32()]); while (id === ids.ping);
    return id;
  };
  const roll = r.int(100);
  if (roll < 4) {
    const len = r.pick([MAX_SHARE_MESSAGE - 3, 0x10000, 0x7fffffff, 0xffffffff]);
    const b = new Uint8Array(4 + r.int(8));
    new DataView(b.buffer).setUint32(0, len);
    return { raw: b, hangUp: false, what: `length prefix ${len}` };
  }
  if (roll < 6) return { raw: new Uint8Array(4), hangUp: false, what: "zero length prefix" };
  if (roll < 9) {
    const p = wellFormed(r, ids.own);
    const b = new Uint8Array(4 + p.length);
    new DataView(b.buffer).setUint32(0, p.length);
    b.set(p, 4);
    return { raw: b.subarray(0, 1 + r.int(b.length - 1)), hangUp: true, what: "frame cut short" };
  }
  if (roll < 25) {
    const type = r.chance(0.5) ? r.int(256) : r.pick([80, 90, 98]);
    const body = r.bytes(r.int(r.chance(0.9) ? 64 : MAX_SHARE_MESSAGE - 5));
    const q = new Uint8Array(1 + body.length);
    q[0] = type;
    q.set(body, 1);
    return { framed: q, what: `random body, type ${q[0]}` };
  }
  const chan = r.chance(0.2) ? foreign() : ids.own;
  let p = wellFormed(r, chan);
  const mutation = r.int(10);
  let what = `type ${p[0]}`;
  if (mutation < 3 && p.length > 1) {
    p = p.subarray(0, 1 + r.int(p.length - 1));
    what += ", truncated";
  } else if (mutation < 5) {
    const q = new Uint8Array(p.length + 1 + r.int(16));
    q.set(p);
    q.set(r.bytes(q.length - p.length), p.length);
    p = q;
    what += ", trailing bytes";
  } else if (mutation < 7) {
    p = nulInString(r, p);
    what += ", NUL in a string";
  }
  return { framed: p, what };
}

const hex = (b: Uint8Array) =>
  Array.from(b.subarray(0, 48), (x) => x.toString(16).padStart(2, "0"))
    .join("");

/** The fake downstream on one connection: opens its ping and own channels, then takes shots. */
async function fakeDownstream(socket: string): Promise<{ d: RawDownstream; ids: Ids }> {
  const d = await RawDownstream.open(socket, "pk-fuzz");
  const open = async (localId: number) => {
    await d.sendPacket(message(MSG.CHANNEL_OPEN, (w) => {
      w.string("session").uint32(localId).uint32(1 << 20).uint32(0x4000);
    }));
    const conf = await d.next((p) =>
      (p[0] === MSG.CHANNEL_OPEN_CONFIRMATION || p[0] === MSG.CHANNEL_OPEN_FAILURE) &&
      readUint32(p, 1) === localId
    );
    assert.ok(conf?.[0] === MSG.CHANNEL_OPEN_CONFIRMATION, "session channel opened");
    return readUint32(conf!, 5);
  };
  const ping = await open(1);
  const own = await open(0);
  return { d, ids: { own, ping } };
}

async function sha256Hex(chunks: Uint8Array[]): Promise<string> {
  let n = 0;
  for (const c of chunks) n += c.length;
  const all = new Uint8Array(n);
  n = 0;
  for (const c of chunks) {
    all.set(c, n);
    n += c.length;
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function target(s: Sshd): string[] {
  return ["-P", String(s.port), `${s.user}@${s.host}`];
}

function upstreamArgs(s: Sshd): string[] {
  return ["-share", "-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk, ...target(s)];
}

/** A new downstream still gets through, and the server has seen only the one login. */
async function assertStillServing(s: Sshd): Promise<void> {
  const r = await runOurs("plink", ["-share", "-batch", ...target(s), "echo still-serving"], {
    env: s.env,
  });
  assert.equal(r.stdout, "still-serving\n", r.stderr);
  assert.equal(await s.authCount(), 1, "the shared connection never dropped");
}

/** An sshd and our upstream (plink -share -N, a separate process) logged in to it. */
async function withUpstream(
  fn: (s: Sshd, socket: string, up: Deno.ChildProcess) => Promise<void>,
): Promise<void> {
  const s = await startSshd();
  const id = connectionId(s.host, s.port, s.user);
  const up = spawnOurs("plink", [...upstreamArgs(s), "-N"], { env: s.env });
  const upDone = collect(up, { timeoutMs: 300000 });
  try {
    await waitFor(() => upstreamExists(id), 20000, "upstream");
    const { socket } = await sharePaths(id);
    (await openDownstream(socket)).conn.close(); // greeted: the upstream is logged in
    await fn(s, socket, up);
  } finally {
    try {
      up.kill("SIGTERM");
    } catch { /* gone */ }
    await upDone;
    await s.stop();
  }
}

/** Pings on the fake downstream's ping channel: true if answered, false if hung up on. */
async function ping(d: RawDownstream, ids: Ids): Promise<boolean> {
  await d.sendPacket(message(MSG.CHANNEL_REQUEST, (w) => {
    w.uint32(ids.ping).string("pk-ping@test").bool(true);
  }));
  const answer = await d.next((p) =>
    (p[0] === MSG.CHANNEL_FAILURE || p[0] === MSG.CHANNEL_SUCCESS) && readUint32(p, 1) === 1
  );
  return answer !== undefined;
}

Deno.test(
  `${PACKETS} malformed packets from a fake downstream (seed ${SEED}): upstream and a concurrent transfer unharmed`,
  { sanitizeOps: false, sanitizeResources: false },
  () =>
    withUpstream(async (s, socket, up) => {
      await new Promise((r) => setTimeout(r, 200));
      const fdsBefore = fdCount(up.pid);

      // The well-behaved downstream: streams seeded data into sha256sum until the fuzz is done.
      const legit = spawnOurs("plink", ["-share", "-batch", ...target(s), "sha256sum"], {
        env: s.env,
        stdin: "",
      });
      const legitOut = collect(legit, { timeoutMs: 300000 });
      const sent: Uint8Array[] = [];
      let fuzzing = true;
      const feeder = (async () => {
        const w = legit.stdin.getWriter();
        const data = new Rand(SEED ^ 0x5eed);
        while (fuzzing || sent.length < 64) {
          const chunk = data.bytes(16384);
          sent.push(chunk);
          await w.write(chunk);
          await new Promise((r) => setTimeout(r, 1));
        }
        await w.close();
      })().catch(() => {}); // a dead downstream is reported by its exit below

      const r = new Rand(SEED);
      let conn = await fakeDownstream(socket);
      let connections = 1;
      let survived = 0;
      let hungUp = 0;
      for (let i = 0; i < PACKETS; i++) {
        const shot = nextShot(r, conn.ids);
        const bytes = "framed" in shot ? shot.framed : shot.raw;
        const where = `seed ${SEED}, packet ${i} (${shot.what}): ${hex(bytes)}`;
        if ("framed" in shot) await conn.d.sendPacket(shot.framed);
        else await conn.d.sendRaw(shot.raw);
        let answered = false;
        if ("raw" in shot && shot.hangUp) {
          conn.d.close();
        } else {
          try {
            answered = await ping(conn.d, conn.ids);
          } catch (e) {
            throw new Error(`${where}: ${(e as Error).message}`);
          }
        }
        if (answered) {
          survived++;
          continue;
        }
        // Hung up on (or we hung up): the upstream must still be there for the next one.
        hungUp++;
        await conn.d.done;
        conn = await fakeDownstream(socket).catch((e) => {
          throw new Error(`after ${where}: upstream no longer serving: ${e.message}`);
        });
        connections++;
      }
      conn.d.close();
      fuzzing = false;
      await feeder;
      const got = await legitOut;
      assert.equal(got.code, 0, `the concurrent downstream failed: ${got.stderr}`);
      assert.equal(got.stdout.split(" ")[0], await sha256Hex(sent), "its data arrived intact");
      assert.ok(sent.length >= 64);

      // Both kinds of outcome happened: the fuzz reached past the checks and was stopped by them.
      assert.ok(survived > 100, `${survived} packets let the fake downstream carry on`);
      assert.ok(hungUp > 100, `${hungUp} packets got it disconnected`);
      assert.equal(connections, hungUp + 1);

      // The upstream is up, still serving, still on its one authentication, and holds no more
      // descriptors than before.
      await assertStillServing(s);
      await waitFor(() => fdCount(up.pid) <= fdsBefore, 10000, `fds back to ${fdsBefore}`)
        .catch(() => assert.fail(`upstream holds ${fdCount(up.pid)} fds, was ${fdsBefore}`));
    }),
);

/**
 * Each of these, relayed as is, makes OpenSSH's sshd drop the whole shared connection (found by
 * the fuzz above; see the parsers in sshd's serverloop.c, session.c, channels.c, ttymodes.c).
 * The upstream must stop them: the sender is disconnected (or, for a second pty, refused) and
 * everyone else carries on.
 */
Deno.test(
  "messages sshd would drop the whole connection for are stopped at the upstream",
  { sanitizeOps: false, sanitizeResources: false },
  () =>
    withUpstream(async (s, socket) => {
      const withNul = (text: string) => {
        const b = new TextEncoder().encode(text);
        b[2] = 0;
        return b;
      };
      const request = (chan: number, name: string | Uint8Array, fill?: (w: SshWriter) => void) =>
        message(MSG.CHANNEL_REQUEST, (w) => {
          w.uint32(chan).string(name).bool(true);
          fill?.(w);
        });
      const pty = (modes: number[]) => (w: SshWriter) =>
        w.string("xterm").uint32(80).uint32(24).uint32(0).uint32(0).string(new Uint8Array(modes));
      const killers: [string, (ids: Ids) => Uint8Array[], RegExp][] = [
        ["NUL in a request name", (i) => [request(i.own, withNul("exec"))], /NUL byte/],
        ["NUL in a command", (i) => [request(i.own, "exec", (w) =>
          w.string(withNul("true")))], /NUL/],
        ["NUL in an env value", (i) => [
          request(i.own, "env", (w) =>
            w.string("PK_A").string(withNul("value"))),
        ], /NUL/],
        ["NUL in a subsystem name", (i) => [
          request(i.own, "subsystem", (w) =>
            w.string(withNul("sftp"))),
        ], /NUL/],
        [
          "terminal modes cut short",
          (i) => [request(i.own, "pty-req", pty([1, 0, 0]))],
          /truncated/,
        ],
        ["extended data after EOF", (i) => [
          // (The exchange before these packets is in the loop below: sshd must be running the
          // command, with a window open, for them to reach its check.)
          message(MSG.CHANNEL_EOF, (w) => w.uint32(i.own)),
          message(MSG.CHANNEL_EXTENDED_DATA, (w) => w.uint32(i.own).uint32(1).string("late")),
        ], /extended data after EOF/],
        ["NUL in a channel type", () => [
          message(MSG.CHANNEL_OPEN, (w) => {
            w.string(withNul("session")).uint32(5).uint32(65536).uint32(0x4000);
          }),
        ], /NUL/],
        ["NUL in a direct-tcpip host", () => [
          message(MSG.CHANNEL_OPEN, (w) => {
            w.string("direct-tcpip").uint32(5).uint32(65536).uint32(0x4000)
              .string(withNul("127.0.0.1")).uint32(1).string("127.0.0.1").uint32(0);
          }),
        ], /NUL/],
        ["tun@openssh.com without its fields", () => [
          message(MSG.CHANNEL_OPEN, (w) => {
            w.string("tun@openssh.com").uint32(5).uint32(65536).uint32(0x4000).raw(
              new Uint8Array([0, 0]),
            );
          }),
        ], /truncated/],
        ["NUL in a tcpip-forward address", () => [
          message(MSG.GLOBAL_REQUEST, (w) => {
            w.string("tcpip-forward").bool(true).string(withNul("127.0.0.1")).uint32(0);
          }),
        ], /NUL/],
      ];
      for (const [what, packets, reason] of killers) {
        const { d, ids } = await fakeDownstream(socket);
        if (what === "extended data after EOF") {
          await d.sendPacket(request(ids.own, "exec", (w) => w.string("sleep 5")));
          const seen = new Set<number>();
          while (seen.size < 2) {
            const p = await d.next((p) =>
              (p[0] === MSG.CHANNEL_SUCCESS || p[0] === MSG.CHANNEL_WINDOW_ADJUST) &&
              readUint32(p, 1) === 0
            );
            assert.ok(p, "exec started, window opened");
            seen.add(p[0]);
          }
        }
        for (const p of packets(ids)) await d.sendPacket(p);
        assert.equal(await ping(d, ids), false, `${what}: the sender is disconnected`);
        assert.match(d.text(), reason, what);
      }

      // A second pty-req on one session (sshd: "you already have a pty") is refused here.
      const { d, ids } = await fakeDownstream(socket);
      await d.sendPacket(request(ids.own, "pty-req", pty([0])));
      const first = await d.next((p) => p[0] >= MSG.CHANNEL_SUCCESS && readUint32(p, 1) === 0);
      assert.equal(first?.[0], MSG.CHANNEL_SUCCESS, "first pty granted by the server");
      await d.sendPacket(request(ids.own, "pty-req", pty([0])));
      const second = await d.next((p) => p[0] >= MSG.CHANNEL_SUCCESS && readUint32(p, 1) === 0);
      assert.equal(second?.[0], MSG.CHANNEL_FAILURE, "second pty refused");
      assert.equal(await ping(d, ids), true, "and the sender carries on");
      d.close();

      await assertStillServing(s);
    }),
);
