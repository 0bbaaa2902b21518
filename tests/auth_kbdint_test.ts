/**
 * keyboard-interactive authentication (against npm:ssh2's Server, since our OpenSSH test server
 * runs without PAM): prompts answered on the terminal, with and without echo; -pw answers the
 * password prompt once, as PuTTY does; -batch refuses to answer.
 */

import assert from "node:assert/strict";
import { startLoopbackServer } from "../scripts/loopback_server.ts";
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
