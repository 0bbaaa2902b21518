/**
 * The library API's entry: `connect(target, options)`. This module stays light (types, the error
 * classes and a dynamic import), so that a command-line tool that loads mod.ts pays nothing for
 * the API it does not use; the connection itself is made in ./connection.ts.
 */

import type { Connection } from "./connection.ts";
import type { ConnectOptions } from "./types.ts";

export type { Connection } from "./connection.ts";
export type {
  ExecOptions,
  ExecResult,
  Forwarding,
  ForwardLocalOptions,
  ForwardRemoteOptions,
  RemoteProcess,
} from "./connection.ts";
export type { SftpSession } from "./sftp.ts";
export type { RemoteEntry, RemoteStat } from "./sftp.ts";
export type { ConnectOptions, HostKeyPrompt, Questions, Role } from "./types.ts";

/**
 * Connects to `target` (`[user@]host` or a PuTTY saved-session name), resolved exactly as plink
 * resolves its host argument: saved sessions in `~/.putty/sessions`, the host-key cache
 * `~/.putty/sshhostkeys`, PuTTY's defaults.
 *
 * @example
 * ```ts
 * import { connect } from "./mod.ts";
 * await using conn = await connect("me@build-host", { share: true, keyFile: "id_ed25519" });
 * const { code, stdout } = await conn.exec("uname -a");
 * console.log(conn.role, code, new TextDecoder().decode(stdout));
 * ```
 */
export async function connect(target: string, options: ConnectOptions = {}): Promise<Connection> {
  const { openConnection } = await import("./connection.ts");
  return await openConnection(target, options);
}
