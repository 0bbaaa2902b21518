/**
 * SSH compression (-C: zlib, zlib@openssh.com) for npm:ssh2 under Deno. The one touch of ssh2's
 * internals outside ssh2_internals.ts, because of load order: it must replace the packet
 * compressor classes of ssh2's lib/protocol/zlib.js before ssh2's kex and Protocol modules take
 * them, so it is imported ahead of "ssh2" (first in ssh2_internals.ts and loopback_server.ts).
 *
 * ssh2's own classes drive Node's private zlib binding by hand (`init` with a write-state
 * argument), which Deno's binding lays out differently: every compressed connection failed. Ours
 * use the handle of a Deflate/Inflate that node:zlib set up itself, flushed with Z_PARTIAL_FLUSH
 * after every packet as the SSH compression methods want. As in ssh2 and OpenSSH, each key
 * exchange starts new streams. Deno frees a zlib stream's native memory only on close, so every
 * stream is closed once its last packet is through (see CompressingWriter.cleanup).
 */

import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import ssh2ZlibModule from "npm:ssh2@1.17.0/lib/protocol/zlib.js";

const OUT_CHUNK = 32 * 1024;

interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  onerror: (message: string, errno: number) => void;
}

/** One zlib stream, flushed after every packet. */
class PacketZlib {
  private readonly engine: zlib.Deflate | zlib.Inflate;
  private readonly handle: ZlibHandle;
  /** [output space left, input left] after each writeSync, as node:zlib's handle reports it. */
  private readonly state: Uint32Array;
  private error?: Error;
  private closed = false;
  /** Where zlib writes; what it wrote is copied out, so the buffer serves every packet. */
  private readonly scratch = Buffer.allocUnsafe(OUT_CHUNK);

  constructor(kind: "deflate" | "inflate") {
    this.engine = kind === "deflate" ? zlib.createDeflate() : zlib.createInflate();
    const inside = this.engine as unknown as { _handle: ZlibHandle; _writeState: Uint32Array };
    this.handle = inside._handle;
    this.state = inside._writeState;
    this.handle.onerror = (message) => (this.error = new Error(`zlib: ${message}`));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.close();
  }

  /** Runs `input` through and flushes: the output, in one or more buffers of its own. */
  process(input: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    const buf = this.scratch;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      this.handle.writeSync(zlib.constants.Z_PARTIAL_FLUSH, input, inOff, inLen, buf, 0, OUT_CHUNK);
      if (this.error) throw this.error;
      const [outLeft, inLeft] = this.state;
      if (outLeft < OUT_CHUNK) out.push(Buffer.from(buf.subarray(0, OUT_CHUNK - outLeft)));
      // Output space to spare: all input taken and flushed. Else go on with the rest.
      if (outLeft > 0) return out;
      inOff += inLen - inLeft;
      inLen = inLeft;
    }
  }
}

interface Ssh2Protocol {
  _kexinit?: unknown;
  _cipher: { allocPacket(payloadLength: number): Buffer };
  _packetRW?: { write: unknown };
}

/** Compresses each outgoing payload into a packet (ssh2's ZlibPacketWriter interface). */
class CompressingWriter {
  allocStart = 0;
  allocStartKEX = 0;
  /** Made on first use: a writer that never sends holds no stream. */
  private stream?: PacketZlib;
  /** The writer this one takes over from at a key exchange, until this one first sends. */
  private predecessor?: CompressingWriter;
  private successor?: CompressingWriter;
  private cleanups = 0;

  constructor(private readonly _protocol: Ssh2Protocol) {
    const before = _protocol._packetRW?.write;
    if (before instanceof CompressingWriter) {
      before.successor = this;
      this.predecessor = before;
    }
  }

  /**
   * At a key exchange ssh2 cleans up the writer in place before it puts the new one in with the
   * new keys, and packets sent in between still need the old stream: the successor closes it
   * when it takes over. Otherwise (no successor, or the connection's end) it closes now.
   */
  cleanup(): void {
    if (++this.cleanups === 1 && this.successor) return;
    this.stream?.close();
  }

  alloc(payloadLength: number): Buffer {
    return Buffer.allocUnsafe(payloadLength);
  }

  finalize(payload: Buffer, force?: boolean): Buffer {
    // During a key exchange ssh2 queues other packets and finalizes them again afterwards.
    if (this._protocol._kexinit !== undefined && !force) return payload;
    if (this.predecessor) {
      this.predecessor.stream?.close();
      this.predecessor = undefined;
    }
    const parts = (this.stream ??= new PacketZlib("deflate")).process(payload);
    let length = 0;
    for (const p of parts) length += p.length;
    const packet = this._protocol._cipher.allocPacket(length);
    let at = 5; // after packet_length and padding_length
    for (const p of parts) {
      packet.set(p, at);
      at += p.length;
    }
    return packet;
  }
}

/** Decompresses each incoming payload (ssh2's ZlibPacketReader interface). */
class DecompressingReader {
  private readonly stream = new PacketZlib("inflate");

  cleanup(): void {
    this.stream.close();
  }

  read(data: Uint8Array): Buffer {
    const parts = this.stream.process(data);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

const exported = ssh2ZlibModule as { ZlibPacketReader: unknown; ZlibPacketWriter: unknown };
exported.ZlibPacketReader = DecompressingReader;
exported.ZlibPacketWriter = CompressingWriter;

export { CompressingWriter, DecompressingReader };
