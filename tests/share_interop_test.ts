/**
 * Connection sharing against real peers: OpenSSH sshd on loopback, PuTTY 0.78's own
 * plink from putty-tools, and our plink run as a process.
 */

import assert from "node:assert/strict";
import { type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startUpstream, stopUpstream, upstreamId } from "./fixtures/upstream.ts";
import {
  collect,
  heldCommand,
  heldStarted,
  release,
  runOurs,
  runReal,
  spawnOurs,
} from "./fixtures/tools.ts";
import { sharePaths } from "../lib/share/socket_path.ts";
import { message, MSG } from "../lib/ssh/wire.ts";
import { RawDownstream } from "./fixtures/raw_downstream.ts";

function target(s: Sshd): string[] {
  return ["-P", String(s.port), `${s.user}@${s.host}`];
}

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("our upstream serves a real plink downstream; one authentication", opts, async () => {
  const s = await startSshd();
  const up = await startUpstream(s, "ours");
  try {
    const r = await runReal("plink", ["-share", "-batch", ...target(s), "echo via-ours; exit 3"], {
      env: s.env,
    });
    assert.deepEqual(r.stdout, "via-ours\n");
    assert.deepEqual(r.code, 3);
    // A second downstream (ours) through the same upstream.
    const r2 = await runOurs(
      "plink",
      ["-share", "-batch", ...target(s), "echo again >&2; exit 0"],
      {
        env: s.env,
      },
    );
    assert.deepEqual(r2.stderr, "again\n");
    assert.deepEqual(r2.code, 0);
    assert.deepEqual(await s.authCount(), 1);
  } finally {
    await stopUpstream(up);
    await s.stop();
  }
});

Deno.test(
  "bulk data from the server reaches our and PuTTY's downstreams whole, stdout and stderr",
  opts,
  async () => {
    // The server sends the upstream packets larger than a sharing message holds; the upstream
    // splits them for each downstream (which would drop the connection at a larger message).
    const s = await startSshd();
    const up = await startUpstream(s, "ours");
    try {
      const dir = await s.userDir("bulk");
      const bytes = crypto.getRandomValues(new Uint8Array(48 * 1024));
      const line = btoa(String.fromCharCode(...bytes)) + "\n";
      const text = line.repeat(48);
      await Deno.writeTextFile(`${dir}/bulk.txt`, text);
      for (const run of [runOurs, runReal]) {
        for (const redirect of ["", " >&2"]) {
          const r = await run("plink", [
            "-share",
            "-batch",
            ...target(s),
            `cat ${dir}/bulk.txt${redirect}`,
          ], { env: s.env });
          const what = `${run === runOurs ? "ours" : "PuTTY's"}${redirect}`;
          assert.deepEqual(r.code, 0, `${what}: ${r.stderr.slice(0, 200)}`);
          const got = redirect ? r.stderr : r.stdout;
          assert.ok(got === text, `${what}: ${got.length} of ${text.length} characters, or others`);
        }
      }
      assert.deepEqual(await s.authCount(), 1);
    } finally {
      await stopUpstream(up);
      await s.stop();
    }
  },
);

Deno.test("real plink upstream serves our downstream; one authentication", opts, async () => {
  const s = await startSshd();
  const up = await startUpstream(s, "real");
  try {
    const r = await runOurs("plink", [
      "-share",
      "-batch",
      "-v",
      ...target(s),
      "echo via-real; exit 5",
    ], {
      env: s.env,
    });
    assert.deepEqual(r.stdout, "via-real\n");
    assert.deepEqual(r.code, 5);
    assert.match(
      r.stderr,
      /Using existing shared connection at \/tmp\/putty-connshare\.[^/]+\/[0-9a-f]{64}\/socket/,
    );
    assert.deepEqual(await s.authCount(), 1);
  } finally {
    await stopUpstream(up);
    await s.stop();
  }
});

Deno.test(
  "as downstreams, ours say what PuTTY's say on stderr (plink with and without a command, pscp, psftp)",
  opts,
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "ours");
    const dir = await Deno.makeTempDir();
    try {
      const batch = `${dir}/batch`;
      await Deno.writeTextFile(batch, "pwd\n");
      const host = `${s.user}@${s.host}`;
      const P = ["-P", String(s.port)];
      const cases: [string, string[], string?][] = [
        ["plink", ["-share", "-batch", ...P, host, "true"]],
        ["plink", ["-share", "-batch", "-T", ...P, host], "exit 0\n"],
        ["pscp", ["-share", "-batch", "-q", ...P, `${host}:/etc/hostname`, `${dir}/h`]],
        ["psftp", ["-share", "-batch", "-b", batch, ...P, host]],
      ];
      for (const [tool, args, stdin] of cases) {
        const ours = await runOurs(tool, args, { env: s.env, stdin });
        const real = await runReal(tool, args, { env: s.env, stdin });
        assert.equal(ours.code, 0, `${tool}: ${ours.stderr}`);
        assert.equal(real.code, 0, `${tool} (PuTTY): ${real.stderr}`);
        assert.equal(ours.stderr, real.stderr, `${tool} ${args.join(" ")}`);
      }
      // With -v the event logs differ in detail, but the sharing lines are PuTTY's.
      const v = ["-share", "-batch", "-v", "-q", ...P, `${host}:/etc/hostname`, `${dir}/h`];
      const [ours, real] = [
        await runOurs("pscp", v, { env: s.env }),
        await runReal("pscp", v, { env: s.env }),
      ];
      const head = (t: string) => t.split("\n").slice(0, 2);
      assert.deepEqual(head(ours.stderr), head(real.stderr));
      assert.match(
        ours.stderr,
        /^Using existing shared connection at .*\nReusing a shared connection to this server\.\n/,
      );
      assert.equal(await s.authCount(), 1);
    } finally {
      await stopUpstream(up);
      await Deno.remove(dir, { recursive: true });
      await s.stop();
    }
  },
);

