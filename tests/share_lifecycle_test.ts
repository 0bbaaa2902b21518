/**
 * The life of an upstream: it outlives its own session while downstreams remain, its
 * death gives downstreams a clear error rather than a hang, simultaneous starts elect exactly one
 * upstream, a stale socket is replaced, unsafe socket directories are refused, -v explains.
 * Saved sessions' ConnectionSharing, ConnectionSharingUpstream and ConnectionSharingDownstream
 * decide as PuTTY's do (a tool that may not be a downstream takes over a live upstream's socket).
 */

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { type Sshd, startSshd } from "./fixtures/sshd.ts";
import {
  collect,
  heldCommand,
  heldStarted,
  release,
  runOurs,
  runReal,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";
import { startUpstream, stopUpstream, upstreamId } from "./fixtures/upstream.ts";
import { sessionPath } from "../lib/config/putty_dir.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { sharePaths } from "../lib/share/socket_path.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function target(s: Sshd): string[] {
  return ["-P", String(s.port), `${s.user}@${s.host}`];
}

function auth(s: Sshd): string[] {
  return ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk];
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

Deno.test("sharing lifecycle", opts, async (t) => {
  const s = await startSshd();
  const id = upstreamId(s);
  const env = s.env;
  try {
    await t.step("an upstream outlives its own command while a downstream is busy", async () => {
      const before = await s.authCount();
      // The upstream's command ends as soon as the downstream's has started, however long the
      // downstream took to get there.
      const dir = await s.userDir("outlives");
      const upCmd = heldCommand(dir, "up-done");
      const up = spawnOurs("plink", ["-share", ...auth(s), ...target(s), upCmd], { env });
      await waitFor(() => upstreamExists(id), 20000, "upstream");
      const downCmd = `touch ${dir}/release; sleep 2; echo ds-done`;
      const down = spawnOurs("plink", ["-share", "-batch", ...target(s), downCmd], { env });
      const upResult = collect(up);
      let upExitedAt = 0;
      upResult.then(() => (upExitedAt = Date.now()));
      const d = await collect(down);
      const downDoneAt = Date.now();
      const u = await upResult;
      assert.equal(u.stdout, "up-done\n");
      assert.equal(u.code, 0);
      assert.equal(d.stdout, "ds-done\n");
      assert.equal(d.code, 0, d.stderr);
      assert.ok(upExitedAt >= downDoneAt - 100, "upstream waited for its downstream");
      assert.equal(await s.authCount(), before + 1);
      assert.equal(await upstreamExists(id), false, "socket removed after the upstream left");
    });

    await t.step("a killed upstream gives its downstreams a clear error, not a hang", async () => {
      const up = await startUpstream(s, "ours");
      const cmd = "echo started; sleep 20";
      const down = spawnOurs("plink", ["-share", "-batch", ...target(s), cmd], { env });
      // Its command's first output has come through the upstream: it is a live downstream.
      const reader = down.stdout.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), "started\n");
      reader.releaseLock();
      const t0 = Date.now();
      up.kill("SIGKILL");
      const d = await collect(down, { timeoutMs: 10000 });
      assert.ok(Date.now() - t0 < 5000, "downstream ended promptly");
      assert.equal(d.code, 1);
      assert.match(d.stderr, /^FATAL ERROR: .*upstream.*\n$/);
      await collect(up);
    });

    await t.step("a stale socket from a killed upstream is detected and replaced", async () => {
      const { socket } = await sharePaths(id);
      assert.ok((await Deno.lstat(socket)).isSocket, "the killed upstream left its socket behind");
      assert.equal(await upstreamExists(id), false);
      const r = await runOurs("plink", ["-share", "-v", ...auth(s), ...target(s), "echo fresh"], {
        env,
      });
      assert.equal(r.stdout, "fresh\n");
      assert.match(r.stderr, /Sharing this connection at \/tmp\/putty-connshare\./);
    });

    await t.step("a downstream reaches a live upstream while the lock is held", async () => {
      const up = await startUpstream(s, "ours");
      const lockFile = await Deno.open((await sharePaths(id)).lock, { read: true, write: true });
      try {
        await lockFile.lock(true);
        const r = await runOurs("plink", ["-share", "-batch", ...target(s), "echo past the lock"], {
          env,
          timeoutMs: 20000,
        });
        assert.equal(r.stdout, "past the lock\n", r.stderr);
      } finally {
        lockFile.close();
        await stopUpstream(up);
      }
    });

    await t.step("simultaneous starts elect exactly one upstream", async () => {
      const before = await s.authCount();
      const n = 6;
      const runs = await Promise.all(
        Array.from(
          { length: n },
          (_, i) =>
            runOurs("plink", ["-share", "-v", ...auth(s), ...target(s), `sleep 1; echo run-${i}`], {
              env,
            }),
        ),
      );
      runs.forEach((r, i) => {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `run-${i}\n`);
      });
      const ups = runs.filter((r) => /Sharing this connection at/.test(r.stderr)).length;
      const downs = runs.filter((r) => /Using existing shared connection at/.test(r.stderr)).length;
      assert.equal(ups, 1);
      assert.equal(downs, n - 1);
      assert.equal(await s.authCount(), before + 1);
    });

    await t.step(
      "the server dying mid-transfer ends every downstream with a clear error",
      async () => {
        const up = spawnOurs("plink", ["-share", ...auth(s), ...target(s), "-N"], { env });
        await waitFor(() => upstreamExists(id), 10000, "upstream");
        // Two downstreams receiving, two sending, one idle: all busy when the server goes.
        const ds = (cmd: string, stdin?: string) =>
          spawnOurs("plink", ["-share", "-batch", ...target(s), cmd], { env, stdin });
        const moved = [0, 0, 0, 0];
        const downloads = [0, 1].map((i) => {
          const child = ds("cat /dev/zero");
          const stderr = new Response(child.stderr).text();
          const done = (async () => {
            for await (const chunk of child.stdout) moved[i] += chunk.length;
            return { code: (await child.status).code, stderr: await stderr };
          })();
          return done;
        });
        const uploads = [2, 3].map((i) => {
          const child = ds("cat >/dev/null", "");
          const w = child.stdin.getWriter();
          const block = new Uint8Array(65536);
          (async () => {
            for (;;) {
              await w.write(block);
              moved[i] += block.length;
            }
          })().catch(() => {}); // ends when plink does
          return collect(child, { timeoutMs: 30000 });
        });
        const idle = collect(ds("sleep 20"), { timeoutMs: 30000 });
        await waitFor(() => moved.every((n) => n >= 1 << 20), 20000, "transfers under way");
        const t0 = Date.now();
        s.killConnections();
        const results = await Promise.all([...downloads, ...uploads, idle]);
        const took = Date.now() - t0;
        assert.ok(took < 6000, `downstreams ended promptly (${took} ms)`);
        for (const r of results) {
          assert.equal(r.code, 1);
          // "upstream lost its connection to the server: ..." (or, if the upstream was gone before
          // its goodbye arrived, "upstream: Connection reset by peer")
          assert.match(r.stderr, /^FATAL ERROR: upstream[^\n]*\n$/, "one clear line");
        }
        const u = await collect(up, { timeoutMs: 10000 });
        assert.notEqual(u.code, 0);
        assert.ok(!alive(up.pid));
      },
    );

    await t.step("a socket directory with the wrong mode is refused", async () => {
      const paths = await sharePaths(id);
      await Deno.chmod(paths.dir, 0o755);
      try {
        const r = await runOurs("plink", ["-share", ...auth(s), ...target(s), "echo unshared"], {
          env,
        });
        assert.equal(r.stdout, "unshared\n");
        assert.match(
          r.stderr,
          /Could not set up connection sharing: .*overgenerous permissions 755/,
        );
      } finally {
        await Deno.chmod(paths.dir, 0o700);
      }
    });

    await t.step({
      name: "a socket directory owned by someone else is refused",
      ignore: Deno.uid() !== 0, // giving it away takes root
      fn: async () => {
        const paths = await sharePaths(id);
        const uid = Number(
          new TextDecoder().decode(
            (await new Deno.Command("id", { args: ["-u", s.user], stdout: "piped" }).output())
              .stdout,
          ).trim(),
        );
        await Deno.chown(paths.dir, uid, null);
        try {
          const r = await runOurs("plink", ["-share", ...auth(s), ...target(s), "echo unshared"], {
            env,
          });
          assert.equal(r.stdout, "unshared\n");
          assert.match(r.stderr, new RegExp(`directory owned by uid ${uid}, not by us`));
        } finally {
          await Deno.chown(paths.dir, 0, null);
        }
      },
    });
  } finally {
    await s.stop();
  }
});

