/**
 * The local X display for X11 forwarding, found the way PuTTY's x11disp.c and unix/x11.c find
 * it: the display name (the X11Display setting, else $DISPLAY, else ":0") parsed as
 * `[[protocol/]host]:display[.screen]` or as a Unix socket path; a local display reached through
 * its Unix socket /tmp/.X11-unix/X<n>, TCP port 6000+n otherwise; and its authorisation read from
 * $XAUTHORITY (else ~/.Xauthority) with PuTTY's matching rules. Only MIT-MAGIC-COOKIE-1 is used
 * from the file (PuTTY's default; XDM-AUTHORIZATION-1 needs DES, which we don't carry).
 */

import { MIT_COOKIE } from "./x11_protocol.ts";

/** Where the X server listens. */
export type X11Address =
  | { transport: "unix"; path: string }
  | { transport: "tcp"; hostname: string; port: number };

export interface X11Display {
  /** The name as given (or ":0"). */
  name: string;
  /** Display number; -1 for a socket path display. */
  number: number;
  screen: number;
  address: X11Address;
  /** PuTTY's "realhost": "unix:0", the socket path, or the TCP host. */
  description: string;
  /** The real authorisation for the display; none when the file has no entry for it. */
  auth?: X11Auth;
}

export interface X11Auth {
  protocol: string;
  data: Uint8Array;
}

export class X11DisplayError extends Error {}

interface ParsedName {
  number: number;
  screen: number;
  /** Unix-domain (a socket path, "unix:N", ":N", "local/...:N"); else TCP to `host`. */
  unix: boolean;
  host?: string;
  socketPath?: string;
}

/** PuTTY's atoi: leading digits, else 0. */
function atoi(s: string): number {
  const m = /^\s*[+-]?\d+/.exec(s);
  return m ? parseInt(m[0], 10) : 0;
}

/** Parses a display name as x11_setup_display does; throws X11DisplayError. */
export function parseDisplayName(name: string): ParsedName {
  if (name.startsWith("/")) return { number: -1, screen: 0, unix: true, socketPath: name };
  // host_strrchr: the last colon not inside [IPv6] brackets.
  let colon = -1;
  let depth = 0;
  for (let i = 0; i < name.length; i++) {
    if (name[i] === "[") depth++;
    else if (name[i] === "]") depth = Math.max(0, depth - 1);
    else if (name[i] === ":" && depth === 0) colon = i;
  }
  if (colon < 0) throw new X11DisplayError(`display name '${name}' has no ':number' suffix`);
  const after = name.slice(colon + 1);
  const dot = after.indexOf(".");
  const number = atoi(dot < 0 ? after : after.slice(0, dot));
  const screen = dot < 0 ? 0 : atoi(after.slice(dot + 1));
  let host = name.slice(0, colon);
  let protocol: string | undefined;
  const slash = host.indexOf("/");
  if (slash >= 0) {
    protocol = host.slice(0, slash);
    host = host.slice(slash + 1);
  }
  const unix = protocol !== undefined
    ? protocol === "local" || protocol === "unix"
    : host === "" || host === "unix";
  return { number, screen, unix, host: unix ? undefined : host || "localhost" };
}

const LOOPBACK_NAMES = new Set(["localhost", "localhost.localdomain", "ip6-localhost"]);

/** IPv4 address bytes of a dotted quad, else undefined. */
function ipv4Bytes(host: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x < 256) ? new Uint8Array(b) : undefined;
}

function isLocalHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return LOOPBACK_NAMES.has(h.toLowerCase()) || /^127\./.test(h) || h === "::1";
}

/** The Unix socket of display `n`. */
export function unixSocketPath(n: number): string {
  return `/tmp/.X11-unix/X${n}`;
}

