/**
 * What plink and putty set up around a connection, apart from the console: the connection
 * itself, -L/-R/-D started at once, X11 forwarding for the main session, the main session's
 * options from the configuration, the -sessionlog output log, and the orderly end.
 */

import type { PuttyConfig } from "../config/types.ts";
import type { Forwardings } from "../forward/forwardings.ts";
import type { X11Forwarding } from "../forward/x11.ts";
import type { OutputLog } from "../log/log_files.ts";
import type { MainSessionOptions, SessionIo } from "./main_session.ts";
import { RawTerminal } from "../terminal/raw.ts";
import { connect, type Connected, openConfiguredLog } from "./connect.ts";
import type { Interaction } from "./interaction.ts";

export interface SessionSetup {
  connected: Connected;
  /** How the library talks to the user (-v log, warnings, prompts). */
  ui: Interaction;
  /** The local terminal, raw while an interactive session runs. */
  terminal: RawTerminal;
  /** The exit code a terminating signal asked for, once one came (set by the front-end). */
  stoppedWith: number | undefined;
  /** -L/-R/-D, started as soon as the connection is up (see finishSession). */
  forwardings: Forwardings;
  /** -X, when asked for, there is a session, and the display could be set up. */
  x11?: X11Forwarding;
  /** -A, and there is an agent to forward (PuTTY's ssh_agent_forwarding_permitted). */
  agentForward: boolean;
}

/** What a session without -L/-R/-D has; the forwarding code is not even loaded. */
const NO_FORWARDINGS: Forwardings = {
  ready: Promise.resolve(),
  count: 0,
  localPorts: [],
  close() {},
};

/**
 * Connects (throwing what connect() throws) and starts the forwardings and X11. `interactive`:
 * see ConnectOptions. `appName` ("Plink", "PuTTY") is how the X11 proxy names itself to an X
 * client it refuses.
 */
export async function setUpSession(
  cfg: PuttyConfig,
  ui: Interaction,
  interactive: boolean,
  appName: string,
): Promise<SessionSetup> {
  const connected = await connect({
    config: cfg,
    mayBeUpstream: true,
    ui,
    interactive,
    appName,
    session: !cfg.noShell && !cfg.ncHost,
  });
  return {
    connected,
    ui,
    terminal: new RawTerminal(),
    stoppedWith: undefined,
    // Before any session starts, so a remote forwarding is in place by the time the remote
    // command runs (the server handles our requests in order).
    forwardings: cfg.portForwards.length
      ? (await import("../forward/forwardings.ts")).startForwardings(connected.conn, cfg, ui)
      : NO_FORWARDINGS,
    x11: cfg.x11Forward && !cfg.noShell ? await setUpX11(connected, cfg, appName, ui) : undefined,
    agentForward: cfg.agentForward &&
      (await import("../forward/agent.ts")).agentForwardingPermitted(cfg),
  };
}

/** X11 forwarding for the main session; like PuTTY, only logs why when the display is unusable. */
async function setUpX11(
  connected: Connected,
  cfg: PuttyConfig,
  appName: string,
  ui: Interaction,
): Promise<X11Forwarding | undefined> {
  const { startX11Forwarding, X11DisplayError } = await import("../forward/x11.ts");
  try {
    return startX11Forwarding(connected.conn, cfg.x11Display, appName, ui);
  } catch (e) {
    if (!(e instanceof X11DisplayError)) throw e;
    ui.log(`X11 forwarding not enabled: unable to initialise X display: ${e.message}`);
    return undefined;
  }
}

/**
 * The main session as the configuration asks for it, on `io`; with `pty`, a pty of the
 * configured terminal type made from the local terminal, which `terminal` puts in raw mode.
 */
export function mainSessionOptions(
  cfg: PuttyConfig,
  session: SessionSetup,
  pty: boolean,
  io: SessionIo,
  warn: (text: string) => void,
): MainSessionOptions {
  return {
    command: cfg.remoteCommand,
    subsystem: cfg.subsystem,
    env: cfg.env,
    agentForward: session.agentForward,
    x11: session.x11?.request,
    ptyTerm: pty ? cfg.termType : undefined,
    terminal: session.terminal,
    io,
    warn,
    log: session.ui.log,
  };
}

/**
 * -sessionlog / LogType 1-2 for putty's terminal: everything the session sends the terminal also
 * goes to the log file (or its printable part), after PuTTY's header line.
 */
export async function logSessionOutput(
  cfg: PuttyConfig,
  ui: Interaction,
  options: MainSessionOptions,
): Promise<OutputLog | undefined> {
  if (cfg.logType !== "session" && cfg.logType !== "printable") return undefined;
  const file = await openConfiguredLog(cfg, ui);
  if (!file) return undefined;
  const { OutputLog } = await import("../log/log_files.ts");
  const log = new OutputLog(file, cfg.logType === "printable");
  const { stdout, stderr } = options.io;
  options.io = {
    ...options.io,
    stdout: (chunk) => (log.output(chunk), stdout(chunk)),
    stderr: (chunk) => (log.output(chunk), stderr(chunk)),
  };
  return log;
}

/**
 * -N: waits for the connection to end, then stops the forwardings; why it ended, if not cleanly.
 * An upstream asked to exit by an OpenSSH client (`ssh -O exit`) finishes instead, waiting for its
 * downstreams as usual.
 */
export async function connectionEnd(c: SessionSetup): Promise<Error | undefined> {
  const { conn, exitRequested } = c.connected;
  const exit = exitRequested?.then(() => "exit" as const);
  const end = await Promise.race(exit ? [conn.closed, exit] : [conn.closed]);
  if (end === "exit") {
    await finishSession(c);
    return undefined;
  }
  c.forwardings.close();
  return end;
}

/**
 * The session is over: stops the port forwardings and ends our use of the connection (an
 * upstream stays until its downstreams have gone, telling `onWaiting` how many it waits for).
 */
export async function finishSession(
  c: SessionSetup,
  onWaiting?: (n: number) => void,
): Promise<void> {
  c.forwardings.close();
  c.x11?.close();
  await c.connected.finish(onWaiting);
}