/**
 * Saves a session for `s` (host, port, user, key, host key) with `settings` added, in PuTTY's
 * format under the test's PUTTYDIR, and returns its name.
 */
async function saveSharingSession(
  s: Sshd,
  name: string,
  settings: Record<string, number>,
): Promise<string> {
  const path = sessionPath(name, (k) => s.env[k]);
  await Deno.mkdir(dirname(path), { recursive: true });
  const lines = [
    `HostName=${s.host}`,
    "Protocol=ssh",
    `PortNumber=${s.port}`,
    `UserName=${s.user}`,
    `PublicKeyFile=${s.userKeyPpk}`,
    `SSHManualHostKeys=${s.hostKeyFingerprint}`,
    ...Object.entries(settings).map(([k, v]) => `${k}=${v}`),
  ];
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return name;
}

/** startUpstream, and wait until the server has logged its authentication. */
async function startLoggedIn(s: Sshd): Promise<Deno.ChildProcess> {
  const auths = (await s.authCount()) + 1;
  const up = await startUpstream(s, "ours");
  await waitFor(async () => (await s.authCount()) === auths, 10000, "upstream login");
  return up;
}

/** `text` as a literal inside a RegExp. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Starts `plink -batch -v -load session` with a held command; resolves once it runs. */
async function startHeld(s: Sshd, session: string, word: string) {
  const dir = await s.userDir(`held-${word}`);
  const child = spawnOurs("plink", ["-batch", "-v", "-load", session, heldCommand(dir, word)], {
    env: s.env,
  });
  const result = collect(child);
  await heldStarted(dir, `${word} to run`);
  return {
    release: async () => {
      await release(dir);
      return await result;
    },
  };
}

