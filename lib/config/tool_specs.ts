/**
 * What each tool accepts on its command line, as PuTTY's TOOLTYPE_* bits and per-tool main loops
 * (unix/plink.c, pscp.c, psftp.c, unix/main-gtk-simple.c) say: PLINK, PSCP, PSFTP, PUTTY.
 */

import { ALL_PROTOCOLS, type Protocol, type PuttyConfig } from "./types.ts";

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
