/**
 * The life of an upstream (issue 3): it outlives its own session while downstreams remain, its
 * death gives downstreams a clear error rather than a hang, simultaneous starts elect exactly one
 * upstream, a stale socket is replaced, unsafe socket directories are refused, -v explains.
 */

import assert from "node:assert/strict";
import { type Sshd, startSshd } from "./fixtures/sshd.ts";
import { collect, runOurs, spawnOurs, waitFor } from "./fixtures/tools.ts";
import { startUpstream, upstreamId } from "./fixtures/upstream.ts";
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
      const up = spawnOurs(
        "plink",
        ["-share", ...auth(s), ...target(s), "sleep 0.3; echo up-done"],
        {
          env,
        },
      );
      await waitFor(() => upstreamExists(id), 10000, "upstream");
      const down = spawnOurs("plink", ["-share", "-batch", ...target(s), "sleep 2; echo ds-done"], {
        env,
      });
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
      const up = await startUpstream(s, "ours", { timeoutMs: 10000 });
      const down = spawnOurs("plink", ["-share", "-batch", ...target(s), "sleep 20"], { env });
      await new Promise((r) => setTimeout(r, 800));
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

    await t.step("a socket directory with the wrong mode or owner is refused", async () => {
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
      if (Deno.uid() === 0) {
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
      }
    });
  } finally {
    await s.stop();
  }
});
