/**
 * The downstream end of a sharing socket: exchange version lines with the upstream, then speak the
 * SSH connection protocol through it with our ordinary connection-layer client. No crypto, no
 * ssh2: this is all a downstream tool loads to reach the server.
 */

import { SshConnection } from "../ssh/connection.ts";
import { SHARING_LIMITS } from "./limits.ts";
import { type Greeting, SocketPort } from "./socket_port.ts";
import { greetingTimeoutMs } from "./accept_guard.ts";
import { watchdog } from "../util/timer.ts";
import { VERSION } from "../version.ts";

/** The upstream accepted our connection but never greeted us (e.g. it is out of descriptors). */
export class GreetingTimeoutError extends Error {}

export interface DownstreamLink {
  conn: SshConnection;
  /** The upstream's version line (it carries the server's software version). */
  greeting: Greeting;
}

/**
 * Greets the upstream on an already-connected socket and waits for its greeting. Rejects (and
 * closes the socket) when the upstream leaves or misbehaves before greeting us, or has not
 * greeted us within `timeoutMs` (GreetingTimeoutError). `session`: the session channel the
 * caller opens first is asked for as the greeting comes (SshConnection.openSessionEarly).
 */
export async function greetUpstream(
  socket: Deno.UnixConn,
  { software = `puttykit_${VERSION}`, timeoutMs = greetingTimeoutMs(), session = false }: {
    software?: string;
    timeoutMs?: number;
    session?: boolean;
  } = {},
): Promise<DownstreamLink> {
  const port = new SocketPort(socket, "upstream", true);
  port.sendGreeting(software);
  // Packets that come before the upstream's greeting wait in the port.
  const conn = new SshConnection(port, SHARING_LIMITS);
  let greeting: Greeting;
  let cancel = () => {};
  try {
    greeting = await new Promise<Greeting>((resolve, reject) => {
      cancel = watchdog(timeoutMs, () =>
        reject(
          new GreetingTimeoutError(`upstream sent no greeting in ${timeoutMs / 1000} s`),
        ));
      port.greeting.then((g) => {
        // Not before: PuTTY 0.78's upstream exits if a packet comes before it has greeted.
        if (session) conn.openSessionEarly();
        resolve(g);
      }, reject);
    });
  } catch (e) {
    port.close();
    throw e;
  } finally {
    cancel();
  }
  return { conn, greeting };
}

/** Connects to the sharing socket at `path` as a downstream (no lock: the caller knows it is up). */
export async function openDownstream(path: string, software?: string): Promise<DownstreamLink> {
  const socket = await Deno.connect({ transport: "unix", path });
  return await greetUpstream(socket, { software });
}
