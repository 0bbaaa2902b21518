/**
 * pscp's per-file statistics line (print_stats() in PuTTY's pscp.c):
 *
 *   "\rname                      | 2908 kB | 2908.0 kB/s | ETA: 00:00:00 |  99%"
 *
 * redrawn at most once a second (and at the end) over the previous one, padded with spaces when
 * shorter, and ended with a newline when the file is complete or anything else is printed.
 * Times are whole seconds, as PuTTY's time() arithmetic gives.
 */

export interface ProgressSample {
  /** Shown name (truncated/padded to 25 characters). */
  name: string;
  /** Total bytes of the file. */
  size: number;
  /** Bytes done so far. */
  done: number;
  /** Whole seconds since the file started. */
  elapsed: number;
}

/** The text of one statistics line, without the leading "\r" or any padding. */
export function progressText(s: ProgressSample): string {
  const rate = s.elapsed > 0 ? s.done / s.elapsed : s.done;
  const left = Math.max(0, s.size - s.done);
  const eta = rate < 1 ? left : Math.floor(left / rate);
  const hms = [Math.floor(eta / 3600), Math.floor((eta % 3600) / 60), eta % 60]
    .map((n) => String(n).padStart(2, "0")).join(":");
  const pct = s.size > 0 ? Math.floor((100 * s.done) / s.size) : 100;
  const chars = [...s.name];
  const name = chars.slice(0, 25).join("") + " ".repeat(Math.max(0, 25 - chars.length));
  return `${name} | ${Math.floor(s.done / 1024)} kB | ${
    (rate / 1024).toFixed(1).padStart(5)
  } kB/s | ` +
    `ETA: ${hms.padStart(8)} | ${String(pct).padStart(3)}%`;
}

/**
 * The statistics line of one terminal: what has been drawn, so a shorter line can blank the rest
 * and other output can first end the line. `write` puts text on the terminal (stdout).
 */
export class ProgressLine {
  private drawnLength = 0;

  constructor(private readonly write: (text: string) => void) {}

  /** Draws a sample; ends the line once the file is complete. */
  draw(s: ProgressSample): void {
    const text = "\r" + progressText(s);
    const len = [...text].length;
    const pad = len < this.drawnLength ? " ".repeat(this.drawnLength - len) : "";
    this.write(text + pad);
    this.drawnLength = len;
    if (s.done >= s.size) this.abandon();
  }

  /** abandon_stats(): moves off a drawn line (before an error message, or at the end). */
  abandon(): void {
    if (this.drawnLength) {
      this.write("\n");
      this.drawnLength = 0;
    }
  }

  get active(): boolean {
    return this.drawnLength > 0;
  }
}

/**
 * Decides when a file's statistics are redrawn: PuTTY redraws when the wall-clock second has
 * changed since the last draw, and always for the last chunk. Zero-length files draw nothing.
 */
export class FileProgress {
  private readonly start: number;
  private lastDrawn = -1;

  constructor(
    private readonly name: string,
    private readonly size: number,
    private readonly draw: (s: ProgressSample) => void,
    private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.start = nowSeconds();
  }

  update(done: number): void {
    const now = this.nowSeconds();
    if (now === this.lastDrawn && done < this.size) return;
    this.lastDrawn = now;
    this.draw({ name: this.name, size: this.size, done, elapsed: now - this.start });
  }
}
