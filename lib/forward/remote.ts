/**
 * Remote port forwarding (-R): we ask the server to listen (tcpip-forward); each connection it
 * accepts arrives as a forwarded-tcpip channel, which we join to a new TCP connection to the
 * local destination.
 *
 * As PuTTY does, a forwarding without a bind address asks the server for "localhost" (PuTTY's
 * "Remote ports do the same" is off by default); OpenSSH then listens on the loopback interface,
 * and with its default `GatewayPorts no` it ignores any other address asked for too. Incoming
 * channels are matched by the address and port the server reports, which OpenSSH gives exactly
 * as we asked.
 *
 * The same code serves a downstream of a shared connection: the upstream (ours or PuTTY's)
 * relays tcpip-forward for us and sends us the channels of our forwardings.
 */

import type { IncomingChannel } from "../ssh/connection.ts";
import { OPEN_FAILURE, SshWriter } from "../ssh/wire.ts";
import { acceptFor, type ForwardEnv, runForwarded } from "./bridge.ts";
import { osErrorText } from "../util/error_text.ts";

export interface RemoteForward {
  /** Address the server listens on, as sent in tcpip-forward. */
  bindHost: string;
  bindPort: number;
  /** Local destination of connections. */
  host: string;
  port: number;
  family?: "ipv4" | "ipv6";
  /** "[bind:]port" as PuTTY names the forwarding in its log. */
  description: string;
  /**
   * "pending" until the server answers. Connections can arrive before its answer does (the
   * server listens first, then replies), so pending forwardings take them, as in PuTTY.
   */
  state: "pending" | "active" | "refused" | "cancelled";
}

function forwardData(bindHost: string, bindPort: number): Uint8Array {
  return new SshWriter().string(bindHost).uint32(bindPort).done();
}

/** Asks the server for one forwarding; resolves to whether it agreed. Never rejects. */
export async function requestRemote(env: ForwardEnv, fwd: RemoteForward): Promise<boolean> {
  env.log(`Requesting remote port ${fwd.description} forward to ${fwd.host}:${fwd.port}`);
  let ok = false;
  try {
    ok = (await env.conn.globalRequest(
      "tcpip-forward",
      true,
      forwardData(fwd.bindHost, fwd.bindPort),
    )).ok;
  } catch {
    return false; // the connection went away; its own error is reported elsewhere
  }
  if (fwd.state === "cancelled") {
    // Stopped while the request was in flight: take back what the server just granted.
    if (ok) sendCancel(env, fwd);
    return false;
  }
  fwd.state = ok ? "active" : "refused";
  if (ok) env.log(`Remote port forwarding from ${fwd.description} enabled`);
  else env.warn(`Remote port forwarding from ${fwd.description} refused`);
  return ok;
}

/** Cancels a forwarding the server granted (no reply wanted, as PuTTY). */
export function cancelRemote(env: ForwardEnv, fwd: RemoteForward): void {
  const granted = fwd.state === "active";
  fwd.state = "cancelled";
  if (!granted) return;
  env.log(`Cancelling remote port forwarding from ${fwd.description}`);
  sendCancel(env, fwd);
}

function sendCancel(env: ForwardEnv, fwd: RemoteForward): void {
  env.conn.globalRequest("cancel-tcpip-forward", false, forwardData(fwd.bindHost, fwd.bindPort))
    .catch(() => {});
}

/** Handles a forwarded-tcpip channel the server opens. */
export async function acceptRemote(
  env: ForwardEnv,
  forwards: readonly RemoteForward[],
  req: IncomingChannel,
): Promise<void> {
  const addr = req.extra.string();
  const port = req.extra.uint32();
  const origin = req.extra.string();
  const originPort = req.extra.uint32();
  env.log(`Received remote port ${addr}:${port} open request from ${origin}:${originPort}`);
  // Exact match first; a server may also report the bound address differently ("" vs
  // "0.0.0.0"), so fall back to the port when only one active forwarding has it.
  const live = forwards.filter((f) => f.state === "pending" || f.state === "active");
  let fwd = live.find((f) => f.bindHost === addr && f.bindPort === port);
  if (!fwd) {
    const byPort = live.filter((f) => f.bindPort === port);
    if (byPort.length === 1) fwd = byPort[0];
  }
  if (!fwd) {
    req.reject(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, "Remote port is not recognised");
    return;
  }
  env.log(`Attempting to forward remote port to ${fwd.host}:${fwd.port}`);
  let sock: Deno.TcpConn;
  try {
    sock = await connectTcp(fwd.host, fwd.port, fwd.family);
  } catch (e) {
    env.log(`Port open failed: ${osErrorText(e)}`);
    req.reject(OPEN_FAILURE.CONNECT_FAILED, "Port open failed");
    return;
  }
  env.log("Forwarded port opened successfully");
  const ch = acceptFor(req, sock);
  if (ch) await runForwarded(env, sock, ch);
}

async function connectTcp(
  host: string,
  port: number,
  family?: "ipv4" | "ipv6",
): Promise<Deno.TcpConn> {
  // A per-forwarding address family ("4R..." / "6R..." in a saved session) matters for names
  // with both kinds of address; the common one is localhost.
  let hostname = host;
  if (family && host === "localhost") hostname = family === "ipv4" ? "127.0.0.1" : "::1";
  const sock = await Deno.connect({ hostname, port, transport: "tcp" });
  try {
    sock.setNoDelay(true);
  } catch { /* not fatal */ }
  return sock;
}
