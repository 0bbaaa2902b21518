/**
 * X11 forwarding (-X), after PuTTY's ssh/x11fwd.c: the session asks the server for X11
 * forwarding (x11-req) with made-up MIT-MAGIC-COOKIE-1 data, so the real cookie never leaves this
 * machine. Each X client on the remote side arrives as an "x11" channel; we read its connection
 * set-up message, check it carries our made-up cookie, then connect to the local X display and
 * send it the same set-up message with the display's real authorisation in its place. From then
 * on the channel and the display's socket are joined as they are. A client with the wrong
 * authorisation, or a display we can't reach, gets an X protocol failure reply naming the
 * problem ("plink X11 proxy: Authorisation not recognised") and the channel ends.
 *
 * X11 channels carry nothing that says which session they belong to beyond the cookie, so a
 * connection serves one X11 forwarding: the upstream's (or a lone tool's) own session. A
 * downstream's x11-req is answered with failure by our upstream (see lib/share/mux.ts); a
 * downstream of a PuTTY upstream, which does route them, gets its channels here too.
 */

import type { Channel, IncomingChannel, SshConnection } from "../ssh/connection.ts";
import { OPEN_FAILURE, SshWriter } from "../ssh/wire.ts";
import { bridge, osErrorText, writeAll } from "./bridge.ts";
import { MIT_COOKIE, setupDisplay, type X11Display } from "./x11_display.ts";

export { X11DisplayError } from "./x11_display.ts";

/** The x11-req a session sends: our made-up authorisation and the display's screen. */
export interface X11Request {
  protocol: string;
  /** The made-up cookie, as lower-case hex (what x11-req carries). */
  cookieHex: string;
  screen: number;
}

export interface X11Forwarding {
  display: X11Display;
  request: X11Request;
  /** Drops every forwarded X connection. */
  close(): void;
}

export interface X11Ui {
  /** -v event log line. */
  log(text: string): void;
}

