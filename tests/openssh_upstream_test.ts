/**
 * OpenSSH's client through our upstream: `plink -share -controlpath PATH -N` listens on PATH too,
 * and answers `ssh -S PATH -O check|proxy|stop|exit`; `ssh -O proxy` runs commands, sftp (through
 * an `sftp -S` wrapper) and -L over our one connection, beside a real PuTTY `plink -share`
 * downstream on the PuTTY socket. The server sees one authentication.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startSshd } from "./fixtures/sshd.ts";
import {
  controlDir,
  masterPid,
  spawnSshVia,
  sshOptions,
  sshVia,
  startControlUpstream,
} from "./fixtures/ssh_master.ts";
import {
  acceptsTcp,
  collect,
  heldCommand,
  heldStarted,
  release,
  runReal,
  spawn,
  waitFor,
} from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "ssh -O check, proxy and exit through our upstream, beside PuTTY's plink",
  opts,
  async () => {
    const s = await startSshd();
    const ctl = join(await controlDir(s), "up-%r@%h:%p");
    const path = ctl.replace("%r", s.user).replace("%h", s.host).replace("%p", String(s.port));
    const host = `${s.user}@${s.host}`;
    const up = await startControlUpstream(s, ctl, path, ["-v"]);
    try {
      assert.equal(await masterPid(s, path), up.pid);
      const st = Deno.lstatSync(path);
      assert.ok(st.isSocket);
      assert.equal(st.mode! & 0o777, 0o600);
      assert.equal(st.uid, Deno.uid());

      const r = await sshVia(s, path, ["-O", "proxy", host, "echo out; echo err >&2; exit 3"]);
      assert.equal(r.stdout, "out\n");
      assert.equal(r.stderr, "err\n");
      assert.equal(r.code, 3);
      const cat = await sshVia(s, path, ["-O", "proxy", host, "wc -c"], {
        stdin: "y".repeat(200000),
      });
      assert.equal(cat.stdout.trim(), "200000");

      // A real PuTTY downstream on the PuTTY socket, at the same time as an OpenSSH proxy client.
      const slow = spawnSshVia(s, path, [
        "-O",
        "proxy",
        host,
        "sleep 1; echo slow",
      ]);
      const putty = await runReal("plink", [
        "-share",
        "-batch",
        "-P",
        String(s.port),
        host,
        "echo putty; exit 5",
      ], {
        env: s.env,
      });
      assert.equal(putty.stdout, "putty\n");
      assert.equal(putty.code, 5);
      assert.equal((await collect(slow)).stdout, "slow\n");

      // sftp through a wrapper that runs ssh in proxy mode.
      const work = await s.userDir("work");
      await Deno.writeTextFile(join(work, "remote.txt"), "from the server\n");
      const wrapper = join(s.dir, "ssh-proxy");
      await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ssh -O proxy "$@"\n`);
      await Deno.chmod(wrapper, 0o755);
      const got = join(s.dir, "got.txt");
      const sftp = await collect(
        spawn("sftp", [
          "-S",
          wrapper,
          // sftp's port option is -P: sshOptions without its trailing "-p port".
          ...sshOptions(s).slice(0, -2),
          "-P",
          String(s.port),
          "-o",
          "ControlMaster=no",
          "-o",
          `ControlPath=${path}`,
          "-b",
          "-",
          host,
        ], { stdin: "" }),
        { stdin: `get ${work}/remote.txt ${got}\n` },
      );
      assert.equal(sftp.code, 0, sftp.stderr);
      assert.equal(await Deno.readTextFile(got), "from the server\n");

      // -L through ssh -O proxy.
      const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      (async () => {
        for await (const c of echo) c.readable.pipeTo(c.writable).catch(() => {});
      })();
      const lport = (() => {
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const p = (l.addr as Deno.NetAddr).port;
        l.close();
        return p;
      })();
      const fwd = spawnSshVia(s, path, [
        "-O",
        "proxy",
        "-N",
        "-L",
        `${lport}:127.0.0.1:${(echo.addr as Deno.NetAddr).port}`,
        host,
      ]);
      await waitFor(() => acceptsTcp(lport), 20000, "ssh -L listener");
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: lport });
      await conn.write(new TextEncoder().encode("ping"));
      const buf = new Uint8Array(4);
      let n = 0;
      while (n < 4) {
        const k = await conn.read(buf.subarray(n));
        if (k === null) break;
        n += k;
      }
      assert.equal(new TextDecoder().decode(buf), "ping");
      conn.close();
      fwd.kill("SIGTERM");
      await collect(fwd);
      echo.close();

      assert.equal(await s.authCount(), 1);

      // Plain ssh -S (descriptor passing) is refused with the reason; ssh then logs in itself.
      const plain = await sshVia(s, path, [host, "true"]);
      assert.match(plain.stderr, /cannot take file descriptors: use ssh -O proxy/);

      const exit = await sshVia(s, path, ["-O", "exit", host]);
      assert.equal(exit.code, 0, exit.stderr);
      const done = await collect(up, { timeoutMs: 10000 });
      assert.equal(done.code, 0, done.stderr);
      assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
    } finally {
      try {
        up.kill("SIGTERM");
      } catch { /* gone */ }
      await s.stop();
    }
  },
);

