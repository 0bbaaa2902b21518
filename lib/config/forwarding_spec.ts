/**
 * Host and port text as PuTTY reads it (C's atoi, host_strchr, host_strduptrim, /etc/services names) and
 * port-forwarding specifications in settings.c's and ssh/portfwd.c's key and value formats.
 */

import type { PuttyPortForward } from "./types.ts";

/** C atoi(): optional whitespace and sign, then digits; anything else ends it (0 if none). */
export function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  if (!m) return 0;
  const n = parseInt(m[1], 10);
  // C int overflow is undefined behaviour; clamp to something sane.
  return Math.max(-2147483648, Math.min(2147483647, n));
}

/** host_strchr(): first (or last) char of `set` not inside [brackets]; -1 if none. */
export function hostStrchr(s: string, set: string, last = false): number {
  let brackets = 0;
  let ret = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "[") brackets++;
    else if (c === "]" && brackets > 0) brackets--;
    else if (brackets && c === ":") continue;
    else if (set.includes(c)) {
      ret = i;
      if (!last) return ret;
    }
  }
  return ret;
}

/** host_strduptrim(): strip the brackets off an IPv6 literal, leave anything else alone. */
export function hostStrduptrim(s: string): string {
  const m = /^\[([0-9a-fA-F:]*)(%[^\]]*)?\]$/.exec(s);
  if (m && (m[1].match(/:/g)?.length ?? 0) > 1) return m[1] + (m[2] ?? "");
  return s;
}

let services: Map<string, number> | undefined;

/** net_service_lookup(): a TCP service name from /etc/services, 0 if unknown. */
export function lookupService(name: string): number {
  if (!services) {
    services = new Map();
    try {
      for (const line of Deno.readTextFileSync("/etc/services").split("\n")) {
        const words = line.replace(/#.*/, "").trim().split(/\s+/);
        const m = /^(\d+)\/tcp$/.exec(words[1] ?? "");
        if (!m) continue;
        for (const w of [words[0], ...words.slice(2)]) {
          if (w && !services.has(w)) services.set(w, Number(m[1]));
        }
      }
    } catch {
      // no services database: names simply don't resolve
    }
  }
  return services.get(name) ?? 0;
}

/** atoi(), falling back to a service name lookup as portfwd.c does; 0 = unusable. */
export function parsePortText(text: string): number {
  const n = atoi(text);
  if (n !== 0) return n;
  return lookupService(text);
}

function bracketHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * One entry of the port-forwarding map, as portfwdmgr_config() reads it: key
 * "[A46][LR][bindaddr:]port", value "host:port", or "D" for a dynamic forwarding (filed under an
 * L key). Returns a string (PuTTY's log message) when the entry would be skipped.
 */
export function parsePortForwardKey(key: string, value: string): PuttyPortForward | string {
  let kp = 0;
  let family: "ipv4" | "ipv6" | undefined;
  let kind: "L" | "R" | "D" = "L";
  if (key[kp] === "A" || key[kp] === "4" || key[kp] === "6") {
    family = key[kp] === "4" ? "ipv4" : key[kp] === "6" ? "ipv6" : undefined;
    kp++;
  }
  if (key[kp] === "L" || key[kp] === "R") kind = key[kp++] as "L" | "R";
  const rest = key.slice(kp);
  const colon = hostStrchr(rest, ":");
  let bindAddress: string | undefined;
  let sports = rest;
  if (colon >= 0) {
    bindAddress = hostStrduptrim(rest.slice(0, colon));
    sports = rest.slice(colon + 1);
  }
  const bindPort = parsePortText(sports);
  if (!bindPort) return `Service lookup failed for source port "${sports}"`;
  const pf: PuttyPortForward = { kind, bindPort };
  if (bindAddress !== undefined) pf.bindAddress = bindAddress;
  if (family) pf.addressFamily = family;
  if (kind === "L" && value === "D") {
    pf.kind = "D";
    return pf;
  }
  const hc = hostStrchr(value, ":");
  const host = hc < 0 ? value : value.slice(0, hc);
  const dports = hc < 0 ? "" : value.slice(hc + 1);
  const port = parsePortText(dports);
  if (!port) return `Service lookup failed for destination port "${dports}"`;
  pf.host = hostStrduptrim(host);
  pf.port = port;
  return pf;
}

/** The internal map key of a forwarding: "L…" for L and D (they share a port space), "R…". */
export function portForwardKey(pf: PuttyPortForward): string {
  const family = pf.addressFamily === "ipv4" ? "4" : pf.addressFamily === "ipv6" ? "6" : "";
  const src = pf.bindAddress !== undefined
    ? `${bracketHost(pf.bindAddress)}:${pf.bindPort}`
    : `${pf.bindPort}`;
  return `${family}${pf.kind === "R" ? "R" : "L"}${src}`;
}

/** The internal map value: "host:port", or "D" for dynamic. */
export function portForwardValue(pf: PuttyPortForward): string {
  return pf.kind === "D" ? "D" : `${bracketHost(pf.host ?? "")}:${pf.port ?? 0}`;
}

/** Add a forwarding, replacing one with the same key (conf_set_str_str semantics). */
export function addPortForward(list: PuttyPortForward[], pf: PuttyPortForward): void {
  const key = portForwardKey(pf);
  const i = list.findIndex((x) => portForwardKey(x) === key);
  if (i >= 0) list[i] = pf;
  else list.push(pf);
}
