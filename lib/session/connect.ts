/**
 * Getting an SSH connection for a front-end, the way PuTTY decides it:
 *
 * - sharing on (-share): under the per-connection lock, use a live upstream if there is one
 *   (downstream: no network, no crypto, no ssh2 loaded), else become the upstream if allowed
 *   (pscp/psftp never are), else connect alone;
 * - sharing off: connect alone.
 *
 * Whichever way, the caller gets an SshConnection (our connection-layer client). When we own the
 * real connection, ssh2 is imported lazily and our own session is just another (in-process)
 * downstream of the multiplexer, so every role shares one code path for channels.
 */

import type { PuttyConfig } from "../config/types.ts";
import { hostStrduptrim } from "../config/forwarding_spec.ts";
import { ConfigError } from "../config/types.ts";
import { SshConnection } from "../ssh/connection.ts";
import { DIRECT_LIMITS } from "../share/limits.ts";
import { portPair } from "../ssh/packet_port.ts";
import { connectionId, parentDir } from "../share/socket_path.ts";
import { decideSharing, type ShareDecision } from "../share/rendezvous.ts";
import { GreetingTimeoutError, greetUpstream } from "../share/downstream.ts";
import type { ConnectionMux } from "../share/mux.ts";
import type { ShareListener } from "../share/upstream.ts";
import type { PacketLog } from "../log/log_files.ts";
import type { Credentials, TransportOptions } from "../transport/transport.ts";
import { errorText, osErrorText } from "../util/error_text.ts";
import { type Interaction, keyHost } from "./interaction.ts";

export type Role = "downstream" | "upstream" | "direct";

export interface Connected {
  conn: SshConnection;
  role: Role;
  /** The sharing socket, when downstream or upstream. */
  socketPath?: string;
  /**
   * Upstream only: settles when an OpenSSH client asks us to exit (`ssh -O exit`); a tool with no
   * session of its own (plink -N) then finishes, waiting for its downstreams as usual.
   */
  exitRequested?: Promise<void>;
  /** Upstream only: live downstreams other than ourselves. */
  downstreams(): number;
  /**
   * Ends our use of the connection. An upstream keeps serving its downstreams until the last
   * one has gone (`onWaiting` is told how many it waits for), then closes the real connection.
   */
  finish(onWaiting?: (n: number) => void): Promise<void>;
  /** Stops at once (signals): removes an upstream's socket, drops the connection. */
  abort(): Promise<void>;
}

export interface ConnectOptions {
  config: PuttyConfig;
  /** False for pscp and psftp, which only ever act as downstreams. */
  mayBeUpstream: boolean;
  ui: Interaction;
  /**
   * An interactive session (psftp, putty, plink without a command): as a downstream it says so
   * on stderr even without -v ("Reusing a shared connection to this server."), as PuTTY does, so
   * the user knows why it behaves a little differently.
   */
  interactive?: boolean;
  /** How we name ourselves where PuTTY uses its appname ("Plink X11 proxy: ..."). */
  appName?: string;
  /** The first channel the caller opens is a session (SshConnection.openSessionEarly). */
  session?: boolean;
}

/** How many times a downstream retries when an upstream vanishes before greeting it. */
const DOWNSTREAM_RETRIES = 3;

export async function connect(opts: ConnectOptions): Promise<Connected> {
  const { config: cfg, ui } = opts;
  if (!cfg.host) throw new ConfigError("no host name specified");
  const log = await openLog(cfg, ui);
  // The packet log is attached after connecting: nothing may be sent before.
  const connected = await connectLogged(log ? { ...opts, session: false } : opts);
  if (log) connected.conn.onPacket = (direction, p) => log.packet(direction, p);
  return connected;
}

/** -sshlog / -sshrawlog: the packet log (lib/log/log_files.ts), given to `ui` for its events. */
async function openLog(cfg: PuttyConfig, ui: Interaction): Promise<PacketLog | undefined> {
  if (!cfg.logFile || (cfg.logType !== "packets" && cfg.logType !== "raw")) return undefined;
  const { PacketLog } = await import("../log/log_files.ts");
  const file = await openConfiguredLog(cfg, ui);
  if (!file) return undefined;
  const log = new PacketLog(file);
  ui.attachPacketLog?.(log);
  return log;
}

/**
 * Opens the configured log file (LogFileName with PuTTY's &-substitutions), asking `ui` about an
 * existing one unless LogFileClash says; undefined when there is to be no log.
 */
export async function openConfiguredLog(
  cfg: PuttyConfig,
  ui: Interaction,
): Promise<Deno.FsFile | undefined> {
  if (!cfg.logFile) return undefined;
  const { logFileName, openLogFile } = await import("../log/log_files.ts");
  const path = logFileName(cfg.logFile, cfg.host, cfg.port);
  try {
    return await openLogFile(
      path,
      cfg.logClash ?? "ask",
      () => ui.askLogClash?.(path) ?? Promise.resolve(undefined),
    );
  } catch (e) {
    ui.warn(`Unable to open log file ${path}: ${osErrorText(e)}`);
    return undefined;
  }
}

