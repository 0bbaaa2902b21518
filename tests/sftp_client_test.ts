/**
 * The SFTP client (lib/sftp) against OpenSSH's internal-sftp on loopback: every request type,
 * PuTTY's error texts, and pipelined transfers that stay correct with short reads, resumes and
 * a connection shared through an upstream.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SftpClient, type SftpHandle } from "../lib/sftp/client.ts";
import {
  FX,
  FXP,
  isDirectory,
  isRegularFile,
  OPEN,
  ReplyReader,
  SftpError,
} from "../lib/sftp/protocol.ts";
import { download, upload } from "../lib/files/sftp_pipeline.ts";
import { startSshd } from "./fixtures/sshd.ts";
import { connectTo } from "./fixtures/connect.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
  return data;
}

async function* chunksOf(data: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function fetchAll(
  sftp: SftpClient,
  path: string,
  offset = 0,
  more: { blockSize?: number; maxAhead?: number } = {},
): Promise<Uint8Array> {
  const h = await sftp.open(path, OPEN.READ);
  const parts: Uint8Array[] = [];
  await download(h, (c) => {
    parts.push(c.slice());
    return Promise.resolve();
  }, { offset, ...more });
  await h.close();
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One SFTP packet on the wire: length, type, the rest. */
function sftpPacket(type: number, rest: Uint8Array): Uint8Array {
  const p = new Uint8Array(5 + rest.length);
  new DataView(p.buffer).setUint32(0, 1 + rest.length);
  p[4] = type;
  p.set(rest, 5);
  return p;
}

/** A DATA reply's body after its type: id, the data as a string, then `extra` bytes. */
function dataBody(id: number, data: Uint8Array, extra = 0): Uint8Array {
  const b = new Uint8Array(8 + data.length + extra);
  const v = new DataView(b.buffer);
  v.setUint32(0, id);
  v.setUint32(4, data.length);
  b.set(data, 8);
  return b;
}

Deno.test("SFTP replies are read out of any chunking; DATA for a sink streams to it", () => {
  const big = randomBytes(70000);
  const whole = [
    sftpPacket(FXP.STATUS, randomBytes(20)),
    sftpPacket(FXP.DATA, dataBody(8, randomBytes(100))), // no sink: whole
    sftpPacket(FXP.VERSION, new Uint8Array(0)), // one byte long
  ];
  const packets = [
    whole[0],
    sftpPacket(FXP.DATA, dataBody(7, big, 3)), // to a sink, 3 bytes after the data
    whole[1],
    sftpPacket(FXP.DATA, dataBody(9, new Uint8Array(0))), // to a sink, empty
    whole[2],
  ];
  const stream = new Uint8Array(packets.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of packets) {
    stream.set(p, at);
    at += p.length;
  }
  const everyByte = Array.from({ length: 200 }, (_, i) => i + 1);
  for (const cuts of [[1, 2, 3, 7, 30, 32768, 65536, 70009], [70009], [4, 5, 9, 13], everyByte]) {
    const got: Uint8Array[] = [];
    const streamed = new Map<number, { data: Uint8Array; fill: number; ended?: number }>();
    const sinkFor = (id: number) => {
      if (id !== 7 && id !== 9) return undefined;
      const s = {
        data: new Uint8Array(id === 7 ? big.length : 0),
        fill: 0,
        ended: undefined as number | undefined,
      };
      streamed.set(id, s);
      return {
        piece: (chunk: Uint8Array, off: number) => {
          assert.equal(off, s.fill, "pieces come in order");
          assert.equal(s.ended, undefined);
          s.data.set(chunk, off);
          s.fill += chunk.length;
        },
        end: (n: number) => (s.ended = n),
      };
    };
    const reader = new ReplyReader(1 << 20, sinkFor, (b) => got.push(b.slice()));
    let from = 0;
    for (const to of [...cuts, stream.length]) {
      reader.push(stream.subarray(from, to));
      from = to;
    }
    assert.deepEqual(got, whole.map((p) => p.subarray(4)), `cuts ${cuts.length}`);
    assert.equal(streamed.get(7)?.ended, big.length);
    assert.deepEqual(streamed.get(7)?.data, big);
    assert.equal(streamed.get(9)?.ended, 0);
  }
  const none = () => undefined;
  assert.throws(
    () => new ReplyReader(1 << 20, none, () => {}).push(new Uint8Array([0, 0x20, 0, 0, 1])),
    /bad SFTP packet length/,
  );
  const lying = sftpPacket(FXP.DATA, dataBody(7, new Uint8Array(4)));
  lying[12] = 200; // says 200 bytes of data in a packet that holds 4
  const sink = { piece: () => {}, end: () => {} };
  assert.throws(
    () => new ReplyReader(1 << 20, () => sink, () => {}).push(lying),
    /longer than its packet/,
  );
});

