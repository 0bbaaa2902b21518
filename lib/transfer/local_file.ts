/**
 * Local files for pscp: reading a source in bounded chunks, and writing a download under a
 * temporary name beside its target, renamed over the target only once complete — a transfer
 * that fails never leaves a truncated file under the final name.
 */

import { basename, dirname, join } from "node:path";
import { errorMessage } from "./display.ts";
import { tempNameFor } from "./paths.ts";

export type LocalType = "file" | "dir" | "other";

/** file_type(): what `path` is (following links), undefined if nothing is there. */
export async function localType(path: string): Promise<LocalType | undefined> {
  try {
    const st = await Deno.stat(path);
    return st.isFile ? "file" : st.isDirectory ? "dir" : "other";
  } catch {
    return undefined;
  }
}

/** read_filename(): the names in a directory, without "." and "..", in the order read. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(path)) names.push(e.name);
  return names;
}

/** Bytes read from a local file per chunk. */
const READ_CHUNK = 128 * 1024;

/** Thrown by readExactly() when the file ends early or can't be read. */
export class LocalReadError extends Error {}

/**
 * Yields exactly `size` bytes of an open file in fresh chunks (the consumer may keep them), then
 * closes it. A file that shrank or can't be read throws LocalReadError.
 */
export async function* readExactly(file: Deno.FsFile, size: number): AsyncGenerator<Uint8Array> {
  try {
    let left = size;
    while (left > 0) {
      const buf = new Uint8Array(Math.min(READ_CHUNK, left));
      let n: number | null;
      try {
        n = await file.read(buf);
      } catch (e) {
        throw new LocalReadError(errorMessage(e));
      }
      if (n === null || n === 0) throw new LocalReadError("file shrank while being read");
      left -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    try {
      file.close();
    } catch { /* already closed */ }
  }
}

/**
 * A download in progress: written to ".<name>.<random>.pscp" beside the target, moved onto the
 * target by commit(), removed by discard().
 */
export class TempFile {
  private closed = false;

  private constructor(
    /** Where the data finally goes (a symlinked target is resolved: we write through it). */
    readonly target: string,
    readonly tempPath: string,
    private readonly file: Deno.FsFile,
  ) {}

  /**
   * Creates the temporary file with permission bits `mode` (the umask applies, as for PuTTY's
   * open(O_CREAT)). Throws if it can't.
   */
  static async create(target: string, mode: number): Promise<TempFile> {
    let real = target;
    try {
      if ((await Deno.lstat(target)).isSymlink) real = await Deno.realPath(target);
    } catch { /* dangling link or nothing there: write beside the name given */ }
    for (let attempt = 0;; attempt++) {
      const tempPath = join(dirname(real), tempNameFor(basename(real)));
      try {
        const file = await Deno.open(tempPath, {
          write: true,
          createNew: true,
          mode: (mode & 0o7777) || 0o666,
        });
        return new TempFile(real, tempPath, file);
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists && attempt < 5) continue;
        throw e;
      }
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    let at = 0;
    while (at < chunk.length) at += await this.file.write(chunk.subarray(at));
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.file.close();
    } catch { /* already gone */ }
  }

  /**
   * Closes the file, gives it the times (seconds) and exact permission bits if asked — else an
   * existing target's permissions (PuTTY truncates an existing file in place, which keeps
   * them) — and renames it over the target.
   */
  async commit(
    attrs: { times?: { mtime: number; atime: number }; mode?: number } = {},
  ): Promise<void> {
    this.close();
    let mode = attrs.mode;
    if (mode === undefined) {
      try {
        const existing = await Deno.stat(this.target);
        if (existing.isFile && existing.mode !== null) mode = existing.mode;
      } catch { /* no target yet */ }
    }
    if (mode !== undefined) await Deno.chmod(this.tempPath, mode & 0o7777);
    if (attrs.times) await Deno.utime(this.tempPath, attrs.times.atime, attrs.times.mtime);
    await Deno.rename(this.tempPath, this.target);
  }

  /** Closes and removes the temporary file (best effort). */
  async discard(): Promise<void> {
    this.close();
    await Deno.remove(this.tempPath).catch(() => {});
  }
}
