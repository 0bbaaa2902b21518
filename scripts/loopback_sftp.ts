/**
 * The loopback server's "sftp" subsystem, served in this process on ssh2's SFTP server stream and
 * backed by the local file system, so the demo's pscp and psftp need nothing installed but Deno.
 * It answers the requests pscp and psftp send as OpenSSH's sftp-server does (sftp-server.c):
 * paths relative to the process's working directory, errno mapped to status codes as its
 * errno_to_portable does, RENAME refusing to replace a file, "." and ".." in directory listings.
 *
 * Memory stays bounded: requests are answered one at a time, none while ssh2 still holds a
 * reply the client's window had no room for; a client that queues more than MAX_QUEUED requests
 * or MAX_QUEUED_BYTES of them is cut off, one that opens more than MAX_HANDLES handles refused.
 */

// @ts-types="npm:@types/ssh2@1.15.5"
import ssh2 from "npm:ssh2@1.17.0";
import { Buffer } from "node:buffer";
import { posix } from "node:path";

type Sftp = ssh2.SFTPWrapper;
type Attributes = ssh2.Attributes;
const FX = ssh2.utils.sftp.STATUS_CODE;
const OPEN = ssh2.utils.sftp.OPEN_MODE;

/** OpenSSH's sftp-server reads at most this much per request (SFTP_MAX_READ_LENGTH). */
const MAX_READ = 256 * 1024 - 1024;
const MAX_HANDLES = 256;
/** Far above what pscp and psftp keep in flight (4 MiB of 32 KiB requests, and a few more). */
const MAX_QUEUED = 4096;
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const READDIR_BATCH = 100;
/** How often a request waiting for the client's window looks again. */
const WINDOW_POLL_MS = 2;

/** A status reply other than OK, raised by a request's handler. */
class Status extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

type OpenHandle =
  | { kind: "file"; path: string; file: Deno.FsFile }
  | { kind: "dir"; path: string; entries: AsyncIterator<Deno.DirEntry>; dotsSent: boolean };

interface Queued {
  bytes: number;
  run: () => Promise<void>;
}