async function connectLogged(opts: ConnectOptions): Promise<Connected> {
  const { config: cfg, ui } = opts;
  const sharing = cfg.share && (cfg.shareUpstream || cfg.shareDownstream);
  if (!sharing) return await connectDirect(opts, undefined);
  let controlPath: string | undefined;
  if (cfg.controlPath) {
    const { controlPathFor, connectViaMaster } = await import("./via_master.ts");
    controlPath = await controlPathFor(cfg);
    if (cfg.shareDownstream) {
      const conn = await connectViaMaster(cfg, controlPath, ui, opts.interactive ?? false);
      if (conn) return asDownstream(conn, controlPath);
    }
  }

  const id = connectionId(keyHost(cfg), cfg.port, cfg.user);
  const canUp = opts.mayBeUpstream && cfg.shareUpstream;
  for (let attempt = 0;; attempt++) {
    const decision = await decideSharing(id, canUp, cfg.shareDownstream);
    if (decision.role === "downstream") {
      const path = decision.paths.socket;
      let conn: SshConnection;
      try {
        const link = await greetUpstream(decision.conn, { session: opts.session });
        conn = link.conn;
        ui.log(`Using existing shared connection at ${path}`);
        if (cfg.verbose || opts.interactive) {
          // PuTTY writes this line with "\r\n" (warn adds the "\n").
          ui.warn("Reusing a shared connection to this server.\r");
        }
        ui.log(`Upstream version string: ${link.greeting.line}`);
      } catch (e) {
        if (e instanceof GreetingTimeoutError) {
          // A live but stuck upstream: carry on as if there were none, without sharing.
          ui.warn(`Shared connection at ${path}: ${e.message}; connecting without it`);
          return await connectDirect(opts, undefined);
        }
        // The upstream went away before greeting us (e.g. it was just exiting): decide again.
        ui.log(`Upstream at ${path} closed before greeting: ${errorText(e)}`);
        if (attempt < DOWNSTREAM_RETRIES) continue;
        // It keeps hanging up on us (e.g. too many connections waiting on it): go without it.
        ui.warn(
          `Shared connection at ${path} keeps closing before greeting; connecting without it`,
        );
        return await connectDirect(opts, undefined);
      }
      return asDownstream(conn, path);
    }
    logNoShare(ui, decision);
    const up = decision.role === "upstream" ? decision : undefined;
    return await connectDirect(opts, up, up && controlPath);
  }
}

/** A connection through an upstream's socket (PuTTY's or an OpenSSH master's at `path`). */
function asDownstream(conn: SshConnection, path: string): Connected {
  const done = (why: string) => {
    conn.close(why);
    return Promise.resolve();
  };
  return {
    conn,
    role: "downstream",
    socketPath: path,
    downstreams: () => 0,
    finish: () => done("downstream finished"),
    abort: () => done("downstream aborted"),
  };
}

function logNoShare(ui: Interaction, d: ShareDecision): void {
  if (d.role === "upstream") {
    ui.log(`Sharing this connection at ${d.paths.socket}`);
  } else if (d.role === "none") {
    if (d.setupError) ui.warn(`Could not set up connection sharing: ${d.setupError}`);
    if (d.downstreamError) {
      ui.log(`Could not set up connection sharing as downstream: ${d.downstreamError}`);
    }
    if (d.upstreamError) {
      ui.log(`Could not set up connection sharing as upstream: ${d.upstreamError}`);
    }
  }
}