function socketExists(path: string): boolean {
  try {
    return Deno.statSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/** One record of an .Xauthority file. */
export interface XauthRecord {
  family: number;
  address: Uint8Array;
  /** Display number; -1 for the wildcard (an empty number). */
  number: number;
  protocol: string;
  data: Uint8Array;
}

/** Reads every complete record of an .Xauthority file (big-endian 16-bit lengths). */
export function parseXauthority(bytes: Uint8Array): XauthRecord[] {
  const out: XauthRecord[] = [];
  const dec = new TextDecoder("latin1");
  let at = 0;
  const u16 = () => {
    if (at + 2 > bytes.length) throw new RangeError("truncated");
    const v = (bytes[at] << 8) | bytes[at + 1];
    at += 2;
    return v;
  };
  const str = () => {
    const n = u16();
    if (at + n > bytes.length) throw new RangeError("truncated");
    const v = bytes.subarray(at, at + n);
    at += n;
    return v;
  };
  try {
    while (at < bytes.length) {
      const family = u16();
      const address = str();
      const num = dec.decode(str());
      const protocol = dec.decode(str());
      const data = str().slice();
      out.push({ family, address, number: num ? atoi(num) : -1, protocol, data });
    }
  } catch {
    // A truncated last record ends the file, as in PuTTY.
  }
  return out;
}

/**
 * The authorisation for a display from .Xauthority records, by x11_get_auth_from_authfile's
 * rules: a Unix-domain record for this host name is the best match (and is what a "localhost:N"
 * display uses too); otherwise an IPv4 record for the display's address.
 */
export function findAuth(
  records: XauthRecord[],
  disp: { number: number; unix: boolean; ipv4?: Uint8Array; localhost: boolean },
  hostname: string,
): X11Auth | undefined {
  let best: X11Auth | undefined;
  const enc = new TextEncoder();
  const ourName = enc.encode(hostname);
  const same = (a: Uint8Array, b: Uint8Array) =>
    a.length === b.length && a.every((x, i) => x === b[i]);
  for (const r of records) {
    if (disp.number < 0 || (r.number >= 0 && r.number !== disp.number)) continue;
    if (r.protocol !== MIT_COOKIE) continue;
    if (r.family === 256) {
      if ((disp.unix || disp.localhost) && same(r.address, ourName)) {
        return { protocol: r.protocol, data: r.data };
      }
    } else if (r.family === 0) {
      if (!disp.unix && disp.ipv4 && same(r.address, disp.ipv4)) {
        best = { protocol: r.protocol, data: r.data };
        if (!disp.localhost) return best;
      }
    }
  }
  return best;
}

export interface DisplayEnv {
  /** Environment lookup (DISPLAY, XAUTHORITY, HOME). */
  env(name: string): string | undefined;
  hostname(): string;
  readFile(path: string): Uint8Array | undefined;
  /** Whether a Unix socket exists at `path` (a local TCP display is upgraded to it). */
  hasSocket(path: string): boolean;
}

export const processDisplayEnv: DisplayEnv = {
  env: (name) => Deno.env.get(name),
  hostname: () => Deno.hostname(),
  readFile: (path) => {
    try {
      return Deno.readFileSync(path);
    } catch {
      return undefined;
    }
  },
  hasSocket: socketExists,
};

/** The display to forward to: `configured` (X11Display), else $DISPLAY, else ":0". */
export function setupDisplay(configured: string, denv = processDisplayEnv): X11Display {
  const name = configured || denv.env("DISPLAY") || ":0";
  const p = parseDisplayName(name);
  let address: X11Address;
  let description: string;
  let unix = p.unix;
  let ipv4: Uint8Array | undefined;
  const localhost = !unix && isLocalHost(p.host!);
  if (!unix) {
    const host = p.host!;
    ipv4 = ipv4Bytes(host) ??
      (localhost && !host.includes(":") ? new Uint8Array([127, 0, 0, 1]) : undefined);
    // As the X libraries do: a local TCP display is reached through its Unix socket if it has one.
    if (localhost && denv.hasSocket(unixSocketPath(p.number))) unix = true;
  }
  if (unix) {
    const path = p.socketPath ?? unixSocketPath(p.number);
    address = { transport: "unix", path };
    description = p.socketPath ?? `unix:${p.number}`;
  } else {
    address = {
      transport: "tcp",
      hostname: p.host!.replace(/^\[|\]$/g, ""),
      port: 6000 + p.number,
    };
    description = p.host!;
  }
  const file = denv.env("XAUTHORITY") ??
    (denv.env("HOME") !== undefined ? `${denv.env("HOME")}/.Xauthority` : undefined);
  const bytes = file !== undefined ? denv.readFile(file) : undefined;
  const auth = bytes
    ? findAuth(parseXauthority(bytes), { number: p.number, unix, ipv4, localhost }, denv.hostname())
    : undefined;
  return { name, number: p.number, screen: p.screen, address, description, auth };
}
