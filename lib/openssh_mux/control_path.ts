/**
 * ControlPath names, expanded as OpenSSH 9.2's ssh expands its ControlPath (ssh.c: tilde, then
 * ${VAR}, then %-tokens), so `-controlpath '~/.ssh/cm-%C'` names the socket `ssh -o
 * ControlPath='~/.ssh/cm-%C'` uses for the same destination. %C is the SHA-1 (hex) of
 * "%l%h%p%r" (ssh_connection_hash() in readconf.c).
 */

import type { PuttyConfig } from "../config/types.ts";
import { ConfigError } from "../config/types.ts";
import { userName } from "../share/socket_path.ts";
import { errorText, osErrorText } from "../util/error_text.ts";

export class ControlPathError extends Error {}

export interface ControlPathTarget {
  /** The host we connect to (OpenSSH's %h, lowercased as ssh does). */
  host: string;
  port: number;
  /** The remote user name; OpenSSH's default is the local one. */
  user?: string;
}

/** The configured control path, expanded for this connection (a bad one is a ConfigError). */
export async function controlPathFor(cfg: PuttyConfig): Promise<string> {
  try {
    return await expandControlPath(cfg.controlPath, {
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
    });
  } catch (e) {
    throw new ConfigError(errorText(e));
  }
}

export async function expandControlPath(template: string, t: ControlPathTarget): Promise<string> {
  const localUser = await userName();
  const home = homeOf(localUser) ?? Deno.env.get("HOME") ?? "/";
  const thisHost = Deno.hostname();
  const host = t.host.toLowerCase();
  const port = String(t.port);
  const user = t.user || localUser;
  const tokens: Record<string, () => string | Promise<string>> = {
    "%": () => "%",
    C: () => sha1Hex(thisHost + host + port + user),
    L: () => thisHost.split(".")[0],
    d: () => home,
    h: () => host,
    i: () => String(Deno.uid()),
    l: () => thisHost,
    n: () => t.host,
    p: () => port,
    r: () => user,
    u: () => localUser,
  };
  const dollared = expandDollars(expandTilde(template, home));
  let out = "";
  for (let i = 0; i < dollared.length; i++) {
    const c = dollared[i];
    if (c !== "%") {
      out += c;
      continue;
    }
    const key = dollared[++i];
    const token = key === undefined ? undefined : tokens[key];
    if (!token) {
      throw new ControlPathError(
        key === undefined
          ? `control path '${template}' ends with a lone '%'`
          : `control path '${template}': unknown key %${key}`,
      );
    }
    out += await token();
  }
  return out;
}

/** "~" and "~/..." are our home; "~name/..." is that user's (tilde_expand_filename). */
function expandTilde(path: string, home: string): string {
  if (!path.startsWith("~")) return path;
  const slash = path.indexOf("/");
  const name = slash < 0 ? path.slice(1) : path.slice(1, slash);
  const rest = slash < 0 ? "" : path.slice(slash);
  if (!name) return home.replace(/\/$/, "") + rest;
  const theirs = homeOf(name);
  if (theirs === undefined) {
    throw new ControlPathError(`control path '${path}': no such user ${name}`);
  }
  return theirs.replace(/\/$/, "") + rest;
}

/** ${NAME} from the environment; an unset one is an error, as in OpenSSH's dollar_expand(). */
function expandDollars(path: string): string {
  return path.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    const v = Deno.env.get(name);
    if (v === undefined) {
      throw new ControlPathError(`control path '${path}': environment variable ${name} is not set`);
    }
    return v;
  });
}

function homeOf(name: string): string | undefined {
  try {
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const f = line.split(":");
      if (f[0] === name && f.length >= 6) return f[5];
    }
  } catch { /* no /etc/passwd */ }
  return name === Deno.env.get("USER") ? Deno.env.get("HOME") : undefined;
}

async function sha1Hex(s: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-1", new TextEncoder().encode(s)),
  );
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/**
 * Why the directory holding a control socket is unsafe, or undefined when it is fine: it must be
 * ours (or root's, if sticky like /tmp), and nobody else may write to it unless it is sticky, so
 * no one else can put their socket in place of ours or of the master's.
 */
export function unsafeDirectory(socketPath: string): string | undefined {
  const slash = socketPath.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : socketPath.slice(0, slash);
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dir);
  } catch (e) {
    return `${dir}: ${osErrorText(e)}`;
  }
  const mode = st.mode ?? 0;
  const sticky = (mode & 0o1000) !== 0;
  if (st.uid !== Deno.uid() && !(st.uid === 0 && sticky)) {
    return `${dir}: directory owned by uid ${st.uid}, not by us`;
  }
  if ((mode & 0o022) && !sticky) {
    return `${dir}: directory is writable by others (mode ${(mode & 0o777).toString(8)})`;
  }
  return undefined;
}

/** Why a socket at `path` is not one to trust (not a socket, not ours), or undefined. */
export function untrustedSocket(path: string): string | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (e) {
    return `${path}: ${osErrorText(e)}`;
  }
  if (!st.isSocket) return `${path}: not a socket`;
  if (st.uid !== Deno.uid()) return `${path}: socket owned by uid ${st.uid}, not by us`;
  return unsafeDirectory(path);
}
