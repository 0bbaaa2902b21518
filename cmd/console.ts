/**
 * User interaction shared by the console tools (plink, pscp, psftp, putty): the -v event log and
 * prompts on the controlling terminal, fatal errors as one line, exit; and what plink and putty
 * share around a connection (signals, the terminal, -N).
 */

import type { PuttyConfig } from "../lib/config/types.ts";
import { printable } from "../lib/util/printable.ts";
import { agentForwardingPermitted } from "../lib/forward/agent.ts";
import { type Forwardings, startForwardings } from "../lib/forward/forwardings.ts";
import type { X11Forwarding } from "../lib/forward/x11.ts";
import type { OutputLog, PacketLog } from "../lib/log/log_files.ts";
import { connect, type Connected, openConfiguredLog } from "../lib/session/connect.ts";
import type { HostKeyQuestion, Interaction } from "../lib/session/interaction.ts";
import {
  type MainSessionOptions,
  RawTerminal,
  type SessionIo,
} from "../lib/terminal/main_session.ts";
import { chunksOf } from "../lib/session/main_channel.ts";
import { delay } from "../lib/util/timer.ts";
import { VERSION } from "../lib/version.ts";

const enc = new TextEncoder();

/** Writes text to stdout, whole; quietly stops if stdout has gone (e.g. `| head`). */
export function writeOut(text: string): void {
  const data = enc.encode(text);
  let at = 0;
  while (at < data.length) {
    try {
      at += Deno.stdout.writeSync(data.subarray(at));
    } catch {
      return; // stdout gone
    }
  }
}

export function writeErr(text: string): void {
  try {
    Deno.stderr.writeSync(enc.encode(text));
  } catch { /* stderr gone */ }
}

/** Prints "FATAL ERROR: ..." (PuTTY's wording) and exits 1. */
export function fatal(message: string, code = 1): never {
  // Stopping for a signal already: whatever failed, failed because of that.
  if (signalled) Deno.exit(signalled.code);
  writeErr(`FATAL ERROR: ${message}\n`);
  Deno.exit(code);
}

/** Once a terminating signal is being handled: the exit code it asked for, and its clean-up. */
let signalled: { code: number; done: Promise<void> } | undefined;

/**
 * Stops for a signal: runs `cleanup` (remove temporary files, drop the connection), then exits
 * with `code`. Only the first call counts. Meanwhile the rest of the tool may see its work fail
 * (the clean-up pulls the connection from under it); finalExitCode() and fatal() then leave with
 * the signal's code, after the clean-up, not with the failure's.
 */
export function stopOnSignal(code: number, cleanup: () => Promise<void>): void {
  if (signalled) return;
  const done = cleanup().catch(() => {});
  signalled = { code, done };
  done.then(() => Deno.exit(code));
}

/** The code to exit with: `code`, or a signal's once one is being handled (after its clean-up). */
export async function finalExitCode(code: number): Promise<number> {
  if (!signalled) return code;
  await signalled.done;
  return signalled.code;
}

/** Prints "<tool>: message" for usage errors and exits 1. */
export function usageError(tool: string, message: string): never {
  writeErr(`${tool}: ${message}\n`);
  Deno.exit(1);
}

function openTty(): Deno.FsFile | undefined {
  try {
    return Deno.openSync("/dev/tty", { read: true, write: true });
  } catch {
    return undefined;
  }
}

/**
 * Reads one line from stdin a byte at a time, so nothing after the line is consumed (it may be
 * meant for the remote command). PuTTY reads host-key answers from stdin like this.
 */
export async function readStdinLine(): Promise<string | undefined> {
  const bytes: number[] = [];
  const b = new Uint8Array(1);
  for (;;) {
    const n = await Deno.stdin.read(b);
    if (n === null) {
      return bytes.length ? new TextDecoder().decode(new Uint8Array(bytes)) : undefined;
    }
    if (b[0] === 10) break;
    bytes.push(b[0]);
  }
  return new TextDecoder().decode(new Uint8Array(bytes)).replace(/\r$/, "");
}

