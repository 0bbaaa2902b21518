/**
 * keyboard-interactive authentication: against npm:ssh2's Server (two prompts, one echoed),
 * prompts answered on the terminal, -batch refusing to answer; and against OpenSSH with PAM (as
 * root, which PAM needs to check a password), where -pw answers PAM's password prompt once, as
 * PuTTY does, a wrong one is refused, and a person types it at the prompt unechoed.
 */

import assert from "node:assert/strict";
import { startLoopbackServer } from "../scripts/loopback_server.ts";
import { startSshd } from "./fixtures/sshd.ts";
import { ourShellCommand, runOnPty, runOurs } from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("keyboard-interactive", opts, async (t) => {
  const server = await startLoopbackServer({ keyboardInteractive: true });
  const env = { PUTTYDIR: await Deno.makeTempDir() };
  const target = ["-noagent", "-hostkey", server.hostKeyFingerprint, "-P", String(server.port)];
  const who = `${server.user}@${server.host}`;
  try {
    await t.step("both prompts answered on the terminal; only the token echoes", async () => {
      const answered = new Set<string>();
      const r = await runOnPty(
        ourShellCommand("plink", [...target, who, "echo kbd-ok"]),
        (screen) => {
          if (!answered.has("pw") && screen.includes("Password: ")) {
            answered.add("pw");
            return `${server.password}\r`;
          }
          if (!answered.has("token") && screen.includes("Token: ")) {
            answered.add("token");
            return "42\r";
          }
          return undefined;
        },
        { env },
      );
      assert.match(r.stdout, /Answer both questions\./);
      assert.match(r.stdout, /kbd-ok/);
      assert.match(r.stdout, /Token: 42/, "the echoed answer is shown");
      assert.ok(!r.stdout.includes(server.password), "the password is not");
      assert.equal(server.authCount, 1);
    });

    await t.step("-batch cannot answer the prompts", async () => {
      const r = await runOurs("plink", ["-batch", "-pw", server.password, ...target, who, "true"], {
        env,
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^FATAL ERROR: .*batch mode/m);
    });
  } finally {
    await server.close();
    await Deno.remove(env.PUTTYDIR, { recursive: true });
  }
});

Deno.test(
  "keyboard-interactive against OpenSSH with PAM",
  { ...opts, ignore: Deno.uid() !== 0 },
  async () => {
    // Only keyboard-interactive (PAM's "Password: ") and no plain password method.
    const s = await startSshd({
      config: ["KbdInteractiveAuthentication yes", "UsePAM yes", "PasswordAuthentication no"],
    });
    try {
      const base = ["-noagent", "-hostkey", s.hostKeyFingerprint, "-P", String(s.port)];
      const who = `${s.user}@${s.host}`;
      const ok = await runOurs(
        "plink",
        ["-batch", "-pw", s.password!, ...base, who, "echo pam-ok"],
        {
          env: s.env,
        },
      );
      assert.equal(ok.stdout, "pam-ok\n", ok.stderr);
      assert.match(await s.log(), /Accepted keyboard-interactive\/pam for pkbench/);

      const wrong = await runOurs("plink", ["-batch", "-pw", "wrong", ...base, who, "true"], {
        env: s.env,
      });
      assert.equal(wrong.code, 1);
      assert.equal(wrong.stderr.trimEnd().split("\n").length, 1, wrong.stderr);

      let typed = false;
      const r = await runOnPty(
        ourShellCommand("plink", [...base, who, "echo typed-ok"]),
        (screen) => {
          if (typed || !screen.endsWith("Password: ")) return undefined;
          typed = true;
          return `${s.password}\r`;
        },
        { env: s.env },
      );
      assert.ok(typed, r.stdout);
      assert.match(r.stdout, /typed-ok/);
      assert.ok(!r.stdout.includes(s.password!), "not echoed");
      assert.equal(await s.authCount(), 2);
    } finally {
      await s.stop();
    }
  },
);
