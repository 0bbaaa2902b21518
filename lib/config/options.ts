/**
 * The one command-line parser for every puttykit tool, following PuTTY's cmdline.c and the
 * per-tool main loops (unix/plink.c, pscp.c, psftp.c, unix/main-gtk-simple.c).
 *
 *   const parsed = parseCommandLine(PLINK, Deno.args);
 *   parsed.config      // PuttyConfig (a SessionConfig): final for plink/putty
 *   parsed.args        // plink: the command words; pscp: the file arguments; psftp: [userhost]
 *   parsed.flags       // tool-specific flags given, by canonical name ("-s", "-r", "--help", ...)
 *   parsed.values      // tool-specific options with a value ("-b" -> batch file)
 *   parsed.stop        // a help/version option that ends parsing at once ("--help", "-V", ...)
 *   parsed.forHost(host, user?)   // pscp/psftp: the config for connecting to `host`
 *   canonicalManualHostKey(spec)  // a -hostkey argument in PuTTY's canonical form, or undefined
 *
 * Tool specs: PLINK, PSCP, PSFTP, PUTTY (ToolSpec: PuTTY's TOOLTYPE_* bits, back ends, own options).
 * psftp: when no host word was given but -load supplied a HostName, connect to config.host (as
 * psftp.c does); pscp parses "user@host:path" itself and calls forHost(host, user).
 *
 * Errors are thrown as ConfigError with PuTTY's one-line message and no tool prefix, e.g.
 * `unknown option "-foo"`, `option "-P" requires an argument`, `option "-A" not available in this
 * tool`, `no valid host name provided`. Unlike PuTTY, the first error ends parsing.
 *
 * Precedence, as PuTTY does it:
 *  1. PuTTY's defaults, overlaid with the "Default Settings" session (plink: PLINK_PROTOCOL then
 *     picks the protocol and its port).
 *  2. -load NAME replaces the whole configuration with that session, immediately (a missing
 *     session gives plain defaults). For plink/putty a host argument that names a saved session
 *     with a HostName, when no -load came first, does the same; "user@session" then overrides
 *     the session's UserName. pscp/psftp do that lookup only when connecting (forHost), and only
 *     without -load.
 *  3. Every other option is saved and applied after the session is settled, whatever its
 *     position: first the priority-0 options in command-line order, then the priority-1 ones
 *     (-P, -pw, -pwfile, -t, -T, -4, -6, -sercfg), so `-P 2222 -load s` uses port 2222, `-ssh`
 *     (which resets the port to 22) never beats -P, and -t/-T beat -m and a command's no-pty.
 *     -v, -load and the host argument act at once.
 *  plink: "user@host" becomes UserName before the saved options run, so -l wins over it; a
 *  ":suffix" on the host is dropped (prepare_session); remaining words after the host form the
 *  remote command (joined with spaces, no pty) — but a -m file, being a saved option, wins.
 *  pscp/psftp: the user from user@host wins over -l (it is set after the saved options).
 *
 * Validation that PuTTY does while applying saved options (-hostkey format, -L colons, -m file,
 * -pw protocol) therefore happens after the host check for plink and inside forHost() for
 * pscp/psftp, as in PuTTY.
 *
 * This module must stay light (no crypto): it is on every tool's start-up path.
 */

import { ConfigError } from "./types.ts";
import {
  addPortForward,
  ALL_PROTOCOLS,
  atoi,
  type Env,
  hostStrchr,
  type LoadOptions,
  loadSession,
  parsePortForwardKey,
  passwdEntry,
  processEnv,
  type Protocol,
  PROTOCOL_DEFAULT_PORTS,
  type PuttyConfig,
  puttyDir,
} from "./sessions.ts";

export type { Protocol, PuttyConfig } from "./sessions.ts";

/** A tool-specific option (one cmdline.c doesn't know). */
export interface ToolOption {
  /** Takes the next argument as its value. */
  value?: boolean;
  /** Other spellings, reported under the canonical name. */
  aliases?: readonly string[];
  /** Parsing ends here (help, version, -pgpfp): the tool acts on it and exits. */
  stop?: boolean;
  /** PuTTY quirk (psftp -b): with no value, report the option as unknown. */
  missingValueIsUnknown?: boolean;
  /** Applied to the finished configuration after the saved options (plink -s). */
  apply?: (config: PuttyConfig, value: string | undefined) => void;
}

