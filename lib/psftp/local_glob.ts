/**
 * Local wildcards for psftp's mput, as PuTTY's Unix port does them with glob(3): a pattern may
 * have wildcards in any component; "*", "?" and "[...]" don't match a leading dot unless the
 * pattern has one; "[!...]" negates like "[^...]"; a backslash escapes; matches come back sorted.
 * test_wildcard(): an existing file is a plain name even if it contains wildcard characters.
 */

import { WildcardError, wildcardMatch, wildcardUnescape } from "../files/wildcard.ts";
import { compareNames } from "../files/paths.ts";
import { exists } from "../util/local_fs.ts";

export type LocalWildcardKind = "filename" | "wildcard" | "nonexistent";

/** glob(3)-style match of one path component. */
function componentMatches(pattern: string, name: string): boolean {
  if (name.startsWith(".") && !pattern.startsWith(".") && !pattern.startsWith("\\.")) {
    return false;
  }
  try {
    return wildcardMatch(pattern.replace(/\[!/g, "[^"), name);
  } catch (e) {
    if (e instanceof WildcardError) return false;
    throw e;
  }
}

function listDir(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir === "" ? "." : dir)].map((e) => e.name);
  } catch {
    return [];
  }
}

/** All existing paths matching `pattern`, sorted (glob(3) without flags). */
export function localGlob(pattern: string): string[] {
  const absolute = pattern.startsWith("/");
  const parts = pattern.split("/").filter((p, i) => p !== "" || i === 0);
  let paths = [absolute ? "/" : ""];
  const start = absolute ? 1 : 0;
  for (let i = start; i < parts.length; i++) {
    const part = parts[i];
    const plain = wildcardUnescape(part);
    const next: string[] = [];
    for (const base of paths) {
      const join = (name: string) =>
        base === "" ? name : base.endsWith("/") ? base + name : `${base}/${name}`;
      if (plain !== undefined) {
        next.push(join(plain));
      } else {
        for (const name of listDir(base)) if (componentMatches(part, name)) next.push(join(name));
      }
    }
    paths = next;
  }
  return paths.filter((p) => p !== "" && exists(p)).sort(compareNames);
}

/** test_wildcard(name, false). */
export function localWildcardKind(name: string): LocalWildcardKind {
  if (exists(name)) return "filename";
  return localGlob(name).length > 0 ? "wildcard" : "nonexistent";
}
