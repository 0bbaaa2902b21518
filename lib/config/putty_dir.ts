/**
 * Where PuTTY's files live on Unix (make_filename() in unix/storage.c):
 *
 *   configuration dir   $PUTTYDIR if set; else $XDG_CONFIG_HOME/putty (or $HOME/.config/putty)
 *                       if it exists; else the first of $HOME/.putty, <passwd home>/.putty,
 *                       /.putty that exists; else $HOME/.putty (or <passwd home>/.putty, /.putty)
 *   sessions dir        $PUTTYSESSIONS if set; else <dir>/sessions
 *   session file        <sessions dir>/<escaped name>; the name "" means "Default Settings"
 *   host key cache      $PUTTYSSHHOSTKEYS if set; else <dir>/sshhostkeys (see hostkeys.ts)
 *
 * Session names are escaped byte by byte (of their UTF-8 form): the bytes [A-Za-z0-9+-.@_] stay,
 * every other byte becomes %XX with upper-case hex (make_session_filename); decoding is PuTTY's
 * decode_session_filename, which only understands upper-case hex.
 */

import { type Env, processEnv } from "./types.ts";
import { exists } from "../util/local_fs.ts";
import { passwdEntry } from "../util/passwd.ts";

function passwdHome(): string | undefined {
  return passwdEntry()?.home || undefined;
}

/** The PuTTY configuration directory, chosen exactly as make_filename(INDEX_DIR). */
export function puttyDir(env: Env = processEnv): string {
  const override = env("PUTTYDIR");
  if (override !== undefined) return override;
  const home = env("HOME");
  const pwHome = passwdHome();
  const xdgHome = env("XDG_CONFIG_HOME");
  const xdgDir = xdgHome ? `${xdgHome}/putty` : `${home ?? pwHome ?? ""}/.config/putty`;
  if (exists(xdgDir)) return xdgDir;
  const oldDir = home !== undefined ? `${home}/.putty` : undefined;
  const oldDir2 = pwHome !== undefined ? `${pwHome}/.putty` : undefined;
  const oldDir3 = "/.putty";
  for (const d of [oldDir, oldDir2, oldDir3]) if (d !== undefined && exists(d)) return d;
  return oldDir ?? oldDir2 ?? oldDir3;
}

export function sessionsDir(env: Env = processEnv): string {
  return env("PUTTYSESSIONS") ?? `${puttyDir(env)}/sessions`;
}

export function sessionPath(name: string, env: Env = processEnv): string {
  return `${sessionsDir(env)}/${escapeSessionName(name)}`;
}

const HEX = "0123456789ABCDEF";
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

function isSafeByte(b: number): boolean {
  return b === 0x2b /* + */ || b === 0x2d /* - */ || b === 0x2e /* . */ || b === 0x40 /* @ */ ||
    b === 0x5f /* _ */ || (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a);
}

/** make_session_filename(): "" means "Default Settings"; unsafe bytes become %XX. */
export function escapeSessionName(name: string): string {
  if (name === "") name = "Default Settings";
  let out = "";
  for (const b of utf8.encode(name)) {
    out += isSafeByte(b) ? String.fromCharCode(b) : "%" + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/** decode_session_filename(), byte for byte (it assumes upper-case hex, as PuTTY does). */
export function unescapeSessionName(fileName: string): string {
  const inBytes = utf8.encode(fileName);
  const out: number[] = [];
  for (let k = 0; k < inBytes.length;) {
    if (inBytes[k] === 0x25 && k + 2 < inBytes.length) {
      let i = inBytes[k + 1] - 0x30;
      if (i > 9) i -= 7;
      let j = inBytes[k + 2] - 0x30;
      if (j > 9) j -= 7;
      out.push(((i << 4) + j) & 0xff);
      k += 3;
    } else {
      out.push(inBytes[k++]);
    }
  }
  return utf8Decoder.decode(new Uint8Array(out));
}

/** enum_settings_*: every regular file in the sessions dir, decoded, sorted by name. */
export function listSessions(env: Env = processEnv): string[] {
  const dir = sessionsDir(env);
  const names: string[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) {
      try {
        if (Deno.statSync(`${dir}/${entry.name}`).isFile) {
          names.push(unescapeSessionName(entry.name));
        }
      } catch {
        // dangling link or vanished file: PuTTY skips it too
      }
    }
  } catch {
    return [];
  }
  return names.sort();
}