/**
 * Reads one line from the terminal (/dev/tty, else stdin with the prompt on stderr, as PuTTY's
 * console does). With echo off the terminal is put in raw mode and we do the line editing
 * (backspace, ^U, ^C) ourselves.
 */
export async function readTtyLine(prompt: string, echo: boolean): Promise<string | undefined> {
  const tty = openTty();
  if (!tty) {
    writeErr(prompt);
    return await readStdinLine();
  }
  let line: string | undefined | typeof INTERRUPTED;
  try {
    // Echo goes off before the prompt appears, so a quick typist's secret is never echoed.
    if (!echo) tty.setRaw(true);
    try {
      // Raw mode also stops the terminal turning "\n" into "\r\n".
      tty.writeSync(enc.encode(echo ? prompt : prompt.replace(/\r?\n/g, "\r\n")));
      line = echo ? await readEchoedLine(tty) : await readSecretLine(tty);
    } finally {
      if (!echo) tty.setRaw(false);
    }
  } finally {
    tty.close();
  }
  if (line === INTERRUPTED) return await interrupted();
  return line;
}

/** ^C typed at a secret prompt (raw mode, so no signal was sent). */
const INTERRUPTED = Symbol("interrupted");

/**
 * What ^C does at PuTTY's prompts, where the terminal still sends signals: a SIGINT, handled as
 * any other (clean-up, exit 130). Our terminal is back in cooked mode by now.
 */
async function interrupted(): Promise<never> {
  Deno.kill(Deno.pid, "SIGINT");
  await delay(1000); // the signal's handler, or its default action, ends us first
  Deno.exit(130);
}

async function readEchoedLine(tty: Deno.FsFile): Promise<string | undefined> {
  const buf = new Uint8Array(1024);
  let line = "";
  for (;;) {
    const n = await tty.read(buf);
    if (n === null) return line.length ? line : undefined;
    line += new TextDecoder().decode(buf.subarray(0, n));
    const nl = line.indexOf("\n");
    if (nl >= 0) return line.slice(0, nl).replace(/\r$/, "");
  }
}

