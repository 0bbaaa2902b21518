/**
 * A line editor with history for psftp's interactive prompt: a pure state machine (text in,
 * terminal output and finished lines out; no I/O), so the terminal handling in cmd/ stays thin
 * and the editing can be unit-tested.
 *
 * Keys: printable text inserts at the cursor; Enter (CR or LF) finishes the line; Backspace
 * (DEL or ^H) and Delete (ESC[3~) remove; Left/Right (and ^B/^F), Home/End (and ^A/^E) move;
 * Up/Down (and ^P/^N) walk the history, keeping edits to recalled lines until the line is
 * finished; ^U deletes to the start, ^K to the end, ^W the word before the cursor; ^L redraws;
 * ^C abandons the line (a fresh prompt); ^D deletes under the cursor, or on an empty line is
 * end of input.
 *
 * Output assumes a raw-mode terminal (explicit CR LF) of `columns` columns; long lines wrap and
 * are redrawn correctly (double-width and combining characters are accounted for).
 *
 * Input typed ahead (e.g. a pasted block of lines) is kept: feed() stops at the first finished
 * line, and the next begin() continues with the rest after showing its prompt.
 */

export interface EditResult {
  /** What to write to the terminal. */
  output: string;
  /** A finished line (Enter was pressed); the terminal cursor is on a fresh line. */
  line?: string;
  /** End of input (^D on an empty line). */
  eof?: boolean;
}

export interface LineEditorOptions {
  /** Most entries kept (oldest dropped first). Default 500. */
  maxHistory?: number;
  /** Terminal width. Default 80. */
  columns?: number;
}