Deno.test(
  "ssh -O stop removes only the control socket; the upstream carries on",
  opts,
  async () => {
    const s = await startSshd();
    const path = join(await controlDir(s), "c");
    const host = `${s.user}@${s.host}`;
    const up = await startControlUpstream(s, path);
    try {
      const stop = await sshVia(s, path, ["-O", "stop", host]);
      assert.equal(stop.code, 0, stop.stderr);
      await waitFor(
        () => {
          try {
            Deno.lstatSync(path);
            return false;
          } catch {
            return true;
          }
        },
        5000,
        "control socket removed",
      );
      const putty = await runReal("plink", [
        "-share",
        "-batch",
        "-P",
        String(s.port),
        host,
        "echo still",
      ], {
        env: s.env,
      });
      assert.equal(putty.stdout, "still\n");
      assert.equal(await s.authCount(), 1);
    } finally {
      up.kill("SIGTERM");
      await collect(up);
      await s.stop();
    }
  },
);

Deno.test("ssh -O exit: our upstream stays until its last downstream has gone", opts, async () => {
  const s = await startSshd();
  const path = join(await controlDir(s), "c");
  const host = `${s.user}@${s.host}`;
  const up = await startControlUpstream(s, path);
  try {
    // Busy until the test releases it, however long ssh -O exit takes on a loaded machine.
    const dir = await s.userDir("busy");
    const busy = spawnSshVia(s, path, ["-O", "proxy", host, heldCommand(dir, "done")]);
    const busyOut = new Response(busy.stdout).text();
    await heldStarted(dir, "the busy downstream's command");
    const exit = await sshVia(s, path, ["-O", "exit", host]);
    assert.equal(exit.code, 0, exit.stderr);
    let upDone = false;
    const upResult = collect(up, { timeoutMs: 20000 }).finally(() => (upDone = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(upDone, false, "the upstream waits for the busy downstream");
    await release(dir);
    assert.equal(await busyOut, "done\n");
    await busy.stderr.cancel();
    assert.equal((await busy.status).code, 0);
    assert.equal((await upResult).code, 0);
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
    assert.equal(await s.authCount(), 1);
  } finally {
    try {
      up.kill("SIGTERM");
    } catch { /* gone */ }
    await s.stop();
  }
});

Deno.test(
  "clients that never say hello on the control socket are capped and dropped",
  opts,
  async () => {
    const s = await startSshd();
    const path = join(await controlDir(s), "c");
    const quick = {
      ...s,
      env: { ...s.env, PK_SHARE_GREETING_MS: "700", PK_SHARE_MAX_PENDING: "4" },
    };
    const up = await startControlUpstream(quick, path);
    const idle: Deno.UnixConn[] = [];
    try {
      for (let i = 0; i < 10; i++) idle.push(await Deno.connect({ transport: "unix", path }));
      // Each is hung up on: at once past the cap, after the greeting time otherwise.
      const started = Date.now();
      const ends = await Promise.all(idle.map(async (c) => {
        const buf = new Uint8Array(4096);
        for (let n = 0; n < 100; n++) {
          const got = await c.read(buf).catch(() => null);
          if (got === null) return Date.now() - started;
        }
        return Infinity;
      }));
      assert.ok(ends.every((ms) => ms < 10000), `all dropped: ${ends}`);
      // The upstream still answers.
      assert.equal(await masterPid(s, path), up.pid);
    } finally {
      for (const c of idle) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      up.kill("SIGTERM");
      await collect(up);
      await s.stop();
    }
  },
);
