/**
 * SFTP version 3's wire format (draft-ietf-secsh-filexfer-02): packet and status numbers, file
 * attributes, the errors a reply can carry, and the reading of packets out of a channel's byte
 * stream. lib/sftp/client.ts speaks it.
 */

import { readUint32, SshReader, SshWriter } from "../ssh/wire.ts";

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

export const ATTR = {
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

export function writeAttrs(w: SshWriter, a: Attrs = {}): void {
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

export function readAttrs(r: SshReader): Attrs {
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

/** Where a DATA reply's data goes as it arrives, instead of into a packet of its own. */
export interface DataSink {
  /** `chunk` (lent: valid during the call only) is the data from `at` bytes into the reply's. */
  piece(chunk: Uint8Array, at: number): void;
  /** All `length` bytes of the data have come. */
  end(length: number): void;
}

/** Length, type, request id and the data's length: what precedes a DATA reply's data. */
const DATA_HEAD = 13;

/**
 * Reads SFTP packets out of the channel's byte stream as it comes, each chunk during one call.
 * A DATA reply whose request has a DataSink goes to it piece by piece, straight from the chunks
 * it arrived in: a download's data is copied once, to where it goes, and nothing keeps the
 * chunks, so the connection's packet buffers are reused. Every other packet is gathered whole.
 */
export class ReplyReader {
  /** The packet's first bytes, until we know how it is read. */
  private readonly head = new Uint8Array(DATA_HEAD);
  private headFill = 0;
  /** The packet being gathered whole (type first, no length field), and how much is in. */
  private body?: Uint8Array;
  private bodyFill = 0;
  /** The DATA reply being streamed: its sink, data bytes in, its data's length, bytes after. */
  private sink?: DataSink;
  private dataAt = 0;
  private dataLength = 0;
  private trailing = 0;

  constructor(
    private readonly maxLength: number,
    /** The sink for a DATA reply to request `id`, if its data should stream. */
    private readonly sinkFor: (id: number) => DataSink | undefined,
    /** A whole packet, type first. */
    private readonly packet: (body: Uint8Array) => void,
  ) {}

  /** Throws SftpProtocolError on a malformed stream (and whatever the callbacks throw). */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.sink) i += this.stream(chunk, i);
      else if (this.body) i += this.fill(chunk, i);
      else i += this.readHead(chunk, i);
    }
  }

  private stream(chunk: Uint8Array, i: number): number {
    const sink = this.sink!;
    const k = Math.min(chunk.length - i, this.dataLength - this.dataAt);
    if (k > 0) {
      sink.piece(chunk.subarray(i, i + k), this.dataAt);
      this.dataAt += k;
    }
    const skip = Math.min(chunk.length - i - k, this.trailing);
    this.trailing -= skip;
    if (this.dataAt === this.dataLength && this.trailing === 0) {
      this.sink = undefined;
      sink.end(this.dataLength);
    }
    return k + skip;
  }

  private fill(chunk: Uint8Array, i: number): number {
    const body = this.body!;
    const k = Math.min(chunk.length - i, body.length - this.bodyFill);
    body.set(chunk.subarray(i, i + k), this.bodyFill);
    this.bodyFill += k;
    if (this.bodyFill === body.length) {
      this.body = undefined;
      this.packet(body);
    }
    return k;
  }

  private readHead(chunk: Uint8Array, i: number): number {
    // Length and type first; a DATA reply's id and data length too, to find its sink.
    const want = this.headFill < 5 ? 5 : DATA_HEAD;
    const k = Math.min(chunk.length - i, want - this.headFill);
    this.head.set(chunk.subarray(i, i + k), this.headFill);
    this.headFill += k;
    if (this.headFill < want) return k;
    const len = readUint32(this.head, 0);
    if (len === 0 || len > this.maxLength) {
      throw new SftpProtocolError(`bad SFTP packet length ${len}`);
    }
    const isData = this.head[4] === FXP.DATA && len >= DATA_HEAD - 4;
    if (isData && this.headFill < DATA_HEAD) return k;
    const sink = isData ? this.sinkFor(readUint32(this.head, 5)) : undefined;
    const got = this.headFill;
    this.headFill = 0;
    if (sink) {
      const dataLength = readUint32(this.head, 9);
      if (dataLength > len - (DATA_HEAD - 4)) {
        throw new SftpProtocolError("SFTP DATA reply longer than its packet");
      }
      this.sink = sink;
      this.dataAt = 0;
      this.dataLength = dataLength;
      this.trailing = len - (DATA_HEAD - 4) - dataLength;
      // An empty reply ends here; the stream step also runs on no bytes.
      if (dataLength === 0 && this.trailing === 0) this.stream(chunk, chunk.length);
      return k;
    }
    const body = new Uint8Array(len);
    body.set(this.head.subarray(4, got));
    this.body = body;
    this.bodyFill = got - 4;
    if (this.bodyFill === len) this.fill(chunk, chunk.length);
    return k;
  }
}

export function statusMessage(r: SshReader): string {
  try {
    return r.remaining >= 4 ? r.string() : "";
  } catch {
    return "";
  }
}

export function expectStatus(r: SshReader, type: number): void {
  if (type !== FXP.STATUS) {
    throw new SftpProtocolError(`unexpected SFTP packet type ${type} (expected STATUS)`);
  }
  const code = r.uint32();
  if (code !== FX.OK) throw new SftpError(code, statusMessage(r));
}

export function statusOrUnexpected(r: SshReader, type: number, wanted: string): Error {
  if (type === FXP.STATUS) {
    const code = r.uint32();
    return new SftpError(code, statusMessage(r));
  }
  return new SftpProtocolError(`unexpected SFTP packet type ${type} (expected ${wanted})`);
}
