/**
 * -i key files: PuTTY .ppk (versions 2 and 3; RSA, ECDSA, Ed25519; passphrase-protected v2, and
 * v3 with each Argon2 flavour, as puttygen 0.78 writes them) and OpenSSH keys, each logging in to
 * a real sshd.
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

    /** plink -i `file` on a terminal, typing `passphrase` at its prompt, running `command`. */
    const unlockOnPty = (file: string, passphrase: string, command: string) => {
      const cmd = ourShellCommand("plink", [
        "-noagent",
        "-hostkey",
        s.hostKeyFingerprint,
        "-i",
        file,
        ...target,
        command,
      ]);
      let typed = false;
      return runOnPty(cmd, (screen) => {
        if (typed || !/Passphrase for key/.test(screen)) return undefined;
        typed = true;
        return `${passphrase}\r`;
      }, { env: s.env });
    };

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
      const r = await unlockOnPty(`${key}.enc.ppk`, "correct horse", "echo unlocked");
      assert.match(r.stdout, /unlocked/);
      assert.ok(!r.stdout.includes("correct horse"));
    });

    await t.step(
      "passphrase-protected PPK v3: Argon2id as puttygen makes it, Argon2i/d",
      async () => {
        const key = await newKey("ed25519", undefined, "locked3");
        const pass = join(s.dir, "pass3.txt");
        await Deno.writeTextFile(pass, "battery staple\n");
        const kinds: [string, string[]][] = [
          // puttygen 0.78's default: Argon2id, 8 MiB, passes for ~100 ms of its time, 1 lane.
          ["Argon2id", []],
          ["Argon2i", ["--ppk-param", "kdf=argon2i,memory=1024,passes=3,parallel=2"]],
          ["Argon2d", ["--ppk-param", "kdf=argon2d,memory=256,passes=2,parallel=4"]],
        ];
        for (const [kdf, params] of kinds) {
          const file = `${key}.${kdf}.ppk`;
          await sh("puttygen", [key, ...params, "--new-passphrase", pass, "-o", file]);
          const text = await Deno.readTextFile(file);
          assert.match(text, /^PuTTY-User-Key-File-3: /);
          assert.match(text, new RegExp(`^Key-Derivation: ${kdf}$`, "m"));
          const r = await unlockOnPty(file, "battery staple", "echo unlocked-v3");
          assert.match(r.stdout, /unlocked-v3/, `${kdf}: ${r.stdout}`);
        }
      },
    );

    await t.step("a wrong passphrase is a clear error (PPK v2 and v3)", async () => {
      for (const file of ["locked.enc.ppk", "locked3.Argon2id.ppk"]) {
        const r = await unlockOnPty(join(s.dir, file), "wrong", "true");
        assert.equal(r.code, 1);
        assert.match(r.stdout, /FATAL ERROR: .*wrong passphrase/, file);
      }
      const empty = await unlockOnPty(join(s.dir, "locked3.Argon2id.ppk"), "", "true");
      assert.equal(empty.code, 1);
      assert.match(empty.stdout, /FATAL ERROR: .*wrong passphrase/, "empty passphrase");
    });
  } finally {
    await s.stop();
  }
});
