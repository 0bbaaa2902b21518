/**
 * `deno task bench --quick` end to end: every section runs against a real sshd, OpenSSH and PuTTY
 * and prints its table (the numbers themselves belong to the benchmark, not to a test).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { DENO } from "./fixtures/tools.ts";

/** scripts/bench.ts with `args`, to completion. */
function bench(args: string[], env?: Record<string, string>) {
  return new Deno.Command(DENO, {
    args: ["run", "-A", fileURLToPath(new URL("../scripts/bench.ts", import.meta.url)), ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("deno task bench --quick runs every section", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const md = join(dir, "bench.md");
    const out = await bench(["--quick", "--runs=2", `--markdown=${md}`]);
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    for (
      const title of [
        "Warm downstream `true` next to Deno's hello world",
        "Peak RSS of those runs",
        "Per-command latency",
        "parallel downstream commands",
        "12 parallel against MaxSessions 10",
        "from the server",
        "to the server",
        "File upload, 8 MiB",
        "File download, 8 MiB",
        "Peak RSS of the file transfer clients",
        "Peak RSS of a pscp SFTP download, 8 MiB and 16 MiB",
        "ours pscp as a downstream, 8 MiB",
        "The same downloads' speed",
        "-L forwarding, upload through it",
        "-L forwarding, download through it",
        "-L forwarding, 4 downloads at once",
        "-L forwarding, peak RSS",
        "Upstream memory",
        "Process start-up",
      ]
    ) {
      assert.ok(text.includes(title), title);
    }
    for (const tool of ["pscp (SFTP)", "pscp (SCP)", "psftp"]) {
      for (const who of ["ours", "PuTTY"]) {
        assert.ok(text.includes(`\n  ${who} ${tool}  `), `a row for ${who} ${tool}`);
      }
    }
    assert.match(text, /ratio ours psftp \/ PuTTY psftp: \d/);
    assert.match(text, /ratio ours plink \/ OpenSSH ssh: \d/);
    assert.match(text, /server authentications during the 2 warm downstream runs: 0/);
    assert.match(text, /ratio ours, warm downstream \/ deno run hello\.ts, CPU, paired: \d/);
    assert.match(text, /server authentications for our 10 downstreams: 0/);
    const printed = text.match(/^ +median +min +max /gm)?.length ?? 0;
    const markdown = (await Deno.readTextFile(md)).match(/^\|---/gm)?.length ?? 0;
    assert.match(text, /ours, 12 parallel: 0 of 12 commands failed/);
    assert.equal(printed, 18, "tables printed");
    assert.equal(markdown, printed, "each printed table also in Markdown");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a run over the time limit is stopped and noted, not waited for", async () => {
  const t0 = performance.now();
  // No command gets through in 50 ms: every timed run of the section is cut short.
  const out = await bench(["--quick", "--runs=2", "--only=latency,transfer"], {
    PK_BENCH_RUN_LIMIT_S: "0.05",
  });
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.match(text, /ours direct: 2 runs stopped at the 0\.05 s limit/);
  assert.match(text, /real direct: 2 runs stopped at the 0\.05 s limit/);
  assert.doesNotMatch(text, /warm-up/);
  // A stopped upload leaves a partial file: the section carries on with the whole one.
  assert.match(text, /PuTTY psftp upload: a run stopped at the 0\.05 s limit/);
  assert.match(text, /File download, 8 MiB/);
  assert.ok(performance.now() - t0 < 60000, "done well within a minute");
});
