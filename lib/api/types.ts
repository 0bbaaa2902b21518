/** The types of the library API's options, shared by its light entry and its implementation. */

/** How the connection was made: through a live upstream, as the upstream, or alone. */
export type Role = "upstream" | "downstream" | "direct";

/**
 * An unknown host key to accept or refuse (a changed key is always refused).
 *
 * @example
 * ```ts
 * const questions: Questions = {
 *   hostKey: (key: HostKeyPrompt) => Promise.resolve(key.keyType === "ssh-ed25519" ? "once" : "no"),
 * };
 * ```
 */
export interface HostKeyPrompt {
  /** The host as PuTTY keys its cache (the -loghost, if set). */
  host: string;
  /** The server's port. */
  port: number;
  /** "ssh-ed25519", "ecdsa-sha2-nistp256", ... */
  keyType: string;
  /** "ssh-ed25519 255 SHA256:..." as PuTTY shows it. */
  fingerprint: string;
}

/**
 * Answers the questions PuTTY's tools ask a person. Without it (or without one of its methods),
 * the question is not asked and the connection behaves as in `-batch`.
 *
 * @example
 * ```ts
 * const conn = await connect("host", {
 *   questions: { prompt: (q, { echo }) => Promise.resolve(echo ? undefined : Deno.env.get("PW")) },
 * });
 * ```
 */
export interface Questions {
  /** "login as: ", "user@host's password: ", a key's passphrase; undefined declines. */
  prompt?(question: string, options: { echo: boolean }): Promise<string | undefined>;
  /** An unknown host key: "store" it in PuTTY's cache, accept it "once", or refuse ("no"). */
  hostKey?(key: HostKeyPrompt): Promise<"store" | "once" | "no">;
  /** The server's authentication banner. */
  banner?(text: string): void;
}

/**
 * How to connect: the settings a program needs, named as in TypeScript; whatever is left out
 * comes from the saved session (when `target` names one) and PuTTY's defaults.
 *
 * @example
 * ```ts
 * const options: ConnectOptions = { user: "deploy", keyFile: "deploy.ppk", share: true };
 * ```
 */
export interface ConnectOptions {
  /** Server port (default: the saved session's, else 22). */
  port?: number;
  /** User name (default: from `user@host`, the saved session, else PuTTY's rules). */
  user?: string;
  /** A private key file, PuTTY `.ppk` or OpenSSH format. */
  keyFile?: string;
  /** Password (or passphrase-less keyboard-interactive answer), as plink's -pw. */
  password?: string;
  /**
   * Accepted host keys (fingerprints "SHA256:..." / MD5 hex, or a public key blob), as `-hostkey`:
   * when given, only these count and PuTTY's host-key cache is not consulted.
   */
  hostKeys?: string[];
  /**
   * Connection sharing (PuTTY's): use a live upstream for the same `user@host:port` (ours or
   * PuTTY's), else become the upstream and serve later downstreams while this connection lives.
   * Default: the saved session's setting (off in PuTTY's defaults).
   */
  share?: boolean;
  /** An OpenSSH ControlMaster socket to use (proxy mode), as the tools' -controlpath. */
  controlPath?: string;
  /** Never ask anything (default: true unless `questions` is given). */
  batch?: boolean;
  /** How to ask questions; see Questions. */
  questions?: Questions;
  /** Event-log lines, as `-v` prints them (also warnings the tools show without -v). */
  log?: (line: string) => void;
  /** As `-v`: also PuTTY's "Reusing a shared connection" notices go to `log`. */
  verbose?: boolean;
  /** Aborts a connection under way, or closes an open one at once. */
  signal?: AbortSignal;
}
