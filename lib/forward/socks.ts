/**
 * The server side of SOCKS 4, 4A and 5 (RFC 1928, CONNECT only, no authentication) as dynamic
 * port forwarding (-D) needs it. Pure: bytes in, replies and a decision out; no I/O here.
 *
 * As in PuTTY's portfwd.c, the first byte picks the version; SOCKS 5 offers only "no
 * authentication" (a client that does not offer it gets 0xFF and is dropped); BIND and UDP
 * ASSOCIATE are refused. Unlike PuTTY (and OpenSSH), which answer "granted" before the SSH server
 * has even tried to connect, the caller sends the final reply only once the direct-tcpip channel
 * has opened or failed (`socksSuccess` / `socksFailure`), so a client learns that its target
 * refused the connection instead of seeing a granted connection drop straight away.
 */

import { OPEN_FAILURE } from "../ssh/wire.ts";

export interface SocksRequest {
  version: 4 | 5;
  /** Host name or textual IPv4/IPv6 address the client wants to reach. */
  host: string;
  port: number;
}

export interface SocksProgress {
  /** Bytes to send to the client now, in order (e.g. the SOCKS 5 method choice). */
  replies: Uint8Array[];
  /** The client's CONNECT request, once it is complete. */
  request?: SocksRequest;
  /** Bytes the client sent after its request: the first data for the target. */
  rest?: Uint8Array;
  /** Negotiation failed: send `replies`, then close the connection. */
  error?: string;
}

/** More than this many bytes without a complete message is not a SOCKS client we can serve. */
const MAX_MESSAGE = 1024;

export const SOCKS5_REPLY = {
  SUCCEEDED: 0,
  GENERAL_FAILURE: 1,
  NOT_ALLOWED: 2,
  NETWORK_UNREACHABLE: 3,
  HOST_UNREACHABLE: 4,
  CONNECTION_REFUSED: 5,
  TTL_EXPIRED: 6,
  COMMAND_NOT_SUPPORTED: 7,
  ADDRESS_TYPE_NOT_SUPPORTED: 8,
} as const;

const SOCKS4_GRANTED = 0x5a;
const SOCKS4_REJECTED = 0x5b;

type Stage = "initial" | "socks4" | "socks5-methods" | "socks5-request" | "done";

/** Incremental parser for one client's negotiation: feed it what the socket delivers. */
export class SocksParser {
  private buf = new Uint8Array(0);
  private stage: Stage = "initial";

  push(data: Uint8Array): SocksProgress {
    if (this.stage === "done") throw new Error("SOCKS negotiation already finished");
    const joined = new Uint8Array(this.buf.length + data.length);
    joined.set(this.buf);
    joined.set(data, this.buf.length);
    this.buf = joined;
    const out: SocksProgress = { replies: [] };
    for (;;) {
      if (this.buf.length === 0) return out;
      if (this.stage === "initial") {
        if (this.buf[0] === 4) this.stage = "socks4";
        else if (this.buf[0] === 5) this.stage = "socks5-methods";
        else return this.fail(out, `unknown SOCKS version ${this.buf[0]}`);
      }
      const step = this.step();
      if (step === undefined) {
        if (this.buf.length > MAX_MESSAGE) {
          return this.fail(out, "SOCKS request too long", this.refusal());
        }
        return out;
      }
      if (step.reply) out.replies.push(step.reply);
      this.buf = this.buf.subarray(step.used);
      if (step.error !== undefined) return this.fail(out, step.error);
      if (step.request) {
        this.stage = "done";
        out.request = step.request;
        out.rest = this.buf.slice();
        this.buf = new Uint8Array(0);
        return out;
      }
    }
  }

  private fail(out: SocksProgress, error: string, reply?: Uint8Array): SocksProgress {
    this.stage = "done";
    if (reply) out.replies.push(reply);
    out.error = error;
    return out;
  }

  /** The refusal matching the version being spoken, for a request we give up on. */
  private refusal(): Uint8Array | undefined {
    if (this.stage === "socks4") return socks4Reply(SOCKS4_REJECTED);
    if (this.stage === "socks5-request") return socks5Reply(SOCKS5_REPLY.GENERAL_FAILURE);
    return undefined;
  }

  /** Parses one complete message at the start of buf; undefined when more bytes are needed. */
  private step(): Step | undefined {
    const r = new ByteReader(this.buf);
    try {
      switch (this.stage) {
        case "socks4":
          return socks4Request(r);
        case "socks5-methods": {
          r.byte();
          const methods = r.bytes(r.byte());
          if (!methods.includes(0)) {
            return {
              used: r.pos,
              reply: new Uint8Array([5, 0xff]),
              error: "SOCKS 5 client offers no authentication method we support",
            };
          }
          this.stage = "socks5-request";
          return { used: r.pos, reply: new Uint8Array([5, 0]) };
        }
        case "socks5-request":
          return socks5Request(r);
        default:
          throw new Error(`unexpected SOCKS stage ${this.stage}`);
      }
    } catch (e) {
      if (e instanceof NeedMore) return undefined;
      throw e;
    }
  }
}

