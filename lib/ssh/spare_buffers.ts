/**
 * A bounded stock of same-sized buffers, handed out again once their last holder gives them back:
 * for bulk packets, which otherwise each make a fresh buffer and leave it to the collector. A
 * buffer nobody gives back is collected as any other.
 *
 * Light on purpose: the connection layer (and so the downstream path) uses it.
 */
export class SpareBuffers {
  private readonly made = new WeakSet<ArrayBuffer>();
  private readonly spares: ArrayBuffer[] = [];

  /** Buffers of `size` bytes; at most `kept` wait to be handed out again. */
  constructor(readonly size: number, private readonly kept: number) {}

  /** A buffer of `size` bytes. A reused one holds old data: the caller fills what it uses. */
  take(): ArrayBuffer {
    const spare = this.spares.pop();
    if (spare) return spare;
    const buf = new ArrayBuffer(this.size);
    this.made.add(buf);
    return buf;
  }

  /** `buf` is free again (nothing refers to it): kept if it came from take() and there is room. */
  give(buf: ArrayBuffer): void {
    if (!this.made.has(buf) || this.spares.length >= this.kept || this.spares.includes(buf)) return;
    this.spares.push(buf);
  }
}