/** Serves SFTP on `sftp` until the channel closes. */
export function serveSftp(sftp: Sftp): void {
  const handles = new Map<string, OpenHandle>();
  let nextHandle = 1;
  const queue: Queued[] = [];
  let queuedBytes = 0;
  let running = false;
  let closed = false;

  /** Replies still held by ssh2 because the client's window is full. */
  // deno-lint-ignore no-explicit-any
  const repliesHeld = () => ((sftp as any)._buffer?.length ?? 0) > 0;

  async function drain(): Promise<void> {
    running = true;
    while (queue.length > 0 && !closed) {
      while (repliesHeld() && !closed) {
        await new Promise((r) => setTimeout(r, WINDOW_POLL_MS));
      }
      const job = queue.shift()!;
      queuedBytes -= job.bytes;
      await job.run();
    }
    running = false;
  }

  /** Queues one request; its handler's Status (or OS error) becomes the STATUS reply. */
  function on(reqId: number, bytes: number, handler: () => Promise<void>): void {
    if (closed) return;
    queuedBytes += bytes;
    if (queue.length >= MAX_QUEUED || queuedBytes > MAX_QUEUED_BYTES) {
      closed = true;
      sftp.end();
      return;
    }
    queue.push({
      bytes,
      run: async () => {
        try {
          await handler();
        } catch (e) {
          const [code, message] = statusOf(e);
          if (!closed) sftp.status(reqId, code, message);
        }
      },
    });
    if (!running) drain();
  }

  const ok = (reqId: number) => sftp.status(reqId, FX.OK, "Success");

  function newHandle(h: OpenHandle): Buffer {
    if (handles.size >= MAX_HANDLES) throw new Status(FX.FAILURE, "Too many open handles");
    const id = Buffer.alloc(4);
    id.writeUInt32BE(nextHandle);
    nextHandle = (nextHandle + 1) >>> 0 || 1;
    handles.set(id.toString("hex"), h);
    return id;
  }

  function fileOf(handle: Buffer): OpenHandle & { kind: "file" } {
    const h = handles.get(handle.toString("hex"));
    if (h?.kind !== "file") throw new Status(FX.FAILURE, "Invalid handle");
    return h;
  }

  function dirOf(handle: Buffer): OpenHandle & { kind: "dir" } {
    const h = handles.get(handle.toString("hex"));
    if (h?.kind !== "dir") throw new Status(FX.FAILURE, "Invalid handle");
    return h;
  }

  sftp.on("OPEN", (reqId, filename, flags, attrs) =>
    on(reqId, filename.length, async () => {
      const write = (flags & (OPEN.WRITE | OPEN.APPEND)) !== 0;
      if (!write && (flags & (OPEN.CREAT | OPEN.TRUNC | OPEN.EXCL)) !== 0) {
        throw new Status(FX.BAD_MESSAGE, "Bad message");
      }
      const path = local(filename);
      const file = await Deno.open(path, {
        read: (flags & OPEN.READ) !== 0,
        write,
        append: (flags & OPEN.APPEND) !== 0,
        create: (flags & OPEN.CREAT) !== 0 && (flags & OPEN.EXCL) === 0,
        createNew: (flags & OPEN.CREAT) !== 0 && (flags & OPEN.EXCL) !== 0,
        truncate: (flags & OPEN.TRUNC) !== 0,
        mode: attrs.mode !== undefined ? attrs.mode & 0o7777 : 0o666,
      });
      try {
        sftp.handle(reqId, newHandle({ kind: "file", path, file }));
      } catch (e) {
        file.close();
        throw e;
      }
    }));

  sftp.on("READ", (reqId, handle, offset, len) =>
    on(reqId, handle.length, async () => {
      const { file } = fileOf(handle);
      await file.seek(Number(offset), Deno.SeekMode.Start);
      const buf = new Uint8Array(Math.min(len, MAX_READ));
      let got = 0;
      while (got < buf.length) {
        const n = await file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      if (got === 0 && len > 0) throw new Status(FX.EOF, "End of file");
      sftp.data(reqId, Buffer.from(buf.buffer, 0, got));
    }));

  sftp.on("WRITE", (reqId, handle, offset, data) => {
    // ssh2 hands out a view of its packet buffer; the request may run later.
    const copy = Uint8Array.from(data);
    on(reqId, copy.length, async () => {
      const { file } = fileOf(handle);
      await file.seek(Number(offset), Deno.SeekMode.Start);
      for (let done = 0; done < copy.length;) done += await file.write(copy.subarray(done));
      ok(reqId);
    });
  });

  sftp.on("CLOSE", (reqId, handle) =>
    on(reqId, handle.length, async () => {
      const key = handle.toString("hex");
      const h = handles.get(key);
      if (!h) throw new Status(FX.FAILURE, "Invalid handle");
      handles.delete(key);
      if (h.kind === "file") h.file.close();
      else await h.entries.return?.();
      ok(reqId);
    }));

  sftp.on("FSTAT", (reqId, handle) =>
    on(reqId, handle.length, async () => {
      sftp.attrs(reqId, attributesOf(await fileOf(handle).file.stat()));
    }));

  sftp.on("STAT", (reqId, path) =>
    on(reqId, path.length, async () => {
      sftp.attrs(reqId, attributesOf(await Deno.stat(local(path))));
    }));

  sftp.on("LSTAT", (reqId, path) =>
    on(reqId, path.length, async () => {
      sftp.attrs(reqId, attributesOf(await Deno.lstat(local(path))));
    }));

  sftp.on("SETSTAT", (reqId, path, attrs) =>
    on(reqId, path.length, async () => {
      await setAttributes(local(path), attrs);
      ok(reqId);
    }));

  sftp.on("FSETSTAT", (reqId, handle, attrs) =>
    on(reqId, handle.length, async () => {
      const h = fileOf(handle);
      await setAttributes(h.path, attrs, h.file);
      ok(reqId);
    }));

  sftp.on("OPENDIR", (reqId, path) =>
    on(reqId, path.length, async () => {
      const dir = local(path);
      if (!(await Deno.stat(dir)).isDirectory) throw new Status(FX.NO_SUCH_FILE, "Not a directory");
      const entries = Deno.readDir(dir)[Symbol.asyncIterator]();
      sftp.handle(reqId, newHandle({ kind: "dir", path: dir, entries, dotsSent: false }));
    }));

  sftp.on("READDIR", (reqId, handle) =>
    on(reqId, handle.length, async () => {
      const h = dirOf(handle);
      const names: string[] = [];
      if (!h.dotsSent) {
        names.push(".", "..");
        h.dotsSent = true;
      }
      while (names.length < READDIR_BATCH) {
        const next = await h.entries.next();
        if (next.done) break;
        names.push(next.value.name);
      }
      if (names.length === 0) throw new Status(FX.EOF, "End of file");
      const list: ssh2.FileEntry[] = [];
      for (const name of names) {
        // An entry removed since it was listed is left out, as readdir would not have shown it.
        const info = await Deno.lstat(posix.join(h.path, name)).catch(() => undefined);
        if (!info) continue;
        const attrs = attributesOf(info);
        list.push({ filename: name, longname: longName(name, attrs, info.nlink ?? 1), attrs });
      }
      sftp.name(reqId, list);
    }));

  sftp.on("MKDIR", (reqId, path, attrs) =>
    on(reqId, path.length, async () => {
      await Deno.mkdir(local(path), {
        mode: attrs.mode !== undefined ? attrs.mode & 0o7777 : 0o777,
      });
      ok(reqId);
    }));

  sftp.on("RMDIR", (reqId, path) =>
    on(reqId, path.length, async () => {
      const p = local(path);
      if (!(await Deno.lstat(p)).isDirectory) throw new Status(FX.NO_SUCH_FILE, "Not a directory");
      await Deno.remove(p);
      ok(reqId);
    }));

  sftp.on("REMOVE", (reqId, path) =>
    on(reqId, path.length, async () => {
      const p = local(path);
      if ((await Deno.lstat(p)).isDirectory) throw new Status(FX.FAILURE, "Is a directory");
      await Deno.remove(p);
      ok(reqId);
    }));

  sftp.on(
    "RENAME",
    (reqId, oldPath, newPath) =>
      on(reqId, oldPath.length + newPath.length, async () => {
        await renameNoReplace(local(oldPath), local(newPath));
        ok(reqId);
      }),
  );

  sftp.on("REALPATH", (reqId, path) =>
    on(reqId, path.length, async () => {
      const resolved = await realPath(local(path === "" ? "." : path));
      sftp.name(reqId, [{ filename: resolved, longname: resolved, attrs: {} as Attributes }]);
    }));

  sftp.on("READLINK", (reqId, path) =>
    on(reqId, path.length, async () => {
      const target = await Deno.readLink(local(path));
      sftp.name(reqId, [{ filename: target, longname: target, attrs: {} as Attributes }]);
    }));

  sftp.on(
    "SYMLINK",
    (reqId, targetPath, linkPath) =>
      on(reqId, targetPath.length + linkPath.length, async () => {
        await Deno.symlink(targetPath, local(linkPath));
        ok(reqId);
      }),
  );

  sftp.on("end", () => sftp.end());
  sftp.on("error", () => {});
  sftp.on("close", () => {
    closed = true;
    queue.length = 0;
    for (const h of handles.values()) {
      if (h.kind === "file") h.file.close();
      else h.entries.return?.().catch(() => {});
    }
    handles.clear();
  });
}

/** A request's path on this machine: relative ones from the working directory, as sftp-server. */
function local(path: string): string {
  return posix.resolve(Deno.cwd(), path);
}

/** The attributes OpenSSH's sftp-server sends for a file (stat_to_attrib). */
function attributesOf(info: Deno.FileInfo): Attributes {
  return {
    size: info.size,
    uid: info.uid ?? 0,
    gid: info.gid ?? 0,
    mode: info.mode ?? 0,
    atime: Math.floor((info.atime?.getTime() ?? 0) / 1000),
    mtime: Math.floor((info.mtime?.getTime() ?? 0) / 1000),
  };
}

async function setAttributes(path: string, attrs: Attributes, file?: Deno.FsFile): Promise<void> {
  if (attrs.size !== undefined) {
    if (file) await file.truncate(Number(attrs.size));
    else await Deno.truncate(path, Number(attrs.size));
  }
  if (attrs.mode !== undefined) await Deno.chmod(path, attrs.mode & 0o7777);
  if (attrs.uid !== undefined && attrs.gid !== undefined) {
    await Deno.chown(path, attrs.uid, attrs.gid);
  }
  if (attrs.atime !== undefined && attrs.mtime !== undefined) {
    if (file) await file.utime(attrs.atime, attrs.mtime);
    else await Deno.utime(path, attrs.atime, attrs.mtime);
  }
}

/**
 * SFTP v3 RENAME never replaces an existing file (OpenSSH's sftp-server links and unlinks a
 * regular file for that, and checks first for anything else).
 */
async function renameNoReplace(from: string, to: string): Promise<void> {
  if ((await Deno.lstat(from)).isFile) {
    try {
      await Deno.link(from, to);
      await Deno.remove(from);
      return;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) throw new Status(FX.FAILURE, "File exists");
      if (e instanceof Deno.errors.NotFound) throw e;
      // No hard links here (another file system, a file system without them): checked rename.
    }
  }
  const there = await Deno.lstat(to).then(() => true, () => false);
  if (there) throw new Status(FX.FAILURE, "File exists");
  await Deno.rename(from, to);
}

