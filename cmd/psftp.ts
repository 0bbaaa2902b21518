/**
 * psftp: PuTTY's interactive SFTP client. The commands live in lib/psftp/; this file does the
 * command line, the terminal (line editing with history when stdin is a terminal, plain lines
 * otherwise), batch files, signals and the exit status.
 */

import { parseCommandLine, type ParsedCommandLine } from "../lib/config/command_line.ts";
import { PSFTP } from "../lib/config/tool_specs.ts";
import { ConfigError } from "../lib/config/types.ts";
import { connectSftp } from "../lib/psftp/connect_sftp.ts";
import { batchLines, runBatch, runInteractive } from "../lib/psftp/command_loop.ts";
import { LineEditor } from "../lib/psftp/line_editor.ts";
import { type PsftpOutput, PsftpSession } from "../lib/psftp/state.ts";
import { VERSION } from "../lib/version.ts";
import { RawTerminal } from "../lib/terminal/raw.ts";
import { errorText } from "../lib/util/error_text.ts";
import {
  consoleInteraction,
  fatal,
  onTerminatingSignals,
  stopOnSignal,
  writeErr,
  writeOut,
} from "./console.ts";

const USAGE = `PuTTY Secure File Transfer (SFTP) client
puttykit ${VERSION}
Usage: psftp [options] [user@]host
Options:
  -V        print version information and exit
  -pgpfp    print PGP key fingerprints and exit
  -b file   use specified batchfile
  -bc       output batchfile commands
  -be       don't stop batchfile processing if errors
  -v        show verbose messages
  -load sessname  Load settings from saved session
  -l user   connect with specified username
  -P port   connect to specified port
  -pwfile file   login with password read from specified file
  -1 -2     force use of particular SSH protocol version
  -ssh -ssh-connection
            force use of particular SSH protocol variant
  -4 -6     force use of IPv4 or IPv6
  -C        enable compression
  -i key    private key file for user authentication
  -noagent  disable use of Pageant
  -agent    enable use of Pageant
  -no-trivial-auth
            disconnect if SSH authentication succeeds trivially
  -hostkey keyid
            manually specify a host key (may be repeated)
  -batch    disable all interactive prompts
  -no-sanitise-stderr  don't strip control chars from standard error
  -proxycmd command
            use 'command' as local proxy
  -sshlog file
  -sshrawlog file
            log protocol details to a file
  -logoverwrite
  -logappend
            control what happens when a log file already exists
Connection sharing:
  -share    use a live upstream for the host (psftp never becomes one)
  -noshare  disable use of connection sharing
`;

const output: PsftpOutput = { print: writeOut, error: writeErr };

/**
 * ^C while a "!" command runs is for that command (system(3) ignores SIGINT meanwhile). The
 * terminal signals us too, and Deno may tell us only after the command has ended: a SIGINT that
 * ended the command and has not reached us yet is swallowed when it does.
 */
const sigint = { running: false, seen: false, owed: false };

/** Whether a SIGINT is ours to act on. */
function sigintIsOurs(): boolean {
  if (sigint.running) {
    sigint.seen = true;
    return false;
  }
  if (sigint.owed) {
    sigint.owed = false;
    return false;
  }
  return true;
}