Deno.test("a download whose client fails hands nothing more to its sink", async () => {
  const block = 1000;
  let clientFailed = false;
  const answers: (() => void)[] = [];
  const readInto: SftpHandle["readInto"] = (_off, len, into, done, onError) => {
    // As SftpClient: a client that has failed rejects a request at once.
    if (clientFailed) return onError(new Error("SFTP channel closed"));
    answers.push(() => {
      into(new Uint8Array(len).fill(1), 0);
      done(len);
    });
  };
  const handle = { sftp: {}, readInto } as unknown as SftpHandle;
  const events: string[] = [];
  const p = download(handle, (chunk) => {
    events.push(`sink ${chunk.length}`);
    return Promise.resolve();
  }, { blockSize: block, maxAhead: 10 * block });
  const outcome = p.then(() => "resolved", (e) => `rejected: ${e.message}`);
  await new Promise((r) => setTimeout(r, 5));
  // The replies and what breaks the client come in one socket read.
  for (const answer of answers.splice(0)) answer();
  clientFailed = true;
  assert.equal(await outcome, "rejected: SFTP channel closed");
  assert.deepEqual(events, []);
});

Deno.test("SFTP client against OpenSSH internal-sftp", opts, async (t) => {
  const s = await startSshd();
  const dir = await s.userDir("sftp");
  const c = await connectTo(s, false);
  const sftp = await SftpClient.start(c.conn);
  try {
    await t.step("version, extensions, realpath, mkdir/stat/readdir/rmdir", async () => {
      assert.equal(sftp.version, 3);
      assert.ok(sftp.hasPosixRename, "OpenSSH announces posix-rename@openssh.com");
      assert.equal(await sftp.realpath(`${dir}/.`), dir);
      await sftp.mkdir(`${dir}/sub dir`, { permissions: 0o750 });
      const st = await sftp.stat(`${dir}/sub dir`);
      assert.ok(isDirectory(st));
      assert.equal(st.permissions! & 0o777, 0o750);
      const names = (await sftp.readdir(dir)).map((e) => e.name).sort();
      assert.deepEqual(names, [".", "..", "sub dir"]);
      await sftp.rmdir(`${dir}/sub dir`);
      await assert.rejects(sftp.stat(`${dir}/sub dir`), (e: unknown) => {
        assert.ok(e instanceof SftpError);
        assert.equal(e.code, FX.NO_SUCH_FILE);
        assert.equal(e.message, "no such file or directory");
        return true;
      });
    });

    await t.step(
      "a 24 MB pipelined upload and download round-trip, odd source chunks",
      async () => {
        const data = randomBytes(24 * 1024 * 1024 + 12345);
        const path = `${dir}/big.bin`;
        const h = await sftp.open(path, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC, {
          permissions: 0o640,
        });
        let progress = 0;
        const n = await upload(h, chunksOf(data, 100_003), { onProgress: (d) => (progress = d) });
        await h.close();
        assert.equal(n, data.length);
        assert.equal(progress, data.length);
        const st = await sftp.stat(path);
        assert.ok(isRegularFile(st));
        assert.equal(st.size, data.length);
        // The server wrote what we sent (read back with sha256sum on the server's own files).
        const local = join(dir, "big.bin");
        assert.equal(await sha256(await Deno.readFile(local)), await sha256(data));
        const back = await fetchAll(sftp, path);
        assert.equal(back.length, data.length);
        assert.equal(await sha256(back), await sha256(data));
      },
    );

    await t.step("an upload whose source lends one buffer for every chunk", async () => {
      const data = randomBytes(3 * 1024 * 1024 + 777);
      async function* lent(): AsyncGenerator<Uint8Array> {
        const buf = new Uint8Array(70_001);
        for (let at = 0; at < data.length; at += buf.length) {
          const n = Math.min(buf.length, data.length - at);
          buf.set(data.subarray(at, at + n));
          yield buf.subarray(0, n);
          buf.fill(0xee); // what a reused buffer holds once the next chunk is asked for
        }
      }
      const path = `${dir}/lent.bin`;
      const h = await sftp.open(path, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
      assert.equal(await upload(h, lent()), data.length);
      await h.close();
      assert.equal(await sha256(await Deno.readFile(join(dir, "lent.bin"))), await sha256(data));
    });

    await t.step("resume: upload and download from an offset", async () => {
      const data = randomBytes(300_000);
      const path = `${dir}/resume.bin`;
      let h = await sftp.open(path, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
      await upload(h, chunksOf(data.subarray(0, 100_000), 4096));
      await h.close();
      h = await sftp.open(path, OPEN.WRITE);
      const n = await upload(h, chunksOf(data.subarray(100_000), 65536), { offset: 100_000 });
      await h.close();
      assert.equal(n, 200_000);
      assert.equal(await sha256(await fetchAll(sftp, path)), await sha256(data));
      const tail = await fetchAll(sftp, path, 250_000);
      assert.equal(await sha256(tail), await sha256(data.subarray(250_000)));
    });

    await t.step("small and empty files cost few requests and come back exact", async () => {
      for (const size of [0, 1, 32767, 32768, 32769]) {
        const data = randomBytes(size);
        const path = `${dir}/small-${size}`;
        const h = await sftp.open(path, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
        await upload(h, chunksOf(data, 1000));
        await h.close();
        assert.equal(await sha256(await fetchAll(sftp, path)), await sha256(data), `size ${size}`);
      }
    });

    await t.step("short reads are re-requested (tiny read blocks from a big request)", async () => {
      // A FIFO-like server can answer with less than asked; emulate by asking for more than the
      // server's maximum read length, which OpenSSH clamps.
      const data = randomBytes(2 * 1024 * 1024);
      const path = `${dir}/clamped.bin`;
      const h = await sftp.open(path, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
      await upload(h, chunksOf(data, 65536));
      await h.close();
      const r = await sftp.open(path, OPEN.READ);
      const parts: Uint8Array[] = [];
      await download(r, (c) => {
        parts.push(c.slice());
        return Promise.resolve();
      }, { blockSize: 1024 * 1024 });
      await r.close();
      const got = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        got.set(p, at);
        at += p.length;
      }
      assert.equal(await sha256(got), await sha256(data));
    });

    await t.step(
      "a download buffer that is no whole number of blocks wraps correctly",
      async () => {
        const path = `${dir}/clamped.bin`;
        const got = await fetchAll(sftp, path, 12345, { blockSize: 30_000, maxAhead: 100_001 });
        assert.equal(got.length, 2 * 1024 * 1024 - 12345);
        const whole = await Deno.readFile(join(dir, "clamped.bin"));
        assert.equal(await sha256(got), await sha256(whole.subarray(12345)));
      },
    );

    await t.step("read(): a range of a file, then null at its end", async () => {
      const data = randomBytes(5000);
      const path = `${dir}/ranges.bin`;
      const w = await sftp.open(path, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
      await w.write(0, data);
      await w.close();
      const h = await sftp.open(path, OPEN.READ);
      assert.deepEqual(await h.read(1000, 300), data.subarray(1000, 1300));
      assert.deepEqual(await h.read(4900, 300), data.subarray(4900));
      assert.equal(await h.read(5000, 300), null);
      await h.close();
    });

    await t.step("rename, posix-rename over an existing file, setstat, remove", async () => {
      const a = `${dir}/a.txt`;
      const b = `${dir}/b.txt`;
      for (const [p, text] of [[a, "A"], [b, "B"]]) {
        const h = await sftp.open(p, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
        await h.write(0, new TextEncoder().encode(text));
        await h.close();
      }
      await assert.rejects(sftp.rename(a, b), SftpError);
      await sftp.posixRename(a, b);
      assert.equal(await Deno.readTextFile(join(dir, "b.txt")), "A");
      await sftp.setstat(b, { permissions: 0o600, atime: 1_000_000_000, mtime: 1_200_000_000 });
      const st = await sftp.stat(b);
      assert.equal(st.permissions! & 0o777, 0o600);
      assert.equal(st.mtime, 1_200_000_000);
      await sftp.remove(b);
      await assert.rejects(sftp.remove(b), (e: unknown) => e instanceof SftpError);
    });

    await t.step("permission denied carries PuTTY's text", async () => {
      await assert.rejects(
        sftp.open("/proc/1/mem", OPEN.WRITE),
        (e: unknown) =>
          e instanceof SftpError && e.code === FX.PERMISSION_DENIED &&
          e.message === "permission denied",
      );
    });
  } finally {
    await sftp.close();
    await c.finish();
    await s.stop();
  }
});

Deno.test(
  "SFTP through a shared connection, and a dying connection fails every request",
  opts,
  async () => {
    const s = await startSshd();
    const dir = await s.userDir("sftp");
    const up = await connectTo(s, true);
    assert.equal(up.role, "upstream");
    const down = await connectTo(s, true);
    assert.equal(down.role, "downstream");
    try {
      const sftp = await SftpClient.start(down.conn);
      const data = randomBytes(5 * 1024 * 1024);
      const h = await sftp.open(`${dir}/shared.bin`, OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC);
      await upload(h, chunksOf(data, 65536));
      await h.close();
      assert.equal(await sha256(await fetchAll(sftp, `${dir}/shared.bin`)), await sha256(data));
      assert.equal(await s.authCount(), 1, "the downstream did not authenticate");

      // Kill the server's side mid-download: the transfer rejects, nothing hangs.
      const r = await sftp.open(`${dir}/shared.bin`, OPEN.READ);
      let got = 0;
      const dl = download(r, async (c) => {
        got += c.length;
        if (got > 1024 * 1024) s.killConnections();
        await new Promise((res) => setTimeout(res, 1));
      });
      await assert.rejects(dl);
      await assert.rejects(sftp.stat(dir));
      assert.ok(await sftp.closed instanceof Error);
    } finally {
      await down.abort();
      await up.abort();
      await s.stop();
    }
  },
);
