/**
 * The library API's SFTP session. Whole-file writes go through pscp's writers: a file is written
 * under a temporary name beside its target and renamed into place once complete, so a failed
 * transfer never leaves a truncated file under the target's name.
 */

import { SftpClient } from "../sftp/client.ts";
import { type Attrs, OPEN, SftpError, SftpUnavailableError } from "../sftp/protocol.ts";
import { download, upload } from "../files/sftp_pipeline.ts";
import type { SshConnection } from "../ssh/connection.ts";
import { LocalFileWriter, readChunks } from "../files/local_file.ts";
import { RemoteFileWriter } from "../files/remote_file.ts";
import { osErrorText } from "../util/error_text.ts";
import { apiError } from "./error_mapping.ts";
import { PuttykitError, RefusedError, RemoteFileError } from "./errors.ts";

/**
 * What `stat` tells of a remote path (fields the server did not send are undefined).
 *
 * @example
 * ```ts
 * const st: RemoteStat = await sftp.stat("releases");
 * if (!st.isDirectory) await sftp.mkdir("releases");
 * ```
 */
export interface RemoteStat {
  /** Size in bytes. */
  size?: number;
  /** st_mode: type and permission bits. */
  mode?: number;
  /** Owner's user id. */
  uid?: number;
  /** Owner's group id. */
  gid?: number;
  /** Modification time, seconds since the epoch. */
  mtime?: number;
  /** Access time, seconds since the epoch. */
  atime?: number;
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symbolic link (only `list` shows links themselves; `stat` follows them). */
  isSymlink: boolean;
}

/**
 * One entry of a remote directory ("." and ".." left out).
 *
 * @example
 * ```ts
 * const names = (await sftp.list("logs")).filter((e: RemoteEntry) => e.isFile).map((e) => e.name);
 * ```
 */
export interface RemoteEntry extends RemoteStat {
  /** The entry's name within its directory. */
  name: string;
}

/** The name the temporary files carry (".<name>.<random>.puttykit"). */
const TOOL = "puttykit";

function statOf(a: Attrs): RemoteStat {
  const type = (a.permissions ?? 0) & 0o170000;
  return {
    size: a.size,
    mode: a.permissions,
    uid: a.uid,
    gid: a.gid,
    mtime: a.mtime,
    atime: a.atime,
    isFile: type === 0o100000,
    isDirectory: type === 0o040000,
    isSymlink: type === 0o120000,
  };
}

/** Runs an SFTP step, giving the library's error classes (with the path in the message). */
async function step<T>(path: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof SftpError) throw new RemoteFileError(`${path}: ${e.message}`, e.code);
    throw apiError(e);
  }
}

async function* chunksOfBytes(data: Uint8Array): AsyncGenerator<Uint8Array> {
  const block = 256 * 1024;
  for (let at = 0; at < data.length; at += block) yield data.subarray(at, at + block);
}

/**
 * An SFTP session (one channel). Paths are the server's: relative ones from the login directory.
 *
 * @example
 * ```ts
 * const sftp = await conn.sftp();
 * await sftp.get("logs/today.log", "today.log");
 * for (const e of await sftp.list("logs")) console.log(e.name, e.size);
 * await sftp.close();
 * ```
 */
export class SftpSession implements AsyncDisposable {
  private constructor(private readonly client: SftpClient) {}

  /** @internal */
  static async open(conn: SshConnection): Promise<SftpSession> {
    try {
      return new SftpSession(await SftpClient.start(conn));
    } catch (e) {
      if (e instanceof SftpUnavailableError) throw new RefusedError(e.message, { cause: e });
      throw apiError(e);
    }
  }

  /** Attributes of `path`, following a symbolic link. */
  stat(path: string): Promise<RemoteStat> {
    return step(path, async () => statOf(await this.client.stat(path)));
  }

  /** The entries of directory `path`. */
  list(path = "."): Promise<RemoteEntry[]> {
    return step(path, async () =>
      (await this.client.readdir(path))
        .filter((e) => e.name !== "." && e.name !== "..")
        .map((e) => ({ name: e.name, ...statOf(e.attrs) })));
  }

  /** Makes directory `path` (`mode` before the server's umask). */
  mkdir(path: string, mode = 0o777): Promise<void> {
    return step(path, () => this.client.mkdir(path, { permissions: mode }));
  }

  /** Removes a file (or, with `directory`, an empty directory). */
  remove(path: string, options: { directory?: boolean } = {}): Promise<void> {
    return step(path, () => options.directory ? this.client.rmdir(path) : this.client.remove(path));
  }

  /** Renames `from` to `to` (the server may refuse to replace an existing `to`). */
  rename(from: string, to: string): Promise<void> {
    return step(from, () => this.client.rename(from, to));
  }

  /** The whole remote file. */
  readFile(path: string): Promise<Uint8Array> {
    return step(path, async () => {
      const handle = await this.client.open(path, OPEN.READ);
      const parts: Uint8Array[] = [];
      let size = 0;
      try {
        await download(handle, (chunk) => {
          parts.push(chunk.slice());
          size += chunk.length;
          return Promise.resolve();
        });
      } finally {
        await handle.close().catch(() => {});
      }
      const all = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      return all;
    });
  }

  /** Writes the remote file whole or not at all (a temporary file renamed into place). */
  writeFile(
    path: string,
    data: Uint8Array | string,
    options: { mode?: number } = {},
  ): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    return this.putFrom(path, chunksOfBytes(bytes), options.mode ?? 0o644);
  }

  /** Downloads `remote` to the local file `local`, put in place only once complete. */
  get(remote: string, local: string): Promise<void> {
    return step(remote, async () => {
      const handle = await this.client.open(remote, OPEN.READ);
      let writer: LocalFileWriter | undefined;
      try {
        const attrs = await handle.fstat();
        writer = await LocalFileWriter.open(local, {
          tool: TOOL,
          mode: (attrs.permissions ?? 0o644) & 0o7777,
        }).catch((e) => {
          throw new PuttykitError(`${local}: ${osErrorText(e)}`, { cause: e });
        });
        const w = writer;
        await download(handle, (chunk) => w.write(chunk));
        await handle.close();
        await writer.commit();
      } catch (e) {
        await writer?.discard();
        throw e;
      } finally {
        await handle.close().catch(() => {});
      }
    });
  }

  /** Uploads the local file `local` to `remote`, put in place only once complete. */
  async put(local: string, remote: string): Promise<void> {
    let file: Deno.FsFile | undefined;
    let info: Deno.FileInfo;
    try {
      file = await Deno.open(local, { read: true });
      info = await file.stat();
    } catch (e) {
      file?.close();
      throw new PuttykitError(`${local}: ${osErrorText(e)}`, { cause: e });
    }
    await this.putFrom(remote, readChunks(file, info.size), (info.mode ?? 0o644) & 0o7777);
  }

  /** Uploads what `source` yields to `remote`, whole or not at all. */
  private putFrom(
    remote: string,
    source: AsyncIterable<Uint8Array>,
    mode: number,
  ): Promise<void> {
    return step(remote, async () => {
      const writer = await RemoteFileWriter.open(this.client, remote, { tool: TOOL, mode });
      try {
        await upload(writer.handle, source);
        await writer.commit();
      } catch (e) {
        await writer.discard();
        throw e;
      }
    });
  }

  /** Ends the session (its channel); the connection stays. */
  close(): Promise<void> {
    return this.client.close();
  }

  /** As `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
