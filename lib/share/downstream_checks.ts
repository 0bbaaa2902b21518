/**
 * Whether a downstream's message is one OpenSSH's sshd would take as fatal for the whole
 * connection (serverloop.c, session.c, channels.c, ttymodes.c): truncated fields, trailing
 * bytes, a NUL inside a string it reads as a C string, terminal modes cut short. Each check
 * throws; the multiplexer then disconnects that downstream and never passes the message on.
 */

import { SshReader } from "../ssh/wire.ts";

/** Rejects trailing bytes: OpenSSH treats them as fatal for the whole connection. */
export function expectEnd(r: SshReader): void {
  if (r.remaining !== 0) throw new Error(`${r.remaining} unexpected trailing bytes`);
}

/**
 * A string sshd reads with sshpkt_get_cstring(): a NUL inside it is fatal for the connection.
 */
export function cstring(r: SshReader): string {
  const b = r.bytes();
  if (b.includes(0)) throw new Error("NUL byte inside a string");
  return new TextDecoder().decode(b);
}

/** The type-specific part of a CHANNEL_OPEN must parse exactly, for the types sshd parses. */
export function checkOpenExtra(type: string, r: SshReader): void {
  if (type === "session") return expectEnd(r);
  if (type === "direct-tcpip") {
    cstring(r);
    r.uint32();
    cstring(r);
    r.uint32();
    return expectEnd(r);
  }
  if (type === "direct-streamlocal@openssh.com") {
    cstring(r);
    cstring(r);
    r.uint32();
    return expectEnd(r);
  }
  if (type === "tun@openssh.com") {
    r.uint32();
    r.uint32();
    return expectEnd(r);
  }
  // Other types the server refuses without parsing further.
}

/**
 * Terminal modes as sshd parses them (ttymodes.c): opcode 0 or >= 160 ends the list, every
 * other opcode takes a uint32; running out of bytes before that is fatal there.
 */
export function checkTtyModes(modes: Uint8Array): void {
  const r = new SshReader(modes);
  while (r.remaining > 0) {
    const op = r.byte();
    if (op === 0 || op >= 160) return;
    r.uint32();
  }
}

/** Channel requests the server parses: their data must be well-formed and complete. */
export function checkRequestData(name: string, r: SshReader): void {
  switch (name) {
    case "exec":
    case "subsystem":
    case "signal":
      cstring(r);
      break;
    case "env":
      cstring(r);
      cstring(r);
      break;
    case "pty-req":
      cstring(r);
      r.uint32();
      r.uint32();
      r.uint32();
      r.uint32();
      checkTtyModes(r.bytes());
      break;
    case "window-change":
      r.uint32();
      r.uint32();
      r.uint32();
      r.uint32();
      break;
    case "break":
      r.uint32();
      break;
    case "x11-req":
      r.bool();
      cstring(r);
      cstring(r);
      r.uint32();
      break;
    case "shell":
    case "auth-agent-req@openssh.com":
    case "eow@openssh.com":
      break;
    default:
      return; // unknown requests are refused by the server without parsing
  }
  expectEnd(r);
}