/** What a tool accepts: PuTTY's TOOLTYPE_* bits, its back ends, and its own options. */
export interface ToolSpec {
  /** Program name, for messages. */
  name: string;
  /** TOOLTYPE_FILETRANSFER: -L/-R/-D/-m/-A/-a/-X/-x/-t/-T/-N/-nc/... are refused. */
  fileTransfer?: boolean;
  /** TOOLTYPE_HOST_ARG: the first non-option word is the host. */
  hostArg?: boolean;
  /** TOOLTYPE_HOST_ARG_CAN_BE_SESSION: ... or a saved session name. */
  hostArgCanBeSession?: boolean;
  /** TOOLTYPE_HOST_ARG_PROTOCOL_PREFIX: "ssh,host". */
  hostArgProtocolPrefix?: boolean;
  /** TOOLTYPE_HOST_ARG_FROM_LAUNCHABLE_LOAD: a host word may follow a -load without HostName. */
  hostArgFromLaunchableLoad?: boolean;
  /** TOOLTYPE_PORT_ARG: the word after the host is the port. */
  portArg?: boolean;
  /** TOOLTYPE_NO_VERBOSE_OPTION: -v is not available. */
  noVerboseOption?: boolean;
  /** The back ends compiled in (-ssh, -telnet, ... and the Protocol key). */
  protocols: readonly Protocol[];
  /**
   * Other non-option words: "command" (plink: the rest is the remote command), "files" (pscp:
   * options end, the rest are arguments), "userhost" (psftp: one host word, options continue),
   * "none" (putty: an error).
   */
  positional: "command" | "files" | "userhost" | "none";
  /** Whether "--" ends the options: "keep" the rest as arguments (pscp) or "discard" (psftp). */
  doubleDash?: "keep" | "discard";
  /** Environment variable naming the default protocol (plink: PLINK_PROTOCOL). */
  protocolEnv?: string;
  /** Use the local user name when none is configured (plink, pscp do; psftp asks). */
  localUserDefault?: boolean;
  options: Readonly<Record<string, ToolOption>>;
}

const HELP = { stop: true } as const;

export const PLINK: ToolSpec = {
  name: "plink",
  hostArg: true,
  hostArgCanBeSession: true,
  hostArgProtocolPrefix: true,
  hostArgFromLaunchableLoad: true,
  protocols: ALL_PROTOCOLS,
  positional: "command",
  protocolEnv: "PLINK_PROTOCOL",
  localUserDefault: true,
  options: {
    "-s": { apply: (c) => (c.subsystem = true) },
    "-V": { aliases: ["--version"], stop: true },
    "--help": HELP,
    "-pgpfp": HELP,
    "-shareexists": {},
    "-sanitise-stdout": { aliases: ["-sanitize-stdout"] },
    "-no-sanitise-stdout": { aliases: ["-no-sanitize-stdout"] },
    "-sanitise-stderr": { aliases: ["-sanitize-stderr"] },
    "-no-sanitise-stderr": { aliases: ["-no-sanitize-stderr"] },
    "-no-antispoof": {},
  },
};

export const PSCP: ToolSpec = {
  name: "pscp",
  fileTransfer: true,
  protocols: ["ssh", "ssh-connection"],
  positional: "files",
  doubleDash: "keep",
  localUserDefault: true,
  options: {
    "-pgpfp": HELP,
    "-r": {},
    "-p": {},
    "-q": {},
    "--help": { aliases: ["-h", "-?"], stop: true },
    "-V": { aliases: ["--version"], stop: true },
    "-ls": {},
    "-unsafe": {},
    "-sftp": {},
    "-scp": {},
    "-sanitise-stderr": {},
    "-no-sanitise-stderr": {},
  },
};

export const PSFTP: ToolSpec = {
  name: "psftp",
  fileTransfer: true,
  protocols: ["ssh", "ssh-connection"],
  positional: "userhost",
  doubleDash: "discard",
  options: {
    "--help": { aliases: ["-h", "-?"], stop: true },
    "-pgpfp": HELP,
    "-V": { aliases: ["--version"], stop: true },
    "-b": { value: true, missingValueIsUnknown: true },
    "-bc": {},
    "-be": {},
    "-sanitise-stderr": {},
    "-no-sanitise-stderr": {},
  },
};

