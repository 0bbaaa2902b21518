/**
 * pscp's copying, protocol-independent (PuTTY's source()/rsource()/sink() in pscp.c): walking
 * local trees for uploads, placing downloaded entries under the target with PuTTY's name checks,
 * temporary files renamed into place, statistics lines, and the error rules — a problem with one
 * file is reported and counted and the rest carry on; a lost connection ends the copy, naming the
 * file it cut short.
 *
 * Deliberate differences from PuTTY 0.78, all where it loses data or contradicts its own intent:
 *  - downloads go to a temporary file renamed over the target when complete (PuTTY truncates the
 *    target first); SFTP uploads likewise (lib/files/local_file.ts, remote_file.ts, which
 *    psftp uses too);
 *  - a file the server reports failing after sending it (SCP "\1" status) is discarded;
 *  - a directory created for an upload is a directory target for its contents (PuTTY's SFTP mode
 *    tries to write every file of `pscp -r dir host:newname` onto "newname" itself);
 *  - -p also keeps exact permission bits and directory times (PuTTY: file times only; the umask
 *    applies to modes), as OpenSSH's scp -p does.
 */

import {
  type DownloadSource,
  FileError,
  type FileMeta,
  type Reporter,
  type UploadTarget,
} from "../files/endpoint.ts";
import { errorText, FatalError } from "../util/error_text.ts";
import {
  listDir,
  LocalFileWriter,
  LocalReadError,
  localType,
  readChunks,
} from "../files/local_file.ts";
import { dirFileCat, isDots, lastComponent, remoteColon, sourceName } from "../files/paths.ts";
import { FileProgress, type ProgressSample } from "../files/progress.ts";
import type { Temporaries } from "../files/temporaries.ts";

export interface CopyOptions {
  /** -r */
  recursive: boolean;
  /** -p */
  preserve: boolean;
  /** -unsafe: accept names from the server other than the one asked for (SCP wildcards). */
  unsafe: boolean;
  /** Several sources: the target must be a directory. */
  targetShouldBeDir: boolean;
  /** Draws a statistics line; undefined for none (-q, or not a terminal). */
  progress?: (s: ProgressSample) => void;
}

export class Copier {
  constructor(
    private readonly opts: CopyOptions,
    private readonly reporter: Reporter,
    /** Where downloads register their temporary files. */
    private readonly temporaries: Temporaries,
  ) {}

  private progressFor(name: string, size: number | undefined) {
    const draw = this.opts.progress;
    if (!draw || !size) return () => {};
    const p = new FileProgress(name, size, draw);
    return (done: number) => p.update(done);
  }

  /**
   * The copy can't go on while handling `path`: the error, naming the file. Anything that isn't
   * already a FatalError comes from below the protocol: the connection (or channel) is gone.
   */
  private fatalFor(path: string, e: unknown): never {
    if (e instanceof FatalError) throw new FatalError(`${path}: ${e.message}`);
    throw new FatalError(`${path}: Lost connection (${errorText(e)})`);
  }

  // --------------------------------------------------------------------------------------------
  // Uploads.

  /** toremote(): every source into `target`. */
  async upload(sources: string[], target: UploadTarget): Promise<void> {
    for (const src of sources) {
      if (remoteColon(src) >= 0) {
        this.reporter.error(`${src}: Remote to remote not supported`);
        continue;
      }
      await this.source(src, target);
    }
  }

  /** run_err(): reported here and, for SCP, to the server. */
  private runErrUp(target: UploadTarget, text: string): void {
    const line = `pscp: ${text}`;
    this.reporter.error(line);
    target.reportError(line);
  }

  private async source(src: string, target: UploadTarget): Promise<void> {
    const type = await localType(src);
    if (type !== "file" && type !== "dir") {
      this.runErrUp(target, `${src}: ${type ? "Not a" : "No such"} file or directory`);
      return;
    }
    if (type === "dir") {
      if (!this.opts.recursive) {
        this.runErrUp(target, `${src}: not a regular file`);
        return;
      }
      const p = src.slice(Math.max(src.lastIndexOf("/"), src.lastIndexOf("\\")) + 1);
      if (p !== "." && p !== "..") await this.rsource(src, target);
      return;
    }
    const name = sourceName(src);
    let file: Deno.FsFile;
    let st: Deno.FileInfo;
    try {
      file = await Deno.open(src, { read: true });
      st = await file.stat();
    } catch {
      this.runErrUp(target, `${src}: Cannot open file`);
      return;
    }
    const meta = {
      size: st.size,
      mode: (st.mode ?? 0o644) & 0o7777,
      times: this.opts.preserve ? fileTimes(st) : undefined,
    };
    this.reporter.verbose(`Sending file ${name}, size=${st.size}`);
    try {
      await target.sendFile(
        name,
        meta,
        readChunks(file, st.size),
        this.progressFor(name, st.size),
      );
    } catch (e) {
      if (e instanceof FileError) return this.reporter.error(e.message);
      if (e instanceof LocalReadError) throw new FatalError(`${src}: Read error`);
      this.fatalFor(src, e);
    } finally {
      try {
        file.close();
      } catch { /* closed by readChunks */ }
    }
  }

