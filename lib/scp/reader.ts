/**
 * Reading the SCP byte stream from a channel: single status bytes, newline-ended records, and
 * file data handed on in the chunks it arrived in (so a 200 MB file is never held in memory).
 */

import type { ChunkSource } from "../ssh/channel.ts";

/** The channel ended (EOF or connection loss) where the protocol wanted more. */
export class StreamEnded extends Error {}

export class ByteReader {
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  private ended = false;

  constructor(private readonly source: ChunkSource) {}

  /** Fills the buffer; false at end of stream. Connection errors propagate. */
  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.ended) return false;
      const chunk = await this.source.read();
      if (!chunk) {
        this.ended = true;
        return false;
      }
      this.chunk = chunk;
      this.at = 0;
    }
    return true;
  }

  /** One byte, or undefined at a clean end of stream. */
  async byte(): Promise<number | undefined> {
    if (!(await this.fill())) return undefined;
    return this.chunk[this.at++];
  }

  /**
   * The bytes up to the next newline (not included), decoded as UTF-8. At most `max` bytes are
   * kept (the rest of an over-long line is dropped, as PuTTY's fixed buffer does).
   */
  async line(max = 65536): Promise<string> {
    const parts: Uint8Array[] = [];
    let kept = 0;
    for (;;) {
      if (!(await this.fill())) throw new StreamEnded("Lost connection");
      const nl = this.chunk.indexOf(10, this.at);
      const end = nl < 0 ? this.chunk.length : nl;
      const take = Math.min(end - this.at, max - kept);
      if (take > 0) {
        parts.push(this.chunk.slice(this.at, this.at + take));
        kept += take;
      }
      this.at = nl < 0 ? this.chunk.length : nl + 1;
      if (nl >= 0) break;
    }
    const all = new Uint8Array(kept);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new TextDecoder().decode(all);
  }

  /** Up to `max` bytes (at least one), as they arrived; throws StreamEnded at end of stream. */
  async some(max: number): Promise<Uint8Array> {
    if (!(await this.fill())) throw new StreamEnded("Lost connection");
    const n = Math.min(max, this.chunk.length - this.at);
    const out = this.chunk.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** Reads and drops everything to the end of the stream. */
  async drain(): Promise<void> {
    this.at = this.chunk.length;
    while (await this.fill()) this.at = this.chunk.length;
  }
}