export const PUTTY: ToolSpec = {
  name: "putty",
  hostArg: true,
  portArg: true,
  noVerboseOption: true,
  protocols: ALL_PROTOCOLS,
  positional: "none",
  localUserDefault: false,
  options: {
    "--help": { aliases: ["-help"], stop: true },
    // -V is not in PuTTY's GTK putty; puttykit's putty takes it as plink does.
    "--version": { aliases: ["-version", "-V"], stop: true },
    "-pgpfp": HELP,
  },
};

export interface ParseOptions {
  /** Environment (PUTTYDIR, HOME, PLINK_PROTOCOL, ...); defaults to the process's. */
  env?: Env;
  /** The local user name (PuTTY's get_username()); defaults to the passwd entry's. */
  localUser?: () => string | undefined;
  /** Reads -m and -pwfile files; defaults to Deno.readFileSync. */
  readFile?: (path: string) => Uint8Array;
}

export interface ParsedCommandLine {
  tool: string;
  /**
   * plink/putty: the finished configuration. pscp/psftp: the configuration before a host is
   * known (Default Settings or -load, without the saved options); use forHost().
   */
  config: PuttyConfig;
  /** Non-option words (see ToolSpec.positional); plink's are also in config.remoteCommand. */
  args: string[];
  /** Tool-specific flags given, by canonical name. */
  flags: Set<string>;
  /** Tool-specific options with values, by canonical name (the last one given wins). */
  values: Map<string, string>;
  /** The help/version option that stopped parsing, if any; nothing else is then checked. */
  stop?: string;
  /** -load was given, or the host argument named a saved session. */
  loadedSession: boolean;
  /** Things PuTTY would log and skip (e.g. a forwarding on an unknown service name). */
  warnings: string[];
  /**
   * pscp/psftp (do_cmd / psftp_connect): the configuration for connecting to `host` (without
   * "user@"; pscp strips a ":path" itself). Without -load, a saved session named `host` that has
   * a HostName is loaded instead; then the saved options apply, a "user@" in the resulting host
   * becomes the user, `user` (from user@host) wins over everything, and forwarding (agent, X11,
   * ports) is switched off. Each call starts afresh from the same base.
   */
  forHost(host: string, user?: string): PuttyConfig;
}

// ---------------------------------------------------------------------------------------------

interface State {
  spec: ToolSpec;
  env: Env;
  opts: ParseOptions;
  conf: PuttyConfig;
  loaded: boolean;
  seenHost: boolean;
  seenPort: boolean;
  verbose: boolean;
  /** Console/global state PuTTY keeps outside the Conf (survives session loads). */
  batch: boolean;
  password?: string;
  defaultProtocol: Protocol;
  defaultPort: number;
  saved: [Saved[], Saved[]];
  warnings: string[];
}

interface Saved {
  run: (st: State) => void;
}

interface CommonOption {
  arity: 1 | 2;
  /** UNAVAILABLE_IN(TOOLTYPE_FILETRANSFER). */
  notFileTransfer?: boolean;
  /** UNAVAILABLE_IN(TOOLTYPE_NO_VERBOSE_OPTION). */
  needsVerbose?: boolean;
  /** SAVEABLE(pri); "now" = processed immediately. */
  pri: 0 | 1 | "now";
  run: (st: State, value: string, name: string) => void;
}

function sessionOpts(st: State): LoadOptions {
  return {
    env: st.env,
    protocols: st.spec.protocols,
    defaultProtocol: st.defaultProtocol,
    defaultPort: st.defaultPort,
  };
}

function load(st: State, name: string | undefined) {
  const loaded = loadSession(name, sessionOpts(st));
  st.warnings.push(...loaded.warnings);
  return loaded;
}

function readFile(st: State, path: string): Uint8Array {
  return (st.opts.readFile ?? Deno.readFileSync)(path);
}

function setProtocol(st: State, p: Protocol) {
  st.defaultProtocol = p;
  st.conf.protocol = p;
  const port = PROTOCOL_DEFAULT_PORTS[p];
  if (port) {
    st.defaultPort = port;
    st.conf.port = port;
  }
}

function setBool<K extends keyof PuttyConfig>(key: K, value: PuttyConfig[K]) {
  return (st: State) => {
    st.conf[key] = value;
  };
}

