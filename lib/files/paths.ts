/**
 * How pscp and psftp read file arguments and names (pscp.c, psftp.c and unix/sftp.c in PuTTY
 * 0.78): which arguments are remote, the user/host/path in them, the name checks that stop a
 * server from writing outside the target area, and PuTTY's name order.
 */

import { hostStrchr } from "../config/forwarding_spec.ts";

/**
 * PuTTY's colon(): the index of the colon separating host from path, or -1 for a local path.
 * A leading colon doesn't count (the host can't be empty), nor one in second place ("c:file",
 * except after "["), nor one after a '/' or '\' ("./a:b" is local); colons inside [...] (IPv6
 * literals) are skipped.
 */
export function remoteColon(arg: string): number {
  if (arg === "" || arg[0] === ":" || (arg[0] !== "[" && arg[1] === ":")) return -1;
  const i = hostStrchr(arg, ":/\\");
  return i >= 0 && arg[i] === ":" ? i : -1;
}

/** "[user@]host": the user is before the last '@' (undefined when absent or empty). */
export function splitUserHost(userHost: string): { host: string; user?: string } {
  const at = userHost.lastIndexOf("@");
  if (at < 0) return { host: userHost };
  return { host: userHost.slice(at + 1), user: userHost.slice(0, at) || undefined };
}

export interface RemoteSpec {
  host: string;
  /** From "user@host" (the last '@'); undefined when absent or empty. */
  user?: string;
  /** The path after the colon; "." when empty, as PuTTY substitutes. */
  path: string;
}

/** Splits "[user@]host:path" (the caller has checked remoteColon() >= 0). */
export function parseRemoteSpec(arg: string): RemoteSpec {
  const c = remoteColon(arg);
  if (c < 0) throw new Error(`not a remote path: ${arg}`);
  return { ...splitUserHost(arg.slice(0, c)), path: arg.slice(c + 1) || "." };
}

/** stripslashes(): the part after the last '/'. */
export function lastComponent(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * The name pscp sends for a local source (source()/rsource()): after the last '/', then after
 * any '\', or after a ':' when there was no slash at all.
 */
export function sourceName(src: string): string {
  let last = lastComponent(src);
  const bs = last.lastIndexOf("\\");
  if (bs >= 0) last = last.slice(bs + 1);
  if (last.length === src.length && src.includes(":")) last = src.slice(src.indexOf(":") + 1);
  return last;
}

/** is_dots(): "", ".", "..", "..." and so on. */
export function isDots(name: string): boolean {
  return /^\.*$/.test(name);
}

/** vet_filename(): a name a server may give us from a directory listing. */
export function vetFilename(name: string): boolean {
  return !name.includes("/") && name !== "." && name !== "..";
}

/**
 * The names of a server's directory listing that may be used here: without "." and "..", and
 * without those vet_filename() refuses, each reported to `warn` in PuTTY's words.
 */
export function vettedNames(
  entries: readonly { name: string }[],
  warn: (text: string) => void,
): string[] {
  const out: string[] = [];
  for (const { name } of entries) {
    if (name === "." || name === "..") continue;
    if (vetFilename(name)) out.push(name);
    else warn(`ignoring potentially dangerous server-supplied filename '${name}'`);
  }
  return out;
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

/** A remote `dir/name` as PuTTY's dupcat(dir, "/", name) builds it (a slash even after one). */
export function remoteJoin(dir: string, name: string): string {
  return `${dir}/${name}`;
}

/** dir_file_cat(): `dir/file`, without doubling a trailing slash. */
export function dirFileCat(dir: string, file: string): string {
  return dir.endsWith("/") ? dir + file : `${dir}/${file}`;
}
