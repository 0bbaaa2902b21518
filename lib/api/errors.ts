/**
 * The error classes the library API throws. Each carries the one-line message PuTTY's tools print
 * for the same failure (without "FATAL ERROR: "), so a program can show it as it is.
 */

/**
 * Anything the library API reports; the others extend it.
 *
 * @example
 * ```ts
 * try {
 *   await connect("host", { batch: true });
 * } catch (e) {
 *   if (e instanceof PuttykitError) console.error(`${e.name}: ${e.message}`);
 * }
 * ```
 */
export class PuttykitError extends Error {
  /** The class's name, as `instanceof` would tell. */
  override name = "PuttykitError";
}

/**
 * The host key was refused: unknown in batch mode, changed, not a `hostKeys` entry, or declined.
 *
 * @example
 * ```ts
 * await connect("host", { batch: true }).catch((e) => {
 *   if (e instanceof HostKeyError) console.error("run plink once by hand to store the key");
 * });
 * ```
 */
export class HostKeyError extends PuttykitError {
  /** "HostKeyError". */
  override name = "HostKeyError";
}

/**
 * The server accepted none of our ways of logging in, or a needed answer could not be asked.
 *
 * @example
 * ```ts
 * await connect("host", { password: "guess" }).catch((e) => e instanceof AuthenticationError);
 * ```
 */
export class AuthenticationError extends PuttykitError {
  /** "AuthenticationError". */
  override name = "AuthenticationError";
}

/**
 * The connection could not be made, or it was lost (network, proxy, protocol failure).
 *
 * @example
 * ```ts
 * const reason = await conn.closed; // a ConnectionError, unless we closed it
 * ```
 */
export class ConnectionError extends PuttykitError {
  /** "ConnectionError". */
  override name = "ConnectionError";
}

/**
 * The options or the target do not make a usable configuration.
 *
 * @example
 * ```ts
 * await connect("", {}).catch((e) => e instanceof ConfigurationError); // true
 * ```
 */
export class ConfigurationError extends PuttykitError {
  /** "ConfigurationError". */
  override name = "ConfigurationError";
}

/**
 * The server refused what was asked of it: a channel, a command, a subsystem, a forwarding.
 *
 * @example
 * ```ts
 * await conn.forwardRemote({ listenPort: 80, host: "localhost", port: 8080 })
 *   .catch((e) => e instanceof RefusedError); // a privileged port
 * ```
 */
export class RefusedError extends PuttykitError {
  /** "RefusedError". */
  override name = "RefusedError";
}

/**
 * An SFTP request failed; `status` is the SFTP status code (2: no such file, 3: permission).
 *
 * @example
 * ```ts
 * const missing = await sftp.stat("nope").catch((e) => e instanceof RemoteFileError && e.status === 2);
 * ```
 */
export class RemoteFileError extends PuttykitError {
  /** "RemoteFileError". */
  override name = "RemoteFileError";
  /** `message`: PuTTY's text for the status, after the path; `status`: the SFTP status code. */
  constructor(message: string, readonly status: number) {
    super(message);
  }
}
