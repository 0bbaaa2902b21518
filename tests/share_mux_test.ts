/**
 * The sharing multiplexer in-process: a fake server and fake downstreams on portPair()s, raw
 * connection-layer messages in and out. What the end-to-end sharing tests see through real
 * tools, checked here message by message: channel-id rewriting both ways, one downstream kept
 * off another's channels, sshd-fatal messages stopped, data split for small downstreams,
 * remote forwardings routed to their owner, clean-up when a downstream leaves, X11 channels
 * handed over by cookie, and everyone told when the server goes.
 */

import assert from "node:assert/strict";
import { ConnectionMux, type DownstreamInfo } from "../lib/share/mux.ts";
import { type PacketPort, portPair } from "../lib/ssh/packet_port.ts";
import { message, MSG, OPEN_FAILURE, SshReader } from "../lib/ssh/wire.ts";
import { makeGreeting, MIT_COOKIE } from "../lib/forward/x11_protocol.ts";
import { SERVER_MAX_PACKET } from "../lib/share/limits.ts";

/** One end of a port: what arrives is queued; `next()` takes the oldest. */
class Peer {
  readonly received: Uint8Array[] = [];
  closed = false;
  constructor(readonly port: PacketPort) {
    port.start({
      packet: (p) => this.received.push(p),
      closed: () => this.closed = true,
    });
  }

  send(type: number, fill?: Parameters<typeof message>[1]): void {
    this.port.send(message(type, fill));
  }

  /** The oldest message not yet taken, after letting the ports deliver. */
  async next(): Promise<SshReader & { type: number }> {
    await settle();
    const p = this.received.shift();
    assert.ok(p, "a message arrived");
    const r = new SshReader(p, 1) as SshReader & { type: number };
    r.type = p[0];
    return r;
  }

  async nothing(): Promise<void> {
    await settle();
    assert.deepEqual(this.received.map((p) => p[0]), [], "no message arrived");
  }
}

/** Lets every queued delivery between the in-process ports happen. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

function setUp(opts: { agent?: boolean } = {}) {
  const [serverSide, muxSide] = portPair();
  const server = new Peer(serverSide);
  const logs: string[] = [];
  let idle = 0;
  const mux = new ConnectionMux(muxSide, {
    log: (t) => logs.push(t),
    agentForwarding: opts.agent,
    onIdle: () => idle++,
  });
  const downstream = (info: Partial<DownstreamInfo> = {}) => {
    const [mine, theirs] = portPair();
    mux.addDownstream(theirs, {
      label: `downstream ${info.label ?? ""}`,
      maxData: 0x4000,
      ...info,
    });
    return new Peer(mine);
  };
  return { mux, server, downstream, logs, idles: () => idle };
}

/** A downstream opens a session channel (its id `id`); the server confirms it as `serverId`. */
async function openSession(
  t: ReturnType<typeof setUp>,
  ds: Peer,
  id: number,
  serverId: number,
): Promise<number> {
  ds.send(MSG.CHANNEL_OPEN, (w) => w.string("session").uint32(id).uint32(1 << 20).uint32(0x8000));
  const open = await t.server.next();
  assert.equal(open.type, MSG.CHANNEL_OPEN);
  assert.equal(open.string().length, "session".length);
  const upstreamId = open.uint32();
  t.server.send(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
    w.uint32(upstreamId).uint32(serverId).uint32(1 << 20).uint32(0x8000);
  });
  const conf = await ds.next();
  assert.equal(conf.type, MSG.CHANNEL_OPEN_CONFIRMATION);
  assert.equal(conf.uint32(), id);
  assert.equal(conf.uint32(), serverId);
  return upstreamId;
}

