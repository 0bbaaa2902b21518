/**
 * SFTP client, protocol version 3 (draft-ietf-secsh-filexfer-02), the version OpenSSH and PuTTY
 * speak, over one session channel of our connection-layer client. Requests are pipelined: every
 * call sends its packet at once and waits only for its own reply, so many reads or writes can be
 * in flight (lib/files/sftp_pipeline.ts builds whole-file transfers on that).
 *
 * Like the rest of the channel code, this imports nothing heavy: pscp and psftp running as
 * downstreams load no crypto.
 */

import type { Channel, SshConnection } from "../ssh/connection.ts";
import { SshReader, SshWriter } from "../ssh/wire.ts";

export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

/** SSH_FX_* status codes. */
export const FX = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** SSH_FXF_* open flags. */
export const OPEN = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

const ATTR = {
  SIZE: 0x1,
  UIDGID: 0x2,
  PERMISSIONS: 0x4,
  ACMODTIME: 0x8,
  EXTENDED: 0x80000000,
} as const;

export interface Attrs {
  size?: number;
  uid?: number;
  gid?: number;
  /** st_mode: file type bits and permissions. */
  permissions?: number;
  /** Seconds since the epoch. */
  atime?: number;
  mtime?: number;
}

export interface DirEntry {
  name: string;
  /** The server's `ls -l` style line. */
  longname: string;
  attrs: Attrs;
}

/** The texts PuTTY shows for each status code (sftp.c), whatever the server said. */
const STATUS_TEXT = [
  "unexpected OK response",
  "end of file",
  "no such file or directory",
  "permission denied",
  "failure",
  "bad message",
  "no connection",
  "connection lost",
  "operation unsupported",
];

/** A status reply other than OK. `message` is PuTTY's text for the code. */
export class SftpError extends Error {
  constructor(readonly code: number, readonly serverMessage = "") {
    super(STATUS_TEXT[code] ?? `unknown status code ${code}`);
  }
}

/** The server has no SFTP service for us (subsystem refused, no sftp-server). */
export class SftpUnavailableError extends Error {}

/** The server broke the protocol, or the channel ended under a request. */
export class SftpProtocolError extends Error {}

export function isDirectory(a: Attrs): boolean {
  return a.permissions !== undefined && (a.permissions & 0o170000) === 0o040000;
}

export function isRegularFile(a: Attrs): boolean {
  return a.permissions !== undefined && (a.permissions & 0o170000) === 0o100000;
}

function writeAttrs(w: SshWriter, a: Attrs = {}): void {
  let flags = 0;
  if (a.size !== undefined) flags |= ATTR.SIZE;
  if (a.uid !== undefined && a.gid !== undefined) flags |= ATTR.UIDGID;
  if (a.permissions !== undefined) flags |= ATTR.PERMISSIONS;
  if (a.atime !== undefined && a.mtime !== undefined) flags |= ATTR.ACMODTIME;
  w.uint32(flags);
  if (flags & ATTR.SIZE) w.uint64(a.size!);
  if (flags & ATTR.UIDGID) w.uint32(a.uid!).uint32(a.gid!);
  if (flags & ATTR.PERMISSIONS) w.uint32(a.permissions!);
  if (flags & ATTR.ACMODTIME) w.uint32(a.atime!).uint32(a.mtime!);
}

function readAttrs(r: SshReader): Attrs {
  const flags = r.uint32();
  const a: Attrs = {};
  if (flags & ATTR.SIZE) a.size = r.uint64();
  if (flags & ATTR.UIDGID) {
    a.uid = r.uint32();
    a.gid = r.uint32();
  }
  if (flags & ATTR.PERMISSIONS) a.permissions = r.uint32();
  if (flags & ATTR.ACMODTIME) {
    a.atime = r.uint32();
    a.mtime = r.uint32();
  }
  if (flags & ATTR.EXTENDED) {
    const n = r.uint32();
    for (let i = 0; i < n; i++) {
      r.bytes();
      r.bytes();
    }
  }
  return a;
}

interface Pending {
  resolve(r: SshReader, type: number): void;
  reject(e: Error): void;
}

