/**
 * pscp's SFTP half (PuTTY's scp_* functions when using_sftp): uploads through temporary files
 * renamed into place, downloads of single files, trees and wildcards globbed on our side.
 */

import { type SftpClient, type SftpHandle } from "../sftp/client.ts";
import { type Attrs, isDirectory, OPEN, SftpError } from "../sftp/protocol.ts";
import { download, upload } from "./sftp_pipeline.ts";
import { RemoteFileWriter } from "./remote_file.ts";
import {
  type DownloadSource,
  FileError,
  type FileMeta,
  type RemoteEntry,
  type Reporter,
  type UploadTarget,
} from "./endpoint.ts";
import { errorText, FatalError } from "../util/error_text.ts";
import { compareNames, lastComponent, remoteJoin, vettedNames } from "./paths.ts";
import type { Temporaries } from "./temporaries.ts";
import { splitWildcardPath, wildcardMatch, wildcardUnescape } from "./wildcard.ts";

function timesOf(a: Attrs, preserve: boolean): FileMeta["times"] {
  if (!preserve || a.mtime === undefined || a.atime === undefined) return undefined;
  return { mtime: a.mtime, atime: a.atime };
}

/** SFTP status errors concern one file; anything else (connection gone) ends the copy. */
function fileOr<T>(e: unknown, text: (msg: string) => string): T {
  if (e instanceof SftpError) throw new FileError(text(e.message));
  throw e;
}

// ----------------------------------------------------------------------------------------------

/**
 * Uploads. Each file goes through a RemoteFileWriter: written to ".<name>.<random>.pscp" in the
 * target's directory and renamed over the target once complete, so a failed transfer leaves the
 * target as it was.
 */
export class SftpUploadTarget implements UploadTarget {
  private stack: { path: string; isDir: boolean; mode: number; times?: FileMeta["times"] }[] = [];

  private constructor(
    private readonly sftp: SftpClient,
    private path: string,
    private isDir: boolean,
    private readonly reporter: Reporter,
    private readonly temporaries: Temporaries,
  ) {}

  /** scp_source_setup(): is the target a directory (as it must be for several sources)? */
  static async start(
    sftp: SftpClient,
    target: string,
    shouldBeDir: boolean,
    reporter: Reporter,
    temporaries: Temporaries,
  ): Promise<SftpUploadTarget> {
    let isDir = false;
    try {
      isDir = isDirectory(await sftp.stat(target));
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
    }
    if (shouldBeDir && !isDir) {
      throw new FatalError(`pscp: remote filespec ${target}: not a directory`);
    }
    return new SftpUploadTarget(sftp, target, isDir, reporter, temporaries);
  }

  private fullName(name: string): string {
    return this.isDir ? remoteJoin(this.path, name) : this.path;
  }

  async sendFile(
    name: string,
    meta: FileMeta & { size: number },
    data: AsyncIterable<Uint8Array>,
    onProgress: (done: number) => void,
  ): Promise<void> {
    const full = this.fullName(name);
    let out: RemoteFileWriter;
    try {
      out = await RemoteFileWriter.open(this.sftp, full, {
        mode: meta.mode,
        tool: "pscp",
        temporaries: this.temporaries,
      });
    } catch (e) {
      return fileOr(e, (m) => `pscp: unable to open ${full}: ${m}`);
    }
    try {
      try {
        await upload(out.handle, data, { onProgress });
      } catch (e) {
        fileOr(e, (m) => `error while writing: ${m}`);
      }
      if (meta.times) {
        // -p: exact permissions and times.
        await this.preserve((a) => out.handle.fsetstat(a), meta.mode, meta.times);
      }
      try {
        await out.close();
      } catch (e) {
        fileOr(e, (m) => `error while writing: ${m}`);
      }
      try {
        await out.commit();
      } catch (e) {
        fileOr(e, (m) => `pscp: unable to rename ${out.tempPath} to ${out.target}: ${m}`);
      }
    } finally {
      // Best effort: the connection may be gone, in which case the server keeps the temp file.
      await out.discard();
    }
  }