Deno.test("channel ids are rewritten both ways; data is split to what the downstream takes and joined for the server", async () => {
  const t = setUp();
  const ds = t.downstream({ maxData: 1000 });
  ds.send(MSG.CHANNEL_OPEN, (w) => w.string("session").uint32(5).uint32(4096).uint32(0x8000));
  const open = await t.server.next();
  assert.equal(open.type, MSG.CHANNEL_OPEN);
  assert.equal(new TextDecoder().decode(open.bytes()), "session");
  const upstreamId = open.uint32();
  assert.notEqual(upstreamId, 5);
  assert.equal(open.uint32(), 4096);
  // The server may send larger packets than the downstream takes: the upstream splits them.
  assert.equal(open.uint32(), SERVER_MAX_PACKET);

  t.server.send(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
    w.uint32(upstreamId).uint32(77).uint32(8192).uint32(0x8000);
  });
  const conf = await ds.next();
  assert.equal(conf.uint32(), 5);
  assert.equal(conf.uint32(), 77);

  t.server.send(MSG.CHANNEL_DATA, (w) => w.uint32(upstreamId).string("hello"));
  const data = await ds.next();
  assert.equal(data.type, MSG.CHANNEL_DATA);
  assert.equal(data.uint32(), 5);
  assert.equal(new TextDecoder().decode(data.bytes()), "hello");

  const big = "0123456789".repeat(250);
  t.server.send(MSG.CHANNEL_DATA, (w) => w.uint32(upstreamId).string(big));
  let got = "";
  for (const want of [1000, 1000, 500]) {
    const piece = await ds.next();
    assert.equal(piece.type, MSG.CHANNEL_DATA);
    assert.equal(piece.uint32(), 5);
    const text = new TextDecoder().decode(piece.bytes());
    assert.equal(text.length, want);
    got += text;
  }
  assert.equal(got, big);

  // Data sent in one go reaches the server as one packet, up to the channel's largest.
  ds.send(MSG.CHANNEL_DATA, (w) => w.uint32(77).string("up"));
  ds.send(MSG.CHANNEL_DATA, (w) => w.uint32(77).string("per"));
  ds.send(MSG.CHANNEL_EOF, (w) => w.uint32(77));
  const up = await t.server.next();
  assert.equal(up.type, MSG.CHANNEL_DATA);
  assert.equal(up.uint32(), 77);
  assert.equal(new TextDecoder().decode(up.bytes()), "upper");
  assert.equal((await t.server.next()).type, MSG.CHANNEL_EOF);
  assert.equal(t.mux.channelCount, 1);
});

Deno.test("two downstreams may use the same channel id; one touching the other's channel is disconnected", async () => {
  const t = setUp();
  const a = t.downstream({ label: "a" });
  const b = t.downstream({ label: "b" });
  const upA = await openSession(t, a, 0, 10);
  const upB = await openSession(t, b, 0, 11);
  assert.notEqual(upA, upB);

  b.send(MSG.CHANNEL_DATA, (w) => w.uint32(10).string("intrusion"));
  const bye = await b.next();
  assert.equal(bye.type, MSG.DISCONNECT);
  bye.uint32();
  assert.match(new TextDecoder().decode(bye.bytes()), /channel 10, which is not yours/);
  await settle();
  assert.ok(b.closed);
  // b's own channel is closed on the server; nothing of b's intrusion reached it.
  const close = await t.server.next();
  assert.equal(close.type, MSG.CHANNEL_CLOSE);
  assert.equal(close.uint32(), 11);
  await t.server.nothing();

  // a carries on.
  t.server.send(MSG.CHANNEL_DATA, (w) => w.uint32(upA).string("still here"));
  const data = await a.next();
  assert.equal(data.uint32(), 0);
  assert.equal(new TextDecoder().decode(data.bytes()), "still here");
  assert.equal(t.mux.downstreamCount, 1);
});