/** Splits the channel's byte stream into SFTP packets without copying where it can. */
class PacketSplitter {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  private peekLength(): number {
    const head = this.chunks[0].length >= 4 ? this.chunks[0] : this.takeAndRestore(4);
    return ((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0;
  }

  private takeAndRestore(n: number): Uint8Array {
    const b = this.take(n);
    this.chunks.unshift(b);
    this.buffered += n;
    return b;
  }

  /** The next whole packet (without its length field), or undefined until more arrives. */
  next(maxLength: number): Uint8Array | undefined {
    if (this.buffered < 4) return undefined;
    const len = this.peekLength();
    if (len === 0 || len > maxLength) {
      throw new SftpProtocolError(`bad SFTP packet length ${len}`);
    }
    if (this.buffered < 4 + len) return undefined;
    this.take(4);
    return this.take(len);
  }
}

/** Largest packet we accept from the server (OpenSSH's own limit is 256 KiB). */
const MAX_PACKET = 1024 * 1024;

export interface SftpStartOptions {
  /**
   * When the "sftp" subsystem is refused, try running sftp-server by hand, as pscp does for
   * servers without the subsystem configured.
   */
  fallbackExec?: boolean;
}

/** What PuTTY's pscp runs when the sftp subsystem is refused. */
const SFTP_SERVER_COMMAND = "test -x /usr/lib/sftp-server && exec /usr/lib/sftp-server\n" +
  "test -x /usr/local/lib/sftp-server && exec /usr/local/lib/sftp-server\n" +
  "exec sftp-server";

export class SftpClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private sendChain: Promise<void> = Promise.resolve();
  private failure?: Error;
  private closedResolve!: (e: Error | undefined) => void;
  private closing = false;
  /** Settles when the channel is gone; with an Error unless we closed it ourselves. */
  readonly closed: Promise<Error | undefined>;
  version = 3;
  /** Extensions the server announced (name -> data), e.g. posix-rename@openssh.com. */
  readonly extensions = new Map<string, string>();
  /** The server's limits@openssh.com answer, when it has the extension. */
  limits?: { maxPacket: number; maxRead: number; maxWrite: number; maxHandles: number };

  private constructor(private readonly ch: Channel) {
    this.closed = new Promise((r) => (this.closedResolve = r));
    this.readLoop();
    ch.closed.then(() => this.fail(ch.failure ?? new SftpProtocolError("SFTP channel closed")));
  }

  /** Opens a session channel, starts the SFTP server on it and does INIT/VERSION. */
  static async start(conn: SshConnection, opts: SftpStartOptions = {}): Promise<SftpClient> {
    const ch = await conn.openSession();
    let ok = await ch.subsystem("sftp");
    if (!ok && opts.fallbackExec) {
      ch.close();
      const again = await conn.openSession();
      ok = await again.exec(SFTP_SERVER_COMMAND);
      if (ok) return await SftpClient.init(again);
      again.close();
      throw new SftpUnavailableError("server refused to start an SFTP server");
    }
    if (!ok) {
      ch.close();
      throw new SftpUnavailableError('server refused to start the "sftp" subsystem');
    }
    return await SftpClient.init(ch);
  }

  private static async init(ch: Channel): Promise<SftpClient> {
    const client = new SftpClient(ch);
    const r = await client.request(FXP.INIT, (w) => w.uint32(3), true).catch((e) => {
      ch.close();
      throw e instanceof SftpProtocolError
        ? new SftpUnavailableError(`SFTP server did not start: ${e.message}`)
        : e;
    });
    client.version = r.uint32();
    while (r.remaining > 0) client.extensions.set(r.string(), r.string());
    if (client.extensions.has("limits@openssh.com")) {
      try {
        const lr = await client.extended("limits@openssh.com");
        client.limits = {
          maxPacket: lr.uint64(),
          maxRead: lr.uint64(),
          maxWrite: lr.uint64(),
          maxHandles: lr.uint64(),
        };
      } catch { /* optional */ }
    }
    return client;
  }

  private async readLoop(): Promise<void> {
    const split = new PacketSplitter();
    try {
      for (let chunk = await this.ch.stdout.read(); chunk; chunk = await this.ch.stdout.read()) {
        split.push(chunk);
        for (let p = split.next(MAX_PACKET); p; p = split.next(MAX_PACKET)) this.dispatch(p);
      }
      this.fail(new SftpProtocolError("server closed the SFTP channel"));
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
      this.ch.close();
    }
  }

  private dispatch(p: Uint8Array): void {
    const type = p[0];
    const r = new SshReader(p, 1);
    if (type === FXP.VERSION) {
      const waiter = this.pending.get(0);
      this.pending.delete(0);
      if (!waiter) throw new SftpProtocolError("unexpected SFTP VERSION packet");
      return waiter.resolve(r, type);
    }
    const id = r.uint32();
    const waiter = this.pending.get(id);
    if (!waiter) throw new SftpProtocolError(`SFTP reply for unknown request ${id}`);
    this.pending.delete(id);
    waiter.resolve(r, type);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = this.closing ? new SftpProtocolError("SFTP session closed") : err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    this.closedResolve(this.closing ? undefined : err);
  }

  /** Sends one packet; packets are written whole and in order even when the window is short. */
  private send(packet: Uint8Array): void {
    this.sendChain = this.sendChain.then(() => this.ch.write(packet)).catch((e) => {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    });
  }