  private async rsource(src: string, target: UploadTarget): Promise<void> {
    const name = sourceName(src);
    this.reporter.verbose(`Entering directory: ${name}`);
    let mode = 0o755;
    let times: FileMeta["times"];
    if (this.opts.preserve) {
      try {
        const st = await Deno.stat(src);
        mode = (st.mode ?? 0o755) & 0o7777;
        times = fileTimes(st);
      } catch { /* reported by readDir below */ }
    }
    try {
      await target.enterDir(name, mode, times);
    } catch (e) {
      if (e instanceof FileError) return this.reporter.error(e.message);
      this.fatalFor(src, e);
    }
    let names: string[] = [];
    try {
      names = await listDir(src);
    } catch (e) {
      this.reporter.warn(`Error opening directory ${src}: ${errorText(e)}`);
    }
    for (const n of names) await this.source(`${src}/${n}`, target);
    await target.leaveDir();
  }

  // --------------------------------------------------------------------------------------------
  // Downloads.

  /** tolocal(): what `source` sends, into local `targ`; `src` is the remote path asked for. */
  async download(targ: string, src: string, source: DownloadSource): Promise<void> {
    await this.sink(targ, src, source);
  }

  private async rejectDown(source: DownloadSource, text: string): Promise<void> {
    const line = `pscp: ${text}`;
    this.reporter.error(line);
    await source.reject(line);
  }

  private async sink(targ: string, src: string | undefined, source: DownloadSource) {
    const targIsDir = (await localType(targ)) === "dir";
    if (this.opts.targetShouldBeDir && !targIsDir) throw new FatalError(`${targ}: Not a directory`);
    await source.beginLevel();
    for (;;) {
      const entry = await source.next();
      if (!entry || entry.kind === "end") return;
      let dest = targ;
      if (targIsDir) {
        // The server may only name files inside the target: no paths, no dots, and (for SCP,
        // without -unsafe) no name other than the one asked for.
        let name = lastComponent(entry.name);
        if (name !== entry.name) {
          this.reporter.warn(`warning: remote host sent a compound pathname '${entry.name}'`);
          this.reporter.warn(`         renaming local file to '${name}'`);
        }
        if (isDots(name)) {
          throw new FatalError(
            "security violation: remote host attempted to write to a '.' or '..' path!",
          );
        }
        if (src !== undefined) {
          const asked = lastComponent(src);
          if (name !== asked && !source.namesAreOurs && !this.opts.unsafe) {
            this.reporter.warn(`warning: remote host tried to write to a file called '${name}'`);
            this.reporter.warn(`         when we requested a file called '${asked}'.`);
            this.reporter.warn(
              "         If this is a wildcard, consider upgrading to SSH-2 or using",
            );
            this.reporter.warn(
              "         the '-unsafe' option. Renaming of this file has been disallowed.",
            );
            name = asked;
          }
        }
        dest = targ !== "" ? dirFileCat(targ, name) : name;
      }
      if (entry.kind === "dir") {
        await this.sinkDir(dest, await localType(dest), entry.meta, source);
        continue;
      }
      await this.sinkFile(dest, entry.meta, source);
    }
  }

  private async sinkDir(
    dest: string,
    type: string | undefined,
    meta: FileMeta,
    source: DownloadSource,
  ): Promise<void> {
    if (type !== undefined && type !== "dir") {
      return this.rejectDown(source, `${dest}: Not a directory`);
    }
    if (type === undefined) {
      try {
        await Deno.mkdir(dest, { mode: 0o777 });
      } catch {
        return this.rejectDown(source, `${dest}: Cannot create directory`);
      }
    }
    await this.sink(dest, undefined, source);
    if (this.opts.preserve) {
      try {
        await Deno.chmod(dest, meta.mode & 0o7777);
        if (meta.times) await Deno.utime(dest, meta.times.atime, meta.times.mtime);
      } catch (e) {
        this.reporter.error(`pscp: ${dest}: unable to set attributes: ${errorText(e)}`);
      }
    }
  }

  private async sinkFile(
    dest: string,
    meta: FileMeta,
    source: DownloadSource,
  ): Promise<void> {
    let out: LocalFileWriter;
    try {
      out = await LocalFileWriter.open(dest, {
        mode: (meta.mode & 0o7777) || 0o666,
        tool: "pscp",
        temporaries: this.temporaries,
      });
    } catch {
      return this.rejectDown(source, `${dest}: Cannot create file`);
    }
    const shown = lastComponent(dest);
    const progress = this.progressFor(shown, meta.size);
    let writeError: unknown;
    const write = async (chunk: Uint8Array) => {
      if (writeError !== undefined) return; // keep reading to the end of the file, as PuTTY
      try {
        await out.write(chunk);
      } catch (e) {
        writeError = e;
      }
    };
    try {
      await source.receive(write, progress);
    } catch (e) {
      await out.discard();
      if (e instanceof FileError) return this.reporter.error(e.message);
      this.fatalFor(dest, e);
    }
    if (writeError === undefined) {
      try {
        await out.commit({
          times: meta.times,
          mode: this.opts.preserve ? meta.mode : undefined,
        });
      } catch (e) {
        writeError = e;
      }
    }
    if (writeError !== undefined) {
      await out.discard();
      return this.rejectDown(source, `${dest}: Write error`);
    }
    await source.accepted();
  }
}

function fileTimes(st: Deno.FileInfo): { mtime: number; atime: number } {
  const sec = (d: Date | null) => Math.floor((d?.getTime() ?? Date.now()) / 1000);
  return { mtime: sec(st.mtime), atime: sec(st.atime) };
}