Deno.test(
  "ConnectionSharing, ConnectionSharingUpstream and ...Downstream from saved sessions",
  opts,
  async (t) => {
    const s = await startSshd();
    const id = upstreamId(s);
    const { socket } = await sharePaths(id);
    const shareOn = await saveSharingSession(s, "share on", { ConnectionSharing: 1 });
    const shareOff = await saveSharingSession(s, "share off", { ConnectionSharing: 0 });
    const noUp = await saveSharingSession(s, "no upstream", {
      ConnectionSharing: 1,
      ConnectionSharingUpstream: 0,
    });
    const noDown = await saveSharingSession(s, "no downstream", {
      ConnectionSharing: 1,
      ConnectionSharingDownstream: 0,
    });
    const ups: Deno.ChildProcess[] = [];
    try {
      await t.step("Upstream=0, no upstream: connects alone, no socket, -v says why", async () => {
        const before = await s.authCount();
        const held = await startHeld(s, noUp, "alone");
        assert.equal(await exists(socket), false, "no sharing socket while it runs");
        assert.equal(await s.authCount(), before + 1, "it logged in itself");
        const r = await held.release();
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "alone\n");
        assert.match(
          r.stderr,
          new RegExp(
            `^Could not set up connection sharing as downstream: ${literal(socket)}: ` +
              "No such file or directory\\r?$",
            "m",
          ),
        );
        // It was never allowed to be an upstream, so it did not try.
        assert.doesNotMatch(r.stderr, /as upstream|Sharing this connection/);
      });

      await t.step("Upstream=0 with a live upstream: uses it", async () => {
        ups.push(await startLoggedIn(s));
        const before = await s.authCount();
        const r = await runOurs("plink", ["-batch", "-v", "-load", noUp, "echo via-upstream"], {
          env: s.env,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "via-upstream\n");
        assert.match(
          r.stderr,
          new RegExp(`Using existing shared connection at ${literal(socket)}`),
        );
        assert.equal(await s.authCount(), before, "no new authentication");
      });

      await t.step(
        "Downstream=0 with a live upstream: logs in itself and takes over the socket, as PuTTY",
        async () => {
          const [original] = ups;
          const before = await s.authCount();
          // A downstream of the original upstream, busy throughout.
          const oldDir = await s.userDir("held-old");
          const old = spawnOurs("plink", [
            "-share",
            "-batch",
            ...target(s),
            heldCommand(oldDir, "old"),
          ], {
            env: s.env,
          });
          const oldResult = collect(old);
          await heldStarted(oldDir, "old downstream to run");

          const held = await startHeld(s, noDown, "own");
          assert.equal(await s.authCount(), before + 1, "Downstream=0 logged in itself");
          // PuTTY's new_unix_listener unlinks whatever is at the path and listens there: new
          // downstreams now reach the newcomer (its -v log shows them), not the original.
          const via = await runOurs("plink", ["-share", "-batch", ...target(s), "echo via-new"], {
            env: s.env,
          });
          assert.equal(via.stdout, "via-new\n", via.stderr);
          assert.equal(await s.authCount(), before + 1);

          // The original upstream keeps serving the downstream it already had.
          await release(oldDir);
          const o = await oldResult;
          assert.equal(o.code, 0, o.stderr);
          assert.equal(o.stdout, "old\n");

          const r = await held.release();
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout, "own\n");
          assert.match(r.stderr, new RegExp(`Sharing this connection at ${literal(socket)}`));
          assert.match(r.stderr, /downstream #1 connected/);
          assert.doesNotMatch(r.stderr, /Using existing shared connection/);

          // Leaving, the newcomer removed the socket: the original upstream still runs but no
          // new downstream can find it (PuTTY's platform_ssh_share_cleanup does the same).
          assert.equal(alive(original.pid), true, "the original upstream is still running");
          assert.equal(await upstreamExists(id), false);
          assert.equal(await exists(socket), false);
        },
      );

      await t.step("PuTTY's own plink with Downstream=0 takes over the socket too", async () => {
        for (const up of ups.splice(0)) await stopUpstream(up);
        ups.push(await startLoggedIn(s));
        const before = await s.authCount();
        const r = await runReal("plink", ["-batch", "-v", "-load", noDown, "echo real"], {
          env: s.env,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "real\n");
        assert.equal(await s.authCount(), before + 1);
        assert.match(r.stderr, /Sharing this connection at /);
        assert.equal(alive(ups[0].pid), true);
        assert.equal(await upstreamExists(id), false, "the socket went with PuTTY's plink");
      });

      await t.step("ConnectionSharing=1 alone (no -share) turns sharing on", async () => {
        for (const up of ups.splice(0)) await stopUpstream(up);
        const before = await s.authCount();
        const held = await startHeld(s, shareOn, "first");
        assert.ok(await upstreamExists(id), "the first became the upstream");
        const second = await runOurs("plink", ["-batch", "-v", "-load", shareOn, "echo second"], {
          env: s.env,
        });
        assert.equal(second.stdout, "second\n", second.stderr);
        assert.match(
          second.stderr,
          new RegExp(`Using existing shared connection at ${literal(socket)}`),
        );
        // The same session with ConnectionSharing=0 ignores the live upstream.
        const off = await runOurs("plink", ["-batch", "-v", "-load", shareOff, "echo off"], {
          env: s.env,
        });
        assert.equal(off.stdout, "off\n", off.stderr);
        assert.doesNotMatch(off.stderr, /shared connection|connection sharing/i);
        const r = await held.release();
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`Sharing this connection at ${literal(socket)}`));
        assert.equal(await s.authCount(), before + 2, "first and off logged in; second did not");
      });
    } finally {
      for (const up of ups) await stopUpstream(up);
      await s.stop();
    }
  },
);
