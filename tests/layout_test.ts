/**
 * The layout's rules, checked from the source: README.md's Arrows are the folders' imports; no
 * import cycle between files nor between lib/ folders; at most two files in lib/'s root; size
 * limits for cmd/ and lib/ files; a lib/ that never prints or exits; one home each for raw mode,
 * the signal table and error text; a downstream path that cannot reach ssh2, crypto or key files.
 */

import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

interface Edge {
  to: string;
  /** Loaded when the importer is: a static import or re-export of values. */
  eager: boolean;
}

/** Source files under `dir` (relative to the repository), sorted. */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(new URL(dir, root))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

function read(path: string): string {
  return Deno.readTextFileSync(new URL(path, root));
}

/** "lib/a/b.ts" + "../c.ts" -> "lib/c.ts"; bare and scheme specifiers stay as written. */
function resolve(from: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  const url = new URL(spec, new URL(from, root));
  return url.pathname.slice(root.pathname.length);
}

const STATIC = /^\s*(import|export)\s+(type\s+)?([^"';]*?)\s*from\s*["']([^"']+)["']/gm;
const BARE = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every import of a file, with whether it is loaded eagerly (type-only imports are erased). */
function importsOf(path: string): Edge[] {
  const text = read(path);
  const edges: Edge[] = [];
  for (const m of text.matchAll(STATIC)) {
    const names = m[3].match(/\{([^}]*)\}/)?.[1];
    const allTypes = names !== undefined && !/^\s*[\w$]/.test(m[3].replace(/^\{/, "")) &&
      names.split(",").map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith("type "));
    edges.push({ to: resolve(path, m[4]), eager: !m[2] && !allTypes });
  }
  for (const m of text.matchAll(BARE)) edges.push({ to: resolve(path, m[1]), eager: true });
  for (const m of text.matchAll(DYNAMIC)) edges.push({ to: resolve(path, m[1]), eager: false });
  return edges;
}

const files = ["mod.ts", ...sourceFiles("cmd"), ...sourceFiles("lib")];
const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** A cycle in `edges` as a path (first node repeated at the end), or undefined. */
function findCycle(edges: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "open") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "open");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

/** "lib/share/mux.ts" -> "lib/share"; a file in lib/'s root -> "lib". */
function folderOf(path: string): string {
  return path.split("/").slice(0, -1).join("/");
}

Deno.test("every relative import names a file that exists", () => {
  const missing = [...graph].flatMap(([from, edges]) =>
    edges.filter((e) => e.to.endsWith(".ts") && !e.to.includes(":"))
      .filter((e) => {
        try {
          return !Deno.statSync(new URL(e.to, root)).isFile;
        } catch {
          return true;
        }
      }).map((e) => `${from} -> ${e.to}`)
  );
  assert.deepEqual(missing, []);
  // The parser sees the imports it must: a file known to import others has edges.
  assert.ok((graph.get("lib/session/connect.ts") ?? []).length >= 5);
});

Deno.test("no import cycle between files", () => {
  const edges = new Map(
    [...graph].map(([f, es]) => [f, new Set(es.map((e) => e.to).filter((t) => graph.has(t)))]),
  );
  assert.equal(findCycle(edges)?.join(" -> "), undefined);
});

Deno.test("no import cycle between lib/ folders", () => {
  const edges = new Map<string, Set<string>>();
  for (const [from, es] of graph) {
    if (!from.startsWith("lib/")) continue;
    const a = folderOf(from);
    for (const e of es) {
      if (!e.to.startsWith("lib/")) continue;
      const b = folderOf(e.to);
      if (a === b) continue;
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
    }
  }
  assert.ok(edges.size >= 5, "the folder graph was read");
  assert.equal(findCycle(edges)?.join(" -> "), undefined);
});