  async enterDir(name: string, mode: number, times?: FileMeta["times"]): Promise<void> {
    const full = this.fullName(name);
    // Whether mkdir worked doesn't matter: if a directory is there afterwards, we use it.
    let err = "server reported no error";
    try {
      await this.sftp.mkdir(full);
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
      err = e.message;
    }
    let ok = false;
    try {
      ok = isDirectory(await this.sftp.stat(full));
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
    }
    if (!ok) throw new FileError(`unable to create directory ${full}: ${err}`);
    this.stack.push({ path: this.path, isDir: this.isDir, mode, times });
    this.path = full;
    this.isDir = true;
  }

  async leaveDir(): Promise<void> {
    const top = this.stack.pop();
    if (!top) return;
    const full = this.path;
    this.path = top.path;
    this.isDir = top.isDir;
    if (top.times) {
      await this.preserve((a) => this.sftp.setstat(full, a), top.mode, top.times);
    }
  }

  /** -p: exact permissions and times, by `set`; a refusal is reported and the copy goes on. */
  private async preserve(
    set: (a: Attrs) => Promise<void>,
    mode: number,
    times: NonNullable<FileMeta["times"]>,
  ): Promise<void> {
    try {
      await set({ permissions: mode, atime: times.atime, mtime: times.mtime });
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
      this.reporter.error(`unable to set file times: ${e.message}`);
    }
  }

  reportError(): void {
    // We never need to send our errors to an SFTP server.
  }

  async close(): Promise<void> {
    await this.sftp.close();
  }
}

// ----------------------------------------------------------------------------------------------

interface Listing {
  names: string[];
  pos: number;
  dirpath: string;
  wildcard?: string;
  matched: boolean;
}

/**
 * Downloads: a file, a directory tree (-r), or the names in one directory matching a wildcard
 * in the last path component ("dir/*.txt"), matched here with PuTTY's syntax.
 */
export class SftpDownloadSource implements DownloadSource {
  readonly namesAreOurs = true;
  private stack: Listing[] = [];
  private done = false;
  private current?: string;
  /** The directory just returned by next(), until something else is. */
  private pushedDir?: Listing;

  private constructor(
    private readonly sftp: SftpClient,
    private readonly path: string,
    private wildcard: string | undefined,
    private readonly opts: { recursive: boolean; preserve: boolean },
    private readonly reporter: Reporter,
  ) {}

  /**
   * scp_sink_setup(): splits a wildcard off the last component. Undefined (after reporting) when
   * the wildcard is in an earlier component.
   */
  static create(
    sftp: SftpClient,
    source: string,
    opts: { recursive: boolean; preserve: boolean },
    reporter: Reporter,
  ): SftpDownloadSource | undefined {
    const plain = wildcardUnescape(source);
    if (plain !== undefined) return new SftpDownloadSource(sftp, plain, undefined, opts, reporter);
    const { dir, wildcard } = splitWildcardPath(source);
    if (dir === undefined) {
      reporter.error(`${source}: multiple-level wildcards unsupported`);
      return undefined;
    }
    // An empty directory part is the root ("/x*") or the current directory ("x*").
    const dirPlain = wildcardUnescape(dir || (source.startsWith("/") ? "/" : "."))!;
    return new SftpDownloadSource(sftp, dirPlain, wildcard, opts, reporter);
  }

  beginLevel(): Promise<void> {
    return Promise.resolve();
  }

  private matches(pattern: string | undefined, name: string): boolean {
    if (pattern === undefined) return true;
    try {
      return wildcardMatch(pattern, name);
    } catch (e) {
      throw new FatalError(`pscp: wildcard '${pattern}': ${errorText(e)}`);
    }
  }