Deno.test("-shareexists before, during and after an upstream's life", opts, async () => {
  const s = await startSshd();
  const exists = async (
    which: "ours" | "real",
  ) => (which === "ours"
    ? await runOurs("plink", ["-shareexists", ...target(s)], { env: s.env })
    : await runReal("plink", ["-shareexists", ...target(s)], { env: s.env }));
  try {
    for (const which of ["ours", "real"] as const) {
      const r = await exists(which);
      assert.deepEqual(r.code, 1, `${which} before`);
      assert.deepEqual(r.stdout + r.stderr, "");
    }
    const up = await startUpstream(s, "ours");
    for (const which of ["ours", "real"] as const) {
      const r = await exists(which);
      assert.deepEqual(r.code, 0, `${which} during`);
      assert.deepEqual(r.stdout + r.stderr, "");
    }
    await stopUpstream(up);
    for (const which of ["ours", "real"] as const) {
      assert.deepEqual((await exists(which)).code, 1, `${which} after`);
    }
  } finally {
    await s.stop();
  }
});

async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test(
  "20 concurrent downstreams; killing one mid-transfer leaves the others intact",
  opts,
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "ours");
    try {
      const size = 2 * 1024 * 1024;
      const victim = 7;
      const jobs = Array.from({ length: 20 }, async (_, i) => {
        const data = crypto.getRandomValues(new Uint8Array(65536));
        const full = new Uint8Array(size);
        for (let at = 0; at < size; at += data.length) full.set(data, at);
        const child = spawnOurs("plink", ["-share", "-batch", ...target(s), "sha256sum"], {
          env: s.env,
          stdin: "",
        });
        const w = child.stdin.getWriter();
        const out = collect(child);
        try {
          for (let at = 0; at < size; at += 65536) {
            await w.write(full.subarray(at, at + 65536));
            if (i === victim && at === size / 2) child.kill("SIGKILL");
            await new Promise((r) => setTimeout(r, 2));
          }
          await w.close();
        } catch {
          // the victim's stdin breaks when it dies
        }
        const r = await out;
        return { i, r, want: await sha256Hex(full) };
      });
      const results = await Promise.all(jobs);
      for (const { i, r, want } of results) {
        if (i === victim) {
          assert.ok(r.code !== 0, "the killed downstream did not succeed");
          continue;
        }
        assert.deepEqual(r.code, 0, `downstream ${i}: ${r.stderr}`);
        assert.deepEqual(r.stdout.split(" ")[0], want, `downstream ${i} checksum`);
      }
      // The upstream is still there and still serving.
      const after = await runOurs("plink", ["-share", "-batch", ...target(s), "echo still-here"], {
        env: s.env,
      });
      assert.deepEqual(after.stdout, "still-here\n");
      assert.deepEqual(await s.authCount(), 1);
    } finally {
      await stopUpstream(up);
      await s.stop();
    }
  },
);

Deno.test(
  "hostile downstreams cannot crash the upstream or touch another's channels",
  opts,
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "ours");
    try {
      const { socket } = await sharePaths(upstreamId(s));
      // A legitimate downstream whose command runs until the attacks are over.
      const dir = await s.userDir("legit");
      const legitCmd = heldCommand(dir, "legit-ok");
      const legit = spawnOurs("plink", ["-share", "-batch", ...target(s), legitCmd], {
        env: s.env,
      });
      const legitDone = collect(legit);
      await heldStarted(dir, "the legitimate downstream's command");

      // 1. Messages for channel ids that are not ours (the legit one's server id is among 0..20).
      for (let serverId = 0; serverId <= 20; serverId++) {
        const h = await RawDownstream.open(socket);
        await h.sendPacket(message(MSG.CHANNEL_CLOSE, (w) => w.uint32(serverId)));
        await h.sendPacket(message(MSG.CHANNEL_DATA, (w) => w.uint32(serverId).string("evil")));
        const got = await h.drain();
        assert.ok(got.length > 0, "upstream greeted and answered");
        assert.match(h.text(), /not yours/);
      }
      // 2. A length beyond the protocol's limit.
      const big = await RawDownstream.open(socket);
      await big.sendRaw(new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
      await big.drain();
      assert.match(big.text(), /bad packet length/);
      // 3. Truncated and unexpected messages, and random garbage.
      const samples: Uint8Array[] = [
        new Uint8Array([MSG.CHANNEL_OPEN, 0, 0]),
        new Uint8Array([MSG.REQUEST_SUCCESS]),
        new Uint8Array([50, 1, 2, 3]),
        message(
          MSG.CHANNEL_OPEN,
          (w) => w.string("session").uint32(1).uint32(1000).uint32(1000).raw(new Uint8Array([9])),
        ),
        crypto.getRandomValues(new Uint8Array(200)),
      ];
      for (const p of samples) {
        const h = await RawDownstream.open(socket);
        await h.sendPacket(p);
        await h.drain();
      }
      // 4. Garbage before any greeting.
      const noGreeting = await Deno.connect({ transport: "unix", path: socket });
      await noGreeting.write(crypto.getRandomValues(new Uint8Array(5000))).catch(() => 0);
      noGreeting.close();

      await release(dir);
      const r = await legitDone;
      assert.deepEqual(r.stdout, "legit-ok\n");
      assert.deepEqual(r.code, 0);
      const after = await runOurs("plink", ["-share", "-batch", ...target(s), "echo survived"], {
        env: s.env,
      });
      assert.deepEqual(after.stdout, "survived\n");
      assert.deepEqual(await s.authCount(), 1);
    } finally {
      await stopUpstream(up);
      await s.stop();
    }
  },
);