const COMMON: Record<string, CommonOption> = {
  "-load": {
    arity: 2,
    pri: "now",
    run: (st, v) => {
      st.conf = load(st, v).config;
      st.loaded = true;
    },
  },
  "-v": { arity: 1, needsVerbose: true, pri: "now", run: (st) => (st.verbose = true) },
  "-l": { arity: 2, pri: 0, run: (st, v) => (st.conf.user = v || undefined) },
  "-loghost": { arity: 2, pri: 0, run: (st, v) => (st.conf.logHost = v) },
  "-hostkey": {
    arity: 2,
    pri: 0,
    run: (st, v) => {
      const key = canonicalManualHostKey(v);
      if (key === undefined) {
        throw new ConfigError(`'${v}' is not a valid format for a manual host key specification`);
      }
      if (!st.conf.hostKeys.includes(key)) st.conf.hostKeys.push(key);
    },
  },
  "-L": { arity: 2, notFileTransfer: true, pri: 0, run: (st, v, n) => addForward(st, n, v) },
  "-R": { arity: 2, notFileTransfer: true, pri: 0, run: (st, v, n) => addForward(st, n, v) },
  "-D": { arity: 2, notFileTransfer: true, pri: 0, run: (st, v, n) => addForward(st, n, v) },
  "-nc": {
    arity: 2,
    notFileTransfer: true,
    pri: 0,
    run: (st, v) => {
      const colon = hostStrchr(v, ":");
      if (colon < 0) throw new ConfigError("-nc expects argument of form 'host:port'");
      st.conf.ncHost = v.slice(0, colon);
      st.conf.ncPort = atoi(v.slice(colon + 1));
    },
  },
  "-m": {
    arity: 2,
    notFileTransfer: true,
    pri: 0,
    run: (st, v) => {
      let data: Uint8Array;
      try {
        data = readFile(st, v);
      } catch {
        throw new ConfigError(`unable to open command file "${v}"`);
      }
      // The command is a C string: it ends at the first NUL byte.
      const nul = data.indexOf(0);
      st.conf.remoteCommand = new TextDecoder().decode(nul < 0 ? data : data.subarray(0, nul));
      st.conf.pty = false;
    },
  },
  "-P": { arity: 2, pri: 1, run: (st, v) => (st.conf.port = atoi(v)) },
  "-pw": {
    arity: 2,
    pri: 1,
    run: (st, v) => {
      if (st.conf.protocol !== "ssh") {
        throw new ConfigError("the -pw option can only be used with the SSH protocol");
      }
      st.password = v;
    },
  },
  "-pwfile": {
    arity: 2,
    pri: 1,
    run: (st, v) => {
      if (st.conf.protocol !== "ssh") {
        throw new ConfigError("the -pwfile option can only be used with the SSH protocol");
      }
      let data: Uint8Array;
      try {
        data = readFile(st, v);
      } catch {
        throw new ConfigError(`unable to open password file '${v}'`);
      }
      if (data.length === 0) throw new ConfigError(`unable to read a password from file '${v}'`);
      // fgetline() then chomp(): the first line without its line ending.
      const text = new TextDecoder().decode(data);
      st.password = text.split("\n")[0].replace(/\r$/, "");
    },
  },
  "-agent": { arity: 1, pri: 0, run: setBool("tryAgent", true) },
  "-noagent": { arity: 1, pri: 0, run: setBool("tryAgent", false) },
  "-no-trivial-auth": { arity: 1, pri: 0, run: setBool("noTrivialAuth", true) },
  "-share": { arity: 1, pri: 0, run: setBool("share", true) },
  "-noshare": { arity: 1, pri: 0, run: setBool("share", false) },
  "-A": { arity: 1, notFileTransfer: true, pri: 0, run: setBool("agentForward", true) },
  "-a": { arity: 1, notFileTransfer: true, pri: 0, run: setBool("agentForward", false) },
  "-X": { arity: 1, notFileTransfer: true, pri: 0, run: setBool("x11Forward", true) },
  "-x": { arity: 1, notFileTransfer: true, pri: 0, run: setBool("x11Forward", false) },
  "-t": { arity: 1, notFileTransfer: true, pri: 1, run: setBool("pty", true) },
  "-T": { arity: 1, notFileTransfer: true, pri: 1, run: setBool("pty", false) },
  "-N": { arity: 1, notFileTransfer: true, pri: 0, run: setBool("noShell", true) },
  "-C": { arity: 1, pri: 0, run: setBool("compression", true) },
  "-1": { arity: 1, pri: 0, run: setBool("sshVersion", 1) },
  "-2": { arity: 1, pri: 0, run: setBool("sshVersion", 2) },
  "-i": { arity: 2, pri: 0, run: (st, v) => (st.conf.keyFile = v) },
  "-cert": { arity: 2, pri: 0, run: (st, v) => (st.conf.certFile = v) },
  "-4": { arity: 1, pri: 1, run: setBool("addressFamily", "ipv4") },
  "-6": { arity: 1, pri: 1, run: setBool("addressFamily", "ipv6") },
  "-sercfg": {
    arity: 2,
    notFileTransfer: true,
    pri: 1,
    run: (st) => {
      // Serial lines are not supported by puttykit; keep PuTTY's check and ignore the value.
      if (st.conf.protocol !== "serial") {
        throw new ConfigError("the -sercfg option can only be used with the serial protocol");
      }
    },
  },
  "-sessionlog": {
    arity: 2,
    notFileTransfer: true,
    pri: 0,
    run: (st, v) => {
      st.conf.logFile = v;
      st.conf.logType = "session";
    },
  },
  "-sshlog": {
    arity: 2,
    pri: 0,
    run: (st, v, n) => {
      st.conf.logFile = v;
      st.conf.logType = n === "-sshlog" ? "packets" : "raw";
    },
  },
  "-logoverwrite": { arity: 1, pri: 0, run: setBool("logClash", "overwrite") },
  "-logappend": { arity: 1, pri: 0, run: setBool("logClash", "append") },
  "-proxycmd": {
    arity: 2,
    pri: 0,
    run: (st, v) => {
      st.conf.proxyType = "cmd";
      st.conf.proxyCommand = v;
    },
  },
  // SAVEABLE(0) in PuTTY, but it only sets console state no session load can undo, so acting at
  // once is equivalent and lets pscp/psftp see it before forHost().
  "-batch": { arity: 1, pri: "now", run: (st) => (st.batch = true) },
  // Console details puttykit doesn't distinguish; accepted and ignored.
  "-legacy-stdio-prompts": { arity: 1, pri: "now", run: () => {} },
  "-legacy-charset-handling": { arity: 1, pri: "now", run: () => {} },
};

