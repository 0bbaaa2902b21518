/**
 * The Docker image without a Docker engine: the Dockerfile passes a Dockerfile linter
 * and its stages fit together, and its build stage, replayed from exactly the files it copies
 * (COPY lines into a scratch WORKDIR, then its RUN line: scripts/build_image.sh), produces a tool
 * layout whose entrypoint and links dispatch and run a real batch job.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startSshd } from "./fixtures/sshd.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const opts = { sanitizeOps: false, sanitizeResources: false };

function run(cmd: string, args: string[], o: { env?: Record<string, string>; cwd?: string } = {}) {
  const out = new Deno.Command(cmd, { args, ...o, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

interface Stage {
  from: string;
  name?: string;
  /** Instruction lines of the stage (continuations joined), e.g. "COPY cmd ./cmd". */
  lines: string[];
}

function stages(text: string): Stage[] {
  const out: Stage[] = [];
  const joined = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim());
  for (const line of joined) {
    if (!line || line.startsWith("#")) continue;
    const from = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i);
    if (from) out.push({ from: from[1], name: from[2], lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

const dockerfile = () => Deno.readTextFileSync(join(ROOT, "Dockerfile"));

Deno.test("the Dockerfile lints clean and its stages fit together", () => {
  const lint = run("npx", ["-y", "dockerfile-utils@0.16.3", "lint", join(ROOT, "Dockerfile")]);
  assert.equal(lint.code, 0, lint.stdout + lint.stderr);
  const all = stages(dockerfile());
  assert.ok(all.length >= 2, "a build stage and a final one");
  all.forEach((stage, i) => {
    for (const line of stage.lines) {
      const ref = line.match(/^COPY\s+--from=(\S+)/)?.[1];
      if (ref) {
        const earlier = all.slice(0, i).map((s) => s.name);
        assert.ok(earlier.includes(ref), `COPY --from=${ref} names an earlier stage`);
      }
    }
  });
  const final = all.at(-1)!;
  // deno compile's binary needs glibc and libgcc: distroless "cc", not static or scratch.
  assert.match(final.from, /^gcr\.io\/distroless\/cc-debian\d+:nonroot$/);
  assert.ok(final.lines.includes("USER nonroot"), "runs as a non-root user");
  assert.ok(final.lines.includes('ENTRYPOINT ["/usr/local/bin/puttykit"]'));
});

Deno.test("the build stage, from just what it copies, gives a working program", opts, async () => {
  const all = stages(dockerfile());
  const build = all.find((s) => s.name === "build")!;
  const final = all.at(-1)!;
  const scratch = await Deno.makeTempDir({ prefix: "pk-image-" });
  const s = await startSshd();
  try {
    // The build stage: WORKDIR, COPY (from the context), RUN, with /rootfs under scratch.
    const rootfs = join(scratch, "rootfs");
    let workdir = scratch;
    for (const line of build.lines) {
      const [op, ...words] = line.split(/\s+/);
      if (op === "WORKDIR") {
        workdir = join(scratch, words[0]);
        Deno.mkdirSync(workdir, { recursive: true });
      } else if (op === "COPY" && !words[0].startsWith("--")) {
        const dest = words.at(-1)!;
        for (const src of words.slice(0, -1)) {
          const into = dest.endsWith("/") ? join(workdir, dest, src.split("/").at(-1)!) : join(
            workdir,
            dest,
          );
          Deno.mkdirSync(join(into, ".."), { recursive: true });
          const cp = run("cp", ["-R", join(ROOT, src), into]);
          assert.equal(cp.code, 0, `COPY ${src}: ${cp.stderr}`);
        }
      } else if (op === "RUN") {
        const cmd = words.join(" ").replaceAll("/rootfs", rootfs);
        const r = run("sh", ["-c", cmd], {
          cwd: workdir,
          env: { PUTTYKIT_NO_COMPILE: "1", DENO: Deno.execPath() },
        });
        assert.equal(r.code, 0, `RUN ${cmd}: ${r.stderr}`);
        assert.match(r.stdout, /build_image: launcher puttykit/);
      }
    }
    // The final stage takes /rootfs/ as its root: its entrypoint and the links live there.
    assert.ok(final.lines.includes("COPY --from=build /rootfs/ /"));
    const bin = join(rootfs, "usr/local/bin");
    assert.ok((Deno.statSync(join(bin, "puttykit")).mode! & 0o111) !== 0, "entrypoint runs");
    for (const tool of ["plink", "pscp", "psftp", "putty"]) {
      assert.equal(Deno.readLinkSync(join(bin, tool)), "puttykit");
    }
    const v = run(join(bin, "plink"), ["-V"]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^plink: puttykit /);
    const viaEntrypoint = run(join(bin, "puttykit"), ["pscp", "-V"]);
    assert.match(viaEntrypoint.stdout, /^pscp: puttykit /);
    // The documented batch usage: -batch, -share, the host key given with -hostkey.
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
    ], { env: s.env });
    assert.equal(job.stdout, "batch-job-ok\n", job.stderr);
  } finally {
    await s.stop();
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("build_image.sh fails when deno compile fails, rather than ship a launcher", () => {
  const rootfs = Deno.makeTempDirSync({ prefix: "pk-rootfs-" });
  try {
    // A "deno" whose compile fails (as without Deno's runtime download) and install works.
    const fake = join(rootfs, "fake-deno");
    Deno.writeTextFileSync(fake, '#!/bin/sh\n[ "$1" = compile ] && exit 7\nexit 0\n');
    Deno.chmodSync(fake, 0o755);
    const r = run("sh", [join(ROOT, "scripts/build_image.sh"), join(rootfs, "out")], {
      env: { DENO: fake, PATH: Deno.env.get("PATH") ?? "" },
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /deno compile failed/);
    assert.throws(() => Deno.statSync(join(rootfs, "out/usr/local/bin/puttykit")));
  } finally {
    Deno.removeSync(rootfs, { recursive: true });
  }
});
