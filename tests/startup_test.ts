/**
 * What a tool loads before its first packet: `plink -share` as a downstream must not load ssh2,
 * any crypto, or any node: module (Deno's Node layer alone costs ~20 ms of start-up; the speed of
 * a warm downstream command is what sharing is for). Heavy modules are imported dynamically, only
 * where needed; this checks the static import graph from mod.ts through cmd/plink.ts, and that
 * warm downstream commands never touch the globals Deno builds lazily and dearly (lib/util/timer.ts)
 * and that a plain plink command makes no error object on its way out.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startSshd } from "./fixtures/sshd.ts";
import { startUpstream, stopUpstream } from "./fixtures/upstream.ts";
import { loadedModules, MODULE_LOG, runOurs } from "./fixtures/tools.ts";

interface Dep {
  specifier: string;
  code?: { specifier: string };
  isDynamic?: boolean;
}

Deno.test("a downstream plink loads no node:, npm: or crypto module before connecting", async () => {
  const mod = new URL("../mod.ts", import.meta.url);
  // What a tool loads to use an OpenSSH ControlMaster (imported when -controlpath is given).
  const master = new URL("../lib/session/via_master.ts", import.meta.url);
  const deps = new Map<string, Dep[]>();
  for (const root of [mod, master]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", fileURLToPath(root)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string; dependencies?: Dep[] }[];
    };
    for (const m of info.modules) deps.set(m.specifier, m.dependencies ?? []);
  }
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
  walk(master.href);
  assert.ok(seen.size > 10, `walked ${seen.size} modules`);
  const heavy = [...seen].filter((s) => /^(node|npm):|crypto|ssh2|transport|auth\.ts/.test(s));
  assert.deepEqual(heavy, [], "loaded before the first packet");
});

/** Modules a run loaded, relative to the checkout ("lib/ssh/wire.ts"; "npm:...", "ext:..."). */
function loadedFiles(stderr: string): string[] {
  const root = new URL("../", import.meta.url).href;
  return loadedModules(stderr).map((m) => m.replace(root, ""));
}

/** What no downstream loads: ssh2 and the transport, key and login code, Node's layer. */
const NEVER_DOWNSTREAM =
  /^(npm:|node:|ext:deno_node\/)|^lib\/(transport|keys)\/|^lib\/session\/auth\.ts|^lib\/share\/(mux|upstream)\.ts|^lib\/config\/hostkeys\.ts/;
/** Other tools' modules, per tool. */
const OTHER_TOOLS: Record<string, RegExp> = {
  plink: /^cmd\/(pscp|psftp|putty)\.ts|^lib\/(pscp|psftp|scp|sftp|files)\//,
  pscp: /^cmd\/(plink|psftp|putty)\.ts|^lib\/psftp\//,
  psftp: /^cmd\/(plink|pscp|putty)\.ts|^lib\/(pscp|scp)\//,
};

Deno.test(
  "warm downstream plink, pscp and psftp never touch Node's timers, Buffer, process or streams, " +
    "and load no transport, key, Node or other tools' module; plink's ending makes no error object",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const s = await startSshd();
    const up = await startUpstream(s, "ours");
    const dir = await s.userDir("lazy");
    const local = await Deno.makeTempDir({ prefix: "pk-lazy-" });
    try {
      await Deno.writeTextFile(`${local}/up.txt`, "uploaded\n");
      await Deno.writeTextFile(`${local}/batch`, `put ${local}/up.txt ${dir}/p.txt\nls ${dir}\n`);
      const trap = fileURLToPath(new URL("./fixtures/lazy_globals_trap.ts", import.meta.url));
      const errors = fileURLToPath(new URL("./fixtures/error_objects_trap.ts", import.meta.url));
      const o = {
        env: { ...s.env, ...MODULE_LOG },
        denoFlags: ["--preload", trap, "--preload", errors],
        stdin: "stdin data\n",
      };
      const host = `${s.user}@${s.host}`;
      const port = ["-P", String(s.port)];
      const runs = [
        await runOurs("plink", ["-share", "-batch", ...port, host, "cat; exit 3"], o),
        await runOurs("pscp", [
          "-share",
          "-batch",
          "-q",
          ...port,
          `${local}/up.txt`,
          `${host}:${dir}/`,
        ], o),
        await runOurs("pscp", [
          "-share",
          "-batch",
          "-q",
          ...port,
          `${host}:${dir}/up.txt`,
          `${local}/down.txt`,
        ], o),
        await runOurs("psftp", ["-share", "-batch", ...port, "-b", `${local}/batch`, host], o),
      ];
      assert.equal(runs[0].code, 3, runs[0].stderr);
      assert.equal(runs[0].stdout, "stdin data\n");
      for (const r of runs.slice(1)) assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(`${local}/down.txt`), "uploaded\n");
      assert.match(runs[3].stdout, /p\.txt/);
      const touched = runs.flatMap((r) => r.stderr.split("\n").filter((l) => l.startsWith("LAZY")));
      assert.deepEqual(touched, []);
      const made = runs[0].stderr.split("\n").filter((l) => l.startsWith("ERROR-MADE"));
      assert.deepEqual(made, [], "plink's orderly end made error objects");
      const tools = ["plink", "pscp", "pscp", "psftp"];
      runs.forEach((r, i) => {
        const loaded = loadedFiles(r.stderr);
        assert.ok(loaded.includes(`cmd/${tools[i]}.ts`), `${tools[i]}: ${loaded.join(" ")}`);
        assert.ok(loaded.includes("lib/share/downstream.ts"), `${tools[i]}: ${loaded.join(" ")}`);
        const wrong = loaded.filter((m) =>
          NEVER_DOWNSTREAM.test(m) || OTHER_TOOLS[tools[i]].test(m)
        );
        assert.deepEqual(wrong, [], `${tools[i]} as a downstream loaded them`);
      });
      assert.equal(await s.authCount(), 1, "all of them through the one upstream");
    } finally {
      await stopUpstream(up);
      await s.stop();
      await Deno.remove(local, { recursive: true });
    }
  },
);
