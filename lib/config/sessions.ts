/**
 * PuTTY's Unix saved sessions (unix/storage.c, settings.c), read and written in PuTTY's own format
 * so that real PuTTY and puttykit share them.
 *
 * Where things live (make_filename() in unix/storage.c):
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
 *
 * A session file is "Key=Value" lines; on reading, a line without "=" is skipped, the value is
 * everything after the first "=". A key missing from the file takes PuTTY's built-in default (NOT
 * the value from "Default Settings"); a session that does not exist at all yields every default.
 * Integers and booleans are read with C atoi() (so "1x" is 1, "x" is 0; booleans are nonzero =
 * true) and written as decimal ("0"/"1"). The list-valued keys (PortForwardings, Environment,
 * SSHManualHostKeys, TerminalModes) use settings.c's gppmap/wmap encoding:
 * "KEY=VALUE,KEY=VALUE" with "\" escaping "=", "," and "\" inside keys and values.
 *
 * Public API:
 *   puttyDir(env?)                         the configuration directory
 *   sessionsDir(env?)                      the saved-sessions directory
 *   sessionPath(name, env?)                file of one session
 *   escapeSessionName(name)                PuTTY's file-name escaping
 *   unescapeSessionName(fileName)          and back
 *   listSessions(env?)                     names of the saved sessions (sorted)
 *   readSessionSettings(name, env?)        raw ordered Key=Value pairs, undefined if absent
 *   loadSession(name, opts?)               { exists, config, warnings }: a PuttyConfig
 *   settingsToConfig(settings, opts?)      the same from raw pairs (no file access)
 *   configToSettings(config)               the keys puttykit manages, PuTTY-encoded
 *   saveSession(name, config, env?)        write (atomically), keeping unknown keys of the file
 *   deleteSession(name, env?)              remove the file, if any
 *   decodeSettingsMap / encodeSettingsMap  the gppmap/wmap list encoding
 *   passwdEntry()                          our /etc/passwd name and home (no node:os)
 *   parsePortForwardKey(key, value)        one PortForwardings entry to a PortForward
 *   portForwardKey(pf) / portForwardValue  and back
 *
 * No crypto and nothing heavy here: this runs on every tool's start-up path.
 */

import { defaultConfig, type PortForward, type SessionConfig } from "./types.ts";

/** Environment accessor; the default reads the process environment. */
export type Env = (name: string) => string | undefined;

export const processEnv: Env = (name) => Deno.env.get(name);

/** PuTTY's back ends, by their id (the Protocol key and the -ssh, -telnet, ... options). */
export type Protocol = "ssh" | "ssh-connection" | "telnet" | "rlogin" | "raw" | "serial" | "supdup";

export const PROTOCOL_DEFAULT_PORTS: Record<Protocol, number> = {
  "ssh": 22,
  "ssh-connection": 0,
  "telnet": 23,
  "rlogin": 513,
  "raw": 0,
  "serial": 0,
  "supdup": 95,
};

export const ALL_PROTOCOLS = Object.keys(PROTOCOL_DEFAULT_PORTS) as Protocol[];

/** ProxyMethod (conf-enums.h proxy_type storage values 0..8). */
export type ProxyType =
  | "none"
  | "socks4"
  | "socks5"
  | "http"
  | "telnet"
  | "cmd"
  | "ssh-tcpip"
  | "ssh-exec"
  | "ssh-subsystem";

const PROXY_TYPES: ProxyType[] = [
  "none",
  "socks4",
  "socks5",
  "http",
  "telnet",
  "cmd",
  "ssh-tcpip",
  "ssh-exec",
  "ssh-subsystem",
];

/** A forwarding, with PuTTY's optional address-family prefix on the key ("4L8080", "6R22"). */
export interface PuttyPortForward extends PortForward {
  addressFamily?: "ipv4" | "ipv6";
}

/**
 * SessionConfig plus the further PuTTY settings the command line and saved sessions carry. Every
 * PuttyConfig is a SessionConfig; the extra fields are for front-ends that care.
 */
