/**
 * -i key files: PuTTY .ppk (versions 2 and 3; RSA, ECDSA, Ed25519; passphrase-protected v2) and
 * OpenSSH keys, each logging in to a real sshd.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startSshd } from "./fixtures/sshd.ts";
import { ourShellCommand, runOnPty, runOurs } from "./fixtures/tools.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test("private key formats log in", opts, async (t) => {
  const s = await startSshd();
  const target = ["-P", String(s.port), `${s.user}@${s.host}`];
  const base = ["-batch", "-noagent", "-hostkey", s.hostKeyFingerprint];
  const authorized = join(s.dir, "authorized_keys");
  const newKey = async (type: string, bits?: number, name = `k_${type}${bits ?? ""}`) => {
    const path = join(s.dir, name);
    await sh("ssh-keygen", [
      "-q",
      "-t",
      type,
      ...(bits ? ["-b", String(bits)] : []),
      "-N",
      "",
      "-f",
      path,
    ]);
    await Deno.writeTextFile(authorized, await Deno.readTextFile(`${path}.pub`), { append: true });
    return path;
  };
  try {
    for (
      const [type, bits] of [["rsa", 2048], ["ecdsa", 256], ["ecdsa", 384], ["ed25519"]] as const
    ) {
      await t.step(`${type}${bits ?? ""}: OpenSSH key, PPK v3 and PPK v2`, async () => {
        const key = await newKey(type, bits);
        await sh("puttygen", [key, "-o", `${key}.ppk`]);
        await sh("puttygen", [key, "--ppk-param", "version=2", "-o", `${key}.v2.ppk`]);
        for (const file of [key, `${key}.ppk`, `${key}.v2.ppk`]) {
          const r = await runOurs("plink", [...base, "-i", file, ...target, "echo key-ok"], {
            env: s.env,
          });
          assert.equal(r.stdout, "key-ok\n", `${file}: ${r.stderr}`);
        }
      });
    }

    await t.step("passphrase-protected PPK v2: asked for, refused in -batch", async () => {
      const key = await newKey("ed25519", undefined, "locked");
      const pass = join(s.dir, "pass.txt");
      await Deno.writeTextFile(pass, "correct horse\n");
      await sh("puttygen", [
        key,
        "--ppk-param",
        "version=2",
        "--new-passphrase",
        pass,
        "-o",
        `${key}.enc.ppk`,
      ]);
      const batch = await runOurs("plink", [...base, "-i", `${key}.enc.ppk`, ...target, "true"], {
        env: s.env,
      });
      assert.equal(batch.code, 1);
      assert.match(batch.stderr, /passphrase/);
      const cmd = ourShellCommand("plink", [
        "-noagent",
        "-hostkey",
        s.hostKeyFingerprint,
        "-i",
        `${key}.enc.ppk`,
        ...target,
        "echo unlocked",
      ]);
      let typed = false;
      const r = await runOnPty(cmd, (screen) => {
        if (typed || !/Passphrase for key/.test(screen)) return undefined;
        typed = true;
        return "correct horse\r";
      }, { env: s.env });
      assert.match(r.stdout, /unlocked/);
      assert.ok(!r.stdout.includes("correct horse"));
    });

    await t.step("a wrong passphrase is a clear error", async () => {
      const key = join(s.dir, "locked.enc.ppk");
      const cmd = ourShellCommand("plink", [
        "-noagent",
        "-hostkey",
        s.hostKeyFingerprint,
        "-i",
        key,
        ...target,
        "true",
      ]);
      let typed = false;
      const r = await runOnPty(cmd, (screen) => {
        if (typed || !/Passphrase for key/.test(screen)) return undefined;
        typed = true;
        return "wrong\r";
      }, { env: s.env });
      assert.equal(r.code, 1);
      assert.match(r.stdout, /FATAL ERROR: .*wrong passphrase/);
    });
  } finally {
    await s.stop();
  }
});