/** x11-req's type-specific data: single connection, protocol, cookie, screen. */
export function x11RequestData(req: X11Request): Uint8Array {
  return new SshWriter().bool(false).string(req.protocol).string(req.cookieHex).uint32(req.screen)
    .done();
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** 16-bit value in the client's byte order ('B' big-endian, 'l' little-endian). */
function get16(order: number, b: Uint8Array, at: number): number {
  return order === 0x42 ? (b[at] << 8) | b[at + 1] : b[at] | (b[at + 1] << 8);
}

function put16(order: number, b: Uint8Array, at: number, v: number): void {
  if (order === 0x42) {
    b[at] = v >> 8;
    b[at + 1] = v & 0xff;
  } else {
    b[at] = v & 0xff;
    b[at + 1] = v >> 8;
  }
}

const pad4 = (n: number) => (n + 3) & ~3;

/** An X connection set-up message (x11_make_greeting) with the given authorisation. */
export function makeGreeting(
  order: number,
  major: number,
  minor: number,
  protocol: string,
  data: Uint8Array,
): Uint8Array {
  const name = new TextEncoder().encode(protocol);
  const out = new Uint8Array(12 + pad4(name.length) + pad4(data.length));
  out[0] = order;
  put16(order, out, 2, major);
  put16(order, out, 4, minor);
  put16(order, out, 6, name.length);
  put16(order, out, 8, data.length);
  out.set(name, 12);
  out.set(data, 12 + pad4(name.length));
  return out;
}

/** The failure reply an X client gets instead of the server's (x11_send_init_error). */
export function failureReply(setup: Uint8Array, text: string): Uint8Array {
  const message = new TextEncoder().encode(text);
  const size = pad4(message.length);
  const out = new Uint8Array(8 + size);
  out[0] = 0; // failure
  out[1] = Math.min(message.length, 255);
  out.set(setup.subarray(2, 6), 2); // the client's protocol version
  put16(setup[0], out, 6, size >> 2);
  out.set(message, 8);
  return out;
}

/** The client's set-up message, parsed once all of it has arrived. */
export interface ClientSetup {
  order: number;
  major: number;
  minor: number;
  protocol: string;
  data: Uint8Array;
  /** Bytes after the set-up message (the client's first requests). */
  rest: Uint8Array;
}

/** Parses a complete set-up message from `buf`; undefined while more bytes are needed. */
export function parseSetup(buf: Uint8Array): ClientSetup | undefined {
  if (buf.length < 12) return undefined;
  const order = buf[0];
  const plen = get16(order, buf, 6);
  const dlen = get16(order, buf, 8);
  const end = 12 + pad4(plen) + pad4(dlen);
  if (buf.length < end) return undefined;
  return {
    order,
    major: get16(order, buf, 2),
    minor: get16(order, buf, 4),
    protocol: new TextDecoder("latin1").decode(buf.subarray(12, 12 + plen)),
    data: buf.slice(12 + pad4(plen), 12 + pad4(plen) + dlen),
    rest: buf.slice(end),
  };
}

/** Why a client's authorisation is refused (x11_verify), or undefined when it is ours. */
export function verifyAuth(setup: ClientSetup, cookie: Uint8Array): string | undefined {
  if (setup.protocol === "") return "No authorisation provided";
  if (setup.protocol !== MIT_COOKIE) {
    return `Unsupported authorisation protocol '${setup.protocol}'`;
  }
  const d = setup.data;
  if (d.length !== cookie.length || !d.every((x, i) => x === cookie[i])) {
    return "Authorisation not recognised";
  }
  return undefined;
}

/**
 * Finds the display and installs the handler for the server's "x11" channels on `conn` (other
 * channel types go to whatever handled them before). Throws X11DisplayError when the display
 * name can't be used; the caller logs it and carries on without X11, as PuTTY does.
 */
export function startX11Forwarding(
  conn: SshConnection,
  configuredDisplay: string,
  appName: string,
  ui: X11Ui,
): X11Forwarding {
  const display = setupDisplay(configuredDisplay);
  const cookie = crypto.getRandomValues(new Uint8Array(16));
  const live = new Set<{ abort(): void }>();
  const previous = conn.onChannelOpen;
  conn.onChannelOpen = (req: IncomingChannel) => {
    if (req.type !== "x11") {
      if (previous) previous(req);
      else req.reject(OPEN_FAILURE.UNKNOWN_CHANNEL_TYPE, "Unsupported channel type requested");
      return;
    }
    let peer = "";
    try {
      const addr = req.extra.string();
      const port = req.extra.uint32();
      peer = `${addr}:${port}`;
    } catch { /* no originator given */ }
    ui.log(`Received X11 connect request from ${peer}`);
    let ch: Channel;
    try {
      ch = req.accept();
    } catch {
      return;
    }
    const conn = { abort: () => ch.close() };
    live.add(conn);
    serveX11Channel(ch, display, cookie, appName)
      .catch(() => ch.close())
      .finally(() => {
        live.delete(conn);
        ui.log("Forwarded X11 connection terminated");
      });
  };
  return {
    display,
    request: { protocol: MIT_COOKIE, cookieHex: hex(cookie), screen: display.screen },
    close: () => {
      for (const c of live) c.abort();
      live.clear();
    },
  };
}

async function serveX11Channel(
  ch: Channel,
  display: X11Display,
  cookie: Uint8Array,
  appName: string,
): Promise<void> {
  ch.stderr.pipeTo(new WritableStream()).catch(() => {});
  const reader = ch.stdout.getReader();
  let buf = new Uint8Array(0);
  let setup: ClientSetup | undefined;
  while (!(setup = parseSetup(buf))) {
    const { value, done } = await reader.read();
    if (done) {
      // EOF before the set-up was complete: end our side too.
      ch.eof();
      reader.releaseLock();
      await ch.closed;
      return;
    }
    const next = new Uint8Array(buf.length + value.length);
    next.set(buf);
    next.set(value, buf.length);
    buf = next;
  }
  reader.releaseLock();
  const fail = async (text: string) => {
    await ch.write(failureReply(buf, `${appName} X11 proxy: ${text}\n`));
    ch.eof();
    await ch.closed;
  };
  const refused = verifyAuth(setup, cookie);
  if (refused) return await fail(refused);
  let sock: Deno.Conn;
  try {
    sock = display.address.transport === "unix"
      ? await Deno.connect({ transport: "unix", path: display.address.path })
      : await Deno.connect({ hostname: display.address.hostname, port: display.address.port });
  } catch (e) {
    return await fail(`unable to connect to forwarded X server: ${osErrorText(e)}`);
  }
  const auth = display.auth;
  await writeAll(
    sock,
    makeGreeting(
      setup.order,
      setup.major,
      setup.minor,
      auth?.protocol ?? "",
      auth?.data ?? new Uint8Array(0),
    ),
  );
  if (setup.rest.length) await writeAll(sock, setup.rest);
  await bridge(sock, ch).done;
}
