/**
 * The README's first command, `deno task demo`: the main job on the embedded loopback server.
 * It must finish by itself, show every step working and one authentication for the upstream and
 * all its downstreams.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { collect, DENO, spawn } from "./fixtures/tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

Deno.test("deno task demo runs plink, pscp and psftp through one shared connection", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const child = spawn(DENO, ["task", "--cwd", ROOT, "demo"]);
  const r = await collect(child, { timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /-> exit status 3, \d+ ms \(own connection\)/);
  for (let i = 1; i <= 5; i++) {
    assert.match(r.stdout, new RegExp(`downstream ${i}: pid \\d+ +\\(\\d+ ms, exit 0\\)`));
  }
  assert.match(r.stdout, /pscp -share host:\.\.\.\/hello\.txt back\.txt +-> exit 0, identical/);
  assert.match(r.stdout, /psftp -share -b .* -> exit 0, copy\.txt listed/);
  assert.match(r.stdout, /authenticated 1 time\(s\) for the upstream and all downstreams/);
});
