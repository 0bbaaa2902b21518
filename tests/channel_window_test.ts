/**
 * A channel's incoming flow control when read with peek()/release() (as port forwarding reads
 * it), in-process against a fake peer: the window is credited only for what was released, data
 * comes out in order across the end of the channel's buffer, and a peer that overruns the
 * window loses nothing.
 */

import assert from "node:assert/strict";
import { SshConnection } from "../lib/ssh/connection.ts";
import { portPair } from "../lib/ssh/packet_port.ts";
import { message, MSG, SshReader } from "../lib/ssh/wire.ts";

const WINDOW = 64 * 1024;
const LIMITS = { window: 2 * 1024 * 1024, maxPacket: 32768, maxSend: 32768 };

/** Our connection with one direct-tcpip channel (window WINDOW) the fake peer has confirmed. */
async function openChannel() {
  const [ours, theirs] = portPair();
  const received: Uint8Array[] = [];
  theirs.start({ packet: (p) => received.push(p), closed: () => {} });
  const conn = new SshConnection(ours, LIMITS);
  const opening = conn.openDirectTcpip("127.0.0.1", 9, "0.0.0.0", 0, WINDOW);
  await settle();
  const open = new SshReader(received.shift()!, 1);
  assert.equal(open.string(), "direct-tcpip");
  const ourId = open.uint32();
  assert.equal(open.uint32(), WINDOW, "the window asked for is offered");
  theirs.send(message(MSG.CHANNEL_OPEN_CONFIRMATION, (w) => {
    w.uint32(ourId).uint32(7).uint32(1 << 20).uint32(32768);
  }));
  const ch = await opening;
  const sendData = (data: Uint8Array) =>
    theirs.send(message(MSG.CHANNEL_DATA, (w) => w.uint32(ourId).string(data)));
  /** Bytes credited by the WINDOW_ADJUSTs that arrived since last asked. */
  const credited = async () => {
    await settle();
    let n = 0;
    for (const p of received.splice(0)) {
      if (p[0] !== MSG.CHANNEL_WINDOW_ADJUST) continue;
      const r = new SshReader(p, 1);
      assert.equal(r.uint32(), 7);
      n += r.uint32();
    }
    return n;
  };
  return { ch, sendData, credited };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

Deno.test("peek() leaves the window alone; release() credits what was used", async () => {
  const { ch, sendData, credited } = await openChannel();
  const data = pattern(WINDOW, 1);
  sendData(data.subarray(0, 40000));
  sendData(data.subarray(40000));
  const seen = await ch.stdout.peek();
  assert.deepEqual(seen, data, "the whole window's data, in one view");
  assert.equal(await credited(), 0, "nothing credited before release()");
  ch.stdout.release(20000);
  assert.equal(await credited(), 20000, "what was released is credited, no more");
  ch.stdout.release(WINDOW - 20000);
  assert.equal(await credited(), WINDOW - 20000, "and the rest once released");
});

Deno.test("data comes out in order across the end of the buffer, and overrun data is kept", async () => {
  const { ch, sendData, credited } = await openChannel();
  const out: number[] = [];
  const sent: number[] = [];
  const send = (n: number, seed: number) => {
    const d = pattern(n, seed);
    sent.push(...d);
    sendData(d);
  };
  send(50000, 2);
  await settle();
  const first = (await ch.stdout.peek())!;
  out.push(...first.subarray(0, 30000));
  ch.stdout.release(30000);
  // 20000 bytes still held; 44000 more fill the buffer past its end, and 10000 overrun it.
  send(44000 + 10000, 3);
  await settle();
  for (let guard = 0; out.length < sent.length && guard < 20; guard++) {
    const v = (await ch.stdout.peek())!;
    assert.ok(v.length > 0 && v.length <= WINDOW);
    out.push(...v);
    ch.stdout.release(v.length);
  }
  assert.equal(out.length, sent.length);
  assert.ok(out.every((b, i) => b === sent[i]), "same bytes, same order");
  assert.equal(await credited(), sent.length, "every byte released is credited");
});
