/**
 * putty: an interactive SSH terminal session in the terminal we run in (PuTTY's own is a GTK
 * window): a pty of the local terminal's type, size and modes, raw mode, window-size changes
 * forwarded, the terminal restored on every way out, the remote shell's exit status as ours.
 * Options, saved sessions, host keys and connection sharing are plink's; as a sharing upstream
 * it stays until its downstreams have finished, and says so.
 */

import { parseCommandLine, type ParsedCommandLine } from "../lib/config/command_line.ts";
import { PUTTY } from "../lib/config/tool_specs.ts";
import { ConfigError, NoHostError } from "../lib/config/types.ts";
import { runMainSession } from "../lib/session/main_session.ts";
import { VERSION } from "../lib/version.ts";
import { finishSession, logSessionOutput, mainSessionOptions } from "../lib/session/setup.ts";
import { errorText } from "../lib/util/error_text.ts";
import {
  answerStopOption,
  connectOnConsole,
  fatalAfterSession,
  serveWithoutSession,
  stdio,
  usageError,
  writeErr,
} from "./console.ts";

const USAGE = `PuTTY: interactive SSH terminal session (puttykit ${VERSION})
Usage: putty [options] [user@]host [port]
       putty [options] -load sessname
Runs the remote shell in this terminal; the session's exit status becomes putty's.
Options:
  --help, -help      print this help and exit
  -V, --version      print version information and exit
  -load sessname     load settings from a saved session
  -ssh               use the SSH protocol (the only one puttykit has)
  -P port            connect to the specified port
  -l user            connect with the specified username
  -batch             disable all interactive prompts
  -pw passw, -pwfile file
                     log in with the given password (or the first line of the file)
  -i key             private key file for user authentication
  -agent, -noagent   enable / disable use of an SSH agent for authentication
  -hostkey keyid     manually specify a host key (may be repeated)
  -share, -noshare   enable / disable connection sharing
  -A, -a             enable / disable agent forwarding
  -L, -R, -D spec    port forwarding (as plink)
  -t, -T             enable / disable pty allocation (default: enabled)
  -m file            read the remote command from a file
  -4, -6             force use of IPv4 or IPv6
  -C                 enable compression
  -proxycmd command  use 'command' as local proxy
The terminal type sent is $TERM (or the session's TerminalType).
`;

function waitingLine(n: number): string {
  return `puttykit: waiting for ${n} downstream connection(s) (pscp/psftp/plink) sharing this ` +
    "connection to finish (an upstream cannot close before its downstreams; Ctrl-C ends them)\n";
}

export async function main(args: string[]): Promise<number> {
  if (args.length === 0) {
    writeErr(USAGE);
    return 1;
  }
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(PUTTY, args);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (e instanceof NoHostError) {
      usageError("putty", "no host name given (putty --help lists the options)");
    }
    usageError("putty", e.message);
  }
  if (parsed.stop) return await answerStopOption("putty", parsed.stop, "--version", USAGE, 0);
  const cfg = parsed.config;
  if (cfg.protocol !== "ssh") {
    usageError("putty", `the ${cfg.protocol} protocol is not supported by puttykit`);
  }
  if (cfg.ncHost) usageError("putty", "-nc is not supported by putty (use plink -nc)");
  if (!Deno.stdin.isTerminal()) {
    usageError(
      "putty",
      "standard input is not a terminal (putty needs one; use plink for non-interactive use)",
    );
  }
  for (const w of parsed.warnings) writeErr(`${w}\n`);

  const session = await connectOnConsole(cfg, () => true, true, "PuTTY");
  const { connected, terminal } = session;

  // -N (SshNoShell): no session; serve forwardings and downstreams until the connection ends.
  if (cfg.noShell) return await serveWithoutSession(session);

  const options = mainSessionOptions(
    cfg,
    session,
    cfg.pty !== false,
    stdio(),
    (t) => writeErr(t + "\n"),
  );
  const outputLog = await logSessionOutput(cfg, session.ui, options);
  let code: number | undefined;
  try {
    code = await runMainSession(connected.conn, options);
  } catch (e) {
    await connected.abort();
    fatalAfterSession(terminal, errorText(e));
  }
  await finishSession(session, (n) => writeErr(waitingLine(n)));
  outputLog?.close();
  if (code === undefined) {
    writeErr("Remote process exit code unavailable\n");
    return 1;
  }
  return code;
}