/** Reads a line in raw mode, doing backspace, ^U, ^C and ^D ourselves. */
async function readSecretLine(tty: Deno.FsFile): Promise<string | undefined | typeof INTERRUPTED> {
  const bytes: number[] = [];
  const b = new Uint8Array(1);
  for (;;) {
    const n = await tty.read(b);
    if (n === null) return undefined;
    const c = b[0];
    if (c === 13 || c === 10) break;
    if (c === 3 || c === 4) {
      tty.writeSync(enc.encode("\r\n"));
      return c === 3 ? INTERRUPTED : undefined;
    }
    if (c === 127 || c === 8) bytes.pop();
    else if (c === 21) bytes.length = 0;
    else bytes.push(c);
  }
  tty.writeSync(enc.encode("\r\n"));
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * Interaction for a console tool: logging per -v, prompting unless -batch. `sanitiseStderr`:
 * control characters are dropped from what goes to stderr, as pscp and psftp do by default.
 */
export function consoleInteraction(
  opts: { verbose: boolean; batch: boolean; sanitiseStderr?: boolean },
): Interaction {
  const err = (text: string) => writeErr(opts.sanitiseStderr ? printable(text) : text);
  let packetLog: PacketLog | undefined;
  return {
    log: (text) => {
      packetLog?.event(text);
      if (opts.verbose) err(text + "\n");
    },
    attachPacketLog: (log) => packetLog = log,
    askLogClash: async (path) => {
      const exists = `The session log file "${path}" already exists.\n`;
      if (opts.batch) {
        writeErr(exists + "Logging will not be enabled.\n");
        return undefined;
      }
      writeErr(
        exists + "You can overwrite it with a new session log,\n" +
          "append your session log to the end of it,\n" +
          "or disable session logging for this session.\n" +
          'Enter "y" to wipe the file, "n" to append to it,\n' +
          "or just press Return to disable logging.\n" +
          "Wipe the log file? (y/n, Return cancels logging) ",
      );
      const a = (await readStdinLine() ?? "").trim().toLowerCase();
      return a.startsWith("y") ? "overwrite" : a.startsWith("n") ? "append" : undefined;
    },
    warn: (text) => err(text + "\n"),
    prompt: (text, echo) => opts.batch ? Promise.resolve(undefined) : readTtyLine(text, echo),
    banner: (text) => writeErr(text),
    confirmHostKey: async (q: HostKeyQuestion) => {
      if (opts.batch) return "no";
      writeErr(hostKeyWarning(q));
      writeErr("Store key in cache? (y/n, Return cancels connection, i for more info) ");
      const answer = await readStdinLine();
      const a = (answer ?? "").trim().toLowerCase();
      if (a === "y") return "store";
      if (a === "n") return "once";
      return "no";
    },
  };
}

export function hostKeyWarning(q: HostKeyQuestion): string {
  const where = `  ${q.host} (port ${q.port})`;
  if (q.changed) {
    return [
      "WARNING - POTENTIAL SECURITY BREACH!",
      "The host key does not match the one PuTTY has cached for this server:",
      where,
      "This means that either the server administrator has changed the host key, or you have " +
      "actually connected to another computer pretending to be the server.",
      "The new " + q.keyType + " key fingerprint is:",
      `  ${q.fingerprint}`,
      "",
    ].join("\n");
  }
  return [
    "The host key is not cached for this server:",
    where,
    "You have no guarantee that the server is the computer you think it is.",
    `The server's ${q.keyType} key fingerprint is:`,
    `  ${q.fingerprint}`,
    'If you trust this host, enter "y" to add the key to PuTTY\'s cache and carry on ' +
    "connecting.",
    "If you want to carry on connecting just once, without adding the key to the cache, " +
    'enter "n".',
    "If you do not trust this host, press Return to abandon the connection.",
    "",
  ].join("\n");
}

/** Turns any error into the one line a user should see. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

// ---------------------------------------------------------------------------------------------
// What the session tools (plink, putty) share around a connection.

export async function writeAll(file: { write(p: Uint8Array): Promise<number> }, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/** Our stdin, stdout and stderr as a session's data streams. */
function stdio(): SessionIo {
  return {
    input: chunksOf(Deno.stdin),
    stdout: (c) => writeAll(Deno.stdout, c),
    stderr: (c) => writeAll(Deno.stderr, c),
  };
}

/**
 * The main session as the configuration asks for it, on our stdio; with `pty`, a pty of the
 * configured terminal type made from the local terminal, which `terminal` puts in raw mode.
 */
export function mainSessionOptions(
  cfg: PuttyConfig,
  session: ConsoleConnection,
  pty: boolean,
): MainSessionOptions {
  return {
    command: cfg.remoteCommand,
    subsystem: cfg.subsystem,
    env: cfg.env,
    agentForward: agentForwardingPermitted(cfg),
    x11: session.x11?.request,
    ptyTerm: pty ? cfg.termType : undefined,
    terminal: session.terminal,
    io: stdio(),
    warn: (t) => writeErr(t + "\n"),
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
  const { OutputLog } = await import("../lib/log/log_files.ts");
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
 * Answers a help/version option that stopped parsing: the version line for `versionOption`, else
 * the usage on stdout (exit 0 only for --help).
 */
export async function answerStopOption(
  tool: string,
  stop: string,
  versionOption: string,
  usage: string,
): Promise<number> {
  if (stop === versionOption) {
    await writeAll(Deno.stdout, enc.encode(`${tool}: puttykit ${VERSION}\n`));
    return 0;
  }
  await writeAll(Deno.stdout, enc.encode(usage));
  return stop === "--help" ? 0 : 1;
}

const TERMINATING_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

/**
 * SIGHUP, SIGINT and SIGTERM end the tool cleanly: the terminal is restored first, then `stop()`
 * runs (an upstream removes its socket, the connection is dropped), then we exit with 128 + the
 * signal number (`stop` is told it), as a shell reports a process killed by that signal.
 */
export function exitOnSignals(
  stop: (exitCode: number) => Promise<void>,
  terminal?: RawTerminal,
): void {
  for (const [sig, n] of Object.entries(TERMINATING_SIGNALS)) {
    Deno.addSignalListener(sig as Deno.Signal, () => {
      terminal?.restore();
      stopOnSignal(128 + n, () => stop(128 + n));
    });
  }
}

/**
 * fatal() after a terminal session: the terminal restored first, and the message on a line of
 * its own (the remote side may have left the cursor anywhere).
 */
export function fatalAfterSession(terminal: RawTerminal, message: string): never {
  const wasRaw = terminal.used;
  terminal.restore();
  if (wasRaw) writeErr("\n");
  fatal(message);
}

export interface ConsoleConnection {
  connected: Connected;
  /** How the library talks to the user (-v log, warnings, prompts). */
  ui: Interaction;
  /** The local terminal, raw while an interactive session runs. */
  terminal: RawTerminal;
  /** The exit code a terminating signal asked for, once one came. */
  readonly stoppedWith: number | undefined;
  /** -L/-R/-D, started as soon as the connection is up (see finishSession). */
  forwardings: Forwardings;
  /** -X, when asked for, there is a session, and the display could be set up. */
  x11?: X11Forwarding;
}

/**
 * Connects with console interaction, or prints FATAL ERROR and exits. `interactive`: see
 * ConnectOptions (PuTTY's rule for plink: no remote command and no subsystem). When `handleSignals` says
 * so for the connection, SIGHUP/SIGINT/SIGTERM restore the terminal, drop the connection (an
 * upstream removes its socket) and exit. `appName` ("Plink", "PuTTY") is how the X11 proxy
 * names itself to an X client it refuses.
 */
export async function connectOnConsole(
  cfg: PuttyConfig,
  handleSignals: (connected: Connected) => boolean,
  interactive = !cfg.remoteCommand && !cfg.subsystem,
  appName = "Plink",
): Promise<ConsoleConnection> {
  let connected: Connected;
  const ui = consoleInteraction(cfg);
  try {
    connected = await connect({ config: cfg, mayBeUpstream: true, ui, interactive, appName });
  } catch (e) {
    fatal(errorText(e));
  }
  const c = {
    connected,
    ui,
    terminal: new RawTerminal(),
    stoppedWith: undefined as number | undefined,
    // Before any session starts, so a remote forwarding is in place by the time the remote
    // command runs (the server handles our requests in order).
    forwardings: startForwardings(connected.conn, cfg, ui),
    x11: cfg.x11Forward && !cfg.noShell ? await setUpX11(connected, cfg, appName, ui) : undefined,
  };
  if (handleSignals(connected)) {
    exitOnSignals((code) => {
      c.stoppedWith = code;
      return connected.abort();
    }, c.terminal);
  }
  return c;
}

/** X11 forwarding for the main session; like PuTTY, only logs why when the display is unusable. */
async function setUpX11(
  connected: Connected,
  cfg: PuttyConfig,
  appName: string,
  ui: Interaction,
): Promise<X11Forwarding | undefined> {
  const { startX11Forwarding, X11DisplayError } = await import("../lib/forward/x11.ts");
  try {
    return startX11Forwarding(connected.conn, cfg.x11Display, appName, ui);
  } catch (e) {
    if (!(e instanceof X11DisplayError)) throw e;
    ui.log(`X11 forwarding not enabled: unable to initialise X display: ${e.message}`);
    return undefined;
  }
}

/**
 * -N (SshNoShell): no session; serves port forwardings and downstreams until the connection
 * ends. Returns the exit code.
 */
export async function serveWithoutSession(c: ConsoleConnection): Promise<number> {
  const err = await c.connected.conn.closed;
  c.forwardings.close();
  if (c.stoppedWith !== undefined) return c.stoppedWith;
  if (err) fatal(errorText(err));
  return 0;
}

/**
 * The session is over: stops the port forwardings and ends our use of the connection (an
 * upstream stays until its downstreams have gone, telling `onWaiting` how many it waits for).
 */
export async function finishSession(
  c: ConsoleConnection,
  onWaiting?: (n: number) => void,
): Promise<void> {
  c.forwardings.close();
  c.x11?.close();
  await c.connected.finish(onWaiting);
}
