/**
 * How the library talks to the person running a tool: the front-end implements Interaction (the
 * library never prints), and the host name PuTTY keys host keys and sharing sockets on.
 */

import type { PuttyConfig } from "../config/types.ts";
import type { PacketLog } from "../log/log_files.ts";

export interface HostKeyQuestion {
  host: string;
  port: number;
  keyType: string;
  /** "ssh-ed25519 255 SHA256:..." as PuTTY shows it. */
  fingerprint: string;
  /** A key of this type is cached for the host but differs (else: none cached). */
  changed: boolean;
}

/** How a front-end talks to its user. The library never prints. */
export interface Interaction {
  /** -v event log line. */
  log(text: string): void;
  /** Something the user should see even without -v (e.g. sharing refused for safety). */
  warn(text: string): void;
  /** Asks a question (echo off for secrets); undefined when no one can answer. */
  prompt(text: string, echo: boolean): Promise<string | undefined>;
  /** Unknown host key: store it, accept once, or abandon. Not called in batch mode. */
  confirmHostKey(q: HostKeyQuestion): Promise<"store" | "once" | "no">;
  /** Authentication banner / keyboard-interactive instructions from the server. */
  banner?(text: string): void;
  /**
   * The -sshlog file exists and LogFileClash says to ask: overwrite it, append to it, or
   * (undefined) log nothing. Without this method: no logging.
   */
  askLogClash?(path: string): Promise<"overwrite" | "append" | undefined>;
  /** The packet log, once open: event log lines should go to it too. */
  attachPacketLog?(log: PacketLog): void;
}

/** The host PuTTY indexes the host-key cache and sharing sockets by: -loghost if given. */
export function keyHost(cfg: PuttyConfig): string {
  return cfg.logHost || cfg.host;
}
