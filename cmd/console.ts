/**
 * The console, for all four tools: output, fatal errors as one line and exit, the one table of
 * terminating signals and their exit codes, prompts on the controlling terminal, the Interaction
 * the library talks through; and the console side of plink's and putty's session set-up (the
 * rest is lib/session/setup.ts).
 */

import type { PuttyConfig } from "../lib/config/types.ts";
import { printable } from "../lib/util/printable.ts";
import type { PacketLog } from "../lib/log/log_files.ts";
import type { Connected } from "../lib/session/connect.ts";
import {
  type HostKeyQuestion,
  hostKeyQuestionText,
  type Interaction,
} from "../lib/session/interaction.ts";
import { connectionEnd, type SessionSetup, setUpSession } from "../lib/session/setup.ts";
import type { SessionIo } from "../lib/session/main_session.ts";
import { RawTerminal } from "../lib/terminal/raw.ts";
import {
  INTERRUPTED,
  openTty,
  readEchoedLine,
  readSecretLine,
  readStdinLine,
} from "../lib/terminal/line_input.ts";
import { chunksOf } from "../lib/session/main_channel.ts";
import { errorText } from "../lib/util/error_text.ts";
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
    const raw = new RawTerminal(tty);
    if (!echo) raw.enter();
    try {
      // Raw mode also stops the terminal turning "\n" into "\r\n".
      tty.writeSync(enc.encode(echo ? prompt : prompt.replace(/\r?\n/g, "\r\n")));
      line = echo ? await readEchoedLine(tty) : await readSecretLine(tty);
    } finally {
      raw.restore();
    }
  } finally {
    tty.close();
  }
  if (line === INTERRUPTED) return await interrupted();
  return line;
}

/**
 * What ^C does at PuTTY's prompts, where the terminal still sends signals: a SIGINT, handled as
 * any other (clean-up, exit 130). Our terminal is back in cooked mode by now.
 */
async function interrupted(): Promise<never> {
  Deno.kill(Deno.pid, "SIGINT");
  await delay(1000); // the signal's handler, or its default action, ends us first
  Deno.exit(130);
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
      writeErr(hostKeyQuestionText(q));
      writeErr("Store key in cache? (y/n, Return cancels connection, i for more info) ");
      const answer = await readStdinLine();
      const a = (answer ?? "").trim().toLowerCase();
      if (a === "y") return "store";
      if (a === "n") return "once";
      return "no";
    },
  };
}

// ---------------------------------------------------------------------------------------------
// What the session tools (plink, putty) share around a connection.

export async function writeAll(file: { write(p: Uint8Array): Promise<number> }, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/** Our stdin, stdout and stderr as a session's data streams. */
export function stdio(): SessionIo {
  return {
    input: chunksOf(Deno.stdin),
    stdout: (c) => writeAll(Deno.stdout, c),
    stderr: (c) => writeAll(Deno.stderr, c),
  };
}

/**
 * Answers a help/version option that stopped parsing: the version line for `versionOption`, else
 * the usage on stdout; --help exits with `helpStatus` (PuTTY's plink: 1, its putty: 0).
 */
export async function answerStopOption(
  tool: string,
  stop: string,
  versionOption: string,
  usage: string,
  helpStatus: number,
): Promise<number> {
  if (stop === versionOption) {
    await writeAll(Deno.stdout, enc.encode(`${tool}: puttykit ${VERSION}\n`));
    return 0;
  }
  await writeAll(Deno.stdout, enc.encode(usage));
  return stop === "--help" ? helpStatus : 1;
}

/** The signals that end a tool, with their numbers: a shell reports such a death as 128 + n. */
const TERMINATING_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
export type TerminatingSignal = keyof typeof TERMINATING_SIGNALS;

/**
 * Calls `handler` for SIGHUP, SIGINT and SIGTERM with the exit code a shell would report for a
 * death by that signal (128 + its number). Returns what stops listening.
 */
export function onTerminatingSignals(
  handler: (signal: TerminatingSignal, exitCode: number) => void,
): () => void {
  const listeners = Object.entries(TERMINATING_SIGNALS).map(([sig, n]) => {
    const listener = () => handler(sig as TerminatingSignal, 128 + n);
    Deno.addSignalListener(sig as Deno.Signal, listener);
    return () => Deno.removeSignalListener(sig as Deno.Signal, listener);
  });
  return () => listeners.forEach((remove) => remove());
}

/**
 * SIGHUP, SIGINT and SIGTERM end the tool cleanly: the terminal is restored first, then `stop()`
 * runs (an upstream removes its socket, the connection is dropped), then we exit with 128 + the
 * signal number (`stop` is told it), as a shell reports a process killed by that signal.
 */
export function exitOnSignals(
  stop: (exitCode: number) => Promise<void>,
  terminal?: RawTerminal,
): void {
  onTerminatingSignals((_, code) => {
    terminal?.restore();
    stopOnSignal(code, () => stop(code));
  });
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

/**
 * Connects with console interaction and starts the forwardings (lib/session/setup.ts), or prints
 * FATAL ERROR and exits. `interactive`: see ConnectOptions (PuTTY's rule for plink: no remote
 * command and no -nc; `-s` alone counts). When `handleSignals` says so for the connection,
 * SIGHUP/SIGINT/SIGTERM restore the terminal, drop the connection (an upstream removes its
 * socket) and exit. `appName` ("Plink", "PuTTY") is how the X11 proxy names itself.
 */
export async function connectOnConsole(
  cfg: PuttyConfig,
  handleSignals: (connected: Connected) => boolean,
  interactive = !cfg.remoteCommand && !cfg.ncHost,
  appName = "Plink",
): Promise<SessionSetup> {
  let session: SessionSetup;
  try {
    session = await setUpSession(cfg, consoleInteraction(cfg), interactive, appName);
  } catch (e) {
    fatal(errorText(e));
  }
  const { connected } = session;
  if (handleSignals(connected)) {
    exitOnSignals((code) => {
      session.stoppedWith = code;
      return connected.abort();
    }, session.terminal);
  }
  return session;
}

/**
 * -N (SshNoShell): no session; serves port forwardings and downstreams until the connection
 * ends, or until `ssh -O exit` asks an upstream to finish. Returns the exit code.
 */
export async function serveWithoutSession(c: SessionSetup): Promise<number> {
  const err = await connectionEnd(c);
  if (c.stoppedWith !== undefined) return c.stoppedWith;
  if (err) fatal(errorText(err));
  return 0;
}
