/**
 * SFTP client, protocol version 3 (draft-ietf-secsh-filexfer-02), the version OpenSSH and PuTTY
 * speak, over one session channel of our connection-layer client. Requests are pipelined: every
 * call sends its packet at once and waits only for its own reply, so many reads or writes can be
 * in flight (lib/files/sftp_pipeline.ts builds whole-file transfers on that).
 *
 * Like the rest of the channel code, this imports nothing heavy: pscp and psftp running as
 * downstreams load no crypto.
 */

import type { SshConnection } from "../ssh/connection.ts";
import type { Channel } from "../ssh/channel.ts";
import { SshReader, SshWriter } from "../ssh/wire.ts";
import {
  type Attrs,
  type DataSink,
  type DirEntry,
  expectStatus,
  FX,
  FXP,
  readAttrs,
  ReplyReader,
  SftpError,
  SftpProtocolError,
  SftpUnavailableError,
  statusMessage,
  statusOrUnexpected,
  writeAttrs,
} from "./protocol.ts";

interface Pending {
  resolve(r: SshReader, type: number): void;
  reject(e: Error): void;
  /** Where a DATA reply's data goes as it comes (a READ's waiter), instead of to resolve. */
  data?: DataSink;
}

/** Largest packet we accept from the server (OpenSSH's own limit is 256 KiB). */
const MAX_PACKET = 1024 * 1024;

export interface SftpStartOptions {
  /**
   * When the "sftp" subsystem is refused, try running sftp-server by hand, as pscp does for
   * servers without the subsystem configured.
   */
  fallbackExec?: boolean;
  /** Opens the session channel for SFTP (a tool's main channel, refused in its words). */
  open?: (conn: SshConnection) => Promise<Channel>;
}

/** What PuTTY's pscp runs when the sftp subsystem is refused. */
const SFTP_SERVER_COMMAND = "test -x /usr/lib/sftp-server && exec /usr/lib/sftp-server\n" +
  "test -x /usr/local/lib/sftp-server && exec /usr/local/lib/sftp-server\n" +
  "exec sftp-server";

/**
 * A request's packet: type, room for its id (unless INIT, the one request without), and the body
 * `fill` writes; sendPacket puts in its length and id.
 */
function requestPacket(type: number, fill: (w: SshWriter) => void, init: boolean): Uint8Array {
  const w = new SshWriter(64);
  w.uint32(0).byte(type);
  if (!init) w.uint32(0);
  fill(w);
  return w.done();
}