const COMMON_ALIASES: Record<string, string> = {
  "-pagent": "-agent",
  "-pageant": "-agent",
  "-nopagent": "-noagent",
  "-nopageant": "-noagent",
  "-ipv4": "-4",
  "-ipv6": "-6",
  "-sshrawlog": "-sshlog",
  "-legacy_stdio_prompts": "-legacy-stdio-prompts",
  "-legacy_charset_handling": "-legacy-charset-handling",
};

/** -L/-R/-D as cmdline.c turns them into PortForwardings entries. */
function addForward(st: State, name: string, value: string) {
  let key: string;
  let val: string;
  if (name !== "-D") {
    const type = name[1];
    // The split is at the second-to-last colon outside brackets: [bind:]port : host:port.
    let q = hostStrchr(value, ":");
    let qq = q;
    while (qq >= 0) {
      const next = hostStrchr(value.slice(qq + 1), ":");
      const qqq = next < 0 ? -1 : qq + 1 + next;
      if (qqq >= 0) q = qq;
      qq = qqq;
    }
    if (q < 0) throw new ConfigError(`-${type} expects at least two colons in its argument`);
    key = type + value.slice(0, q);
    val = value.slice(q + 1);
  } else {
    key = "L" + value;
    val = "D";
  }
  const pf = parsePortForwardKey(key, val);
  if (typeof pf === "string") st.warnings.push(pf);
  else addPortForward(st.conf.portForwards, pf);
}

/** Like cmdline_process_param: 0 = not ours, 1 = used p, 2 = used p and value. */
function processCommon(st: State, p: string, value: string | undefined): 0 | 1 | 2 {
  const name = COMMON_ALIASES[p] ?? p;
  let opt = COMMON[name];
  if (!opt && p.startsWith("-") && st.spec.protocols.includes(p.slice(1) as Protocol)) {
    const prot = p.slice(1) as Protocol;
    opt = { arity: 1, pri: 0, run: (s) => setProtocol(s, prot) };
  }
  if (!opt) return 0;
  if (opt.arity === 2 && value === undefined) {
    throw new ConfigError(`option "${p}" requires an argument`);
  }
  if (
    (opt.notFileTransfer && st.spec.fileTransfer) || (opt.needsVerbose && st.spec.noVerboseOption)
  ) {
    throw new ConfigError(`option "${p}" not available in this tool`);
  }
  const v = value ?? "";
  if (opt.pri === "now") opt.run(st, v, name);
  else st.saved[opt.pri].push({ run: (s) => opt.run(s, v, name) });
  return opt.arity;
}

