/**
 * Hostile clients on our upstream's OpenSSH control socket: garbage before the hello, huge and
 * tiny length fields, wrong versions, a second hello, replies left unread, descriptor-passing
 * requests followed by junk, and in proxy mode DISCONNECT, messages for channel ids that are not
 * theirs, malformed packets and seeded random ones (PK_FUZZ_SEED=n replays a run). Meanwhile a
 * PuTTY-socket downstream (our plink) and an OpenSSH proxy client stream output through the same
 * upstream: it must arrive intact, the upstream must stay up and keep serving, and the server must
 * see one authentication.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startSshd } from "./fixtures/sshd.ts";
import {
  controlDir,
  masterPid,
  spawnSshVia,
  sshVia,
  startControlUpstream,
} from "./fixtures/ssh_master.ts";
import { collect, spawnOurs, waitFor } from "./fixtures/tools.ts";
import { fdCount } from "./fixtures/proc.ts";
import { MUX, muxMessage } from "../lib/openssh_mux/protocol.ts";
import { message, MSG, SshWriter, writeUint32 } from "../lib/ssh/wire.ts";

const SEED = Number(Deno.env.get("PK_FUZZ_SEED") ?? 20261201);
const RANDOM_SHOTS = 200;

/** mulberry32, as in share_fuzz_test.ts: one sequence per seed. */
function rand(seed: number): (n: number) => number {
  let s = seed;
  return (n: number) => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 4);
  writeUint32(out, 0, body.length);
  out.set(body, 4);
  return out;
}

function packet(payload: Uint8Array): Uint8Array {
  const body = new Uint8Array(payload.length + 1);
  body.set(payload, 1);
  return frame(body);
}

const hello = (version = 4) => frame(muxMessage(MUX.HELLO, (w) => w.uint32(version)));

/** One hostile connection: writes bytes, then sees whether the upstream hangs up (bounded). */
class Hostile {
  private constructor(private readonly conn: Deno.UnixConn) {}
  static async open(path: string): Promise<Hostile> {
    return new Hostile(await Deno.connect({ transport: "unix", path }));
  }
  async write(bytes: Uint8Array): Promise<boolean> {
    try {
      await this.conn.write(bytes);
      return true;
    } catch {
      return false;
    }
  }
  /** Reads for up to `ms`: "closed" when the upstream hung up, else what came. */
  async drain(ms: number): Promise<"closed" | Uint8Array> {
    const buf = new Uint8Array(1 << 16);
    let got = new Uint8Array();
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const timer = new Promise<"timeout">((r) =>
        setTimeout(() => r("timeout"), deadline - Date.now())
      );
      const n = await Promise.race([this.conn.read(buf).catch(() => null), timer]);
      if (n === "timeout") break;
      if (n === null) return "closed";
      const more = new Uint8Array(got.length + n);
      more.set(got);
      more.set(buf.subarray(0, n), got.length);
      got = more;
    }
    return got;
  }
  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** Proxy-mode payloads a hostile client might send: foreign ids, DISCONNECT, junk. */
function randomPayload(r: (n: number) => number): Uint8Array {
  const id = r(4) === 0 ? r(0x100000000) : r(600);
  const w = new SshWriter();
  switch (r(9)) {
    case 0:
      return message(MSG.DISCONNECT, (m) => m.uint32(11).string("bye").string(""));
    case 1:
      return message(MSG.CHANNEL_DATA, (m) => m.uint32(id).string(new Uint8Array(r(100))));
    case 2:
      return message(MSG.CHANNEL_CLOSE, (m) => m.uint32(id));
    case 3:
      return message(MSG.CHANNEL_WINDOW_ADJUST, (m) => m.uint32(id).uint32(r(0x100000000)));
    case 4:
      return message(
        MSG.CHANNEL_REQUEST,
        (m) => m.uint32(id).string("exec").bool(true).string("kill -9 -1"),
      );
    case 5:
      return message(
        MSG.GLOBAL_REQUEST,
        (m) => m.string("cancel-tcpip-forward").bool(true).string("").uint32(r(65536)),
      );
    case 6:
      return message(MSG.CHANNEL_OPEN, (m) => m.string("session").uint32(id).uint32(r(1 << 20)));
    case 7: {
      const junk = new Uint8Array(1 + r(64));
      for (let i = 0; i < junk.length; i++) junk[i] = r(256);
      return junk;
    }
    default:
      w.byte(MSG.CHANNEL_EOF).uint32(id).uint32(r(10));
      return w.done();
  }
}

