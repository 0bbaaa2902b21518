/**
 * The upstream's listening side: accepts downstreams on the sharing socket, greets them once the
 * real SSH connection is up (as PuTTY does, with the server's software version), and hands each
 * one to the multiplexer. Downstreams that connect while we are still authenticating simply wait
 * for our greeting. Accepting itself (errors, greeting time limit, cap on half-open connections)
 * is the AcceptGuard's.
 */

import { AcceptGuard } from "./accept_guard.ts";
import type { ConnectionMux } from "./mux.ts";
import { retireSocket } from "./rendezvous.ts";
import type { SharePaths } from "./socket_path.ts";
import { SocketPort } from "./socket_port.ts";
import { SHARE_MAX_DATA } from "./limits.ts";

export class ShareListener {
  private mux?: ConnectionMux;
  private serverVersion = "";
  private waiting: { port: SocketPort; label: string }[] = [];
  private count = 0;
  private retired = false;
  private readonly guard: AcceptGuard;

  constructor(
    private readonly listener: Deno.Listener<Deno.UnixConn>,
    readonly paths: SharePaths,
    private readonly log: (text: string) => void,
  ) {
    this.guard = new AcceptGuard(
      listener,
      (conn) => this.accepted(conn),
      log,
      undefined,
      "downstream",
    );
  }

  private accepted(conn: Deno.Conn) {
    const label = `downstream #${++this.count}`;
    const port = new SocketPort(conn, label);
    port.greeting.then(
      (g) => this.log(`${label} connected (version string: ${g.line})`),
      () => {},
    );
    if (this.mux) this.admit(port, label);
    else this.waiting.push({ port, label });
    return { greeting: port.greeting, close: () => port.close() };
  }

  private admit(port: SocketPort, label: string): void {
    port.sendGreeting(this.serverVersion);
    this.mux!.addDownstream(port, { label, maxData: SHARE_MAX_DATA });
  }

  /** The SSH connection is up: greet everyone waiting, and everyone from now on. */
  activate(mux: ConnectionMux, serverVersion: string): void {
    this.mux = mux;
    this.serverVersion = serverVersion;
    for (const { port, label } of this.waiting.splice(0)) this.admit(port, label);
  }

  /** Stops accepting and removes the socket (under the lock). Safe to call twice. */
  async retire(): Promise<void> {
    if (this.retired) return;
    this.retired = true;
    this.guard.stop();
    await retireSocket(this.paths, this.listener);
    for (const { port } of this.waiting.splice(0)) port.close();
  }
}