  /**
   * Sends a request and resolves with a reader at the reply's body (after the id) and its type.
   * INIT is the one request without an id; its reply (VERSION) is filed under id 0.
   */
  private request(
    type: number,
    fill: (w: SshWriter) => void,
    init = false,
  ): Promise<SshReader> {
    return this.requestTyped(type, fill, init).then(([r]) => r);
  }

  private requestTyped(
    type: number,
    fill: (w: SshWriter) => void,
    init = false,
  ): Promise<[SshReader, number]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = init ? 0 : this.nextId;
    if (!init) this.nextId = (this.nextId + 1) >>> 0 || 1;
    const w = new SshWriter(64);
    w.uint32(0).byte(type);
    if (!init) w.uint32(id);
    fill(w);
    const packet = w.done();
    new DataView(packet.buffer, packet.byteOffset).setUint32(0, packet.length - 4);
    const reply = new Promise<[SshReader, number]>((resolve, reject) => {
      this.pending.set(id, { resolve: (r, t) => resolve([r, t]), reject });
    });
    this.send(packet);
    return reply;
  }

  /** A request whose success reply is a STATUS OK. */
  private async statusRequest(type: number, fill: (w: SshWriter) => void): Promise<void> {
    const [r, t] = await this.requestTyped(type, fill);
    expectStatus(r, t);
  }

  private async handleRequest(type: number, fill: (w: SshWriter) => void): Promise<Uint8Array> {
    const [r, t] = await this.requestTyped(type, fill);
    if (t === FXP.HANDLE) return r.bytes().slice();
    throw statusOrUnexpected(r, t, "HANDLE");
  }

  private async attrsRequest(type: number, fill: (w: SshWriter) => void): Promise<Attrs> {
    const [r, t] = await this.requestTyped(type, fill);
    if (t === FXP.ATTRS) return readAttrs(r);
    throw statusOrUnexpected(r, t, "ATTRS");
  }

  private async nameRequest(type: number, fill: (w: SshWriter) => void): Promise<DirEntry[]> {
    const [r, t] = await this.requestTyped(type, fill);
    if (t !== FXP.NAME) throw statusOrUnexpected(r, t, "NAME");
    const n = r.uint32();
    const out: DirEntry[] = [];
    for (let i = 0; i < n; i++) {
      const name = r.string();
      const longname = r.string();
      out.push({ name, longname, attrs: readAttrs(r) });
    }
    return out;
  }

  /** An extended request (SSH_FXP_EXTENDED); resolves at the reply's data. */
  async extended(name: string, fill?: (w: SshWriter) => void): Promise<SshReader> {
    const [r, t] = await this.requestTyped(FXP.EXTENDED, (w) => {
      w.string(name);
      fill?.(w);
    });
    if (t === FXP.EXTENDED_REPLY) return r;
    if (t === FXP.STATUS) {
      expectStatus(r, t);
      return new SshReader(new Uint8Array(0));
    }
    throw statusOrUnexpected(r, t, "EXTENDED_REPLY");
  }

  /** The server's canonical absolute form of `path`. */
  async realpath(path: string): Promise<string> {
    const names = await this.nameRequest(FXP.REALPATH, (w) => w.string(path));
    if (names.length !== 1) throw new SftpProtocolError("REALPATH returned no single name");
    return names[0].name;
  }

  stat(path: string): Promise<Attrs> {
    return this.attrsRequest(FXP.STAT, (w) => w.string(path));
  }

  lstat(path: string): Promise<Attrs> {
    return this.attrsRequest(FXP.LSTAT, (w) => w.string(path));
  }

  setstat(path: string, attrs: Attrs): Promise<void> {
    return this.statusRequest(FXP.SETSTAT, (w) => {
      w.string(path);
      writeAttrs(w, attrs);
    });
  }

  /** Every entry of a directory, as the server lists them ("." and ".." included if it sends them). */
  async readdir(path: string): Promise<DirEntry[]> {
    const handle = await this.handleRequest(FXP.OPENDIR, (w) => w.string(path));
    const out: DirEntry[] = [];
    try {
      for (;;) {
        try {
          out.push(...await this.nameRequest(FXP.READDIR, (w) => w.string(handle)));
        } catch (e) {
          if (e instanceof SftpError && e.code === FX.EOF) break;
          throw e;
        }
      }
    } finally {
      await this.closeHandle(handle).catch(() => {});
    }
    return out;
  }

  mkdir(path: string, attrs?: Attrs): Promise<void> {
    return this.statusRequest(FXP.MKDIR, (w) => {
      w.string(path);
      writeAttrs(w, attrs);
    });
  }