export interface PuttyConfig extends SessionConfig {
  /** Protocol (the back end); puttykit implements "ssh" only, front-ends refuse the others. */
  protocol: Protocol;
  portForwards: PuttyPortForward[];
  /** X11Forward (-X / -x). */
  x11Forward: boolean;
  /** X11Display: the local display to forward to; empty for $DISPLAY. */
  x11Display: string;
  /** LocalPortAcceptAll: -L/-D without a bind address listen on every interface, not loopback. */
  localPortAcceptAll: boolean;
  /** RemotePortAcceptAll: -R without a bind address asks the server for "" (all), not localhost. */
  remotePortAcceptAll: boolean;
  /** LogHost (-loghost): the logical host name, used for the host key cache when not empty. */
  logHost: string;
  /** SshNoTrivialAuth (-no-trivial-auth). */
  noTrivialAuth: boolean;
  /** DetachedCertificate (-cert). */
  certFile?: string;
  /** UserNameFromEnvironment: use the local user name when none is configured. */
  userNameFromEnvironment: boolean;
  /** SshProt: 2 (the default, stored 3) or 1 (-1, stored 0). */
  sshVersion: 1 | 2;
  /** PreferKnownHostKeys: list host key types already cached first in KEXINIT. */
  preferKnownHostKeys: boolean;
  /** ProxyMethod; "cmd" is -proxycmd. */
  proxyType: ProxyType;
  /** ProxyTelnetCommand: the -proxycmd command, or what a telnet proxy is sent. */
  proxyCommand?: string;
  /** ProxyHost / ProxyPort: the proxy server (SOCKS, HTTP, telnet). */
  proxyHost: string;
  proxyPort: number;
  /** ProxyUsername / ProxyPassword (SOCKS 5, HTTP, %user / %pass). */
  proxyUsername: string;
  proxyPassword: string;
  /** ProxyExcludeList: hosts reached directly ("*.example.com", "192.168.*", names). */
  proxyExcludeList: string;
  /** ProxyLocalhost: proxy connections to this machine too. */
  proxyLocalhost: boolean;
  /** -nc host:port: tunnel to this address instead of a session (never saved). */
  ncHost?: string;
  ncPort?: number;
  /** -sshlog / -sshrawlog / -sessionlog (LogFileName, LogType). */
  logFile?: string;
  logType?: "printable" | "session" | "packets" | "raw";
  /** -logoverwrite / -logappend (LogFileClash); undefined means ask. */
  logClash?: "overwrite" | "append";
}

export function defaultPuttyConfig(): PuttyConfig {
  return {
    ...defaultConfig(),
    protocol: "ssh",
    x11Forward: false,
    x11Display: "",
    localPortAcceptAll: false,
    remotePortAcceptAll: false,
    logHost: "",
    noTrivialAuth: false,
    userNameFromEnvironment: false,
    sshVersion: 2,
    preferKnownHostKeys: true,
    proxyType: "none",
    proxyHost: "proxy",
    proxyPort: 80,
    proxyUsername: "",
    proxyPassword: "",
    proxyExcludeList: "",
    proxyLocalhost: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Directories and file names.

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

let passwd: { name: string; home: string } | null | undefined;

/**
 * getpwuid(getuid()) from /etc/passwd, without node:os (whose first import costs milliseconds of
 * start-up). Users only known to NSS (LDAP etc.) are not found; callers fall back to $USER.
 */
export function passwdEntry(): { name: string; home: string } | undefined {
  if (passwd === undefined) {
    passwd = null;
    try {
      const uid = Deno.uid();
      for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
        const f = line.split(":");
        if (f.length >= 7 && f[2] === String(uid)) {
          passwd = { name: f[0], home: f[5] };
          break;
        }
      }
    } catch {
      // no passwd file, or no permission to ask for the uid
    }
  }
  return passwd ?? undefined;
}

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

// ---------------------------------------------------------------------------------------------
// Raw settings.

/** Ordered Key=Value pairs of a session file (later duplicates replace earlier ones). */
export type Settings = Map<string, string>;

/** open_settings_r(): parse a session file's text. */
export function parseSettings(text: string): Settings {
  const settings: Settings = new Map();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const value = line.slice(eq + 1);
    const cut = value.search(/[\r\n]/);
    settings.set(line.slice(0, eq), cut < 0 ? value : value.slice(0, cut));
  }
  return settings;
}

/** The raw settings of a saved session, or undefined if there is no such session. */
export function readSessionSettings(name: string, env: Env = processEnv): Settings | undefined {
  let text: string;
  try {
    text = utf8Decoder.decode(Deno.readFileSync(sessionPath(name, env)));
  } catch {
    return undefined;
  }
  return parseSettings(text);
}

/** C atoi(): optional whitespace and sign, then digits; anything else ends it (0 if none). */
export function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  if (!m) return 0;
  const n = parseInt(m[1], 10);
  // C int overflow is undefined behaviour; clamp to something sane.
  return Math.max(-2147483648, Math.min(2147483647, n));
}

