/**
 * Writing one file on the server over SFTP, for pscp and psftp: into a temporary file beside the
 * target, renamed over it once complete (posix-rename@openssh.com when offered, which replaces
 * an existing file atomically; else plain renames, the old file moved aside first), so a failed
 * transfer leaves the target as it was. The temporary file is removed on failure while the
 * connection still allows.
 */

import { type SftpClient, type SftpHandle } from "../sftp/client.ts";
import { type Attrs, FX, OPEN, SftpError } from "../sftp/protocol.ts";
import {
  type ExistingTarget,
  type Temporaries,
  type Temporary,
  type TemporaryOptions,
  temporaryPath,
} from "./temporaries.ts";

export interface RemoteFileWriterOptions extends TemporaryOptions {
  /** Permission bits of a new file (the local file's). An existing file keeps its own. */
  mode: number;
  /** Writes into the existing file (reput): no temporary file, nothing truncated. */
  resume?: boolean;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/**
 * An upload being written. A symbolic link is written through (the file it points to is
 * replaced); an existing file's permissions are kept, as PuTTY's truncate-in-place keeps them.
 * Written directly instead: targets that aren't regular files, a dangling link, an existing file
 * in a directory that refuses new files, and a resumed file.
 */
export class RemoteFileWriter implements Temporary {
  private finished = false;

  private constructor(
    private readonly sftp: SftpClient,
    readonly handle: SftpHandle,
    /** Where the data finally lands (a symlinked target resolved). */
    readonly target: string,
    /** The temporary file, when the data doesn't go straight to the target. */
    readonly tempPath: string | undefined,
    private readonly temporaries?: Temporaries,
  ) {
    if (tempPath !== undefined) temporaries?.add(this);
  }

  /**
   * Opens where an upload to `target` goes. Throws SftpError when the server refuses, anything
   * else when the connection fails.
   */
  static async open(
    sftp: SftpClient,
    target: string,
    o: RemoteFileWriterOptions,
  ): Promise<RemoteFileWriter> {
    const direct = async (flags: number) =>
      new RemoteFileWriter(
        sftp,
        await sftp.open(target, flags, { permissions: o.mode }),
        target,
        undefined,
      );
    if (o.resume) return await direct(OPEN.WRITE);
    const inPlace = OPEN.WRITE | OPEN.CREAT | OPEN.TRUNC;
    const found = await inspect(sftp, target);
    // A dangling link is written through, as opening it would; devices and the like in place.
    if (found.kind === "dangling" || found.kind === "other") return await direct(inPlace);
    const real = found.kind === "file" ? found.real : target;
    const keepMode = found.kind === "file" ? found.mode : undefined;
    const temp = temporaryPath(real, o.tool);
    let handle: SftpHandle;
    try {
      handle = await sftp.open(temp, OPEN.WRITE | OPEN.CREAT | OPEN.EXCL, {
        permissions: keepMode ?? o.mode,
      });
    } catch (e) {
      if (!(e instanceof SftpError) || keepMode === undefined) throw e;
      // The directory refuses new files: write the existing file in place.
      return await direct(inPlace);
    }
    const w = new RemoteFileWriter(sftp, handle, real, temp, o.temporaries);
    if (keepMode !== undefined) {
      // Exactly the old bits (the server's umask applied to those given to open).
      try {
        await handle.fsetstat({ permissions: keepMode });
      } catch (e) {
        if (!(e instanceof SftpError)) {
          await w.discard();
          throw e;
        }
      }
    }
    return w;
  }

  /** Closes the file. A write error the server held back may surface here (SftpError). */
  async close(): Promise<void> {
    await this.handle.close();
  }

  /**
   * Renames a temporary file over the target (after close()). Throws SftpError if the server
   * refuses; the caller then discard()s.
   */
  async commit(): Promise<void> {
    await this.close();
    const temp = this.tempPath;
    if (temp !== undefined) {
      await renameOver(this.sftp, temp, this.target);
    }
    this.finished = true;
    this.temporaries?.delete(this);
  }

  /**
   * Closes the file and removes a temporary file (best effort; nothing once committed). The two
   * requests go out together and queue behind the writes in flight.
   */
  async discard(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.temporaries?.delete(this);
    const temp = this.tempPath;
    await Promise.all([
      this.handle.close().catch(() => {}),
      temp !== undefined ? this.sftp.remove(temp).catch(() => {}) : undefined,
    ]);
  }

  remove(): Promise<void> {
    return this.discard();
  }
}

/** What is at `target`: nothing, a dangling link, a regular file (through links), or other. */
async function inspect(sftp: SftpClient, target: string): Promise<ExistingTarget> {
  let st: Attrs;
  try {
    st = await sftp.lstat(target);
  } catch (e) {
    if (!(e instanceof SftpError)) throw e;
    return { kind: "none" };
  }
  let real = target;
  if (st.permissions !== undefined && (st.permissions & S_IFMT) === S_IFLNK) {
    try {
      real = await sftp.realpath(target);
      st = await sftp.stat(real);
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
      return { kind: "dangling" };
    }
  }
  if (st.permissions === undefined || (st.permissions & S_IFMT) !== S_IFREG) {
    return { kind: "other" };
  }
  return { kind: "file", real, mode: st.permissions & 0o7777 };
}

/**
 * Renames `from` over `to`: posix-rename@openssh.com when the server offers it and lets us use it
 * (OpenSSH's sftp-server -P still offers a request it then denies), else plain renames.
 */
async function renameOver(sftp: SftpClient, from: string, to: string): Promise<void> {
  if (sftp.hasPosixRename) {
    try {
      return await sftp.posixRename(from, to);
    } catch (e) {
      const unusable = e instanceof SftpError &&
        (e.code === FX.OP_UNSUPPORTED || e.code === FX.PERMISSION_DENIED);
      if (!unusable) throw e;
    }
  }
  await renameReplacing(sftp, from, to);
}

/**
 * Plain SFTP rename refuses to replace a file: the old one is first renamed aside (beside the
 * temporary file, under its name plus ".old"), put back if the new one can't take its place, and
 * removed once it has. At no moment is the target's data gone from the server.
 */
async function renameReplacing(sftp: SftpClient, from: string, to: string): Promise<void> {
  try {
    return await sftp.rename(from, to);
  } catch (e) {
    if (!(e instanceof SftpError) || !await exists(sftp, to)) throw e;
  }
  const aside = `${from}.old`;
  await sftp.rename(to, aside);
  try {
    await sftp.rename(from, to);
  } catch (e) {
    await sftp.rename(aside, to).catch(() => {});
    throw e;
  }
  await sftp.remove(aside).catch(() => {});
}

async function exists(sftp: SftpClient, path: string): Promise<boolean> {
  try {
    await sftp.stat(path);
    return true;
  } catch (e) {
    if (!(e instanceof SftpError)) throw e;
    return false;
  }
}