export class SftpClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private sendChain: Promise<void> = Promise.resolve();
  /** Packets in sendChain not yet written. */
  private waitingSends = 0;
  private failure?: Error;
  private closedResolve!: (e: Error | undefined) => void;
  private closing = false;
  /** Settles when the channel is gone; with an Error unless we closed it ourselves. */
  readonly closed: Promise<Error | undefined>;
  version = 3;
  /** Extensions the server announced (name -> data), e.g. posix-rename@openssh.com. */
  readonly extensions = new Map<string, string>();
  /** Bytes of reads worth having in flight on this connection (its limits' readAhead). */
  readAhead?: number;
  /** The server's limits@openssh.com answer, when it has the extension. */
  limits?: { maxPacket: number; maxRead: number; maxWrite: number; maxHandles: number };

  private constructor(private readonly ch: Channel) {
    this.closed = new Promise((r) => (this.closedResolve = r));
    this.readLoop();
    ch.closed.then(() => this.fail(ch.failure ?? new SftpProtocolError("SFTP channel closed")));
  }

  /** Opens a session channel, starts the SFTP server on it and does INIT/VERSION. */
  static async start(conn: SshConnection, opts: SftpStartOptions = {}): Promise<SftpClient> {
    const ch = await (opts.open ?? ((c) => c.openSession()))(conn);
    let ok = await ch.subsystem("sftp");
    if (!ok && opts.fallbackExec) {
      ch.close();
      const again = await conn.openSession();
      ok = await again.exec(SFTP_SERVER_COMMAND);
      if (ok) return await SftpClient.init(again, conn.limits.readAhead);
      again.close();
      throw new SftpUnavailableError("server refused to start an SFTP server");
    }
    if (!ok) {
      ch.close();
      throw new SftpUnavailableError('server refused to start the "sftp" subsystem');
    }
    return await SftpClient.init(ch, conn.limits.readAhead);
  }

  private static async init(ch: Channel, readAhead?: number): Promise<SftpClient> {
    const client = new SftpClient(ch);
    client.readAhead = readAhead;
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
    const reader = new ReplyReader(MAX_PACKET, (id) => this.dataSink(id), (p) => this.dispatch(p));
    let broken = false;
    try {
      await this.ch.stdout.consume((chunk) => {
        if (broken) return;
        try {
          reader.push(chunk);
        } catch (e) {
          broken = true;
          this.fail(e instanceof Error ? e : new Error(String(e)));
          this.ch.close();
        }
      });
      this.fail(new SftpProtocolError("server closed the SFTP channel"));
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
      this.ch.close();
    }
  }

  /** The sink of a READ that takes its data as it comes; the request is answered at its end. */
  private dataSink(id: number): DataSink | undefined {
    const sink = this.pending.get(id)?.data;
    if (!sink) return undefined;
    return {
      piece: (chunk, at) => sink.piece(chunk, at),
      end: (length) => {
        this.pending.delete(id);
        sink.end(length);
      },
    };
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

  /**
   * Sends one packet; packets are written whole and in order even when the window is short.
   * One that fits the window with nothing before it waiting goes at once: a burst of requests
   * made together then leaves in one write to the socket, not one each.
   */
  private send(packet: Uint8Array): void {
    const failed = (e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e)));
    if (this.waitingSends === 0 && this.ch.writesAtOnce(packet.length)) {
      this.ch.write(packet).catch(failed);
      return;
    }
    this.waitingSends++;
    this.sendChain = this.sendChain.then(() => this.ch.write(packet)).catch(failed).finally(() => {
      this.waitingSends--;
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
    return this.packetReply(requestPacket(type, fill, init), init);
  }

  /** Sends a request whose reply goes to `waiter`. */
  private sendRequest(
    type: number,
    fill: (w: SshWriter) => void,
    waiter: Pending,
    init = false,
  ): void {
    this.sendPacket(requestPacket(type, fill, init), waiter, init);
  }

  /** Sends a request's packet (see sendPacket); resolves with its reply's reader and type. */
  private packetReply(packet: Uint8Array, init = false): Promise<[SshReader, number]> {
    return new Promise<[SshReader, number]>((resolve, reject) => {
      this.sendPacket(packet, { resolve: (r, t) => resolve([r, t]), reject }, init);
    });
  }

  /**
   * Sends a request's packet, its type and body in place: its length goes in here, and its id
   * (INIT, the one request without, files its reply under id 0).
   */
  private sendPacket(packet: Uint8Array, waiter: Pending, init = false): void {
    if (this.failure) return waiter.reject(this.failure);
    const id = init ? 0 : this.nextId;
    if (!init) this.nextId = (this.nextId + 1) >>> 0 || 1;
    const v = new DataView(packet.buffer, packet.byteOffset, packet.length);
    v.setUint32(0, packet.length - 4);
    if (!init) v.setUint32(5, id);
    this.pending.set(id, waiter);
    this.send(packet);
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

  /** @internal The data (a copy of its own), or null at end of file. */
  read(handle: Uint8Array, offset: number, length: number): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const data = new Uint8Array(length);
      let overrun = false;
      this.readInto(handle, offset, length, (chunk, at) => {
        if (at + chunk.length > length) overrun = true;
        else data.set(chunk, at);
      }, (n) => {
        if (overrun) reject(new SftpProtocolError("SFTP server sent more data than was asked for"));
        else resolve(n === null ? null : data.subarray(0, n));
      }, reject);
    });
  }

  /**
   * @internal A READ whose data goes to `into` as it comes, straight from the channel's chunks
   * (lent: copy what you keep during the call); `done` gets its length (0 for an empty reply),
   * or null at end of file. Callbacks, not a promise, so nothing holds the data after it came.
   */
  readInto(
    handle: Uint8Array,
    offset: number,
    length: number,
    into: (chunk: Uint8Array, at: number) => void,
    done: (length: number | null) => void,
    onError: (e: Error) => void,
  ): void {
    const fail = (e: unknown) => onError(e instanceof Error ? e : new Error(String(e)));
    this.sendRequest(FXP.READ, (w) => w.string(handle).uint64(offset).uint32(length), {
      data: {
        piece: into,
        end: (n) => {
          try {
            done(n);
          } catch (e) {
            fail(e);
          }
        },
      },
      reject: onError,
      resolve: (r, t) => {
        try {
          // A DATA reply comes here only if too short to hold its data's length.
          if (t === FXP.DATA) throw new SftpProtocolError("malformed SFTP DATA reply");
          if (t !== FXP.STATUS) throw statusOrUnexpected(r, t, "DATA");
          const code = r.uint32();
          if (code !== FX.EOF) throw new SftpError(code, statusMessage(r));
          done(null);
        } catch (e) {
          fail(e);
        }
      },
    });
  }

  /** @internal */
  write(handle: Uint8Array, offset: number, data: Uint8Array): Promise<void> {
    const head = this.writeHeaderLength(handle);
    const packet = new Uint8Array(head + data.length);
    packet.set(data, head);
    return this.writePacket(handle, packet, offset, data.length);
  }

  /** @internal What precedes the data in a WRITE's packet for `handle` (see writePacket). */
  writeHeaderLength(handle: Uint8Array): number {
    // length, type, id, handle string, offset, the data's length
    return 4 + 1 + 4 + 4 + handle.length + 8 + 4;
  }

  /**
   * @internal A WRITE of `length` bytes at `offset` whose data the caller has put in `packet`
   * after writeHeaderLength(handle) bytes, so it is not copied into a packet of its own. The
   * packet is the client's until the reply comes (the promise settles).
   */
  writePacket(
    handle: Uint8Array,
    packet: Uint8Array,
    offset: number,
    length: number,
  ): Promise<void> {
    const total = this.writeHeaderLength(handle) + length;
    // Length and id are sendPacket's.
    const v = new DataView(packet.buffer, packet.byteOffset, total);
    packet[4] = FXP.WRITE;
    v.setUint32(9, handle.length);
    packet.set(handle, 13);
    const at = 13 + handle.length;
    v.setUint32(at, Math.floor(offset / 0x100000000));
    v.setUint32(at + 4, offset >>> 0);
    v.setUint32(at + 8, length);
    return this.packetReply(packet.subarray(0, total)).then(([r, t]) => expectStatus(r, t));
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

  /** read() with its data handed over as it comes (see SftpClient.readInto). */
  readInto(
    offset: number,
    length: number,
    into: (chunk: Uint8Array, at: number) => void,
    done: (length: number | null) => void,
    onError: (e: Error) => void,
  ): void {
    this.client.readInto(this.handle, offset, length, into, done, onError);
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.client.write(this.handle, offset, data);
  }

  /** What precedes the data in a WRITE's packet (see SftpClient.writePacket). */
  get writeHeaderLength(): number {
    return this.client.writeHeaderLength(this.handle);
  }

  /** write() of data already in place in `packet` (see SftpClient.writePacket). */
  writePacket(packet: Uint8Array, offset: number, length: number): Promise<void> {
    return this.client.writePacket(this.handle, packet, offset, length);
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
