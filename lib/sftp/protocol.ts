/**
 * SFTP version 3's wire format (draft-ietf-secsh-filexfer-02): packet and status numbers, file
 * attributes, the errors a reply can carry, and the splitting of a channel's byte stream into
 * packets. lib/sftp/client.ts speaks it.
 */

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

/**
 * Splits the channel's byte stream into SFTP packets, each handed over as the pieces of the
 * chunks it arrived in (views, never copies): a 128 KiB read reply comes in four or five SSH
 * packets, and joining them would copy every byte downloaded once more.
 */
export class PacketSplitter {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Removes the next `n` bytes (n <= buffered), as views of the chunks they are in. */
  private take(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0];
      if (c.length <= n) {
        out.push(c);
        this.chunks.shift();
        n -= c.length;
      } else {
        out.push(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
    return out;
  }

  private peekLength(): number {
    let len = 0;
    let got = 0;
    for (const c of this.chunks) {
      for (let i = 0; i < c.length && got < 4; i++, got++) len = len * 256 + c[i];
      if (got === 4) break;
    }
    return len;
  }

  /**
   * The next whole packet (without its length field) as one or more pieces, or undefined until
   * more arrives.
   */
  next(maxLength: number): Uint8Array[] | undefined {
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