  rmdir(path: string): Promise<void> {
    return this.statusRequest(FXP.RMDIR, (w) => w.string(path));
  }

  remove(path: string): Promise<void> {
    return this.statusRequest(FXP.REMOVE, (w) => w.string(path));
  }

  /** SSH_FXP_RENAME: fails when `to` exists (on OpenSSH); see posixRename. */
  rename(from: string, to: string): Promise<void> {
    return this.statusRequest(FXP.RENAME, (w) => w.string(from).string(to));
  }

  /** Whether the server does posix-rename@openssh.com (rename replacing the target atomically). */
  get hasPosixRename(): boolean {
    return this.extensions.has("posix-rename@openssh.com");
  }

  /** rename(2) semantics: replaces `to`. Needs posix-rename@openssh.com. */
  async posixRename(from: string, to: string): Promise<void> {
    await this.extended("posix-rename@openssh.com", (w) => w.string(from).string(to));
  }

  async open(path: string, flags: number, attrs?: Attrs): Promise<SftpHandle> {
    const h = await this.handleRequest(FXP.OPEN, (w) => {
      w.string(path).uint32(flags);
      writeAttrs(w, attrs);
    });
    return new SftpHandle(this, h, path);
  }

  /** @internal */
  closeHandle(handle: Uint8Array): Promise<void> {
    return this.statusRequest(FXP.CLOSE, (w) => w.string(handle));
  }

  /** @internal */
  async read(handle: Uint8Array, offset: number, length: number): Promise<Uint8Array | null> {
    const [r, t] = await this.requestTyped(FXP.READ, (w) => {
      w.string(handle).uint64(offset).uint32(length);
    });
    if (t === FXP.DATA) return r.bytes();
    if (t === FXP.STATUS) {
      const code = r.uint32();
      if (code === FX.EOF) return null;
      throw new SftpError(code, statusMessage(r));
    }
    throw new SftpProtocolError(`unexpected SFTP packet type ${t} (expected DATA)`);
  }

  /** @internal */
  write(handle: Uint8Array, offset: number, data: Uint8Array): Promise<void> {
    return this.statusRequest(FXP.WRITE, (w) => w.string(handle).uint64(offset).string(data));
  }

  /** @internal */
  fstat(handle: Uint8Array): Promise<Attrs> {
    return this.attrsRequest(FXP.FSTAT, (w) => w.string(handle));
  }

  /** @internal */
  fsetstat(handle: Uint8Array, attrs: Attrs): Promise<void> {
    return this.statusRequest(FXP.FSETSTAT, (w) => {
      w.string(handle);
      writeAttrs(w, attrs);
    });
  }

  /** Requests the server may still be answering (reads and writes in flight). */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Ends the SFTP session: closes the channel. */
  async close(): Promise<void> {
    if (this.failure) return;
    this.closing = true;
    await this.sendChain;
    this.ch.eof();
    this.ch.close();
    await this.ch.closed;
    this.fail(new SftpProtocolError("SFTP session closed"));
  }
}

/** An open remote file. */
export class SftpHandle {
  private isClosed = false;
  constructor(
    private readonly client: SftpClient,
    private readonly handle: Uint8Array,
    readonly path: string,
  ) {}

  /** Up to `length` bytes at `offset` (servers may return fewer); null at end of file. */
  read(offset: number, length: number): Promise<Uint8Array | null> {
    return this.client.read(this.handle, offset, length);
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.client.write(this.handle, offset, data);
  }

  fstat(): Promise<Attrs> {
    return this.client.fstat(this.handle);
  }

  fsetstat(attrs: Attrs): Promise<void> {
    return this.client.fsetstat(this.handle, attrs);
  }

  /** Closes the handle (a write error the server held back may surface here). Idempotent. */
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.isClosed = true;
    return this.client.closeHandle(this.handle);
  }

  /** The client this handle belongs to (its limits and in-flight count). */
  get sftp(): SftpClient {
    return this.client;
  }
}

function statusMessage(r: SshReader): string {
  try {
    return r.remaining >= 4 ? r.string() : "";
  } catch {
    return "";
  }
}

function expectStatus(r: SshReader, type: number): void {
  if (type !== FXP.STATUS) {
    throw new SftpProtocolError(`unexpected SFTP packet type ${type} (expected STATUS)`);
  }
  const code = r.uint32();
  if (code !== FX.OK) throw new SftpError(code, statusMessage(r));
}

function statusOrUnexpected(r: SshReader, type: number, wanted: string): Error {
  if (type === FXP.STATUS) {
    const code = r.uint32();
    return new SftpError(code, statusMessage(r));
  }
  return new SftpProtocolError(`unexpected SFTP packet type ${type} (expected ${wanted})`);
}