interface Step {
  used: number;
  reply?: Uint8Array;
  request?: SocksRequest;
  error?: string;
}

function socks4Request(r: ByteReader): Step {
  r.byte();
  const command = r.byte();
  const port = r.uint16();
  const ip = r.bytes(4);
  r.asciz(); // user id, ignored
  // SOCKS 4A: 0.0.0.x with x != 0 means a host name follows the user id.
  const named = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
  const host = named ? r.asciz() : ip.join(".");
  if (command !== 1) {
    return {
      used: r.pos,
      reply: socks4Reply(SOCKS4_REJECTED),
      error: `SOCKS 4 command ${command} is not supported`,
    };
  }
  if (host === "") {
    return { used: r.pos, reply: socks4Reply(SOCKS4_REJECTED), error: "empty SOCKS 4A host" };
  }
  return { used: r.pos, request: { version: 4, host, port } };
}

function socks5Request(r: ByteReader): Step {
  const version = r.byte();
  const command = r.byte();
  const reserved = r.byte();
  const atyp = r.byte();
  let host: string;
  if (atyp === 1) host = r.bytes(4).join(".");
  else if (atyp === 4) host = ipv6Text(r.bytes(16));
  else if (atyp === 3) host = new TextDecoder().decode(r.bytes(r.byte()));
  else {
    // We cannot know how long the address is, so nothing after it can be parsed.
    return {
      used: r.pos,
      reply: socks5Reply(SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED),
      error: `SOCKS 5 address type ${atyp} is not supported`,
    };
  }
  const port = r.uint16();
  if (version !== 5 || command !== 1 || reserved !== 0) {
    return {
      used: r.pos,
      reply: socks5Reply(SOCKS5_REPLY.COMMAND_NOT_SUPPORTED),
      error: `SOCKS 5 command ${command} is not supported`,
    };
  }
  if (host === "") {
    return {
      used: r.pos,
      reply: socks5Reply(SOCKS5_REPLY.GENERAL_FAILURE),
      error: "empty SOCKS 5 host name",
    };
  }
  return { used: r.pos, request: { version: 5, host, port } };
}

/** The reply that tells the client its connection is through. */
export function socksSuccess(version: 4 | 5): Uint8Array {
  return version === 4 ? socks4Reply(SOCKS4_GRANTED) : socks5Reply(SOCKS5_REPLY.SUCCEEDED);
}

/**
 * The reply for a direct-tcpip open the SSH server refused, from its reason code and description
 * (OpenSSH describes connect failures with strerror text, e.g. "Connection refused").
 */
export function socksFailure(version: 4 | 5, reason: number, description: string): Uint8Array {
  if (version === 4) return socks4Reply(SOCKS4_REJECTED);
  return socks5Reply(socks5ReplyCode(reason, description));
}

export function socks5ReplyCode(reason: number, description: string): number {
  if (reason === OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED) return SOCKS5_REPLY.NOT_ALLOWED;
  if (reason !== OPEN_FAILURE.CONNECT_FAILED) return SOCKS5_REPLY.GENERAL_FAILURE;
  const d = description.toLowerCase();
  if (d.includes("refused")) return SOCKS5_REPLY.CONNECTION_REFUSED;
  if (d.includes("network is unreachable")) return SOCKS5_REPLY.NETWORK_UNREACHABLE;
  if (d.includes("timed out")) return SOCKS5_REPLY.TTL_EXPIRED;
  if (
    d.includes("no route") || d.includes("unreachable") || d.includes("not known") ||
    d.includes("name") || d.includes("resolve")
  ) {
    return SOCKS5_REPLY.HOST_UNREACHABLE;
  }
  return SOCKS5_REPLY.GENERAL_FAILURE;
}

function socks4Reply(code: number): Uint8Array {
  return new Uint8Array([0, code, 0, 0, 0, 0, 0, 0]);
}

/** A SOCKS 5 reply with a zero IPv4 bound address, as PuTTY sends. */
function socks5Reply(code: number): Uint8Array {
  return new Uint8Array([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
}

/** RFC 5952 text for a 16-byte IPv6 address (longest run of zero groups as "::"). */
export function ipv6Text(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

class NeedMore extends Error {}

class ByteReader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMore();
  }
  byte(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  uint16(): number {
    this.need(2);
    const v = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
    this.pos += 2;
    return v;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  asciz(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new NeedMore();
    const v = new TextDecoder().decode(this.buf.subarray(this.pos, end));
    this.pos = end + 1;
    return v;
  }
}
