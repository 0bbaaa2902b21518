/**
 * How the library talks to the person running a tool: the front-end implements Interaction (the
 * library never prints), and the host name PuTTY keys host keys and sharing sockets on.
 */

import type { PuttyConfig } from "../config/types.ts";
import { hostStrduptrim } from "../config/forwarding_spec.ts";
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

/**
 * The host PuTTY indexes the host-key cache and sharing sockets by: -loghost if given, without
 * the brackets of an IPv6 literal ("[::1]" is "::1").
 */
export function keyHost(cfg: PuttyConfig): string {
  return hostStrduptrim(cfg.logHost || cfg.host);
}

/** PuTTY's words for an unknown or changed host key, before it asks what to do. */
export function hostKeyQuestionText(q: HostKeyQuestion): string {
  const where = `  ${q.host} (port ${q.port})`;
  if (q.changed) {
    return [
      "WARNING - POTENTIAL SECURITY BREACH!",
      "The host key does not match the one PuTTY has cached for this server:",
      where,
      "This means that either the server administrator has changed the host key, or you have " +
      "actually connected to another computer pretending to be the server.",
      "The new " + q.keyType + " key fingerprint is:",
      `  ${q.fingerprint}`,
      "",
    ].join("\n");
  }
  return [
    "The host key is not cached for this server:",
    where,
    "You have no guarantee that the server is the computer you think it is.",
    `The server's ${q.keyType} key fingerprint is:`,
    `  ${q.fingerprint}`,
    'If you trust this host, enter "y" to add the key to PuTTY\'s cache and carry on ' +
    "connecting.",
    "If you want to carry on connecting just once, without adding the key to the cache, " +
    'enter "n".',
    "If you do not trust this host, press Return to abandon the connection.",
    "",
  ].join("\n");
}