/** gppmap(): "K=V,K=V" with backslash escapes, to ordered [key, value] pairs. */
export function decodeSettingsMap(s: string): [string, string][] {
  const out: [string, string][] = [];
  let p = 0;
  while (p < s.length) {
    let key = "";
    let value: string | undefined;
    while (p < s.length && s[p] !== ",") {
      let c = s[p++];
      if (c === "=") {
        // Every unescaped "=" ends a segment: the key is the first, the value the last.
        value = "";
        continue;
      }
      if (c === "\\") {
        if (p >= s.length) break;
        c = s[p++];
      }
      if (value === undefined) key += c;
      else value += c;
    }
    if (s[p] === ",") p++;
    out.push([key, value ?? ""]);
  }
  return out;
}

function escapeMapText(s: string): string {
  return s.replace(/[=,\\]/g, (c) => "\\" + c);
}

/** wmap(): the inverse of decodeSettingsMap; includeValues=false writes just the keys. */
export function encodeSettingsMap(pairs: [string, string][], includeValues = true): string {
  return pairs.map(([k, v]) => escapeMapText(k) + (includeValues ? "=" + escapeMapText(v) : ""))
    .join(",");
}

// ---------------------------------------------------------------------------------------------
// Port forwardings (settings.c / ssh/portfwd.c key and value formats).

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

// ---------------------------------------------------------------------------------------------
// Settings <-> config.

export interface LoadOptions {
  env?: Env;
  /** Protocols this tool has (PuTTY's backends[]); an unknown Protocol falls back to default. */
  protocols?: readonly Protocol[];
  /** settings_set_default_protocol / _port: used when the session names no known protocol. */
  defaultProtocol?: Protocol;
  defaultPort?: number;
}

export interface LoadedSession {
  /** Whether the session file exists (PuTTY's load_settings() result). */
  exists: boolean;
  config: PuttyConfig;
  /** Entries that were skipped (e.g. a forwarding with an unknown service name). */
  warnings: string[];
}

/** load_open_settings() for the keys puttykit uses. `settings` undefined = no such session. */
export function settingsToConfig(
  settings: Settings | undefined,
  opts: LoadOptions = {},
): LoadedSession {
  const s = settings ?? new Map<string, string>();
  const c = defaultPuttyConfig();
  const warnings: string[] = [];
  const str = (k: string, def: string) => s.get(k) ?? def;
  const int = (k: string, def: number) => s.has(k) ? atoi(s.get(k)!) : def;
  const bool = (k: string, def: boolean) => int(k, def ? 1 : 0) !== 0;

  c.host = str("HostName", "");
  const user = str("UserName", "");
  if (user) c.user = user;
  c.userNameFromEnvironment = bool("UserNameFromEnvironment", false);
  const keyFile = str("PublicKeyFile", "");
  if (keyFile) c.keyFile = keyFile;
  const cert = str("DetachedCertificate", "");
  if (cert) c.certFile = cert;
  c.share = bool("ConnectionSharing", false);
  c.shareUpstream = bool("ConnectionSharingUpstream", true);
  c.shareDownstream = bool("ConnectionSharingDownstream", true);
  c.agentForward = bool("AgentFwd", false);
  c.x11Forward = bool("X11Forward", false);
  c.x11Display = str("X11Display", "");
  c.localPortAcceptAll = bool("LocalPortAcceptAll", false);
  c.remotePortAcceptAll = bool("RemotePortAcceptAll", false);
  c.compression = bool("Compression", false);
  const af = int("AddressFamily", 0);
  c.addressFamily = af === 1 ? "ipv4" : af === 2 ? "ipv6" : "any";
  // Unix plink's platform default for TerminalType is $TERM (only read when an environment is
  // given, so the plain function stays independent of the process's).
  c.termType = str("TerminalType", opts.env?.("TERM") || "xterm");
  const cmd = str("RemoteCommand", "");
  if (cmd) c.remoteCommand = cmd;
  if (bool("NoPTY", false)) c.pty = false;
  c.noShell = bool("SshNoShell", false);
  c.tryAgent = bool("TryAgent", true);
  c.noTrivialAuth = bool("SshNoTrivialAuth", false);
  c.logHost = str("LogHost", "");
  c.sshVersion = [0, 1].includes(int("SshProt", 3)) ? 1 : 2;
  c.preferKnownHostKeys = bool("PreferKnownHostKeys", true);

  // Protocol, then PortNumber only if the protocol is one this tool knows.
  const protocols = opts.protocols ?? ALL_PROTOCOLS;
  const prot = str("Protocol", "default") as Protocol;
  c.protocol = opts.defaultProtocol ?? "ssh";
  c.port = opts.defaultPort ?? 22;
  if (protocols.includes(prot)) {
    c.protocol = prot;
    c.port = int("PortNumber", c.port);
  }

  // Proxy: ProxyMethod, falling back to the older ProxyType (+ ProxySOCKSVersion).
  const method = int("ProxyMethod", -1);
  if (method >= 0 && method < PROXY_TYPES.length) {
    c.proxyType = PROXY_TYPES[method];
  } else {
    const old = int("ProxyType", 0);
    const oldTypes: ProxyType[] = ["none", "http", "socks5", "telnet", "cmd"];
    c.proxyType = oldTypes[old] ?? "none";
    if (c.proxyType === "socks5" && int("ProxySOCKSVersion", 5) === 4) c.proxyType = "socks4";
  }
  if (c.proxyType === "cmd" || c.proxyType === "telnet") {
    c.proxyCommand = str("ProxyTelnetCommand", "connect %host %port\\n");
  }
  c.proxyHost = str("ProxyHost", "proxy");
  c.proxyPort = int("ProxyPort", 80);
  c.proxyUsername = str("ProxyUsername", "");
  c.proxyPassword = str("ProxyPassword", "");
  c.proxyExcludeList = str("ProxyExcludeList", "");
  c.proxyLocalhost = bool("ProxyLocalhost", false);

  // Logging: LogType 0 none, 1 printable output, 2 all session output, 3 packets, 4 raw.
  const logTypes = [undefined, "printable", "session", "packets", "raw"] as const;
  const logType = logTypes[int("LogType", 0)];
  if (logType) {
    c.logType = logType;
    c.logFile = str("LogFileName", "putty.log");
  }
  const clash = int("LogFileClash", -1);
  if (clash === 0) c.logClash = "append";
  else if (clash === 1) c.logClash = "overwrite";

  // Maps.
  for (const [k, v] of decodeSettingsMap(str("Environment", ""))) {
    const i = c.env.findIndex(([name]) => name === k);
    if (i >= 0) c.env[i] = [k, v];
    else c.env.push([k, v]);
  }
  for (let [k, v] of decodeSettingsMap(str("PortForwardings", ""))) {
    // Legacy storage of dynamic forwardings: a 'D' in the key; internally an L key, value "D".
    const d = k.indexOf("D");
    if (d >= 0) {
      k = k.slice(0, d) + "L" + k.slice(d + 1);
      v = "D";
    }
    const pf = parsePortForwardKey(k, v);
    if (typeof pf === "string") warnings.push(pf);
    else addPortForward(c.portForwards, pf);
  }
  for (const [k] of decodeSettingsMap(str("SSHManualHostKeys", ""))) {
    if (!c.hostKeys.includes(k)) c.hostKeys.push(k);
  }
  return { exists: settings !== undefined, config: c, warnings };
}

