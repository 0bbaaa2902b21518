/**
 * PuTTY's log files: a session output log (putty -sessionlog, LogType 1 "printable output" and
 * 2 "all session output": what the terminal is sent, after PuTTY's header line) and the SSH
 * packet log (-sshlog, -sshrawlog, LogType 3/4): a file that starts with PuTTY's
 * header line and then has every Event Log line ("Event Log: ...") and every SSH packet we
 * handle, as "Incoming packet #0x5, type 94 / 0x5e (SSH2_MSG_CHANNEL_DATA)" and a hex dump, in
 * PuTTY's format and with its "\r\n" line ends.
 *
 * What we log is the connection layer (channels, requests, forwardings), whatever the tool's
 * role, downstream included: key exchange and authentication happen inside ssh2, so their
 * packets are absent, and packets are numbered per direction from the first one logged, not by
 * the transport's sequence numbers. -sshrawlog logs the same (we never see the raw bytes).
 *
 * The file name takes PuTTY's substitutions: &H host, &P port, &Y &M &D date, &T time, && "&".
 */

const MESSAGE_NAMES: Record<number, string> = {
  1: "SSH2_MSG_DISCONNECT",
  2: "SSH2_MSG_IGNORE",
  3: "SSH2_MSG_UNIMPLEMENTED",
  4: "SSH2_MSG_DEBUG",
  5: "SSH2_MSG_SERVICE_REQUEST",
  6: "SSH2_MSG_SERVICE_ACCEPT",
  7: "SSH2_MSG_EXT_INFO",
  20: "SSH2_MSG_KEXINIT",
  21: "SSH2_MSG_NEWKEYS",
  50: "SSH2_MSG_USERAUTH_REQUEST",
  51: "SSH2_MSG_USERAUTH_FAILURE",
  52: "SSH2_MSG_USERAUTH_SUCCESS",
  53: "SSH2_MSG_USERAUTH_BANNER",
  80: "SSH2_MSG_GLOBAL_REQUEST",
  81: "SSH2_MSG_REQUEST_SUCCESS",
  82: "SSH2_MSG_REQUEST_FAILURE",
  90: "SSH2_MSG_CHANNEL_OPEN",
  91: "SSH2_MSG_CHANNEL_OPEN_CONFIRMATION",
  92: "SSH2_MSG_CHANNEL_OPEN_FAILURE",
  93: "SSH2_MSG_CHANNEL_WINDOW_ADJUST",
  94: "SSH2_MSG_CHANNEL_DATA",
  95: "SSH2_MSG_CHANNEL_EXTENDED_DATA",
  96: "SSH2_MSG_CHANNEL_EOF",
  97: "SSH2_MSG_CHANNEL_CLOSE",
  98: "SSH2_MSG_CHANNEL_REQUEST",
  99: "SSH2_MSG_CHANNEL_SUCCESS",
  100: "SSH2_MSG_CHANNEL_FAILURE",
};

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** The log file name with PuTTY's &-substitutions made. */
export function logFileName(
  template: string,
  host: string,
  port: number,
  now = new Date(),
): string {
  return template.replace(/&(.)/g, (all, c: string) => {
    switch (c.toUpperCase()) {
      case "H":
        return host;
      case "P":
        return String(port);
      case "Y":
        return String(now.getFullYear());
      case "M":
        return pad(now.getMonth() + 1);
      case "D":
        return pad(now.getDate());
      case "T":
        return `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
      case "&":
        return "&";
      default:
        return all;
    }
  });
}

/** "=~=~=...= PuTTY log 2026.11.25 06:24:52 =~=...=" */
export function logHeader(now = new Date()): string {
  const bar = "=~".repeat(11) + "=";
  const when = `${now.getFullYear()}.${pad(now.getMonth() + 1)}.${pad(now.getDate())} ` +
    `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
  return `${bar} PuTTY log ${when} ${bar}\r\n`;
}

/** PuTTY's hex dump: offset, 16 bytes in hex, then the printable ones. */
export function hexDump(data: Uint8Array): string {
  let out = "";
  for (let at = 0; at < data.length; at += 16) {
    const row = data.subarray(at, at + 16);
    let hex = "";
    let text = "";
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i].toString(16).padStart(2, "0") + " ";
        text += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : ".";
      } else {
        hex += "   ";
      }
    }
    out += `  ${at.toString(16).padStart(8, "0")}  ${hex} ${text}\r\n`;
  }
  return out;
}

/** Writes all of `data`; a log that can't be written must not stop the session. */
function writeQuietly(file: Deno.FsFile, data: Uint8Array): void {
  try {
    let at = 0;
    while (at < data.length) at += file.writeSync(data.subarray(at));
  } catch { /* log lost */ }
}

/** The output log of a terminal session: the bytes the terminal gets, all or the printable ones. */
export class OutputLog {
  constructor(private readonly file: Deno.FsFile, private readonly printableOnly: boolean) {}

  output(data: Uint8Array): void {
    // PuTTY's "printable output": text, tabs and line ends; no escape sequences' bytes.
    writeQuietly(
      this.file,
      this.printableOnly
        ? data.filter((b) => b >= 0x20 && b !== 0x7f || b === 9 || b === 10 || b === 13)
        : data,
    );
  }

  close(): void {
    try {
      this.file.close();
    } catch { /* already closed */ }
  }
}

export class PacketLog {
  private readonly counts = { Incoming: 0, Outgoing: 0 };
  private readonly enc = new TextEncoder();

  constructor(private readonly file: Deno.FsFile) {}

  event(text: string): void {
    for (const line of text.replace(/\r?\n$/, "").split(/\r?\n/)) {
      this.write(`Event Log: ${line}\r\n`);
    }
  }

  packet(direction: "Incoming" | "Outgoing", payload: Uint8Array): void {
    if (payload.length === 0) return;
    const type = payload[0];
    const n = this.counts[direction]++;
    const name = MESSAGE_NAMES[type] ?? "unknown";
    this.write(
      `${direction} packet #0x${n.toString(16)}, type ${type} / 0x${
        type.toString(16).padStart(2, "0")
      } (${name})\r\n` + hexDump(payload.subarray(1)),
    );
  }

  close(): void {
    try {
      this.file.close();
    } catch { /* already closed */ }
  }

  private write(text: string): void {
    writeQuietly(this.file, this.enc.encode(text));
  }
}

/** What to do with an existing log file: PuTTY's LogFileClash, or ask. */
export type LogClash = "overwrite" | "append" | "ask";

/**
 * Opens a log file and writes PuTTY's header line. `ask` is consulted when the file exists and
 * `clash` is "ask": it returns the choice, or undefined for no logging. Throws (Deno errors)
 * when the file can't be opened.
 */
export async function openLogFile(
  path: string,
  clash: LogClash,
  ask: () => Promise<"overwrite" | "append" | undefined>,
): Promise<Deno.FsFile | undefined> {
  let exists = false;
  try {
    await Deno.lstat(path);
    exists = true;
  } catch { /* a new file */ }
  let mode: "overwrite" | "append" | undefined = clash === "ask" ? "overwrite" : clash;
  if (exists && clash === "ask") mode = await ask();
  if (!mode) return undefined;
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: mode === "overwrite",
    append: mode === "append",
  });
  writeQuietly(file, new TextEncoder().encode(logHeader()));
  return file;
}