  async next(): Promise<RemoteEntry | undefined> {
    this.pushedDir = undefined;
    for (;;) {
      let fname: string;
      const head = this.stack[this.stack.length - 1];
      if (!head) {
        if (this.done) return undefined;
        fname = this.path;
        this.done = true;
      } else {
        while (head.pos < head.names.length && !this.matches(head.wildcard, head.names[head.pos])) {
          head.pos++;
        }
        if (head.pos < head.names.length) {
          head.matched = true;
          fname = remoteJoin(head.dirpath, head.names[head.pos++]);
        } else {
          this.stack.pop();
          if (head.wildcard === undefined) return { kind: "end" };
          if (!head.matched) {
            this.reporter.error(`pscp: wildcard '${head.wildcard}' matched no files`);
          }
          continue;
        }
      }
      // At the top, a failure ends the transfer; inside a listing it skips that name.
      const atTop = this.stack.length === 0;
      let attrs: Attrs;
      try {
        attrs = await this.sftp.stat(fname);
      } catch (e) {
        if (!(e instanceof SftpError)) throw e;
        this.reporter.error(`unable to identify ${fname}: ${e.message}`);
        if (atTop) return undefined;
        continue;
      }
      if (attrs.permissions === undefined) {
        this.reporter.error(`unable to identify ${fname}: file type not supplied`);
        if (atTop) return undefined;
        continue;
      }
      const meta: FileMeta = {
        size: attrs.size,
        mode: attrs.permissions & 0o7777,
        times: timesOf(attrs, this.opts.preserve),
      };
      if (!isDirectory(attrs)) {
        this.current = fname;
        return { kind: "file", name: lastComponent(fname), meta };
      }
      if (!this.opts.recursive && this.wildcard === undefined) {
        this.reporter.error(`pscp: ${fname}: is a directory`);
        if (atTop) return undefined;
        continue;
      }
      let names: string[];
      try {
        names = vettedNames(await this.sftp.readdir(fname), (text) => this.reporter.warn(text));
      } catch (e) {
        if (!(e instanceof SftpError)) throw e;
        this.reporter.error(`pscp: unable to open directory ${fname}: ${e.message}`);
        if (atTop) return undefined;
        continue;
      }
      const listing: Listing = {
        names,
        pos: 0,
        dirpath: fname,
        wildcard: this.wildcard,
        matched: false,
      };
      this.stack.push(listing);
      if (this.wildcard !== undefined) {
        this.wildcard = undefined;
        continue;
      }
      this.pushedDir = listing;
      return { kind: "dir", name: lastComponent(fname), meta };
    }
  }

  async receive(
    write: (chunk: Uint8Array) => Promise<void>,
    onProgress: (done: number) => void,
  ): Promise<void> {
    const path = this.current!;
    this.current = undefined;
    let handle: SftpHandle;
    try {
      handle = await this.sftp.open(path, OPEN.READ);
    } catch (e) {
      return fileOr(e, (m) => `pscp: unable to open ${path}: ${m}`);
    }
    try {
      await download(handle, write, { onProgress });
    } catch (e) {
      handle.close().catch(() => {});
      fileOr(e, (m) => `pscp: error while reading: ${m}`);
    }
    await handle.close().catch((e) => fileOr(e, (m) => `pscp: error while reading: ${m}`));
  }

  accepted(): Promise<void> {
    return Promise.resolve();
  }

  reject(): Promise<void> {
    // A directory we won't enter: drop its listing, or its names would land in the parent.
    if (this.pushedDir && this.stack[this.stack.length - 1] === this.pushedDir) this.stack.pop();
    this.pushedDir = undefined;
    this.current = undefined;
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.sftp.close();
  }
}

/** pscp -ls over SFTP: the directory's long names, sorted by file name (PuTTY's order). */
export async function listDirectory(sftp: SftpClient, dir: string): Promise<string[]> {
  const entries = await sftp.readdir(dir);
  entries.sort((a, b) => compareNames(a.name, b.name));
  return entries.map((e) => e.longname);
}