Deno.test("what sshd would take as fatal for the whole connection never reaches the server", async () => {
  const cases: [string, (ds: Peer) => void, RegExp][] = [
    [
      "trailing bytes",
      (ds) => ds.send(MSG.CHANNEL_EOF, (w) => w.uint32(20).uint32(0)),
      /trailing bytes/,
    ],
    [
      "a NUL inside a command",
      (ds) =>
        ds.send(MSG.CHANNEL_REQUEST, (w) => w.uint32(20).string("exec").bool(true).string("ls\0x")),
      /NUL byte/,
    ],
    [
      "terminal modes cut short",
      (ds) =>
        ds.send(MSG.CHANNEL_REQUEST, (w) => {
          w.uint32(20).string("pty-req").bool(true).string("xterm");
          w.uint32(80).uint32(24).uint32(0).uint32(0).string(new Uint8Array([1, 0, 0]));
        }),
      /truncated/,
    ],
    [
      "data beyond the window",
      (ds) => ds.send(MSG.CHANNEL_DATA, (w) => w.uint32(20).string(new Uint8Array(0x9000))),
      /exceeds the window or packet size/,
    ],
    ["an unknown message type", (ds) => ds.send(200), /unexpected packet type 200/],
  ];
  for (const [what, send, reason] of cases) {
    const t = setUp();
    const ds = t.downstream();
    await openSession(t, ds, 1, 20);
    send(ds);
    const bye = await ds.next();
    assert.equal(bye.type, MSG.DISCONNECT, what);
    bye.uint32();
    assert.match(new TextDecoder().decode(bye.bytes()), reason, what);
    const close = await t.server.next();
    assert.equal(close.type, MSG.CHANNEL_CLOSE, what);
    await t.server.nothing();
  }
});

Deno.test("a second pty-req on one session is refused, not passed on", async () => {
  const t = setUp();
  const ds = t.downstream();
  await openSession(t, ds, 1, 30);
  const pty = (w: Parameters<NonNullable<Parameters<typeof message>[1]>>[0]) => {
    w.uint32(30).string("pty-req").bool(true).string("xterm");
    w.uint32(80).uint32(24).uint32(0).uint32(0).string(new Uint8Array([0]));
  };
  ds.send(MSG.CHANNEL_REQUEST, pty);
  assert.equal((await t.server.next()).type, MSG.CHANNEL_REQUEST);
  ds.send(MSG.CHANNEL_REQUEST, pty);
  const refused = await ds.next();
  assert.equal(refused.type, MSG.CHANNEL_FAILURE);
  assert.equal(refused.uint32(), 1);
  await t.server.nothing();
});

Deno.test("server data larger than a downstream can take arrives split", async () => {
  const t = setUp();
  const ds = t.downstream({ maxData: 16 });
  const up = await openSession(t, ds, 3, 40);
  const payload = new Uint8Array(40).map((_, i) => i);
  t.server.send(MSG.CHANNEL_DATA, (w) => w.uint32(up).string(payload));
  const pieces: number[] = [];
  const joined: number[] = [];
  for (let i = 0; i < 3; i++) {
    const m = await ds.next();
    assert.equal(m.type, MSG.CHANNEL_DATA);
    assert.equal(m.uint32(), 3);
    const b = m.bytes();
    pieces.push(b.length);
    joined.push(...b);
  }
  assert.deepEqual(pieces, [16, 16, 8]);
  assert.deepEqual(joined, [...payload]);
  await ds.nothing();
});

Deno.test("remote forwardings: relayed with a reply, routed to their owner, cancelled when it leaves", async () => {
  const t = setUp();
  const a = t.downstream({ label: "a" });
  const b = t.downstream({ label: "b" });
  a.send(
    MSG.GLOBAL_REQUEST,
    (w) => w.string("tcpip-forward").bool(false).string("localhost").uint32(2222),
  );
  const req = await t.server.next();
  assert.equal(req.type, MSG.GLOBAL_REQUEST);
  assert.equal(new TextDecoder().decode(req.bytes()), "tcpip-forward");
  assert.equal(req.bool(), true, "want-reply forced on");
  t.server.send(MSG.REQUEST_SUCCESS);
  await a.nothing(); // it did not ask for a reply

  // The same forwarding again, from b: refused without asking the server.
  b.send(
    MSG.GLOBAL_REQUEST,
    (w) => w.string("tcpip-forward").bool(true).string("localhost").uint32(2222),
  );
  assert.equal((await b.next()).type, MSG.REQUEST_FAILURE);
  // Other global requests are refused too.
  b.send(MSG.GLOBAL_REQUEST, (w) => w.string("no-more-sessions@openssh.com").bool(true));
  assert.equal((await b.next()).type, MSG.REQUEST_FAILURE);
  await t.server.nothing();

  t.server.send(MSG.CHANNEL_OPEN, (w) => {
    w.string("forwarded-tcpip").uint32(50).uint32(4096).uint32(0x4000);
    w.string("localhost").uint32(2222).string("127.0.0.1").uint32(40000);
  });
  const open = await a.next();
  assert.equal(open.type, MSG.CHANNEL_OPEN);
  assert.equal(new TextDecoder().decode(open.bytes()), "forwarded-tcpip");
  assert.equal(open.uint32(), 50);
  await b.nothing();

  t.server.send(MSG.CHANNEL_OPEN, (w) => {
    w.string("forwarded-tcpip").uint32(51).uint32(4096).uint32(0x4000);
    w.string("localhost").uint32(9999).string("127.0.0.1").uint32(40001);
  });
  const refused = await t.server.next();
  assert.equal(refused.type, MSG.CHANNEL_OPEN_FAILURE);
  assert.equal(refused.uint32(), 51);
  assert.equal(refused.uint32(), OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED);

  // a leaves with the channel half-open and the forwarding active: both are undone.
  a.port.close();
  const failure = await t.server.next();
  assert.equal(failure.type, MSG.CHANNEL_OPEN_FAILURE);
  assert.equal(failure.uint32(), 50);
  const cancel = await t.server.next();
  assert.equal(cancel.type, MSG.GLOBAL_REQUEST);
  assert.equal(new TextDecoder().decode(cancel.bytes()), "cancel-tcpip-forward");
  assert.equal(t.mux.downstreamCount, 1);
});

