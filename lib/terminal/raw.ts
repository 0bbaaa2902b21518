/**
 * The one place a terminal is put in raw mode and back: plink's and putty's sessions, psftp's
 * line editor and secret prompts all go through RawTerminal, so every way out restores it.
 */

/**
 * A terminal in raw mode (our stdin's, unless another is given); restore() puts it back, once,
 * whoever calls it first.
 */
export class RawTerminal {
  #raw = false;
  #used = false;

  constructor(private readonly file: { setRaw(mode: boolean): void } = Deno.stdin) {}

  get active(): boolean {
    return this.#raw;
  }

  /** Whether it was ever raw (the cursor may then be anywhere on a line). */
  get used(): boolean {
    return this.#used;
  }

  enter(): void {
    if (this.#raw) return;
    this.file.setRaw(true);
    this.#raw = true;
    this.#used = true;
  }

  restore(): void {
    if (!this.#raw) return;
    this.#raw = false;
    try {
      this.file.setRaw(false);
    } catch { /* the terminal is gone (SIGHUP) */ }
  }
}
