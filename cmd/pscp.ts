/**
 * pscp: copy files to or from an SSH server, over SFTP (default) or SCP, as PuTTY's pscp does.
 * It never becomes a sharing upstream: with -share it uses a live upstream, else connects alone.
 */

import { parseCommandLine, type ParsedCommandLine } from "../lib/config/command_line.ts";
import { PSCP } from "../lib/config/tool_specs.ts";
import type { PuttyConfig } from "../lib/config/types.ts";
import { ConfigError } from "../lib/config/types.ts";
import { connect, type Connected } from "../lib/session/connect.ts";
import { type Reporter } from "../lib/files/endpoint.ts";
import { printable } from "../lib/util/printable.ts";
import { ProgressLine } from "../lib/files/progress.ts";
import { type PscpJob, pscpJob, PscpRun, UsageNeeded } from "../lib/pscp/run.ts";
import { VERSION } from "../lib/version.ts";
import { errorText, FatalError } from "../lib/util/error_text.ts";
import {
  consoleInteraction,
  fatal,
  onTerminatingSignals,
  stopOnSignal,
  writeErr,
  writeOut,
} from "./console.ts";

const USAGE = `PuTTY Secure Copy client
puttykit ${VERSION}
Usage: pscp [options] [user@]host:source target
       pscp [options] source [source...] [user@]host:target
       pscp [options] -ls [user@]host:filespec
Options:
  -V        print version information and exit
  -pgpfp    print PGP key fingerprints and exit
  -p        preserve file attributes
  -q        quiet, don't show statistics
  -r        copy directories recursively
  -v        show verbose messages
  -load sessname  Load settings from saved session
  -P port   connect to specified port
  -l user   connect with specified username
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
  -unsafe   allow server-side wildcards (DANGEROUS)
  -sftp     force use of SFTP protocol
  -scp      force use of SCP protocol
  -sshlog file
  -sshrawlog file
            log protocol details to a file
  -logoverwrite
  -logappend
            control what happens when a log file already exists
Connection sharing:
  -share    use a live upstream for the host (pscp never becomes one)
  -noshare  disable use of connection sharing
`;

/** PuTTY's cmdline_error(). */
function cmdlineError(message: string): never {
  writeErr(`pscp: ${message}\n      try typing just "pscp" for help\n`);
  Deno.exit(1);
}

export async function main(args: string[]): Promise<number> {
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(PSCP, args);
  } catch (e) {
    if (e instanceof ConfigError) cmdlineError(e.message);
    throw e;
  }
  if (parsed.stop === "-V") {
    writeOut(`pscp: puttykit ${VERSION}\n`);
    return 0;
  }
  if (parsed.stop) {
    writeOut(USAGE);
    return 1;
  }
  for (const w of parsed.warnings) writeErr(`${w}\n`);
  const flags = parsed.flags;
  // -scp and -sftp: the last one given wins.
  const optionWords = args.slice(0, args.length - parsed.args.length);
  const useScp = optionWords.lastIndexOf("-scp") > optionWords.lastIndexOf("-sftp");
  const verbose = parsed.config.verbose;
  // On a pipe too, as PuTTY's pscp does.
  const showStats = !flags.has("-q");

  let errors = 0;
  const stats = showStats ? new ProgressLine(writeOut) : undefined;
  const say = (text: string) => {
    stats?.abandon();
    writeErr(text + "\n");
  };
  const reporter: Reporter = {
    error: (text) => {
      errors++;
      say(printable(text));
    },
    warn: (text) => say(printable(text)),
    verbose: (text) => {
      if (verbose) say(printable(text));
    },
  };
  /** One line (the statistics line abandoned first) and exit 1. */
  const failWith: (message: string) => never = (message) => {
    stats?.abandon();
    writeErr(printable(message) + "\n");
    Deno.exit(1);
  };

  let job: PscpJob;
  try {
    job = await pscpJob(parsed.args, flags.has("-ls"));
  } catch (e) {
    if (e instanceof UsageNeeded) {
      writeOut(USAGE);
      return 1;
    }
    failWith(errorText(e));
  }

  const run = new PscpRun(job, {
    recursive: flags.has("-r"),
    preserve: flags.has("-p"),
    unsafe: flags.has("-unsafe"),
    verbose,
    trySftp: !useScp,
    tryScp: !flags.has("-sftp") || useScp,
    progress: stats ? (s) => stats.draw(s) : undefined,
  }, {
    reporter,
    log: (text) => {
      if (verbose) say(text);
    },
    out: (text) => writeOut(printable(text)),
    remoteStderr: (() => {
      const dec = new TextDecoder();
      return (data: Uint8Array) => {
        stats?.abandon();
        writeErr(printable(dec.decode(data, { stream: true })));
      };
    })(),
  });

  const remote = job.remote;
  let config: PuttyConfig;
  try {
    config = parsed.forHost(remote.host, remote.user);
  } catch (e) {
    failWith(errorText(e));
  }
  let connected: Connected;
  try {
    const ui = consoleInteraction({
      verbose: config.verbose,
      batch: config.batch,
      sanitiseStderr: !flags.has("-no-sanitise-stderr"),
    });
    connected = await connect({ config, mayBeUpstream: false, ui, session: true });
  } catch (e) {
    fatal(errorText(e));
  }

  // The temporary files go, then the exit status is 128 + the signal's number, as a shell
  // reports a process that signal killed.
  const stopListening = onTerminatingSignals((_signal, exitCode) =>
    stopOnSignal(exitCode, async () => {
      await run.abort();
      await connected.abort();
    })
  );
  try {
    await run.run(connected.conn);
  } catch (e) {
    await run.abort();
    await connected.abort();
    if (e instanceof FatalError) failWith(e.message);
    fatal(errorText(e));
  } finally {
    stopListening();
  }
  stats?.abandon();
  await connected.finish();
  return errors === 0 ? 0 : 1;
}