Deno.test("a downstream that leaves has its channels closed; the mux says when none is left", async () => {
  const t = setUp();
  const ds = t.downstream();
  const up = await openSession(t, ds, 0, 60);
  ds.port.close();
  const close = await t.server.next();
  assert.equal(close.type, MSG.CHANNEL_CLOSE);
  assert.equal(close.uint32(), 60);
  assert.equal(t.idles(), 0, "not idle while the server has not closed the channel");
  t.server.send(MSG.CHANNEL_CLOSE, (w) => w.uint32(up));
  await settle();
  assert.equal(t.idles(), 1);
  assert.equal(t.mux.downstreamCount, 0);
  assert.equal(t.mux.channelCount, 0);
  assert.ok(t.logs.some((l) => /disconnected/.test(l)), t.logs.join("\n"));
});

Deno.test("agent channels and auth-agent-req are refused unless agent forwarding is on", async () => {
  const t = setUp();
  const ds = t.downstream();
  await openSession(t, ds, 0, 70);
  ds.send(MSG.CHANNEL_REQUEST, (w) => w.uint32(70).string("auth-agent-req@openssh.com").bool(true));
  assert.equal((await ds.next()).type, MSG.CHANNEL_FAILURE);
  t.server.send(MSG.CHANNEL_OPEN, (w) => {
    w.string("auth-agent@openssh.com").uint32(71).uint32(4096).uint32(0x4000);
  });
  const refused = await t.server.next();
  assert.equal(refused.type, MSG.CHANNEL_OPEN_FAILURE);
  assert.equal(refused.uint32(), 71);
  await t.server.nothing();
});

