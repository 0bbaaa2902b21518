/**
 * Reading the SCP byte stream from a channel: single status bytes, newline-ended records, and
 * file data handed on as it arrived (so a 200 MB file is never held in memory).
 */

import type { ChunkSource } from "../ssh/channel.ts";

/** The channel ended (EOF or connection loss) where the protocol wanted more. */
export class StreamEnded extends Error {}

/**
 * Reads the channel through peek(): its data is copied once, from the connection's packets into
 * the channel's buffer, and file data is handed on from there. What a call returns is valid
 * until the next call (which may let the channel reuse the space).
 */
export class ByteReader {
  /** What peek() showed, and how much of it is used. */
  private view: Uint8Array = new Uint8Array(0);
  private at = 0;
  private ended = false;

  constructor(private readonly source: ChunkSource) {}

  /** Fills the buffer; false at end of stream. Connection errors propagate. */
  private async fill(): Promise<boolean> {
    while (this.at >= this.view.length) {
      if (this.ended) return false;
      if (this.view.length) this.source.release(this.view.length);
      this.view = new Uint8Array(0);
      this.at = 0;
      const view = await this.source.peek();
      if (!view) {
        this.ended = true;
        return false;
      }
      this.view = view;
    }
    return true;
  }

  /** One byte, or undefined at a clean end of stream. */
  async byte(): Promise<number | undefined> {
    if (!(await this.fill())) return undefined;
    return this.view[this.at++];
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
      const nl = this.view.indexOf(10, this.at);
      const end = nl < 0 ? this.view.length : nl;
      const take = Math.min(end - this.at, max - kept);
      if (take > 0) {
        parts.push(this.view.slice(this.at, this.at + take));
        kept += take;
      }
      this.at = nl < 0 ? this.view.length : nl + 1;
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
    const n = Math.min(max, this.view.length - this.at);
    const out = this.view.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** Reads and drops everything to the end of the stream. */
  async drain(): Promise<void> {
    this.at = this.view.length;
    while (await this.fill()) this.at = this.view.length;
  }
}
