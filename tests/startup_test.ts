/**
 * What a tool loads before its first packet: `plink -share` as a downstream must not load ssh2,
 * any crypto, or any node: module (Deno's Node layer alone costs ~20 ms of start-up; the speed of
 * a warm downstream command is what sharing is for). Heavy modules are imported dynamically, only
 * where needed; this checks the static import graph from mod.ts through cmd/plink.ts.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

interface Dep {
  specifier: string;
  code?: { specifier: string };
  isDynamic?: boolean;
}

Deno.test("a downstream plink loads no node:, npm: or crypto module before connecting", async () => {
  const mod = new URL("../mod.ts", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", fileURLToPath(mod)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; dependencies?: Dep[] }[];
  };
  const deps = new Map(info.modules.map((m) => [m.specifier, m.dependencies ?? []]));
  // Runtime (not type-only), static imports: mod.ts, then the plink it dispatches to.
  const seen = new Set<string>();
  const walk = (spec: string) => {
    if (seen.has(spec)) return;
    seen.add(spec);
    for (const d of deps.get(spec) ?? []) {
      if (d.isDynamic || !d.code) continue;
      walk(d.code.specifier.startsWith("file:") ? d.code.specifier : d.specifier);
    }
  };
  walk(mod.href);
  walk(new URL("../cmd/plink.ts", import.meta.url).href);
  assert.ok(seen.size > 10, `walked ${seen.size} modules`);
  const heavy = [...seen].filter((s) => /^(node|npm):|crypto|ssh2|transport|auth\.ts/.test(s));
  assert.deepEqual(heavy, [], "loaded before the first packet");
});
