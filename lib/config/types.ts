/**
 * The one configuration every front-end works from: what PuTTY calls a Conf. Built from PuTTY's
 * defaults, then a saved session (-load, or a host name matching a saved session), then the
 * command line, in that order of precedence (later wins).
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