function launchable(c: PuttyConfig): boolean {
  return c.host !== "";
}

/** The host word of plink/putty (the p[0] != '-' branch of cmdline_process_param). */
function processHostArg(st: State, arg: string): boolean {
  const spec = st.spec;
  if (
    spec.hostArg && !st.seenHost &&
    (!spec.hostArgFromLaunchableLoad || !st.loaded || !launchable(st.conf))
  ) {
    let p = arg;
    if (p.startsWith("telnet:")) {
      p = p.slice(7);
      if (p.startsWith("//")) p = p.slice(2);
      if (st.spec.protocols.includes("telnet")) st.conf.protocol = "telnet";
      const end = hostStrchr(p, ":/");
      st.conf.host = end < 0 ? p : p.slice(0, end);
      st.seenHost = true;
      if (end >= 0 && p[end] === ":") {
        st.conf.port = atoi(p.slice(end + 1));
        st.seenPort = true;
      } else {
        st.conf.port = PROTOCOL_DEFAULT_PORTS.telnet;
      }
      return true;
    }
    let user: string | undefined;
    let portOverride = -1;
    if (spec.hostArgProtocolPrefix) {
      const comma = p.indexOf(",");
      if (comma >= 0) {
        const prefix = p.slice(0, comma);
        if (!spec.protocols.includes(prefix as Protocol)) {
          throw new ConfigError(`unrecognised protocol prefix '${prefix}'`);
        }
        setProtocol(st, prefix as Protocol);
        portOverride = PROTOCOL_DEFAULT_PORTS[prefix as Protocol];
        p = p.slice(comma + 1);
      }
    }
    let hostAfterUser = p;
    if (spec.hostArgCanBeSession) {
      const at = p.lastIndexOf("@");
      if (at >= 0) {
        user = p.slice(0, at);
        hostAfterUser = p.slice(at + 1);
      }
    }
    const hostname = p.replace(/^[ \t]+/, "").replace(/[ \t]+$/, "");
    st.seenHost = true;
    st.conf.host = hostname;
    if (spec.hostArgCanBeSession && !st.loaded) {
      const session = load(st, hostAfterUser);
      if (session.exists && launchable(session.config)) {
        st.conf = session.config;
        st.loaded = true;
        if (user !== undefined) st.conf.user = user || undefined;
      }
    }
    if (portOverride >= 0) st.conf.port = portOverride;
    return true;
  }
  if (spec.portArg && !st.seenPort) {
    // Pretend this was "-P word": deferred like -P.
    processCommon(st, "-P", arg);
    st.seenPort = true;
    return true;
  }
  return false;
}

/** prepare_session(): user@host, a single ":suffix" dropped, whitespace removed. */
function prepareSession(c: PuttyConfig): void {
  let host = c.host.replace(/^[ \t]+/, "");
  if (host !== "") {
    const at = host.lastIndexOf("@");
    if (at >= 0) {
      c.user = host.slice(0, at) || undefined;
      host = host.slice(at + 1);
    }
  }
  const colon = hostStrchr(host, ":");
  if (colon >= 0 && colon === hostStrchr(host, ":", true)) host = host.slice(0, colon);
  c.host = host.replace(/[ \t]/g, "");
}

function runSaved(st: State): void {
  for (const list of st.saved) for (const s of list) s.run(st);
}

/** PuTTY's get_username(): the passwd entry of our uid (else $USER / $LOGNAME). */
function defaultLocalUser(env: Env): string | undefined {
  return passwdEntry()?.name || env("USER") || env("LOGNAME") || undefined;
}

function cloneConfig(c: PuttyConfig): PuttyConfig {
  return {
    ...c,
    hostKeys: [...c.hostKeys],
    portForwards: c.portForwards.map((pf) => ({ ...pf })),
    env: c.env.map(([k, v]) => [k, v] as [string, string]),
  };
}

function finish(st: State, flagApplies: (() => void)[]): PuttyConfig {
  const c = st.conf;
  if (st.spec.localUserDefault && !c.user) {
    c.user = st.opts.localUser ? st.opts.localUser() : defaultLocalUser(st.env);
  }
  for (const f of flagApplies) f();
  c.verbose = st.verbose;
  c.batch = st.batch;
  if (st.password !== undefined) c.password = st.password;
  return c;
}

