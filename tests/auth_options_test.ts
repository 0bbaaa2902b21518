/**
 * Options that make a connection refuse what it would otherwise take, beside PuTTY 0.78's plink:
 * -no-trivial-auth against a server that lets anyone in (the ssh2 Server, accepting "none"), and
 * -1 (SSH-1) against OpenSSH, which speaks SSH-2 only.
 */

import assert from "node:assert/strict";
import { startLoopbackServer } from "../scripts/loopback_server.ts";
import { loginArgs, startSshd } from "./fixtures/sshd.ts";
import { runOurs, runReal } from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("-no-trivial-auth: a server that asks for nothing is refused", opts, async () => {
  const server = await startLoopbackServer({ trivialAuth: true });
  const env = { PUTTYDIR: await Deno.makeTempDir() };
  try {
    const base = [
      "-batch",
      "-hostkey",
      server.hostKeyFingerprint,
      "-P",
      String(server.port),
      `${server.user}@${server.host}`,
    ];
    const open = await runOurs("plink", [...base, "echo let-in"], { env });
    assert.equal(open.stdout, "let-in\n", open.stderr);
    const results = await Promise.all([
      runOurs("plink", ["-no-trivial-auth", ...base, "echo let-in"], { env }),
      runReal("plink", ["-no-trivial-auth", ...base, "echo let-in"], { env }),
    ]);
    for (const r of results) {
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
    }
    assert.equal(
      results[0].stderr,
      "FATAL ERROR: Authentication was trivial! Abandoning session as specified in configuration.\n",
    );
    assert.equal(results[0].stderr, results[1].stderr);
  } finally {
    await server.close();
    await Deno.remove(env.PUTTYDIR, { recursive: true });
  }
});

Deno.test("-1 against an SSH-2-only server: PuTTY's refusal", opts, async () => {
  const s = await startSshd();
  try {
    const [ours, real] = await Promise.all([
      runOurs("plink", [...loginArgs(s, "-1"), "true"], { env: s.env }),
      runReal("plink", [...loginArgs(s, "-1"), "true"], { env: s.env }),
    ]);
    assert.equal(ours.code, 1);
    assert.equal(real.code, 1);
    assert.equal(ours.stderr, real.stderr);
    assert.match(ours.stderr, /^FATAL ERROR: SSH protocol version 1 required by our configuration/);
  } finally {
    await s.stop();
  }
});