async function connectDirect(
  opts: ConnectOptions,
  up: Extract<ShareDecision, { role: "upstream" }> | undefined,
  controlPath?: string,
): Promise<Connected> {
  const { config: cfg, ui } = opts;
  // Everything heavy (ssh2, crypto, host-key store) is loaded only here.
  const [
    { openTransport },
    { ConnectionMux },
    { ShareListener },
    { prepareAuth, verifierFor, hostKeyAlgorithms },
    { agentForwardingPermitted, agentSocketPath, serveAgentChannels },
    { ServerPool, poolSettings, sessionsPerDownstream },
  ] = await Promise.all([
    import("../transport/transport.ts"),
    import("../share/mux.ts"),
    import("../share/upstream.ts"),
    import("./auth.ts"),
    import("../forward/agent.ts"),
    import("../share/server_pool.ts"),
  ]);
  const listener: ShareListener | undefined = up
    ? new ShareListener(up.listener, up.paths, ui.log)
    : undefined;
  let exitRequest!: () => void;
  const exitRequested = new Promise<void>((r) => (exitRequest = r));
  const control = controlPath ? await listenForOpenSsh(controlPath, ui, exitRequest) : undefined;
  let mux: ConnectionMux;
  let serverVersion: string;
  try {
    if (cfg.sshVersion === 1) {
      // Every server we can talk to speaks SSH-2 only; PuTTY's words once it has seen that.
      throw new ConfigError(
        "SSH protocol version 1 required by our configuration but not provided by remote",
      );
    }
    const verify = verifierFor(cfg, ui);
    let hostKey: Uint8Array | undefined;
    let credentials: Credentials | undefined;
    const transportOptions: TransportOptions = {
      host: hostStrduptrim(cfg.host),
      port: cfg.port,
      addressFamily: cfg.addressFamily,
      compression: cfg.compression,
      credentials: async () => (credentials = await prepareAuth(cfg, ui, opts.interactive)),
      password: cfg.password,
      batch: cfg.batch,
      verifyHostKey: async (blob) => {
        await verify(blob);
        hostKey = blob;
      },
      hostKeyAlgorithms: hostKeyAlgorithms(cfg),
      proxy: cfg,
      noTrivialAuth: cfg.noTrivialAuth,
      prompt: ui.prompt,
      log: ui.log,
      banner: ui.banner,
    };
    const transport = await openTransport(transportOptions);
    serverVersion = transport.serverVersion;
    // Upstreams may spread sessions over more connections, logged in as the first one was
    // (same key, agent or -pw, same host key) and never asking anyone.
    const connectMore = up && credentials
      ? async () => {
        const more = await openTransport({
          ...transportOptions,
          credentials: () => Promise.resolve(credentials!),
          batch: true,
          verifyHostKey: (blob) => {
            if (!hostKey || !sameBytes(blob, hostKey)) {
              return Promise.reject(new Error("the server's host key changed"));
            }
            return Promise.resolve();
          },
          prompt: () => Promise.resolve(undefined),
          log: () => {},
          banner: undefined,
        });
        return more.port;
      }
      : undefined;
    const pool = new ServerPool(transport.port, { ...poolSettings(), connectMore, log: ui.log });
    let idleWaiter: (() => void) | undefined;
    // Agent forwarding is the upstream's business (see lib/forward/agent.ts): with -A and an
    // agent, the server's agent channels, ours and our downstreams', go to our agent.
    const agentPath = agentForwardingPermitted(cfg) ? agentSocketPath() : undefined;
    mux = new ConnectionMux(pool, {
      log: ui.log,
      agentForwarding: agentPath !== undefined,
      onIdle: () => idleWaiter?.(),
      appName: opts.appName,
      sessionsPerDownstream: sessionsPerDownstream(pool),
    });
    if (agentPath !== undefined) {
      const [agentSide, muxSide] = portPair();
      mux.setAgentHandler(mux.addDownstream(muxSide, {
        label: "agent forwarding",
        maxData: DIRECT_LIMITS.maxPacket,
        service: true,
      }));
      serveAgentChannels(new SshConnection(agentSide, DIRECT_LIMITS), agentPath, ui.log);
    }
    const [mine, theirs] = portPair(true);
    mux.addDownstream(theirs, {
      label: "local session",
      maxData: DIRECT_LIMITS.maxPacket,
      local: true,
    });
    const conn = new SshConnection(mine, DIRECT_LIMITS);
    listener?.activate(mux, serverVersion);
    control?.activate(mux);
    const m = mux;
    const idle = () =>
      new Promise<void>((resolve) => {
        if (m.downstreamCount === 0 || m.closedError) return resolve();
        idleWaiter = resolve;
      });
    let finished = false;
    return {
      conn,
      role: up ? "upstream" : "direct",
      socketPath: up?.paths.socket,
      exitRequested,
      downstreams: () => Math.max(0, m.downstreamCount - (conn.isOpen ? 1 : 0)),
      finish: async (onWaiting) => {
        if (finished) return;
        finished = true;
        // Counted before our own session goes: its close reaches the mux a moment later.
        const others = Math.max(0, m.downstreamCount - (conn.isOpen ? 1 : 0));
        conn.close("session finished");
        if (listener) {
          if (others > 0) onWaiting?.(others);
          await idle();
          control?.retire();
          await listener.retire();
          // Someone may have connected just before the socket went away.
          await idle();
        }
        m.shutdown(new Error("upstream finished"));
      },
      abort: async () => {
        control?.retire();
        await listener?.retire();
        conn.close("aborted");
        m.shutdown(new Error("upstream aborted"));
      },
    };
  } catch (e) {
    control?.retire();
    await listener?.retire();
    throw e;
  }
}

/** An upstream's second socket, for OpenSSH's client (lib/openssh_mux/server.ts). */
async function listenForOpenSsh(
  path: string,
  ui: Interaction,
  onExitRequest: () => void,
): Promise<import("../openssh_mux/server.ts").ControlListener | undefined> {
  const { ControlListener } = await import("../openssh_mux/server.ts");
  try {
    const control = await ControlListener.open(path, { log: ui.log, onExitRequest });
    ui.log(
      `Also sharing this connection with OpenSSH clients at ${path} (ssh -S ${path} -O proxy)`,
    );
    return control;
  } catch (e) {
    ui.warn(`Could not listen for OpenSSH clients at ${path}: ${errorText(e)}`);
    return undefined;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export { parentDir };