/**
 * do_defaults(name): load a saved session ("" or undefined = "Default Settings"). A missing
 * session gives PuTTY's defaults with exists=false.
 */
export function loadSession(name: string | undefined, opts: LoadOptions = {}): LoadedSession {
  const settings = readSessionSettings(name ?? "", opts.env ?? processEnv);
  const loaded = settingsToConfig(settings, { ...opts, env: opts.env ?? processEnv });
  if (settings && name) loaded.config.sessionName = name;
  return loaded;
}

/** PuTTY's Conf keeps maps in a tree ordered by strcmp() of the key, so it writes them sorted. */
function sortByKey(pairs: [string, string][]): [string, string][] {
  return [...pairs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The keys puttykit manages, encoded as save_open_settings() writes them, in PuTTY's order. */
export function configToSettings(config: SessionConfig | PuttyConfig): Settings {
  const c: PuttyConfig = { ...defaultPuttyConfig(), ...config };
  const s: Settings = new Map();
  const b = (v: boolean) => (v ? "1" : "0");
  s.set("Present", "1");
  s.set("HostName", c.host);
  s.set("LogFileName", c.logFile ?? "putty.log");
  const logTypes = [undefined, "printable", "session", "packets", "raw"];
  s.set("LogType", String(c.logFile ? Math.max(0, logTypes.indexOf(c.logType)) : 0));
  s.set("LogFileClash", c.logClash === "append" ? "0" : c.logClash === "overwrite" ? "1" : "-1");
  s.set("LogHost", c.logHost);
  s.set("PortNumber", String(c.port));
  s.set("AddressFamily", c.addressFamily === "ipv4" ? "1" : c.addressFamily === "ipv6" ? "2" : "0");
  s.set("ProxyExcludeList", c.proxyExcludeList);
  s.set("ProxyLocalhost", b(c.proxyLocalhost));
  s.set("ProxyMethod", String(Math.max(0, PROXY_TYPES.indexOf(c.proxyType))));
  s.set("ProxyHost", c.proxyHost);
  s.set("ProxyPort", String(c.proxyPort));
  s.set("ProxyUsername", c.proxyUsername);
  s.set("ProxyPassword", c.proxyPassword);
  if (c.proxyCommand !== undefined) s.set("ProxyTelnetCommand", c.proxyCommand);
  s.set("Environment", encodeSettingsMap(sortByKey(c.env)));
  s.set("UserName", c.user ?? "");
  s.set("UserNameFromEnvironment", b(c.userNameFromEnvironment));
  s.set("NoPTY", b(c.pty === false));
  s.set("Compression", b(c.compression));
  s.set("TryAgent", b(c.tryAgent));
  s.set("AgentFwd", b(c.agentForward));
  s.set("SshNoTrivialAuth", b(c.noTrivialAuth));
  s.set("SshProt", c.sshVersion === 1 ? "0" : "3");
  s.set("PublicKeyFile", c.keyFile ?? "");
  s.set("DetachedCertificate", c.certFile ?? "");
  s.set("RemoteCommand", c.remoteCommand ?? "");
  s.set("SshNoShell", b(c.noShell));
  s.set("PreferKnownHostKeys", b(c.preferKnownHostKeys));
  s.set("TerminalType", c.termType);
  s.set("X11Forward", b(c.x11Forward));
  s.set("X11Display", c.x11Display);
  s.set("LocalPortAcceptAll", b(c.localPortAcceptAll));
  s.set("RemotePortAcceptAll", b(c.remotePortAcceptAll));
  s.set("ConnectionSharing", b(c.share));
  s.set("ConnectionSharingUpstream", b(c.shareUpstream));
  s.set("ConnectionSharingDownstream", b(c.shareDownstream));
  s.set("Protocol", c.protocol);
  // Dynamic forwardings are stored under a 'D' key with an empty value (wmap's legacy hack).
  s.set(
    "PortForwardings",
    encodeSettingsMap(
      sortByKey(c.portForwards.map((pf) => [portForwardKey(pf), portForwardValue(pf)])).map((
        [key, value],
      ) => value === "D" ? [key.replace("L", "D"), ""] : [key, value]),
    ),
  );
  s.set("SSHManualHostKeys", encodeSettingsMap(sortByKey(c.hostKeys.map((k) => [k, ""])), false));
  return s;
}

/** make_dir_path(): mkdir -p with the given mode for each created level. */
function makeDirPath(path: string, mode = 0o700): void {
  Deno.mkdirSync(path, { recursive: true, mode });
}

/**
 * Save a session in PuTTY's format. An existing file keeps its other keys (and their order);
 * keys puttykit manages are updated in place, new ones appended. Written to a temporary file and
 * renamed over the old one.
 */
export function saveSession(
  name: string,
  config: SessionConfig | PuttyConfig,
  env: Env = processEnv,
): void {
  makeDirPath(puttyDir(env));
  const dir = sessionsDir(env);
  makeDirPath(dir);
  const path = sessionPath(name, env);
  const ours = configToSettings(config);
  const lines: string[] = [];
  let old = "";
  try {
    old = utf8Decoder.decode(Deno.readFileSync(path));
  } catch {
    // new session
  }
  const written = new Set<string>();
  for (const line of old.split("\n")) {
    if (line === "") continue;
    const eq = line.indexOf("=");
    const key = eq < 0 ? undefined : line.slice(0, eq);
    if (key !== undefined && ours.has(key)) {
      if (!written.has(key)) lines.push(`${key}=${ours.get(key)}`);
      written.add(key);
    } else {
      lines.push(line);
    }
  }
  for (const [k, v] of ours) if (!written.has(k)) lines.push(`${k}=${v}`);
  replaceFile(path, lines.join("\n") + "\n", 0o644);
}

/**
 * Writes `text` to a temporary file beside `path` and renames it into place, so readers see the
 * old file or the new one, never half of either. `dirIfMissing` is created (0700) if needed.
 */
export function replaceFile(path: string, text: string, mode: number, dirIfMissing?: string): void {
  const tmp = `${path}.tmp.${Deno.pid}`;
  const write = () => Deno.writeFileSync(tmp, utf8.encode(text), { mode });
  try {
    try {
      write();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) || !dirIfMissing) throw e;
      Deno.mkdirSync(dirIfMissing, { recursive: true, mode: 0o700 });
      write();
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw e;
  }
}

/** del_settings(). */
export function deleteSession(name: string, env: Env = processEnv): void {
  try {
    Deno.removeSync(sessionPath(name, env));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
