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
 * The same code serves every role: alone, as an upstream's own session, or as a downstream, whose
 * X11 channels the upstream (ours or PuTTY's) routes to it by the cookie the client presents
 * (see lib/share/mux.ts).
 */

import type { IncomingChannel, SshConnection } from "../ssh/connection.ts";
import type { Channel } from "../ssh/channel.ts";
import { OPEN_FAILURE } from "../ssh/wire.ts";
import { bridge, writeAll } from "./bridge.ts";
import { osErrorText } from "../util/error_text.ts";
import { setupDisplay, type X11Display } from "./x11_display.ts";
import {
  type ClientSetup,
  failureReply,
  makeGreeting,
  MIT_COOKIE,
  parseSetup,
  verifyAuth,
} from "./x11_protocol.ts";

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

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
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
  ch.stderr.discard();
  let buf = new Uint8Array(0);
  let setup: ClientSetup | undefined;
  while (!(setup = parseSetup(buf))) {
    const value = await ch.stdout.read();
    if (!value) {
      // EOF before the set-up was complete: end our side too.
      ch.eof();
      await ch.closed;
      return;
    }
    const next = new Uint8Array(buf.length + value.length);
    next.set(buf);
    next.set(value, buf.length);
    buf = next;
  }
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
