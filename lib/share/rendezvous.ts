/**
 * The sharing decision, as PuTTY's platform_ssh_share() makes it under the per-connection lock:
 * first try to connect to a live upstream (become a downstream), else listen on the socket
 * (become the upstream), else share nothing. Two tools started at the same instant serialise on
 * the lock, so exactly one of them ends up listening; a stale socket left by a killed upstream
 * refuses the connection and is replaced.
 *
 * A live upstream is tried once before taking the lock: a connection it accepts needs no
 * decision, and many downstreams started at once then never queue on the lock behind one
 * another (each holds it across a connect, and a busy machine may not run the holder for a
 * while). An upstream that retires just then hangs up before greeting, and the caller decides
 * again; anything else is decided under the lock as before.
 */

import { type SharePaths, sharePaths, ShareSetupError } from "./socket_path.ts";
import { errorText } from "../util/error_text.ts";

export type ShareDecision =
  | { role: "downstream"; conn: Deno.UnixConn; paths: SharePaths }
  | { role: "upstream"; listener: Deno.Listener<Deno.UnixConn>; paths: SharePaths }
  | {
    role: "none";
    /** Why sharing could not be set up at all (directory checks etc.). */
    setupError?: string;
    /** Why we could not be a downstream / an upstream. */
    downstreamError?: string;
    upstreamError?: string;
  };

/** Runs `fn` holding the exclusive flock on `lockPath`. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockPath, { read: true, write: true, create: true, mode: 0o600 });
  } catch (e) {
    throw new ShareSetupError(`${lockPath}: open: ${socketErrorText(e)}`);
  }
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

export async function decideSharing(
  connectionId: string,
  canUpstream: boolean,
  canDownstream: boolean,
): Promise<ShareDecision> {
  let paths: SharePaths;
  try {
    paths = await sharePaths(connectionId);
  } catch (e) {
    if (e instanceof ShareSetupError) return { role: "none", setupError: e.message };
    throw e;
  }
  if (canDownstream) {
    try {
      const conn = await Deno.connect({ transport: "unix", path: paths.socket });
      return { role: "downstream", conn, paths };
    } catch { /* no live upstream: decide under the lock */ }
  }
  try {
    return await withLock(paths.lock, async () => {
      let downstreamError: string | undefined;
      let upstreamError: string | undefined;
      if (canDownstream) {
        try {
          const conn = await Deno.connect({ transport: "unix", path: paths.socket });
          return { role: "downstream", conn, paths } as const;
        } catch (e) {
          downstreamError = `${paths.socket}: ${socketErrorText(e)}`;
        }
      }
      if (canUpstream) {
        try {
          // Whatever is there is stale: connecting to it just failed (or we may not be downstream).
          try {
            Deno.removeSync(paths.socket);
          } catch { /* not there */ }
          const listener = Deno.listen({ transport: "unix", path: paths.socket });
          return { role: "upstream", listener, paths } as const;
        } catch (e) {
          upstreamError = `${paths.socket}: ${socketErrorText(e)}`;
        }
      }
      return { role: "none", downstreamError, upstreamError } as const;
    });
  } catch (e) {
    if (e instanceof ShareSetupError) return { role: "none", setupError: e.message };
    throw e;
  }
}

/** True when a live upstream answers on the socket for this connection id (plink -shareexists). */
export async function upstreamExists(connectionId: string): Promise<boolean> {
  const d = await decideSharing(connectionId, false, true);
  if (d.role !== "downstream") return false;
  d.conn.close();
  return true;
}

/** Retires an upstream's socket under the lock, so no new downstream can slip in meanwhile. */
export async function retireSocket(
  paths: SharePaths,
  listener: Deno.Listener<Deno.UnixConn>,
): Promise<void> {
  const close = () => {
    try {
      listener.close();
    } catch { /* already closed */ }
    try {
      Deno.removeSync(paths.socket);
    } catch { /* gone */ }
  };
  try {
    await withLock(paths.lock, () => Promise.resolve(close()));
  } catch {
    close();
  }
}

/** A socket's failure; the usual ones in strerror()'s words, as PuTTY says them. */
function socketErrorText(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "No such file or directory";
  if (e instanceof Deno.errors.ConnectionRefused) return "Connection refused";
  if (e instanceof Deno.errors.PermissionDenied) return "Permission denied";
  return errorText(e);
}
