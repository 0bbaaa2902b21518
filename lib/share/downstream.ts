/**
 * The downstream end of a sharing socket: exchange version lines with the upstream, then speak the
 * SSH connection protocol through it with our ordinary connection-layer client. No crypto, no
 * ssh2: this is all a downstream tool loads to reach the server.
 */

import { SshConnection } from "../ssh/connection.ts";
import { SHARING_LIMITS } from "./limits.ts";
import { type Greeting, SocketPort } from "./socket_port.ts";
import { VERSION } from "../version.ts";

export interface DownstreamLink {
  conn: SshConnection;
  /** The upstream's version line (it carries the server's software version). */
  greeting: Greeting;
}

/**
 * Greets the upstream on an already-connected socket and waits for its greeting. Rejects (and
 * closes the socket) when the upstream leaves or misbehaves before greeting us.
 */
export async function greetUpstream(
  socket: Deno.UnixConn,
  software = `puttykit_${VERSION}`,
): Promise<DownstreamLink> {
  const port = new SocketPort(socket, "upstream");
  port.sendGreeting(software);
  let greeting: Greeting;
  try {
    greeting = await port.greeting;
  } catch (e) {
    port.close();
    throw e;
  }
  return { conn: new SshConnection(port, SHARING_LIMITS), greeting };
}

/** Connects to the sharing socket at `path` as a downstream (no lock: the caller knows it is up). */
export async function openDownstream(path: string, software?: string): Promise<DownstreamLink> {
  const socket = await Deno.connect({ transport: "unix", path });
  return await greetUpstream(socket, software);
}
