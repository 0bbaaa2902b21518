/**
 * puttykit as scripts/install.sh installs it: the wrappers run the bundle of scripts/bundle.ts.
 * It must behave as the sources do, as upstream and as downstream, and a warm downstream must
 * still load no ssh2, transport or Node code, nor have Deno resolve npm packages at start-up.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loginArgs, startSshd } from "./fixtures/sshd.ts";
import { upstreamId } from "./fixtures/upstream.ts";
import { collect, DENO, loadedModules, MODULE_LOG, spawn, waitFor } from "./fixtures/tools.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Installs into a scratch folder; returns the wrappers' folder and the bundle's. */
async function install(dir: string): Promise<{ bin: string; lib: string }> {
  const bin = `${dir}/bin`, lib = `${dir}/share/puttykit`;
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/install.sh`, bin, lib],
    env: { PATH: `${DENO.slice(0, DENO.lastIndexOf("/"))}:${Deno.env.get("PATH") ?? ""}` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return { bin, lib };
}

Deno.test("the bundle reads no dynamic import ahead: each is written so Deno resolves it on use", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pk-bundle-" });
  try {
    const { lib } = await install(dir);
    let files = 0;
    for await (const e of Deno.readDir(lib)) {
      if (!e.name.endsWith(".js")) continue;
      files++;
      const code = await Deno.readTextFile(`${lib}/${e.name}`);
      assert.doesNotMatch(code, /\bimport\("/, e.name);
    }
    assert.ok(files > 5, `${files} files`);
    for (const f of ["mod.js", "deno.json", "deno.lock", "node_modules/ssh2/package.json"]) {
      await Deno.stat(`${lib}/${f}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "installed plink, pscp and psftp: a cold upstream logs in once, warm downstreams share it " +
    "and load only the bundle's light part; -C works; no config or lock file is read",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const s = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "pk-bundle-run-" });
    const remote = await s.userDir("bundle");
    let up: Deno.ChildProcess | undefined;
    try {
      const { bin, lib } = await install(dir);
      // The installed tools read neither file when they run (their npm packages are in the
      // bundle's node_modules since the install), so spoilt ones change nothing.
      for (const f of ["deno.json", "deno.lock"]) await Deno.writeTextFile(`${lib}/${f}`, "{");
      up = spawn(`${bin}/plink`, [...loginArgs(s, "-share"), "-N"], { env: s.env });
      await waitFor(() => upstreamExists(upstreamId(s)), 20000, "the installed upstream");
      const target = ["-share", "-batch", "-P", String(s.port)];
      const host = `${s.user}@${s.host}`;
      const env = { ...s.env, ...MODULE_LOG };
      await Deno.writeTextFile(`${dir}/up.txt`, "through the bundle\n");
      await Deno.writeTextFile(`${dir}/batch`, `ls ${remote}\n`);
      const run = (tool: string, args: string[], stdin?: string) =>
        collect(spawn(`${bin}/${tool}`, args, { env, stdin }), { stdin });
      const runs = [
        await run("plink", [...target, host, "cat; exit 3"], "stdin data\n"),
        await run("pscp", [...target, "-q", `${dir}/up.txt`, `${host}:${remote}/p.txt`]),
        await run("pscp", [...target, "-q", `${host}:${remote}/p.txt`, `${dir}/down.txt`]),
        await run("psftp", [...target, "-b", `${dir}/batch`, host]),
      ];
      assert.equal(runs[0].code, 3, runs[0].stderr);
      assert.equal(runs[0].stdout, "stdin data\n");
      for (const r of runs.slice(1)) assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(`${dir}/down.txt`), "through the bundle\n");
      assert.match(runs[3].stdout, /p\.txt/);
      assert.equal(await s.authCount(), 1, "all of them through the one upstream");
      // -C on a connection of its own: ssh2's zlib classes must be swapped before ssh2 loads
      // them, also where the bundle has joined the modules into one file.
      const compressed = await collect(
        spawn(`${bin}/plink`, [...loginArgs(s, "-C", "-v"), "head -c 100000 /dev/zero | wc -c"], {
          env: s.env,
        }),
      );
      assert.equal(compressed.code, 0, compressed.stderr);
      assert.equal(compressed.stdout.trim(), "100000");
      assert.match(compressed.stderr, /zlib \(RFC1950\) compression/);
      const libUrl = new URL(`file://${lib}/`).href;
      for (const r of runs) {
        const loaded = loadedModules(r.stderr);
        assert.ok(loaded.length > 0 && loaded.every((m) => m.startsWith(libUrl)), loaded.join(" "));
        for (const m of loaded) {
          const code = await Deno.readTextFile(new URL(m));
          assert.doesNotMatch(code, /from "(npm|node):/, `a downstream loaded ${m}`);
        }
      }
      // The warm plink path is joined into the entry (scripts/bundle_merge.ts).
      assert.deepEqual(loadedModules(runs[0].stderr), [`${libUrl}mod.js`]);
    } finally {
      try {
        up?.kill("SIGTERM");
      } catch { /* gone */ }
      if (up) await collect(up);
      await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
