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
 *
 * Tool specs: PLINK, PSCP, PSFTP, PUTTY (lib/config/tool_specs.ts); the options every tool
 * shares are in lib/config/common_options.ts.
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

import { ConfigError, NoHostError } from "./types.ts";
import { atoi } from "./forwarding_spec.ts";
import { hostStrchr } from "./forwarding_spec.ts";
import { puttyDir } from "./putty_dir.ts";
import { passwdEntry } from "../util/passwd.ts";
import {
  type Env,
  processEnv,
  type Protocol,
  PROTOCOL_DEFAULT_PORTS,
  type PuttyConfig,
} from "./types.ts";
import {
  load,
  type ParseOptions,
  processCommon,
  setProtocol,
  type State,
} from "./common_options.ts";
import type { ToolSpec } from "./tool_specs.ts";

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

/**
 * A "user@" in the host name becomes the user (an empty one clears it), as prepare_session()
 * and psftp_connect() do; returns the host without it or its leading blanks.
 */
function takeUserFromHost(c: PuttyConfig): string {
  const host = c.host.replace(/^[ \t]+/, "");
  const at = host.lastIndexOf("@");
  if (host === "" || at < 0) return host;
  c.user = host.slice(0, at) || undefined;
  return host.slice(at + 1);
}

/** prepare_session(): user@host, a single ":suffix" dropped, whitespace removed. */
function prepareSession(c: PuttyConfig): void {
  let host = takeUserFromHost(c);
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
      throw new NoHostError();
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
  st.conf.host = takeUserFromHost(st.conf).replace(/[ \t]/g, "");
  if (user) st.conf.user = user;
  st.conf.agentForward = false;
  st.conf.x11Forward = false;
  st.conf.portForwards = [];
  st.conf.pty = false;
  return finish(st, applies.map((f) => f));
}
