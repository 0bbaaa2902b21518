/**
 * Port forwarding for a front-end, in one call: `startForwardings(conn, cfg, ui)` sets up every
 * -L/-R/-D (and saved-session PortForwardings) on an SshConnection, whatever its role (alone,
 * upstream, or downstream of a shared connection), and returns a handle to stop them. After
 * PuTTY's portfwdmgr_config: a forwarding that cannot be set up (port in use, server refusal) is
 * reported and skipped, the others and the session carry on; a forwarded connection whose target
 * refuses only ends that connection.
 *
 * Log lines (-v) are PuTTY's: "Local port 8080 forwarding to host:80", "Requesting remote port
 * 2222 forward to localhost:22", "Opening connection to host:80 for forwarding from
 * 127.0.0.1:50000", "Forwarded connection refused by remote: Connect failed [Connection
 * refused]". Failures to set up a forwarding, which PuTTY only logs, are also shown without -v.
 */

import type { PuttyConfig, PuttyPortForward } from "../config/types.ts";
import type { IncomingChannel, SshConnection } from "../ssh/connection.ts";
import { OPEN_FAILURE } from "../ssh/wire.ts";
import type { ForwardEnv } from "./bridge.ts";
import { osErrorText } from "../util/error_text.ts";
import { acceptLoop, listenLocal } from "./local.ts";
import { acceptRemote, cancelRemote, type RemoteForward, requestRemote } from "./remote.ts";

export interface ForwardingsUi {
  /** -v event log line. */
  log(text: string): void;
  /** A line shown even without -v. */
  warn(text: string): void;
}

export interface Forwardings {
  /** Settles once the server has answered every remote forwarding request. */
  ready: Promise<void>;
  /** Forwardings in place now: local ports listening plus remote ones the server granted. */
  readonly count: number;
  /** The ports local forwardings listen on, in the order given (a port 0 resolved). */
  readonly localPorts: number[];
  /** Stops listening, cancels remote forwardings, drops forwarded connections. */
  close(): void;
}

function familyText(f: PuttyPortForward["addressFamily"]): string {
  return f === "ipv4" ? "IPv4 " : f === "ipv6" ? "IPv6 " : "";
}

/** PuTTY's source description: "[bindaddr:]port". */
function sourceText(pf: PuttyPortForward): string {
  return pf.bindAddress ? `${pf.bindAddress}:${pf.bindPort}` : `${pf.bindPort}`;
}

export function startForwardings(
  conn: SshConnection,
  cfg: Pick<PuttyConfig, "portForwards" | "localPortAcceptAll" | "remotePortAcceptAll">,
  ui: ForwardingsUi,
): Forwardings {
  const env: ForwardEnv = { conn, log: ui.log, warn: ui.warn, live: new Set() };
  const listeners: Deno.TcpListener[] = [];
  const remotes: RemoteForward[] = [];
  const requests: Promise<boolean>[] = [];
  let localCount = 0;
  let closed = false;
  const isClosed = () => closed;

  const previous = conn.onChannelOpen;
  const onChannelOpen = (req: IncomingChannel) => {
    if (req.type === "forwarded-tcpip") {
      acceptRemote(env, remotes, req).catch(() => {});
    } else if (previous) {
      previous(req);
    } else {
      req.reject(OPEN_FAILURE.UNKNOWN_CHANNEL_TYPE, "Unsupported channel type requested");
    }
  };
  conn.onChannelOpen = onChannelOpen;

  for (const pf of cfg.portForwards) {
    const src = sourceText(pf);
    if (pf.kind === "R") {
      const fwd: RemoteForward = {
        // PuTTY: "" (every interface) with RemotePortAcceptAll, else "localhost".
        bindHost: pf.bindAddress ?? (cfg.remotePortAcceptAll ? "" : "localhost"),
        bindPort: pf.bindPort,
        host: pf.host ?? "",
        port: pf.port ?? 0,
        family: pf.addressFamily,
        description: src,
        state: "pending",
      };
      remotes.push(fwd);
      requests.push(requestRemote(env, fwd));
      continue;
    }
    const what = pf.kind === "D"
      ? `Local ${familyText(pf.addressFamily)}port ${src} SOCKS dynamic forwarding`
      : `Local ${familyText(pf.addressFamily)}port ${src} forwarding to ${pf.host}:${pf.port}`;
    let bound: Deno.TcpListener[];
    try {
      bound = listenLocal({
        bindAddress: pf.bindAddress,
        port: pf.bindPort,
        family: pf.addressFamily,
        acceptAll: cfg.localPortAcceptAll,
      });
    } catch (e) {
      ui.warn(`${what} failed: ${osErrorText(e)}`);
      continue;
    }
    ui.log(what);
    localCount++;
    const target = pf.kind === "D" ? "socks" : { host: pf.host ?? "", port: pf.port ?? 0 };
    for (const l of bound) {
      listeners.push(l);
      acceptLoop(env, l, target, isClosed);
    }
  }

  return {
    ready: Promise.all(requests).then(() => {}),
    get localPorts() {
      return listeners.map((l) => (l.addr as Deno.NetAddr).port);
    },
    get count() {
      if (closed) return 0;
      return localCount + remotes.filter((r) => r.state === "active").length;
    },
    close() {
      if (closed) return;
      closed = true;
      for (const l of listeners) {
        try {
          l.close();
        } catch { /* already closed */ }
      }
      for (const r of remotes) {
        if (conn.isOpen) cancelRemote(env, r);
      }
      for (const b of [...env.live]) b.abort();
      if (conn.onChannelOpen === onChannelOpen) conn.onChannelOpen = previous;
    },
  };
}
