/**
 * The one configuration every front-end works from: what PuTTY calls a Conf (PuttyConfig, with
 * the SessionConfig part the connection code reads). Built from PuTTY's defaults, then a saved
 * session (-load, or a host name matching a saved session), then the command line, in that
 * order of precedence (later wins).
 */

export type AddressFamily = "any" | "ipv4" | "ipv6";

export interface PortForward {
  /** L = local (-L), R = remote (-R), D = dynamic SOCKS (-D). */
  kind: "L" | "R" | "D";
  /** Address to bind; undefined means loopback for L/D and the server's default for R. */
  bindAddress?: string;
  bindPort: number;
  /** Destination, for L and R. */
  host?: string;
  port?: number;
}

export interface SessionConfig {
  /** Host to connect to (PuTTY's HostName). Empty until given. */
  host: string;
  /** PuTTY's PortNumber; 22 by default. */
  port: number;
  /** Remote user name (UserName); undefined means "ask" / none given. */
  user?: string;
  /** Password from -pw. */
  password?: string;
  /** Private key file from -i or PublicKeyFile. */
  keyFile?: string;
  /** -batch: never prompt; fail instead. */
  batch: boolean;
  /** -v: log the connection's progress on stderr. */
  verbose: boolean;
  /** -4 / -6 (AddressFamily). */
  addressFamily: AddressFamily;
  /** -C (Compression). */
  compression: boolean;
  /** -A / -a (AgentFwd). */
  agentForward: boolean;
  /** Use Pageant/ssh-agent for authentication (TryAgent, -noagent turns it off). */
  tryAgent: boolean;
  /** -t / -T: force a pty on or off; undefined lets the front-end decide (PuTTY's nopty). */
  pty?: boolean;
  /** -N: don't start a shell or command (ssh_no_shell). */
  noShell: boolean;
  /** Remote command (RemoteCommand, from the command line or -m file). */
  remoteCommand?: string;
  /** -s: remote command is an SSH subsystem name (ssh_subsys). */
  subsystem: boolean;
  /** -hostkey: acceptable host keys, as SHA256:/MD5 fingerprints or key blobs. */
  hostKeys: string[];
  /** -share / -noshare (ConnectionSharing). */
  share: boolean;
  /** ConnectionSharingUpstream: may become an upstream. */
  shareUpstream: boolean;
  /** ConnectionSharingDownstream: may use an existing upstream. */
  shareDownstream: boolean;
  /** -L/-R/-D and PortForwardings from a saved session. */
  portForwards: PortForward[];
  /** TerminalType (e.g. "xterm"). */
  termType: string;
  /** Environment variables to send (Environment). */
  env: [string, string][];
  /** Name of the saved session this came from, if any. */
  sessionName?: string;
}

export function defaultConfig(): SessionConfig {
  return {
    host: "",
    port: 22,
    batch: false,
    verbose: false,
    addressFamily: "any",
    compression: false,
    agentForward: false,
    tryAgent: true,
    noShell: false,
    subsystem: false,
    hostKeys: [],
    share: false,
    shareUpstream: true,
    shareDownstream: true,
    portForwards: [],
    termType: "xterm",
    env: [],
  };
}

/** A usage error: the command line or a saved session asked for something impossible. */
export class ConfigError extends Error {}

/** The command line names no host (PuTTY: "no valid host name provided"). */
export class NoHostError extends ConfigError {
  constructor() {
    super("no valid host name provided");
  }
}

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

export const PROXY_TYPES: ProxyType[] = [
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
  /**
   * ControlPath (-controlpath; ours, not PuTTY's): an OpenSSH-style control socket, with ssh's
   * %-tokens and ~ unexpanded. With sharing on, a live ControlMaster there is used as the
   * connection, and an upstream of ours listens there for OpenSSH clients too.
   */
  controlPath: string;
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
    controlPath: "",
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
