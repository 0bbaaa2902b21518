/**
 * PuTTY's wildcards (utils/wildcard.c), which psftp uses for remote names: "*", "?", "[...]"
 * classes with ranges and "^" negation, and backslash escapes. Unlike glob(3), "*" also matches a
 * leading dot. Plus the small path helpers psftp's commands use (stripslashes, vet_filename).
 */

/** Thrown for a malformed wildcard (wc_error's messages). */
export class WildcardSyntaxError extends Error {}

const TRAILING_BACKSLASH = "'\\' occurred at end of string (expected another character)";
const UNCLOSED_CLASS = "expected ']' to close character class";
const INVALID_RANGE = "character range was not terminated (']' just after '-')";

/**
 * Matches one fragment (up to the end or the next "*") at target[t...]; on success returns the
 * positions after it, else undefined.
 */
function matchFragment(
  w: string[],
  f: number,
  target: string[],
  t: number,
): { f: number; t: number } | undefined {
  while (f < w.length && w[f] !== "*" && t < target.length) {
    const c = w[f];
    if (c === "\\") {
      if (f + 1 >= w.length) throw new WildcardSyntaxError(TRAILING_BACKSLASH);
      if (w[f + 1] !== target[t]) return undefined;
      f += 2;
    } else if (c === "?") {
      f++;
    } else if (c === "[") {
      let invert = false;
      let matched = false;
      f++;
      if (w[f] === "^") {
        invert = true;
        f++;
      }
      while (w[f] !== "]") {
        if (w[f] === "\\") f++;
        if (f >= w.length) throw new WildcardSyntaxError(UNCLOSED_CLASS);
        if (w[f + 1] === "-") {
          let lower = w[f].codePointAt(0)!;
          f += 2;
          if (w[f] === "]") throw new WildcardSyntaxError(INVALID_RANGE);
          if (w[f] === "\\") f++;
          if (f >= w.length) throw new WildcardSyntaxError(UNCLOSED_CLASS);
          let upper = w[f++].codePointAt(0)!;
          const ours = target[t].codePointAt(0)!;
          if (lower > upper) [lower, upper] = [upper, lower];
          if (ours >= lower && ours <= upper) matched = true;
        } else {
          if (target[t] === w[f]) matched = true;
          f++;
        }
      }
      if (invert === matched) return undefined;
      f++;
    } else {
      if (c !== target[t]) return undefined;
      f++;
    }
    t++;
  }
  if (f >= w.length || w[f] === "*") return { f, t };
  return undefined;
}

/** wc_match(): whether `target` matches `wildcard`. Throws WildcardSyntaxError if malformed. */
export function wildcardMatch(wildcard: string, target: string): boolean {
  const w = [...wildcard];
  const tg = [...target];
  let f = 0;
  let t = 0;
  if (w[0] !== "*") {
    const r = matchFragment(w, f, tg, t);
    if (!r) return false;
    ({ f, t } = r);
  }
  while (f < w.length) {
    while (w[f] === "*") f++;
    if (f >= w.length) return true;
    let found: { f: number; t: number } | undefined;
    while (t < tg.length) {
      const saveF = f;
      const saveT = t;
      found = matchFragment(w, f, tg, t);
      if (found && found.f >= w.length && found.t !== tg.length) {
        // A final fragment that matched too early: it can only match at the very end.
        const len = found.t - saveT;
        const again = matchFragment(w, saveF, tg, tg.length - len);
        return again !== undefined && again.t === tg.length;
      }
      if (found) break;
      t++;
    }
    if (!found) return false;
    ({ f, t } = found);
  }
  return t === tg.length;
}

/**
 * wc_unescape(): the plain name a wildcard-free pattern stands for (backslash escapes removed),
 * or undefined if it contains an unescaped wildcard character.
 */
export function wildcardUnescape(pattern: string): string | undefined {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      // Lenient about a trailing backslash in a non-wildcard.
      if (i + 1 < pattern.length) out += pattern[++i];
    } else if (c === "*" || c === "?" || c === "[" || c === "]") {
      return undefined;
    } else {
      out += c;
    }
  }
  return out;
}

export function isWildcard(name: string): boolean {
  return wildcardUnescape(name) === undefined;
}

/** stripslashes(): the part after the last "/". */
export function lastComponent(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** vet_filename(): a server-supplied name we may use as a local file name. */
export function safeServerName(name: string): boolean {
  return !name.includes("/") && name !== "." && name !== "..";
}

/**
 * Splits "dir/part/wild*" into the directory part (unescaped, no trailing slash) and the last
 * component, as psftp's ls and wildcard matching do. `dir` is undefined when the directory part
 * itself contains wildcards ("Multiple-level wildcards are not supported").
 */
export function splitWildcardPath(name: string): { dir: string | undefined; wildcard: string } {
  const wildcard = lastComponent(name);
  let dir = name.slice(0, name.length - wildcard.length);
  if (dir.endsWith("/")) dir = dir.slice(0, -1);
  return { dir: wildcardUnescape(dir) === undefined ? undefined : dir, wildcard };
}

/** PuTTY's strcmp order on names: byte order of UTF-8, i.e. code point order. */
export function compareNames(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0)! - y[i].codePointAt(0)!;
  }
  return x.length - y.length;
}