Deno.test("hostile OpenSSH mux clients cannot end our upstream or touch others' channels", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const s = await startSshd();
  const path = join(await controlDir(s), "c");
  const host = `${s.user}@${s.host}`;
  const up = await startControlUpstream(s, path);
  const expected = Array.from({ length: 300 }, (_, i) => `${i + 1}\n`).join("");
  try {
    const fdsBefore = fdCount(up.pid);
    // Slow enough that both are still streaming while the shots go in.
    const slowSeq = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo $i; sleep 0.05; done";
    const viaPutty = spawnOurs("plink", ["-share", "-batch", "-P", String(s.port), host, slowSeq], {
      env: s.env,
    });
    const viaOpenSsh = spawnSshVia(s, path, [
      "-O",
      "proxy",
      host,
      slowSeq,
    ]);

    const r = rand(SEED);
    const shots: { name: string; bytes: Uint8Array[]; proxy?: boolean }[] = [
      { name: "garbage before hello", bytes: [new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")] },
      { name: "huge length", bytes: [new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3])] },
      { name: "zero length", bytes: [new Uint8Array(8)] },
      { name: "version 3", bytes: [hello(3)] },
      { name: "version 5", bytes: [hello(5)] },
      { name: "second hello", bytes: [hello(), hello()] },
      { name: "request before hello", bytes: [frame(muxMessage(MUX.C_PROXY, (w) => w.uint32(1)))] },
      { name: "truncated request", bytes: [hello(), frame(new Uint8Array([0x10, 0, 0, 4]))] },
      {
        name: "new session, then junk where the descriptors go",
        bytes: [
          hello(),
          frame(muxMessage(MUX.C_NEW_SESSION, (w) => w.uint32(1).string("").bool(false))),
          new Uint8Array(3),
        ],
      },
      {
        name: "alive checks, never reading the replies",
        bytes: [
          hello(),
          ...Array.from(
            { length: 40000 },
            () => frame(muxMessage(MUX.C_ALIVE_CHECK, (w) => w.uint32(7))),
          ),
        ],
      },
      {
        name: "unknown request",
        bytes: [hello(), frame(muxMessage(0x10000077, (w) => w.uint32(1)))],
      },
      {
        name: "huge packet in proxy mode",
        proxy: true,
        bytes: [new Uint8Array([0x7f, 0xff, 0xff, 0xff])],
      },
      {
        name: "padding longer than the packet",
        proxy: true,
        bytes: [frame(new Uint8Array([200, 94, 0, 0, 0, 1]))],
      },
      {
        name: "DISCONNECT in proxy mode",
        proxy: true,
        bytes: [packet(message(MSG.DISCONNECT, (w) => w.uint32(2).string("x").string("")))],
      },
    ];
    for (let i = 0; i < 600; i += 5) {
      shots.push({
        name: `foreign channel ${i}`,
        proxy: true,
        bytes: [packet(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(i)))],
      });
    }
    for (let i = 0; i < RANDOM_SHOTS; i++) {
      shots.push({
        name: `random #${i} (seed ${SEED})`,
        proxy: true,
        bytes: [packet(randomPayload(r))],
      });
    }

    let hungUp = 0;
    for (const shot of shots) {
      const h = await Hostile.open(path);
      if (shot.proxy) {
        await h.write(hello());
        await h.write(frame(muxMessage(MUX.C_PROXY, (w) => w.uint32(1))));
        await h.drain(50);
      }
      for (const b of shot.bytes) if (!(await h.write(b))) break;
      if ((await h.drain(shot.proxy ? 30 : 100)) === "closed") hungUp++;
      h.close();
    }
    // Everything that is no protocol at all gets hung up on.
    assert.ok(hungUp >= 10, `hung up on ${hungUp} of ${shots.length}`);

    const [a, b] = await Promise.all([
      collect(viaPutty, { timeoutMs: 120000 }),
      collect(viaOpenSsh, { timeoutMs: 120000 }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.ok(a.stdout === expected, "the PuTTY-socket downstream's output arrived intact");
    assert.equal(b.code, 0, b.stderr);
    assert.ok(b.stdout === expected, "the OpenSSH proxy client's output arrived intact");

    assert.equal(await masterPid(s, path), up.pid, "the upstream still answers ssh -O check");
    const after = await sshVia(s, path, ["-O", "proxy", host, "echo still; exit 2"]);
    assert.equal(after.stdout, "still\n");
    assert.equal(after.code, 2);
    assert.equal(await s.authCount(), 1);
    await waitFor(
      () => fdCount(up.pid) <= fdsBefore + 2,
      10000,
      "hostile connections' descriptors closed",
    );
  } finally {
    up.kill("SIGTERM");
    await collect(up);
    await s.stop();
  }
});