/** Display width of one code point (0 for combining marks, 2 for wide East Asian). */
export function charWidth(ch: string): number {
  const c = ch.codePointAt(0)!;
  if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return 0;
  if (/\p{Mn}|\p{Me}|\u200B|\u200C|\u200D/u.test(ch)) return 0;
  if (
    (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0x303e) ||
    (c >= 0x3041 && c <= 0x33ff) || (c >= 0x3400 && c <= 0x4dbf) ||
    (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xa000 && c <= 0xa4cf) ||
    (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
    (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
    (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
    (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd)
  ) return 2;
  return 1;
}

function width(chars: readonly string[], end = chars.length): number {
  let w = 0;
  for (let i = 0; i < end; i++) w += charWidth(chars[i]);
  return w;
}

/** Escape sequences we understand, by their bytes after ESC. */
const ESCAPES: Record<string, string> = {
  "[A": "up",
  "[B": "down",
  "[C": "right",
  "[D": "left",
  "[H": "home",
  "[F": "end",
  "OA": "up",
  "OB": "down",
  "OC": "right",
  "OD": "left",
  "OH": "home",
  "OF": "end",
  "[1~": "home",
  "[7~": "home",
  "[4~": "end",
  "[8~": "end",
  "[3~": "delete",
};

export class LineEditor {
  #history: string[] = [];
  /** Entries being browsed: a copy of the history plus the line being typed, edits kept. */
  #browse: string[] = [""];
  #index = 0;
  #buf: string[] = [];
  #cursor = 0;
  #prompt = "";
  /** Where the terminal cursor is, in cells from the prompt's start. */
  #shownCursor = 0;
  #pending = "";
  #active = false;
  readonly #maxHistory: number;
  columns: number;

  constructor(opts: LineEditorOptions = {}) {
    this.#maxHistory = opts.maxHistory ?? 500;
    this.columns = opts.columns ?? 80;
  }

  get history(): readonly string[] {
    return this.#history;
  }

  /** The line as edited so far. */
  get text(): string {
    return this.#buf.join("");
  }

  /** Cursor position in code points. */
  get cursor(): number {
    return this.#cursor;
  }

  /** Adds a line to the history (as finishing it does). */
  addHistory(line: string): void {
    if (line.trim() === "" || this.#history[this.#history.length - 1] === line) return;
    this.#history.push(line);
    if (this.#history.length > this.#maxHistory) this.#history.shift();
  }

  /** Starts reading a line: shows the prompt, then works through any typed-ahead input. */
  begin(prompt: string): EditResult {
    this.#prompt = prompt;
    this.#buf = [];
    this.#cursor = 0;
    this.#browse = [...this.#history, ""];
    this.#index = this.#browse.length - 1;
    this.#shownCursor = 0;
    this.#active = true;
    const first = prompt;
    this.#shownCursor = width([...prompt]);
    const rest = this.#process();
    return { ...rest, output: first + rest.output };
  }

  /** Feeds typed input; stops at the first finished line (the rest is kept for begin()). */
  feed(text: string): EditResult {
    this.#pending += text;
    if (!this.#active) return { output: "" };
    return this.#process();
  }

  #process(): EditResult {
    let out = "";
    while (this.#pending.length > 0) {
      const s = this.#pending;
      const cp = s.codePointAt(0)!;
      const ch = String.fromCodePoint(cp);
      let used = ch.length;
      let key: string | undefined;
      if (ch === "\x1b") {
        const after = s.slice(1);
        const m = /^(\[[0-9;]*[~A-Za-z]|O[A-Za-z])/.exec(after);
        if (m) {
          key = ESCAPES[m[1]] ?? "ignore";
          used = 1 + m[0].length;
        } else if (/^(\[[0-9;]*|O)?$/.test(after)) {
          break; // an incomplete sequence: wait for the rest
        } else {
          key = "ignore";
          used = /^[[O]/.test(after) ? 2 : 1;
        }
      } else if (ch === "\r" || ch === "\n") {
        // CR LF (or LF after CR from a paste) counts as one Enter.
        if (ch === "\r" && s[1] === "\n") used = 2;
        key = "enter";
      } else if (cp < 0x20 || cp === 0x7f) {
        key = ({
          0x01: "home",
          0x02: "left",
          0x03: "interrupt",
          0x04: "eof-or-delete",
          0x05: "end",
          0x06: "right",
          0x08: "backspace",
          0x0b: "kill-end",
          0x0c: "redraw",
          0x0e: "down",
          0x10: "up",
          0x15: "kill-start",
          0x17: "kill-word",
          0x7f: "backspace",
        } as Record<number, string>)[cp] ?? "ignore";
      }
      this.#pending = s.slice(used);
      if (key === undefined) {
        this.#buf.splice(this.#cursor, 0, ch);
        this.#cursor++;
        const end = width([...this.#prompt]) + width(this.#buf);
        if (
          this.#cursor === this.#buf.length && charWidth(ch) > 0 &&
          end % Math.max(1, this.columns) !== 0
        ) {
          // Typing at the end of the line: just echo it.
          out += ch;
          this.#shownCursor = end;
        } else {
          out += this.#render();
        }
        continue;
      }
      const done = this.#key(key);
      out += done.output;
      if (done.line !== undefined || done.eof) {
        this.#active = false;
        return { ...done, output: out };
      }
    }
    return { output: out };
  }

  #key(key: string): EditResult {
    const buf = this.#buf;
    switch (key) {
      case "enter": {
        const line = buf.join("");
        const out = this.#moveTo(width(buf)) + "\r\n";
        this.addHistory(line);
        return { output: out, line };
      }
      case "eof-or-delete":
        if (buf.length === 0) return { output: "", eof: true };
        return this.#key("delete");
      case "interrupt": {
        const out = this.#moveTo(width(buf)) + "^C\r\n" + this.#prompt;
        this.#buf = [];
        this.#cursor = 0;
        this.#browse = [...this.#history, ""];
        this.#index = this.#browse.length - 1;
        this.#shownCursor = width([...this.#prompt]);
        return { output: out };
      }
      case "backspace":
        if (this.#cursor > 0) {
          buf.splice(this.#cursor - 1, 1);
          this.#cursor--;
        }
        break;
      case "delete":
        if (this.#cursor < buf.length) buf.splice(this.#cursor, 1);
        break;
      case "left":
        if (this.#cursor > 0) this.#cursor--;
        break;
      case "right":
        if (this.#cursor < buf.length) this.#cursor++;
        break;
      case "home":
        this.#cursor = 0;
        break;
      case "end":
        this.#cursor = buf.length;
        break;
      case "kill-start":
        buf.splice(0, this.#cursor);
        this.#cursor = 0;
        break;
      case "kill-end":
        buf.splice(this.#cursor);
        break;
      case "kill-word": {
        let i = this.#cursor;
        while (i > 0 && /\s/.test(buf[i - 1])) i--;
        while (i > 0 && !/\s/.test(buf[i - 1])) i--;
        buf.splice(i, this.#cursor - i);
        this.#cursor = i;
        break;
      }
      case "up":
      case "down": {
        const to = this.#index + (key === "up" ? -1 : 1);
        if (to < 0 || to >= this.#browse.length) return { output: "" };
        this.#browse[this.#index] = buf.join("");
        this.#index = to;
        this.#buf = [...this.#browse[to]];
        this.#cursor = this.#buf.length;
        break;
      }
      case "redraw":
        break;
      default:
        return { output: "" };
    }
    return { output: this.#render() };
  }

  /** Terminal output moving the cursor from where it is to cell `pos` (after the prompt). */
  #moveTo(pos: number): string {
    const cols = Math.max(1, this.columns);
    const target = width([...this.#prompt]) + pos;
    const from = this.#shownCursor;
    this.#shownCursor = target;
    const rowFrom = Math.floor(from / cols);
    const rowTo = Math.floor(target / cols);
    let out = "";
    if (rowTo < rowFrom) out += `\x1b[${rowFrom - rowTo}A`;
    else if (rowTo > rowFrom) out += `\x1b[${rowTo - rowFrom}B`;
    const col = target % cols;
    out += "\r" + (col > 0 ? `\x1b[${col}C` : "");
    return out;
  }

  /** Redraws prompt and line, leaving the terminal cursor at the editing cursor. */
  #render(): string {
    const cols = Math.max(1, this.columns);
    const promptWidth = width([...this.#prompt]);
    const rowsUp = Math.floor(this.#shownCursor / cols);
    let out = "\r" + (rowsUp > 0 ? `\x1b[${rowsUp}A` : "");
    out += this.#prompt + this.#buf.join("") + "\x1b[J";
    const end = promptWidth + width(this.#buf);
    if (end > 0 && end % cols === 0) out += "\r\n"; // leave the pending-wrap state
    this.#shownCursor = end;
    return out + this.#moveTo(width(this.#buf, this.#cursor));
  }
}