/** The "!" command: system(3). */
async function runLocal(command: string): Promise<number> {
  sigint.running = true;
  sigint.seen = false;
  try {
    const child = new Deno.Command("/bin/sh", {
      args: ["-c", command],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const status = await child.status;
    sigint.owed = status.signal === "SIGINT" && !sigint.seen;
    return status.code;
  } catch (e) {
    writeErr(`psftp: ${errorText(e)}\n`);
    return 127;
  } finally {
    sigint.running = false;
  }
}

/** Reads command lines from a terminal with the line editor (raw mode only while reading). */
class TerminalReader {
  readonly editor = new LineEditor();
  private readonly decoder = new TextDecoder();
  private readonly buf = new Uint8Array(4096);
  private readonly terminal = new RawTerminal();

  async readLine(prompt: string): Promise<string | undefined> {
    try {
      const { columns } = Deno.consoleSize();
      if (columns > 0) this.editor.columns = columns; // 0 on a pty nobody sized
    } catch { /* keep the last width */ }
    this.terminal.enter();
    try {
      let r = this.editor.begin(prompt);
      for (;;) {
        writeOut(r.output);
        if (r.line !== undefined) return r.line;
        if (r.eof) return undefined;
        const n = await Deno.stdin.read(this.buf);
        if (n === null) return undefined;
        r = this.editor.feed(this.decoder.decode(this.buf.subarray(0, n), { stream: true }));
      }
    } finally {
      this.restore();
    }
  }

  restore(): void {
    this.terminal.restore();
  }
}

/** Reads command lines from a pipe or file, showing the prompt as psftp does. */
class PlainReader {
  private pending = new Uint8Array(0);
  private readonly buf = new Uint8Array(65536);

  async readLine(prompt: string): Promise<string | undefined> {
    writeOut(prompt);
    for (;;) {
      const nl = this.pending.indexOf(10);
      if (nl >= 0) {
        const line = new TextDecoder().decode(this.pending.subarray(0, nl));
        this.pending = this.pending.slice(nl + 1);
        return line;
      }
      const n = await Deno.stdin.read(this.buf);
      // End of input: a last line without its newline is dropped, as psftp does.
      if (n === null) return undefined;
      const joined = new Uint8Array(this.pending.length + n);
      joined.set(this.pending);
      joined.set(this.buf.subarray(0, n), this.pending.length);
      this.pending = joined;
    }
  }
}

export async function main(args: string[]): Promise<number> {
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(PSFTP, args);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    writeErr(`psftp: ${e.message}\n       try typing "psftp -h" for help\n`);
    return 1;
  }
  if (parsed.stop === "-V") {
    writeOut(`psftp: puttykit ${VERSION}\n`);
    return 0;
  }
  if (parsed.stop) {
    writeOut(USAGE);
    return 1;
  }
  for (const w of parsed.warnings) writeErr(`${w}\n`);
  const cfg = parsed.config;
  const ui = consoleInteraction({
    verbose: cfg.verbose,
    batch: cfg.batch,
    sanitiseStderr: !parsed.flags.has("-no-sanitise-stderr"),
  });
  const kept = {};
  const session = new PsftpSession({
    out: output,
    connect: (userhost, port) => connectSftp(parsed, userhost, port, ui, kept),
    runLocal,
  });
  const terminal = Deno.stdin.isTerminal() ? new TerminalReader() : undefined;

  const die = async (message: string): Promise<never> => {
    terminal?.restore();
    await session.abort();
    fatal(message);
  };
  onTerminatingSignals((sig, exitCode) => {
    if (sig === "SIGINT" && !sigintIsOurs()) return;
    terminal?.restore();
    stopOnSignal(exitCode, () => session.abort());
  });

  try {
    const userhost = parsed.args[0] ?? (cfg.host || undefined);
    if (userhost !== undefined) {
      await session.open(userhost, 0);
    } else {
      writeOut('psftp: no hostname specified; use "open host.name" to connect\n');
    }

    let code: number;
    const batchFile = parsed.values.get("-b");
    if (batchFile !== undefined) {
      let text: string;
      try {
        text = await Deno.readTextFile(batchFile);
      } catch {
        writeOut(`Fatal: unable to open ${batchFile}\n`);
        await session.close();
        return 1;
      }
      code = await runBatch(session, batchLines(text), {
        echo: parsed.flags.has("-bc"),
        keepGoing: parsed.flags.has("-be"),
      });
    } else {
      const reader = terminal ?? new PlainReader();
      // PuTTY's psftp dies at the prompt if the connection does.
      code = await runInteractive(
        session,
        (prompt) => session.unlessConnectionLost(reader.readLine(prompt)),
      );
    }
    await session.close();
    return code;
  } catch (e) {
    return await die(errorText(e));
  }
}
