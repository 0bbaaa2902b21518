/**
 * The Docker image (issue 6) without a Docker engine: the Dockerfile passes a Dockerfile linter,
 * and the image's build steps (scripts/build_image.sh, which the Dockerfile runs) produce a tool
 * layout whose links dispatch and run a real batch job.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startSshd } from "./fixtures/sshd.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const opts = { sanitizeOps: false, sanitizeResources: false };

function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("the Dockerfile lints clean and builds from the files it copies", () => {
  const lint = run("npx", ["-y", "dockerfile-utils@0.16.3", "lint", join(ROOT, "Dockerfile")]);
  assert.equal(lint.code, 0, lint.stdout + lint.stderr);
  const text = Deno.readTextFileSync(join(ROOT, "Dockerfile"));
  for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1].split(/\s+/)) {
      assert.ok(Deno.statSync(join(ROOT, src)), `COPY source ${src} exists`);
    }
  }
  assert.match(text, /^USER nonroot$/m);
  assert.match(text, /^ENTRYPOINT \["\/usr\/local\/bin\/puttykit"\]$/m);
  assert.match(text, /RUN sh scripts\/build_image\.sh \/rootfs/);
});

Deno.test("the image build steps give one program with working tool links", opts, async () => {
  const rootfs = await Deno.makeTempDir({ prefix: "pk-rootfs-" });
  const s = await startSshd();
  try {
    const build = run("sh", [join(ROOT, "scripts/build_image.sh"), rootfs], {
      PUTTYKIT_NO_COMPILE: "1",
      DENO: Deno.execPath(),
    });
    assert.equal(build.code, 0, build.stderr);
    const bin = join(rootfs, "usr/local/bin");
    for (const tool of ["plink", "pscp", "psftp", "putty"]) {
      assert.equal(Deno.readLinkSync(join(bin, tool)), "puttykit");
    }
    const v = run(join(bin, "plink"), ["-V"]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^plink: puttykit /);
    const viaEntrypoint = run(join(bin, "puttykit"), ["plink", "-V"]);
    assert.match(viaEntrypoint.stdout, /^plink: puttykit /);
    // The documented batch usage: read-only key and host-key store, -batch, -share.
    const job = run(join(bin, "plink"), [
      "-batch",
      "-share",
      "-hostkey",
      s.hostKeyFingerprint,
      "-i",
      s.userKeyPpk,
      "-P",
      String(s.port),
      `${s.user}@${s.host}`,
      "echo batch-job-ok",
    ], s.env);
    assert.equal(job.stdout, "batch-job-ok\n", job.stderr);
  } finally {
    await s.stop();
    await Deno.remove(rootfs, { recursive: true });
  }
});
