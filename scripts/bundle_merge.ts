/**
 * Joins the files a warm `plink -share host cmd` loads into the entry, after `deno bundle
 * --code-splitting` (scripts/bundle.ts). Code splitting puts every module that two lazily loaded
 * parts share into a chunk of its own, so the warm path loaded ~24 files; Deno pays for each
 * module it loads (resolving, reading, a code-cache lookup, instantiating), and more for one it
 * loads lazily: paired, the same 120 KB as 24 modules took ~3 ms and ~1 MiB more than as one, and
 * the last five files (the entry, two small chunks, cmd/main.ts's and plink's, two of them loaded
 * lazily) ~1.6 ms and 0.9 MiB more than as one. Each module still exists once.
 */

/** One `import ... from "./file"` or `import "./file"` of a sibling file, as esbuild writes it. */
interface SiblingImport {
  /** The statement as written. */
  text: string;
  from: string;
  /** [imported, local] pairs; empty for an import for its effects only. */
  names: [string, string][];
}

const NAMED_IMPORT = /^import\s*\{([^}]*)\}\s*from\s*"\.\/([^"]+)";[ \t]*$/gm;
const BARE_IMPORT = /^import\s*"\.\/([^"]+)";[ \t]*$/gm;
const ANY_SIBLING = /\bfrom\s*"\.\/|^import\s*"\.\//gm;
const EXPORT_LIST = /^export\s*\{([^}]*)\};?[ \t]*$/gm;

function pairs(list: string): [string, string][] {
  return list.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    const [a, b] = s.split(/\s+as\s+/);
    return [a, b ?? a];
  });
}

function siblingImports(name: string, code: string): SiblingImport[] {
  const found: SiblingImport[] = [];
  for (const m of code.matchAll(NAMED_IMPORT)) {
    found.push({ text: m[0], from: m[2], names: pairs(m[1]) });
  }
  for (const m of code.matchAll(BARE_IMPORT)) found.push({ text: m[0], from: m[1], names: [] });
  // Any other form (a namespace import, a re-export) would need handling of its own.
  const all = [...code.matchAll(ANY_SIBLING)].length;
  if (all !== found.length) throw new Error(`${name}: an import of a sibling file not understood`);
  return found;
}

/** [local, exported] pairs of the file's export list (esbuild writes one, at the end). */
function exportList(name: string, code: string): [string, string][] {
  const lists = [...code.matchAll(EXPORT_LIST)];
  if (lists.length > 1) throw new Error(`${name}: more than one export list`);
  const other = code.match(/^export\s+(?!\{)/m);
  if (other) throw new Error(`${name}: an export not in the export list`);
  return lists.length ? pairs(lists[0][1]) : [];
}

const chunkId = (file: string) => file.replace(/\.js$/, "").replace(/[^A-Za-z0-9_]/g, "_");

/**
 * Joins into `dir/head` (the entry) the files `inline` it loads lazily, directly or through each
 * other, and every chunk those and `head` import. `bundle` runs `deno bundle` on an entry file
 * with the given external files and writes the result to `out`. The joined file is `head`'s code,
 * its lazy imports of `inline` files resolved within it, exporting `head`'s names as before and
 * each joined file's as `name$FILEID`; the other files' imports of a joined file are pointed at
 * `head`, which they may import only once it has been evaluated (no top-level await in it).
 */
export async function joinWarmPath(
  dir: string,
  head: string,
  inline: string[],
  bundle: (entry: string, externals: string[], out: string) => Promise<void>,
): Promise<void> {
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".js")) {
      files.set(e.name, await Deno.readTextFile(`${dir}/${e.name}`));
    }
  }
  const imports = new Map([...files].map(([n, c]) => [n, siblingImports(n, c)]));
  const joined = new Set(inline);
  const todo = [head, ...inline];
  for (let f = todo.pop(); f !== undefined; f = todo.pop()) {
    for (const i of imports.get(f) ?? []) {
      if (!joined.has(i.from)) joined.add(i.from), todo.push(i.from);
    }
  }
  joined.delete(head);
  for (const f of joined) {
    if (!files.has(f) || !(inline.includes(f) || f.startsWith("chunk-"))) {
      throw new Error(`cannot join ${f}`);
    }
  }
  // deno bundle reads import.meta.main as false in all but its entry.
  for (const f of joined) {
    if (files.get(f)!.includes("import.meta")) throw new Error(`${f} uses import.meta`);
  }

  const entry = `${dir}/joined-entry.mjs`;
  const lines = [files.get(head)!];
  for (const f of joined) {
    const list = exportList(f, files.get(f)!).map(([, x]) => `${x} as ${x}$${chunkId(f)}`);
    lines.push(list.length ? `export { ${list.join(", ")} } from "./${f}";` : `import "./${f}";`);
  }
  await Deno.writeTextFile(entry, lines.join("\n") + "\n");
  const out = `${dir}/joined.out.js`;
  const others = [...files.keys()].filter((f) => f !== head && !joined.has(f));
  try {
    await bundle(entry, others.map((f) => `./${f}`), out);
    await Deno.rename(out, `${dir}/${head}`);
  } finally {
    await Deno.remove(entry).catch(() => {});
  }
  for (const f of joined) await Deno.remove(`${dir}/${f}`);

  for (const name of others) {
    const code = files.get(name)!;
    let next = code;
    for (const i of imports.get(name)!) {
      if (!joined.has(i.from)) continue;
      const id = chunkId(i.from);
      const names = i.names.map(([x, local]) => `${x}$${id} as ${local}`).join(", ");
      next = next.replace(
        i.text,
        names ? `import { ${names} } from "./${head}";` : `import "./${head}";`,
      );
    }
    // Several chunks imported for their effects each became the same import of `head`.
    const bare = `import "./${head}";\n`;
    const first = next.indexOf(bare) + bare.length;
    if (first >= bare.length) next = next.slice(0, first) + next.slice(first).replaceAll(bare, "");
    if (next !== code) await Deno.writeTextFile(`${dir}/${name}`, next);
  }
}
