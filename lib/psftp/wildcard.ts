/**
 * psftp's handling of wildcard arguments, on top of PuTTY's wildcard syntax (lib/transfer/
 * wildcard.ts): telling wildcards from names, splitting "dir/pattern", and PuTTY's name order.
 */

import { wildcardMatch, wildcardUnescape } from "../transfer/wildcard.ts";
import { lastComponent } from "../transfer/paths.ts";

/** Whether an argument has an unescaped wildcard character. */
export function isWildcard(name: string): boolean {
  return wildcardUnescape(name) === undefined;
}

/**
 * PuTTY's wc_match as psftp uses it: a malformed pattern counts as a match (wc_match returns a
 * non-zero error code there).
 */
export function remoteNameMatches(wildcard: string, name: string): boolean {
  try {
    return wildcardMatch(wildcard, name);
  } catch {
    return true;
  }
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