/** OpenSSH's sftp_realpath: every component resolved, the last one allowed not to exist. */
async function realPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const parent = await Deno.realPath(posix.dirname(path));
    return posix.join(parent, posix.basename(path));
  }
}

/** A status code and message for a failed request, as sftp-server's errno_to_portable. */
function statusOf(e: unknown): [number, string] {
  if (e instanceof Status) return [e.code, e.message];
  const code = (e as { code?: string })?.code ?? "";
  if (["ENOENT", "ENOTDIR", "EBADF", "ELOOP"].includes(code)) {
    return [FX.NO_SUCH_FILE, "No such file"];
  }
  if (["EPERM", "EACCES", "EFAULT"].includes(code)) {
    return [FX.PERMISSION_DENIED, "Permission denied"];
  }
  if (["ENAMETOOLONG", "EINVAL"].includes(code)) return [FX.BAD_MESSAGE, "Bad message"];
  if (code === "ENOSYS") return [FX.OP_UNSUPPORTED, "Operation unsupported"];
  return [FX.FAILURE, "Failure"];
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The `ls -l` line sftp-server sends beside each name (ls_file), with numeric owners. */
function longName(name: string, attrs: Attributes, nlink: number): string {
  const mode = attrs.mode;
  const type =
    ({ 0o040000: "d", 0o120000: "l", 0o020000: "c", 0o060000: "b", 0o010000: "p" } as Record<
      number,
      string
    >)[mode & 0o170000] ?? ((mode & 0o170000) === 0o140000 ? "s" : "-");
  let perms = "";
  for (const shift of [6, 3, 0]) {
    const bits = (mode >> shift) & 7;
    perms += (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-");
    const special = mode & (shift === 6 ? 0o4000 : shift === 3 ? 0o2000 : 0o1000);
    const exec = (bits & 1) !== 0;
    const mark = shift === 0 ? "t" : "s";
    perms += special ? (exec ? mark : mark.toUpperCase()) : (exec ? "x" : "-");
  }
  const when = new Date(attrs.mtime * 1000);
  const recent = Math.abs(Date.now() - when.getTime()) < 182 * 24 * 3600 * 1000;
  const day = String(when.getDate()).padStart(2, " ");
  const hhmm = `${String(when.getHours()).padStart(2, "0")}:${
    String(when.getMinutes()).padStart(2, "0")
  }`;
  const date = `${MONTHS[when.getMonth()]} ${day} ${recent ? hhmm : ` ${when.getFullYear()}`}`;
  return `${type}${perms} ${String(nlink).padStart(3)} ${String(attrs.uid).padEnd(8)} ${
    String(attrs.gid).padEnd(8)
  } ${String(attrs.size).padStart(8)} ${date} ${name}`;
}