/** Parse a tool's arguments (without the program name). Throws ConfigError. */
export function parseCommandLine(
  spec: ToolSpec,
  argv: readonly string[],
  opts: ParseOptions = {},
): ParsedCommandLine {
  const baseEnv = opts.env ?? processEnv;
  // Resolve the PuTTY directory once per parse (it costs a few stat() calls each time).
  const dir = puttyDir(baseEnv);
  const env: Env = (name) => (name === "PUTTYDIR" ? dir : baseEnv(name));
  const st: State = {
    spec,
    env,
    opts,
    conf: undefined as unknown as PuttyConfig,
    loaded: false,
    seenHost: false,
    seenPort: false,
    verbose: false,
    batch: false,
    defaultProtocol: "ssh",
    defaultPort: 22,
    saved: [[], []],
    warnings: [],
  };
  st.conf = load(st, undefined).config;
  if (spec.hostArg) {
    st.defaultProtocol = st.conf.protocol;
    st.defaultPort = st.conf.port;
  }
  if (spec.protocolEnv) {
    const prot = env(spec.protocolEnv) as Protocol | undefined;
    if (prot !== undefined && spec.protocols.includes(prot)) {
      st.defaultProtocol = prot;
      st.defaultPort = PROTOCOL_DEFAULT_PORTS[prot];
      st.conf.protocol = prot;
      st.conf.port = PROTOCOL_DEFAULT_PORTS[prot];
    }
  }

  const args: string[] = [];
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const applies: (() => void)[] = [];
  let stop: string | undefined;
  const aliasOf = new Map<string, string>();
  for (const [name, o] of Object.entries(spec.options)) {
    aliasOf.set(name, name);
    for (const a of o.aliases ?? []) aliasOf.set(a, name);
  }

  let i = 0;
  while (i < argv.length) {
    const p = argv[i++];
    const next = i < argv.length ? argv[i] : undefined;
    if (!p.startsWith("-")) {
      if (spec.hostArg && processHostArg(st, p)) continue;
      if (spec.positional === "command") {
        args.push(p, ...argv.slice(i));
        st.conf.remoteCommand = args.join(" ");
        st.conf.pty = false;
        break;
      } else if (spec.positional === "files") {
        args.push(p, ...argv.slice(i));
        break;
      } else if (spec.positional === "userhost") {
        if (args.length) throw new ConfigError(`unexpected extra argument "${p}"`);
        args.push(p);
        continue;
      } else {
        throw new ConfigError(`unexpected non-option argument '${p}'`);
      }
    }
    const used = processCommon(st, p, next);
    if (used) {
      i += used - 1;
      continue;
    }
    if (p === "--" && spec.doubleDash) {
      if (spec.doubleDash === "keep") args.push(...argv.slice(i));
      break;
    }
    const name = aliasOf.get(p);
    const o = name === undefined ? undefined : spec.options[name];
    if (name === undefined || o === undefined) throw new ConfigError(`unknown option "${p}"`);
    let value: string | undefined;
    if (o.value) {
      if (next === undefined) {
        throw new ConfigError(
          o.missingValueIsUnknown ? `unknown option "${p}"` : `option "${p}" requires an argument`,
        );
      }
      value = next;
      i++;
      values.set(name, value);
    }
    flags.add(name);
    if (o.apply) applies.push(() => o.apply!(st.conf, value));
    if (o.stop) {
      stop = name;
      break;
    }
  }

  const base = st;
  const result: ParsedCommandLine = {
    tool: spec.name,
    config: st.conf,
    args,
    flags,
    values,
    stop,
    loadedSession: st.loaded,
    warnings: st.warnings,
    forHost: (host: string, user?: string) => {
      if (!spec.fileTransfer) throw new Error(`${spec.name}: forHost() is for pscp/psftp`);
      return resolveFileTransferHost(base, host, user, applies);
    },
  };
  if (stop !== undefined) {
    result.config.verbose = st.verbose;
    return result;
  }

  if (spec.hostArg) {
    if (!launchable(st.conf) || (!st.seenHost && !st.loaded)) {
      throw new ConfigError("no valid host name provided");
    }
    prepareSession(st.conf);
    runSaved(st);
    result.config = finish(st, applies);
  } else {
    result.config.verbose = st.verbose;
    result.config.batch = st.batch;
  }
  return result;
}

