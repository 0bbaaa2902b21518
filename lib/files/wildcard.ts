/**
 * PuTTY's wildcard syntax for remote names (utils/wildcard.c): SFTP has no server-side globbing,
 * so pscp and psftp read the directory and match each name here.
 *
 *  - `*` any run of characters (also none), `?` exactly one character;
 *  - `[abc]`, `[a-f]` one character of the class, `[^a-f]` one character not in it (`-` is
 *    literal right after `[` or `[^`, `^` anywhere else);
 *  - `\` escapes the next character, also inside a class;
 *  - no `[!...]`, no `[[:class:]]`.
 *
 * Characters are Unicode code points (PuTTY counts bytes; for ASCII names they agree).
 */

/** A malformed pattern (PuTTY's wc_error texts). */
export class WildcardError extends Error {}

const TRAILING_BACKSLASH = "'\\' occurred at end of string (expected another character)";
const UNCLOSED_CLASS = "expected ']' to close character class";
const INVALID_RANGE = "character range was not terminated (']' just after '-')";

/**
 * Whether `name` matches `pattern` as a whole. Throws WildcardError for a malformed pattern (only
 * when the malformed part is reached, as PuTTY does).
 */
export function wildcardMatch(pattern: string, name: string): boolean {
  return matchAt([...pattern], 0, [...name], 0);
}

function matchAt(p: string[], pi: number, t: string[], ti: number): boolean {
  while (pi < p.length) {
    const c = p[pi];
    if (c === "*") {
      while (p[pi] === "*") pi++;
      if (pi === p.length) return true;
      for (let k = ti; k <= t.length; k++) {
        if (matchAt(p, pi, t, k)) return true;
      }
      return false;
    }
    if (ti >= t.length) return false;
    if (c === "\\") {
      if (pi + 1 >= p.length) throw new WildcardError(TRAILING_BACKSLASH);
      if (p[pi + 1] !== t[ti]) return false;
      pi += 2;
    } else if (c === "?") {
      pi++;
    } else if (c === "[") {
      const r = matchClass(p, pi + 1, t[ti]);
      if (!r.matched) return false;
      pi = r.next;
    } else {
      if (c !== t[ti]) return false;
      pi++;
    }
    ti++;
  }
  return ti === t.length;
}

/** A character class starting after its `[`: whether `ch` is in it, and where it ends. */
function matchClass(p: string[], at: number, ch: string): { matched: boolean; next: number } {
  let i = at;
  let invert = false;
  let matched = false;
  if (p[i] === "^") {
    invert = true;
    i++;
  }
  while (p[i] !== "]") {
    if (p[i] === "\\") i++;
    if (i >= p.length) throw new WildcardError(UNCLOSED_CLASS);
    if (p[i + 1] === "-") {
      let lower = p[i].codePointAt(0)!;
      i += 2;
      if (p[i] === "]") throw new WildcardError(INVALID_RANGE);
      if (p[i] === "\\") i++;
      if (i >= p.length) throw new WildcardError(UNCLOSED_CLASS);
      let upper = p[i].codePointAt(0)!;
      i++;
      if (lower > upper) [lower, upper] = [upper, lower];
      const c = ch.codePointAt(0)!;
      if (c >= lower && c <= upper) matched = true;
    } else {
      if (p[i] === ch) matched = true;
      i++;
    }
  }
  return { matched: matched !== invert, next: i + 1 };
}

/** Whether an argument has an unescaped wildcard character. */
export function isWildcard(name: string): boolean {
  return wildcardUnescape(name) === undefined;
}

/**
 * PuTTY's wc_match as psftp uses it: a malformed pattern counts as a match (wc_match returns a
 * non-zero error code there). pscp's SFTP downloads refuse one instead.
 */
export function remoteNameMatches(wildcard: string, name: string): boolean {
  try {
    return wildcardMatch(wildcard, name);
  } catch {
    return true;
  }
}

/**
 * Splits "dir/part/wild*" into the directory part (as given, without its trailing slash) and the
 * last component, as psftp's ls and wildcard matching and pscp's SFTP downloads do. `dir` is
 * undefined when the directory part itself contains wildcards ("Multiple-level wildcards are not
 * supported").
 */
export function splitWildcardPath(name: string): { dir: string | undefined; wildcard: string } {
  const wildcard = name.slice(name.lastIndexOf("/") + 1);
  let dir = name.slice(0, name.length - wildcard.length);
  if (dir.endsWith("/")) dir = dir.slice(0, -1);
  return { dir: isWildcard(dir) ? undefined : dir, wildcard };
}

/**
 * wc_unescape(): the plain name a pattern stands for, or undefined if it has a real wildcard
 * (`*`, `?`, `[` or `]` not escaped). A trailing lone backslash is dropped.
 */
export function wildcardUnescape(pattern: string): string | undefined {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      i++;
      if (i < pattern.length) out += pattern[i];
    } else if (c === "*" || c === "?" || c === "[" || c === "]") {
      return undefined;
    } else {
      out += c;
    }
  }
  return out;
}
