/**
 * PuTTY's saved-session files (unix/storage.c, settings.c), read and written in PuTTY's own
 * format so that real PuTTY and puttykit share them.
 *
 * A session file is "Key=Value" lines; on reading, a line without "=" is skipped, the value is
 * everything after the first "=". A key missing from the file takes PuTTY's built-in default (NOT
 * the value from "Default Settings"); a session that does not exist at all yields every default.
 * Integers and booleans are read with C atoi() (so "1x" is 1, "x" is 0; booleans are nonzero =
 * true) and written as decimal ("0"/"1"). The list-valued keys (PortForwardings, Environment,
 * SSHManualHostKeys, TerminalModes) use settings.c's gppmap/wmap encoding:
 * "KEY=VALUE,KEY=VALUE" with "\" escaping "=", "," and "\" inside keys and values.
 *
 * No crypto and nothing heavy here: this runs on every tool's start-up path.
 */

import {
  ALL_PROTOCOLS,
  defaultPuttyConfig,
  type Env,
  processEnv,
  type Protocol,
  PROXY_TYPES,
  type ProxyType,
  type PuttyConfig,
  type SessionConfig,
} from "./types.ts";
import { escapeSessionName, puttyDir, sessionPath, sessionsDir } from "./putty_dir.ts";
import {
  addPortForward,
  atoi,
  parsePortForwardKey,
  portForwardKey,
  portForwardValue,
} from "./forwarding_spec.ts";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

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

/** Whether the folder `dir` lists `name` (false if it cannot be listed). */
function folderLists(dir: string, name: string): boolean {
  try {
    for (const entry of Deno.readDirSync(dir || "/")) if (entry.name === name) return true;
  } catch {
    return false;
  }
  return false;
}

/**
 * Whether the sessions folder `dir` holds `file`, asked of the listings of it and of its parent: a
 * saved session is looked for before it is read, so that the usual lookups of sessions nobody
 * saved ("Default Settings", the host name) fail without an error, the sessions folder missing
 * too. A warm downstream makes two, and Deno's first error object costs ~0.5 ms to build.
 */
function sessionFileListed(dir: string, file: string): boolean {
  const folder = dir.replace(/(.)\/+$/, "$1");
  const up = folder.lastIndexOf("/");
  const name = folder.slice(up + 1);
  if (up >= 0 && name && !folderLists(folder.slice(0, up), name)) return false;
  return folderLists(folder, file);
}

/** The raw settings of a saved session, or undefined if there is no such session. */
export function readSessionSettings(name: string, env: Env = processEnv): Settings | undefined {
  const dir = sessionsDir(env);
  const file = escapeSessionName(name);
  if (!sessionFileListed(dir, file)) return undefined;
  let text: string;
  try {
    text = utf8Decoder.decode(Deno.readFileSync(`${dir}/${file}`));
  } catch {
    return undefined;
  }
  return parseSettings(text);
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
  c.controlPath = str("ControlPath", "");
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
  if (c.controlPath) s.set("ControlPath", c.controlPath);
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
