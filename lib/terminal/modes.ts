/**
 * Terminal modes for a pty-req (RFC 4254 section 8, IUTF8 from RFC 8160), taken from the local
 * terminal the way Unix plink's get_ttymode does: the special characters and the flags PuTTY
 * propagates, read from the local termios before we put it into raw mode.
 *
 * Deno cannot call tcgetattr(), so the local settings come from `stty -a` on our stdin, whose
 * text form is the same on GNU coreutils, busybox and the BSDs ("intr = ^C; erase = ^?; ..."
 * and "icanon -ixany ..."). Without a readable terminal we send what PuTTY's own terminal window
 * reports (ERASE ^?, IUTF8 when the locale is UTF-8) and PuTTY's default speed.
 */

import { type EnvLookup, localeIsUtf8 } from "../util/locale.ts";

/** TTY_OP_END, TTY_OP_ISPEED, TTY_OP_OSPEED. */
const TTY_OP_END = 0;
const TTY_OP_ISPEED = 128;
const TTY_OP_OSPEED = 129;

/** PuTTY's default TerminalSpeed ("38400,38400"). */
export const DEFAULT_SPEED = 38400;

/** Special characters, by their `stty` name. The value 255 means "disabled". */
const CHAR_OPCODES: Readonly<Record<string, number>> = {
  intr: 1,
  quit: 2,
  erase: 3,
  kill: 4,
  eof: 5,
  eol: 6,
  eol2: 7,
  start: 8,
  stop: 9,
  susp: 10,
  dsusp: 11,
  rprnt: 12,
  reprint: 12,
  werase: 13,
  lnext: 14,
  swtch: 16,
  status: 17,
  discard: 18,
};

/**
 * The boolean modes plink propagates (unix/plink.c get_ttymode); parity/serial settings, IEXTEN,
 * ICRNL and friends stay local, as there.
 */
const FLAG_OPCODES: Readonly<Record<string, number>> = {
  ixon: 38,
  ixany: 39,
  ixoff: 40,
  iutf8: 42,
  isig: 50,
  icanon: 51,
  xcase: 52,
  echo: 53,
  echoe: 54,
  echok: 55,
  echonl: 56,
  echoctl: 60,
  echoke: 61,
  opost: 70,
  olcuc: 71,
  onlcr: 72,
  ocrnl: 73,
  onocr: 74,
  onlret: 75,
};

/** A terminal's settings as read from `stty -a`: opcode -> value, and the line speeds. */
export interface TerminalSettings {
  modes: Map<number, number>;
  ispeed?: number;
  ospeed?: number;
}

/** "^C" -> 3, "^?" -> 127, "M-^?" -> 255, "<undef>" -> 255 (disabled), "x" -> 120. */
export function sttyCharValue(text: string): number | undefined {
  let t = text.trim();
  if (t === "" || /^<?undef>?$/i.test(t)) return 255;
  let meta = 0;
  if (t.startsWith("M-") && t.length > 2) {
    meta = 0x80;
    t = t.slice(2);
  }
  let v: number;
  if (t === "^?") v = 127;
  else if (t.length === 2 && t[0] === "^") v = t.charCodeAt(1) & 0x1f;
  else if (t.length === 1) v = t.charCodeAt(0);
  else return undefined;
  return v | meta;
}

/** Parses `stty -a` output (GNU, busybox or BSD layout). */
export function parseSttyAll(text: string): TerminalSettings {
  const modes = new Map<number, number>();
  const settings: TerminalSettings = { modes };
  const speed = /(?:^|[\s;])speed (\d+) baud/.exec(text);
  if (speed) settings.ispeed = settings.ospeed = Number(speed[1]);
  const ispeed = /ispeed (\d+) baud/.exec(text);
  if (ispeed) settings.ispeed = Number(ispeed[1]);
  const ospeed = /ospeed (\d+) baud/.exec(text);
  if (ospeed) settings.ospeed = Number(ospeed[1]);
  for (const part of text.split(/[;\n]/)) {
    const eq = /([a-z0-9]+)\s*=\s*(.*?)\s*$/.exec(part);
    if (eq) {
      const op = CHAR_OPCODES[eq[1]];
      const v = sttyCharValue(eq[2]);
      if (op !== undefined && v !== undefined) modes.set(op, v);
      continue;
    }
    for (const word of part.trim().split(/\s+/)) {
      const m = /^(-?)([a-z0-9]+)$/.exec(word);
      if (!m) continue;
      const op = FLAG_OPCODES[m[2]];
      if (op !== undefined) modes.set(op, m[1] ? 0 : 1);
    }
  }
  return settings;
}

/** What PuTTY's own terminal reports when there is no local terminal to copy. */
export function puttyDefaultSettings(env: EnvLookup): TerminalSettings {
  const utf8 = localeIsUtf8(env);
  return {
    modes: new Map([[3, 127], [42, utf8 ? 1 : 0]]),
    ispeed: DEFAULT_SPEED,
    ospeed: DEFAULT_SPEED,
  };
}

/** The encoded modes string of a pty-req: opcode + uint32 pairs, speeds, TTY_OP_END. */
export function encodeTerminalModes(settings: TerminalSettings): Uint8Array {
  const entries = [...settings.modes].sort(([a], [b]) => a - b);
  entries.push([TTY_OP_ISPEED, settings.ispeed ?? DEFAULT_SPEED]);
  entries.push([TTY_OP_OSPEED, settings.ospeed ?? DEFAULT_SPEED]);
  const out = new Uint8Array(entries.length * 5 + 1);
  const view = new DataView(out.buffer);
  entries.forEach(([op, value], i) => {
    out[i * 5] = op;
    view.setUint32(i * 5 + 1, value >>> 0);
  });
  out[out.length - 1] = TTY_OP_END;
  return out;
}

/** Decodes a modes string (for tests and -v logging): opcode -> value. */
export function decodeTerminalModes(modes: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  const view = new DataView(modes.buffer, modes.byteOffset, modes.byteLength);
  for (let i = 0; i < modes.length && modes[i] !== TTY_OP_END && modes[i] < 160; i += 5) {
    if (i + 5 > modes.length) break;
    out.set(modes[i], view.getUint32(i + 1));
  }
  return out;
}

/**
 * The local terminal's settings, read with `stty -a` from our stdin (which must be the
 * terminal); undefined when that is not possible.
 */
export async function readLocalTerminalSettings(): Promise<TerminalSettings | undefined> {
  try {
    if (!Deno.stdin.isTerminal()) return undefined;
    const out = await new Deno.Command("stty", {
      args: ["-a"],
      stdin: "inherit",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const settings = parseSttyAll(new TextDecoder().decode(out.stdout));
    return settings.modes.size ? settings : undefined;
  } catch {
    return undefined; // no stty, or not allowed to run it
  }
}
