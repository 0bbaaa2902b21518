/**
 * The options every tool shares, as cmdline.c's cmdline_process_param() handles them, and the
 * parser state they act on (lib/config/command_line.ts runs the parse).
 */

import { ConfigError } from "./types.ts";
import { type LoadOptions, loadSession } from "./settings_file.ts";
import { atoi } from "./forwarding_spec.ts";
import { addPortForward, hostStrchr, parsePortForwardKey } from "./forwarding_spec.ts";
import { type Env, type Protocol, PROTOCOL_DEFAULT_PORTS, type PuttyConfig } from "./types.ts";
import { canonicalManualHostKey } from "./manual_host_key.ts";
import type { ToolSpec } from "./tool_specs.ts";

export interface ParseOptions {
  /** Environment (PUTTYDIR, HOME, PLINK_PROTOCOL, ...); defaults to the process's. */
  env?: Env;
  /** The local user name (PuTTY's get_username()); defaults to the passwd entry's. */
  localUser?: () => string | undefined;
  /** Reads -m and -pwfile files; defaults to Deno.readFileSync. */
  readFile?: (path: string) => Uint8Array;
}

export interface State {
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

export interface Saved {
  run: (st: State) => void;
}

export interface CommonOption {
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

export function load(st: State, name: string | undefined) {
  const loaded = loadSession(name, sessionOpts(st));
  st.warnings.push(...loaded.warnings);
  return loaded;
}

function readFile(st: State, path: string): Uint8Array {
  return (st.opts.readFile ?? Deno.readFileSync)(path);
}

export function setProtocol(st: State, p: Protocol) {
  st.defaultProtocol = p;
  st.conf.protocol = p;
  const port = PROTOCOL_DEFAULT_PORTS[p];
  if (port) {
    st.defaultPort = port;
    st.conf.port = port;
  }
}

/** A saved option that sets one configuration field to `value`. */
function setField<K extends keyof PuttyConfig>(key: K, value: PuttyConfig[K]) {
  return (st: State) => {
    st.conf[key] = value;
  };
}

export const COMMON: Record<string, CommonOption> = {
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
  "-agent": { arity: 1, pri: 0, run: setField("tryAgent", true) },
  "-noagent": { arity: 1, pri: 0, run: setField("tryAgent", false) },
  "-no-trivial-auth": { arity: 1, pri: 0, run: setField("noTrivialAuth", true) },
  "-share": { arity: 1, pri: 0, run: setField("share", true) },
  "-noshare": { arity: 1, pri: 0, run: setField("share", false) },
  "-controlpath": { arity: 2, pri: 0, run: (st, v) => (st.conf.controlPath = v) },
  "-A": { arity: 1, notFileTransfer: true, pri: 0, run: setField("agentForward", true) },
  "-a": { arity: 1, notFileTransfer: true, pri: 0, run: setField("agentForward", false) },
  "-X": { arity: 1, notFileTransfer: true, pri: 0, run: setField("x11Forward", true) },
  "-x": { arity: 1, notFileTransfer: true, pri: 0, run: setField("x11Forward", false) },
  "-t": { arity: 1, notFileTransfer: true, pri: 1, run: setField("pty", true) },
  "-T": { arity: 1, notFileTransfer: true, pri: 1, run: setField("pty", false) },
  "-N": { arity: 1, notFileTransfer: true, pri: 0, run: setField("noShell", true) },
  "-C": { arity: 1, pri: 0, run: setField("compression", true) },
  "-1": { arity: 1, pri: 0, run: setField("sshVersion", 1) },
  "-2": { arity: 1, pri: 0, run: setField("sshVersion", 2) },
  "-i": { arity: 2, pri: 0, run: (st, v) => (st.conf.keyFile = v) },
  "-cert": { arity: 2, pri: 0, run: (st, v) => (st.conf.certFile = v) },
  "-4": { arity: 1, pri: 1, run: setField("addressFamily", "ipv4") },
  "-6": { arity: 1, pri: 1, run: setField("addressFamily", "ipv6") },
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
  "-logoverwrite": { arity: 1, pri: 0, run: setField("logClash", "overwrite") },
  "-logappend": { arity: 1, pri: 0, run: setField("logClash", "append") },
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

export const COMMON_ALIASES: Record<string, string> = {
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
export function processCommon(st: State, p: string, value: string | undefined): 0 | 1 | 2 {
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
