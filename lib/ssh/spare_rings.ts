/**
 * Rings of channels that have ended, for channels opened later (spareRing): a forwarded port that
 * takes connection after connection then keeps a few rings, where each connection's ring (grown
 * to the window's size, a quarter of a MiB) would be left to the collector, MiB upon MiB with 20
 * downloads at once. Bounded in bytes.
 */
const spareRings: Uint8Array[] = [];
let spareRingBytes = 0;
const SPARE_RING_BYTES = 6 * 1024 * 1024;

/** A spare ring of at most `size` bytes (the largest there is), if any. */
export function spareRing(size: number): Uint8Array | undefined {
  let best = -1;
  for (let i = 0; i < spareRings.length; i++) {
    const n = spareRings[i].length;
    if (n <= size && (best < 0 || n > spareRings[best].length)) best = i;
  }
  if (best < 0) return undefined;
  const [ring] = spareRings.splice(best, 1);
  spareRingBytes -= ring.length;
  return ring;
}

/** Keeps `ring` for a later channel: no view of it may be in use any more. */
export function keepRing(ring: Uint8Array): void {
  if (spareRingBytes + ring.length > SPARE_RING_BYTES) return;
  spareRings.push(ring);
  spareRingBytes += ring.length;
}