/** A downstream's session with X11 forwarding under `cookie` (32 hex digits). */
async function x11Session(
  t: ReturnType<typeof setUp>,
  ds: Peer,
  id: number,
  serverId: number,
  cookie: string,
) {
  await openSession(t, ds, id, serverId);
  ds.send(MSG.CHANNEL_REQUEST, (w) => {
    w.uint32(serverId).string("x11-req").bool(true).bool(false).string(MIT_COOKIE).string(cookie)
      .uint32(0);
  });
  const req = await t.server.next();
  assert.equal(req.type, MSG.CHANNEL_REQUEST);
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

Deno.test("an X11 channel goes to the session whose cookie its client shows", async () => {
  const t = setUp();
  const a = t.downstream({ label: "a" });
  const b = t.downstream({ label: "b" });
  const cookieA = "0123456789abcdef0123456789abcdef";
  const cookieB = "fedcba9876543210fedcba9876543210";
  await x11Session(t, a, 0, 80, cookieA);
  await x11Session(t, b, 0, 81, cookieB);

  t.server.send(MSG.CHANNEL_OPEN, (w) => {
    w.string("x11").uint32(90).uint32(1 << 20).uint32(0x8000).string("127.0.0.1").uint32(6010);
  });
  const accepted = await t.server.next();
  assert.equal(accepted.type, MSG.CHANNEL_OPEN_CONFIRMATION);
  assert.equal(accepted.uint32(), 90);
  const x11Id = accepted.uint32();
  const setupWindow = accepted.uint32();
  assert.ok(setupWindow < 1024, "a small window until the owner is known");
  await a.nothing();
  await b.nothing();

  const greeting = makeGreeting(0x6c, 11, 0, MIT_COOKIE, hexBytes(cookieB));
  t.server.send(MSG.CHANNEL_DATA, (w) => w.uint32(x11Id).string(greeting));
  const open = await b.next();
  assert.equal(open.type, MSG.CHANNEL_OPEN);
  assert.equal(new TextDecoder().decode(open.bytes()), "x11");
  assert.equal(open.uint32(), 90);
  await a.nothing();

  b.send(
    MSG.CHANNEL_OPEN_CONFIRMATION,
    (w) => w.uint32(90).uint32(7).uint32(1 << 20).uint32(0x4000),
  );
  const adjust = await t.server.next();
  assert.equal(adjust.type, MSG.CHANNEL_WINDOW_ADJUST);
  assert.equal(adjust.uint32(), 90);
  assert.equal(adjust.uint32(), (1 << 20) - setupWindow);
  const buffered = await b.next();
  assert.equal(buffered.type, MSG.CHANNEL_DATA);
  assert.equal(buffered.uint32(), 7);
  assert.deepEqual(buffered.bytes(), greeting);

  // From now on an ordinary channel of b's.
  b.send(MSG.CHANNEL_DATA, (w) => w.uint32(90).string("reply"));
  const reply = await t.server.next();
  assert.equal(reply.type, MSG.CHANNEL_DATA);
  assert.equal(reply.uint32(), 90);
});

Deno.test("an X11 client with a cookie nobody granted gets an X error and its channel closed", async () => {
  const t = setUp();
  const a = t.downstream();
  await x11Session(t, a, 0, 100, "0123456789abcdef0123456789abcdef");
  t.server.send(MSG.CHANNEL_OPEN, (w) => {
    w.string("x11").uint32(110).uint32(1 << 20).uint32(0x8000).string("127.0.0.1").uint32(6010);
  });
  const accepted = await t.server.next();
  assert.equal(accepted.type, MSG.CHANNEL_OPEN_CONFIRMATION);
  accepted.uint32();
  const x11Id = accepted.uint32();
  const greeting = makeGreeting(0x6c, 11, 0, MIT_COOKIE, new Uint8Array(16));
  t.server.send(MSG.CHANNEL_DATA, (w) => w.uint32(x11Id).string(greeting));
  const error = await t.server.next();
  assert.equal(error.type, MSG.CHANNEL_DATA);
  assert.equal(error.uint32(), 110);
  assert.match(
    new TextDecoder("latin1").decode(error.bytes()),
    /Plink X11 proxy: Authorisation not recognised/,
  );
  assert.equal((await t.server.next()).type, MSG.CHANNEL_EOF);
  assert.equal((await t.server.next()).type, MSG.CHANNEL_CLOSE);
  await a.nothing();
});

Deno.test("when the server goes, every downstream is told why and closed", async () => {
  const t = setUp();
  const a = t.downstream({ label: "a" });
  const local = t.downstream({ label: "local", local: true });
  await openSession(t, a, 0, 120);
  t.server.port.close(new Error("connection reset"));
  const byeA = await a.next();
  assert.equal(byeA.type, MSG.DISCONNECT);
  byeA.uint32();
  assert.equal(
    new TextDecoder().decode(byeA.bytes()),
    "upstream lost its connection to the server: connection reset",
  );
  const byeLocal = await local.next();
  byeLocal.uint32();
  assert.equal(new TextDecoder().decode(byeLocal.bytes()), "connection reset");
  await settle();
  assert.ok(a.closed && local.closed);
  assert.equal(t.mux.closedError?.message, "connection reset");
  assert.equal(t.mux.channelCount, 0);
  // A downstream arriving now is turned away at once.
  const late = t.downstream({ label: "late" });
  await settle();
  assert.ok(late.closed);
});
