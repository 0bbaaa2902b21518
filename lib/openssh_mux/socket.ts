/**
 * One connection on an OpenSSH control socket, either end: mux messages first (readMessage /
 * sendMessage), then, once enterProxy() is called, a PacketPort carrying bare connection-layer
 * payloads in OpenSSH's unencrypted proxy framing.
 */

import {
  OutboxPort,
  type PacketHandlers,
  PacketInbox,
  PacketOutbox,
  type PacketPort,
} from "../ssh/packet_port.ts";
import { ConnectionClosedError } from "../ssh/channel.ts";
import { readUint32, writeUint32 } from "../ssh/wire.ts";
import { MAX_MUX_FRAME } from "../share/limits.ts";
import { MuxProtocolError } from "./protocol.ts";
import { after } from "../util/timer.ts";
import { osErrorText } from "../util/error_text.ts";

/** How long close() waits for queued bytes to be written to a peer that isn't reading. */
const CLOSE_FLUSH_MS = 2000;

export interface MuxSocketOptions {
  /**
   * The peer is OpenSSH's client, whose reader refuses a packet length under 5 (ssh_packet_read_
   * poll2_mux): payloads shorter than 4 bytes (REQUEST_SUCCESS, REQUEST_FAILURE) get padding.
   * Never toward a master: it passes padding on to the server as part of the payload.
   */
  padShortPackets?: boolean;
  /** Called when the peer breaks the framing (before the socket closes). */
  onProtocolError?: (err: Error) => void;
}

export class MuxSocket extends OutboxPort implements PacketPort {
  private readonly inbox = new PacketInbox();
  private proxying = false;
  /** Mux messages received and not yet read, and readers waiting for one. */
  private messages: Uint8Array[] = [];
  private readers: { resolve(b: Uint8Array): void; reject(e: Error): void }[] = [];
  protected readonly outbox: PacketOutbox;
  private closed = false;
  private closeAfterFlush?: Error;
  private error?: Error;

  constructor(
    private readonly conn: Deno.Conn,
    private readonly peerName: string,
    private readonly opts: MuxSocketOptions = {},
  ) {
    super();
    this.outbox = new PacketOutbox(conn, (writeError) => {
      if (writeError !== undefined) {
        const err = new ConnectionClosedError(
          `${this.peerName}: write failed: ${osErrorText(writeError)}`,
        );
        this.finish(err, err);
      }
      if (this.closeAfterFlush) this.finish(this.closeAfterFlush);
    });
    this.pump();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The next mux message (type and body, without the length); rejects once the socket is gone. */
  readMessage(): Promise<Uint8Array> {
    const m = this.messages.shift();
    if (m) return Promise.resolve(m);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  sendMessage(body: Uint8Array): void {
    const framed = new Uint8Array(body.length + 4);
    writeUint32(framed, 0, body.length);
    framed.set(body, 4);
    this.enqueue(framed);
  }

  /** From now on frames are SSH packets; anything that came after the proxy request is one. */
  enterProxy(): void {
    this.proxying = true;
    const early = this.messages;
    this.messages = [];
    try {
      for (const body of early) this.deliverPacket(body);
    } catch (e) {
      this.opts.onProtocolError?.(e as Error);
      this.finish(e as Error, e as Error);
    }
  }

  send(payload: Uint8Array): void {
    const pad = this.opts.padShortPackets && payload.length < 4 ? 4 - payload.length : 0;
    const framed = new Uint8Array(payload.length + 5 + pad);
    writeUint32(framed, 0, payload.length + 1 + pad);
    framed[4] = pad;
    framed.set(payload, 5);
    this.enqueue(framed);
  }

  start(handlers: PacketHandlers): void {
    this.inbox.start(handlers);
  }

  /**
   * Closes once what is queued has been written (a last reply, say), or CLOSE_FLUSH_MS from now
   * if the peer is not reading.
   */
  close(err?: Error): void {
    if (this.closed) return;
    if (this.outbox.busy) {
      const reason = err ?? new ConnectionClosedError(`${this.peerName} closed`);
      this.closeAfterFlush = reason;
      after(CLOSE_FLUSH_MS, () => this.finish(reason));
      return;
    }
    this.finish(err ?? new ConnectionClosedError(`${this.peerName} closed`), err);
  }

  private finish(reason: Error, reported?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox.stop();
    this.error = reason;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    for (const r of this.readers.splice(0)) r.reject(reason);
    this.inbox.close(reported);
  }

  private enqueue(bytes: Uint8Array): void {
    if (this.closed || this.closeAfterFlush) return;
    this.outbox.push(bytes);
  }

  private deliverPacket(body: Uint8Array): void {
    const pad = body[0];
    if (body.length < 2 || pad > body.length - 2) {
      throw new MuxProtocolError(`bad packet (length ${body.length}, padding ${pad})`);
    }
    this.inbox.deliver(body.subarray(1, body.length - pad));
  }

  private async pump(): Promise<void> {
    let buf = new Uint8Array(65536);
    let have = 0;
    try {
      for (;;) {
        if (have === buf.length) {
          const bigger = new Uint8Array(buf.length * 2);
          bigger.set(buf);
          buf = bigger;
        }
        const n = await this.conn.read(buf.subarray(have));
        if (n === null) break;
        have += n;
        let at = 0;
        while (have - at >= 4) {
          const len = readUint32(buf, at);
          if (len < 4 || len > MAX_MUX_FRAME) throw new MuxProtocolError(`bad frame length ${len}`);
          if (have - at < len + 4) break;
          const body = buf.slice(at + 4, at + 4 + len);
          at += len + 4;
          if (this.proxying) this.deliverPacket(body);
          else {
            const reader = this.readers.shift();
            if (reader) reader.resolve(body);
            else this.messages.push(body);
          }
          if (this.closed) return;
        }
        if (at > 0) {
          buf.copyWithin(0, at, have);
          have -= at;
        }
      }
      const err = new ConnectionClosedError(`${this.peerName} closed the connection`);
      this.finish(err, err);
    } catch (e) {
      if (this.closed) return;
      const err = e instanceof MuxProtocolError
        ? e
        : new ConnectionClosedError(`${this.peerName}: ${osErrorText(e)}`);
      if (e instanceof MuxProtocolError) this.opts.onProtocolError?.(e);
      this.finish(err, err);
    }
  }
}
