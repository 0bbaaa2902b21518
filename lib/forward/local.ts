/**
 * Local listening ports: -L (each connection becomes a direct-tcpip channel to a fixed
 * destination) and -D (each connection speaks SOCKS first to name its destination).
 *
 * Binding follows PuTTY's sk_newlistener: without a bind address a forwarding listens on the
 * loopback interface only, on both 127.0.0.1 and ::1; a host without IPv6 loopback just gets the
 * IPv4 listener. PuTTY's "Local ports accept connections from other hosts" (LocalPortAcceptAll in
 * a saved session) makes it every interface. An explicit bind address (-L 0.0.0.0:8080:...) is
 * bound exactly as given.
 */

import { ChannelOpenError } from "../ssh/connection.ts";
import { delay } from "../util/timer.ts";
import {
  FORWARD_WINDOW,
  type ForwardEnv,
  openFailureLogText,
  peerText,
  runForwarded,
  writeAll,
} from "./bridge.ts";
import { socksFailure, SocksParser, socksSuccess } from "./socks.ts";
import { osErrorText } from "../util/error_text.ts";

export interface LocalListenSpec {
  bindAddress?: string;
  port: number;
  /** PuTTY's per-forwarding address family ("4L8080" / "6L8080" in a saved session). */
  family?: "ipv4" | "ipv6";
  /** LocalPortAcceptAll: without a bind address, listen on every interface. */
  acceptAll?: boolean;
}

/** Opens the listening sockets for one forwarding; throws the bind error (e.g. AddrInUse). */
export function listenLocal(spec: LocalListenSpec): Deno.TcpListener[] {
  const listen = (hostname: string) => Deno.listen({ hostname, port: spec.port, transport: "tcp" });
  if (spec.bindAddress) return [listen(spec.bindAddress)];
  if (spec.acceptAll) {
    // "::" also takes IPv4 connections (Linux's default dual-stack sockets); a host without
    // IPv6 gets "0.0.0.0".
    if (spec.family === "ipv4") return [listen("0.0.0.0")];
    try {
      return [listen("::")];
    } catch (e) {
      if (spec.family === "ipv6" || e instanceof Deno.errors.AddrInUse) throw e;
      return [listen("0.0.0.0")];
    }
  }
  const out: Deno.TcpListener[] = [];
  try {
    if (spec.family !== "ipv6") {
      out.push(listen("127.0.0.1"));
    }
    if (spec.family !== "ipv4") {
      try {
        out.push(listen("::1"));
      } catch (e) {
        // No IPv6 loopback on this host is fine; someone else holding the port is not.
        if (spec.family === "ipv6" || e instanceof Deno.errors.AddrInUse) throw e;
      }
    }
  } catch (e) {
    for (const l of out) l.close();
    throw e;
  }
  return out;
}

/** Where a listener's connections go: a fixed host:port (-L) or wherever SOCKS says (-D). */
export type LocalTarget = { host: string; port: number } | "socks";

/** Accepts connections on `listener` until it is closed, handing each to its forwarding. */
export async function acceptLoop(
  env: ForwardEnv,
  listener: Deno.TcpListener,
  target: LocalTarget,
  isClosed: () => boolean,
): Promise<void> {
  for (;;) {
    let sock: Deno.TcpConn;
    try {
      sock = await listener.accept();
    } catch (e) {
      if (isClosed()) return;
      // E.g. out of file descriptors: say so, give it a moment, keep serving.
      env.warn(`Error accepting forwarded connection: ${osErrorText(e)}`);
      await delay(100);
      continue;
    }
    const handle = target === "socks" ? forwardSocks(env, sock) : forwardLocal(env, sock, target);
    handle.catch(() => {
      try {
        sock.close();
      } catch { /* already closed */ }
    });
  }
}

function noDelay(sock: Deno.TcpConn): void {
  try {
    sock.setNoDelay(true);
  } catch { /* not fatal */ }
}

/** -L: one connection to the fixed destination. */
async function forwardLocal(
  env: ForwardEnv,
  sock: Deno.TcpConn,
  dest: { host: string; port: number },
): Promise<void> {
  noDelay(sock);
  const from = peerText(sock.remoteAddr);
  env.log(`Opening connection to ${dest.host}:${dest.port} for forwarding from ${from}`);
  let ch;
  try {
    // PuTTY makes up the originator ("0.0.0.0", 0) rather than tell the server about the
    // local network.
    ch = await env.conn.openDirectTcpip(dest.host, dest.port, "0.0.0.0", 0, FORWARD_WINDOW);
  } catch (e) {
    env.log(`Forwarded connection refused by remote: ${openFailureLogText(e)}`);
    sock.close();
    return;
  }
  await runForwarded(env, sock, ch);
}

/** -D: SOCKS negotiation, then a direct-tcpip channel to the host the client named. */
async function forwardSocks(env: ForwardEnv, sock: Deno.TcpConn): Promise<void> {
  noDelay(sock);
  const from = peerText(sock.remoteAddr);
  const parser = new SocksParser();
  const buf = new Uint8Array(2048);
  for (;;) {
    const n = await sock.read(buf);
    if (n === null) {
      sock.close();
      return;
    }
    const p = parser.push(buf.subarray(0, n));
    for (const reply of p.replies) await writeAll(sock, reply);
    if (p.error !== undefined) {
      env.log(`SOCKS request from ${from} refused: ${p.error}`);
      sock.close();
      return;
    }
    if (!p.request) continue;
    const { version, host, port } = p.request;
    env.log(`Opening connection to ${host}:${port} for forwarding from ${from}`);
    let ch;
    try {
      ch = await env.conn.openDirectTcpip(host, port, "0.0.0.0", 0, FORWARD_WINDOW);
    } catch (e) {
      env.log(`Forwarded connection refused by remote: ${openFailureLogText(e)}`);
      const [reason, description] = e instanceof ChannelOpenError
        ? [e.reason, e.description]
        : [0, ""];
      await writeAll(sock, socksFailure(version, reason, description)).catch(() => {});
      sock.close();
      return;
    }
    try {
      await writeAll(sock, socksSuccess(version));
      if (p.rest?.length) await ch.write(p.rest);
    } catch {
      ch.close();
      sock.close();
      return;
    }
    await runForwarded(env, sock, ch);
    return;
  }
}