/** pscp's do_cmd() / psftp's psftp_connect(), on a copy of the parsed base state. */
function resolveFileTransferHost(
  base: State,
  host: string,
  user: string | undefined,
  applies: (() => void)[],
): PuttyConfig {
  const st: State = {
    ...base,
    conf: cloneConfig(base.conf),
    warnings: [...base.warnings],
  };
  if (host === "") throw new ConfigError("Empty host name");
  if (!st.loaded) {
    const session = load(st, host);
    if (session.config.host !== "") st.conf = session.config;
    else st.conf.host = host;
  } else {
    st.conf.host = host;
  }
  if (!st.spec.protocols.includes(st.conf.protocol)) {
    st.conf.protocol = "ssh";
    st.conf.port = 22;
  }
  if (st.conf.sshVersion === 1) st.conf.sshVersion = 2; // overridable by -1, as in PuTTY
  runSaved(st);
  let h = st.conf.host.replace(/^[ \t]+/, "");
  if (h !== "") {
    const at = h.lastIndexOf("@");
    if (at >= 0) {
      st.conf.user = h.slice(0, at) || undefined;
      h = h.slice(at + 1);
    }
  }
  st.conf.host = h.replace(/[ \t]/g, "");
  if (user) st.conf.user = user;
  st.conf.agentForward = false;
  st.conf.x11Forward = false;
  st.conf.portForwards = [];
  st.conf.pty = false;
  return finish(st, applies.map((f) => f));
}

// ---------------------------------------------------------------------------------------------
// -hostkey (utils/validate_manual_hostkey.c).

const B64_NOEQ = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/";

function spanOf(s: string, set: string, from = 0): number {
  let n = 0;
  while (from + n < s.length && set.includes(s[from + n])) n++;
  return n;
}

function b64val(c: string): number {
  if (c === "=") return -1;
  const v = B64_NOEQ.indexOf(c);
  // B64_NOEQ is ordered 0-9 a-z A-Z + /; map to the real base64 alphabet values.
  if (v < 0) return -2;
  if (v < 10) return v + 52;
  if (v < 36) return v - 10 + 26;
  if (v < 62) return v - 36;
  return v; // '+' = 62, '/' = 63
}

/** base64_decode_atom(): the bytes of one 4-character atom ([] if invalid). */
function decodeAtom(atom: string): number[] {
  const v = [...atom].map(b64val);
  if (v.length < 4 || v.some((x) => x === -2) || v[0] === -1 || v[1] === -1) return [];
  if (v[2] === -1 && v[3] !== -1) return [];
  const len = v[3] !== -1 ? 3 : v[2] !== -1 ? 2 : 1;
  const word = (v[0] << 18) | (v[1] << 12) | ((v[2] & 0x3f) << 6) | (v[3] & 0x3f);
  return [(word >> 16) & 0xff, (word >> 8) & 0xff, word & 0xff].slice(0, len);
}

/**
 * validate_manual_hostkey(): the canonical form of a -hostkey argument, or undefined if it is not
 * one. Accepts (as any whitespace-separated word) "SHA256:<43 base64 chars>", an MD5 fingerprint
 * "aa:bb:...:pp" with or without "MD5:" (canonically lower case, no prefix), or a base64 SSH-2
 * public key blob (e.g. pasted from an OpenSSH .pub line).
 */
export function canonicalManualHostKey(spec: string): string | undefined {
  for (const word of spec.split(/[ \t]+/)) {
    if (word === "") continue;
    if (word.startsWith("SHA256:") && spanOf(word, B64_NOEQ, 7) === 43) return word.slice(0, 50);
    const md5 = word.startsWith("MD5:") ? word.slice(4) : word;
    if (/^([0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}$/.test(md5)) return md5.toLowerCase();
    const q = word.replace(/[\r\n]/g, "");
    if (q.length % 4 === 0 && q.length > 8 && spanOf(q, B64_NOEQ + "=") === q.length) {
      const decoded = [...decodeAtom(q.slice(0, 4))];
      if (decoded.length < 3) continue;
      decoded.push(...decodeAtom(q.slice(4, 8)));
      if (decoded.length < 4) continue;
      const alglen = ((decoded[0] << 24) | (decoded[1] << 16) | (decoded[2] << 8) | decoded[3]) >>>
        0;
      if (alglen > 64) continue;
      if (q.length < Math.floor((alglen + 4 + 2) / 3)) continue;
      return q;
    }
  }
  return undefined;
}