Deno.test("README's arrows are the folders' imports, no more and no fewer", () => {
  const readme = read("README.md");
  const block = readme.slice(readme.indexOf("\nArrows")).match(/```\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "README.md has an Arrows block under Architecture");
  const documented = new Set<string>();
  for (const line of block.trim().split("\n")) {
    const [from, to] = line.split(/\s*-*>\s*/);
    for (const a of from.split(/,\s*/)) {
      for (const b of to.replace(/\(lazily\)|\(nothing\)/g, "").split(/[,;]\s*/)) {
        if (b.trim()) documented.add(`${a.trim()} -> ${b.trim()}`);
      }
    }
  }
  const actual = new Set<string>();
  const name = (f: string) => f.startsWith("cmd/") ? "cmd" : f.split("/")[1];
  for (const [from, es] of graph) {
    if (from === "mod.ts" || folderOf(from) === "lib") continue;
    for (const e of es) {
      if (!e.to.startsWith("lib/") || folderOf(e.to) === "lib") continue;
      if (name(from) !== name(e.to)) actual.add(`${name(from)} -> ${name(e.to)}`);
    }
  }
  assert.deepEqual(
    { missingFromReadme: [...actual].filter((x) => !documented.has(x)).sort() },
    { missingFromReadme: [] },
  );
  assert.deepEqual(
    { notInTheCode: [...documented].filter((x) => !actual.has(x)).sort() },
    { notInTheCode: [] },
  );
});

Deno.test("lib/'s root holds at most two files", () => {
  const rootFiles = [...Deno.readDirSync(new URL("lib", root))].filter((e) => e.isFile);
  assert.ok(rootFiles.length <= 2, rootFiles.map((e) => e.name).join(", "));
});

Deno.test("no cmd/ file over 300 lines, no lib/ file over 600", () => {
  const lines = (f: string) => read(f).split("\n").length - 1;
  const over = files
    .filter((f) => f.startsWith("cmd/") ? lines(f) > 300 : f.startsWith("lib/") && lines(f) > 600)
    .map((f) => `${f}: ${lines(f)} lines`);
  assert.deepEqual(over, []);
});

/** Where in cmd/ and lib/ code (not comments) a pattern occurs, as "file:line". */
function occurrences(pattern: RegExp): string[] {
  const comment = /^\s*(\*|\/\/|\/\*)/;
  return files.flatMap((f) =>
    read(f).split("\n").flatMap((line, i) =>
      !comment.test(line) && pattern.test(line) ? [`${f}:${i + 1}`] : []
    )
  );
}

Deno.test("lib/ never prints or exits: that is the front-ends' business", () => {
  const offending = occurrences(
    /\b(Deno\.exit|Deno\.stdout|Deno\.stderr|console\.(log|error|warn|info))\b/,
  ).filter((at) => at.startsWith("lib/"));
  assert.deepEqual(offending, []);
  assert.ok(occurrences(/\bDeno\.exit\b/).length > 0, "the pattern finds what it looks for");
});

Deno.test("one raw-terminal helper, one signal table, one error-to-text helper", () => {
  const only = (pattern: RegExp, home: string) =>
    assert.deepEqual(occurrences(pattern).filter((at) => !at.startsWith(`${home}:`)), []);
  only(/\.setRaw\(/, "lib/terminal/raw.ts");
  only(/["']SIG(HUP|TERM)["']|SIGTERM: \d/, "cmd/console.ts");
  only(/instanceof Error \? \w+\.message/, "lib/util/error_text.ts");
  assert.ok(occurrences(/\.setRaw\(/).length > 0, "the patterns find what they look for");
  assert.ok(occurrences(/SIGTERM: \d/).length > 0, "the patterns find what they look for");
});

/** What the downstream may never load: ssh2, Node's crypto, the transport and key folders. */
function forbiddenOnDownstreamPath(spec: string): boolean {
  return /^(npm:)?\/?ssh2(@|\/|$)/.test(spec) || spec === "node:crypto" ||
    spec.startsWith("lib/transport/") || spec.startsWith("lib/keys/");
}

Deno.test("the downstream path cannot reach ssh2, crypto, lib/transport/ or lib/keys/", () => {
  // Each tool's front-end is loaded on its own (mod.ts imports it when it runs); what it loads
  // eagerly is what a downstream run loads. Lazy imports are where the direct path begins.
  for (const entry of ["mod.ts", ...sourceFiles("cmd")]) {
    const seen = new Map<string, string>([[entry, entry]]);
    const queue = [entry];
    while (queue.length) {
      const file = queue.shift()!;
      for (const e of graph.get(file) ?? []) {
        if (!e.eager || seen.has(e.to)) continue;
        seen.set(e.to, file);
        assert.ok(
          !forbiddenOnDownstreamPath(e.to),
          `${entry} loads ${e.to} eagerly (imported by ${file})`,
        );
        if (graph.has(e.to)) queue.push(e.to);
      }
    }
    if (entry === "cmd/plink.ts") assert.ok(seen.has("lib/ssh/connection.ts"), "plink was read");
  }
});

Deno.test("the downstream-path rule catches what it must", () => {
  assert.ok(forbiddenOnDownstreamPath("ssh2"));
  assert.ok(forbiddenOnDownstreamPath("ssh2/lib/protocol/zlib.js"));
  assert.ok(forbiddenOnDownstreamPath("npm:ssh2@1.17.0"));
  assert.ok(forbiddenOnDownstreamPath("lib/keys/private_key.ts"));
  assert.ok(!forbiddenOnDownstreamPath("lib/ssh/connection.ts"));
  assert.deepEqual(
    findCycle(new Map([["a", new Set(["b"])], ["b", new Set(["a"])]])),
    ["a", "b", "a"],
  );
});
