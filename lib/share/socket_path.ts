/**
 * Where PuTTY on Unix puts a sharing socket (unix/sharing.c), reproduced exactly so our tools and
 * real PuTTY find each other:
 *
 *   /tmp/putty-connshare.<user>/                 0700, owner checked, never removed
 *   /tmp/putty-connshare.<user>/salt             64 random bytes, created once (temp file + link)
 *   /tmp/putty-connshare.<user>/<hex sha256>/    0700, owner checked; the hash is of
 *                                                string(salt) || string(connection id)
 *       lock                                     flock()ed while deciding up/downstream
 *       socket                                   the upstream's listening Unix socket
 *
 * Unlike PuTTY, an ending upstream removes only its socket (under the lock) and leaves the lock
 * file and directory: deleting a lock file that another process is waiting on would let two
 * processes hold "the" lock at once.
 *
 * The connection id is PuTTY's ssh_share_sockname(): "user@host" on port 22, "user@host:port"
 * otherwise, without "user@" when no user name was given.
 */

import { SshWriter } from "../ssh/wire.ts";
import { errorText } from "../util/error_text.ts";
import { passwdEntry } from "../util/passwd.ts";

export const SOCKET_DIR_PREFIX = "/tmp/putty-connshare";
const SALT_SIZE = 64;

/** Sharing is impossible here (directory permissions, ownership, I/O errors). */
export class ShareSetupError extends Error {}

export function connectionId(host: string, port: number, user?: string): string {
  const who = user ? `${user}@` : "";
  return port === 22 ? `${who}${host}` : `${who}${host}:${port}`;
}

export function parentDir(username: string): string {
  return `${SOCKET_DIR_PREFIX}.${username}`;
}

/**
 * Our user name as getpwuid() gives it (PuTTY names the socket directory after it). Read from
 * /etc/passwd: node:os would cost every tool, downstreams included, ~8 ms of start-up, so it is
 * loaded only for users /etc/passwd does not list (NSS: LDAP and the like) or without /etc/passwd.
 */
export async function userName(): Promise<string> {
  return passwdEntry()?.name || (await import("node:os")).userInfo().username;
}

/**
 * mkdir 0700 (existing is fine), then insist it is ours and closed to everyone else. An existing
 * directory (the usual case) is looked at first and not made again: the failing mkdir would cost
 * an error object, and Deno's first one ~0.5 ms.
 */
export function makeDirAndCheckOurs(dir: string): void {
  let st = existingEntry(dir);
  if (!st) {
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new ShareSetupError(`${dir}: mkdir: ${dirErrorText(e)}`);
      }
    }
    try {
      st = Deno.lstatSync(dir);
    } catch (e) {
      throw new ShareSetupError(`${dir}: stat: ${dirErrorText(e)}`);
    }
  }
  if (!st.isDirectory) throw new ShareSetupError(`${dir}: not a directory`);
  if (st.uid !== Deno.uid()) {
    throw new ShareSetupError(`${dir}: directory owned by uid ${st.uid}, not by us`);
  }
  const mode = (st.mode ?? 0) & 0o777;
  if (mode & 0o077) {
    throw new ShareSetupError(
      `${dir}: directory has overgenerous permissions ${mode.toString(8).padStart(3, "0")}` +
        " (expected 700)",
    );
  }
}

/** lstat, or undefined if it fails: the caller then goes PuTTY's way, mkdir first. */
function existingEntry(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

function readSalt(path: string): Uint8Array | undefined {
  try {
    const salt = Deno.readFileSync(path);
    if (salt.length < SALT_SIZE) throw new ShareSetupError(`${path}: read: unexpected EOF`);
    return salt.subarray(0, SALT_SIZE);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof ShareSetupError) throw e;
    throw new ShareSetupError(`${path}: open: ${dirErrorText(e)}`);
  }
}

/** The per-user salt, created on first use so that racing creators agree on one. */
export function loadSalt(parent: string): Uint8Array {
  const saltPath = `${parent}/salt`;
  const existing = readSalt(saltPath);
  if (existing) return existing;
  let tmp = "";
  for (let i = 0;; i++) {
    tmp = `${parent}/salt.tmp.${Deno.pid}.${i}`;
    try {
      const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o400 });
      f.writeSync(crypto.getRandomValues(new Uint8Array(SALT_SIZE)));
      f.close();
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new ShareSetupError(`${tmp}: open: ${dirErrorText(e)}`);
      }
    }
  }
  try {
    Deno.linkSync(tmp, saltPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) {
      throw new ShareSetupError(`${saltPath}: link: ${dirErrorText(e)}`);
    }
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch { /* best effort */ }
  }
  const salt = readSalt(saltPath);
  if (!salt) throw new ShareSetupError(`${saltPath}: open: missing after creation`);
  return salt;
}

export interface SharePaths {
  dir: string;
  lock: string;
  socket: string;
}

/** Computes (creating directories and salt as needed) the paths for one connection id. */
export async function sharePaths(id: string, parent?: string): Promise<SharePaths> {
  parent ??= parentDir(await userName());
  makeDirAndCheckOurs(parent);
  const salt = loadSalt(parent);
  const input = new SshWriter(SALT_SIZE + id.length + 16).string(salt).string(id).done();
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", input as Uint8Array<ArrayBuffer>),
  );
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  const dir = `${parent}/${hex}`;
  makeDirAndCheckOurs(dir);
  return { dir, lock: `${dir}/lock`, socket: `${dir}/socket` };
}

/** A directory check's failure; permission problems in strerror()'s words, as PuTTY says them. */
function dirErrorText(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) return "Permission denied";
  return errorText(e);
}
