/**
 * plink: run a remote command (or shell) with stdin/stdout/stderr streamed both ways; the remote
 * exit status becomes ours. With -share it uses or becomes the upstream of a shared connection.
 */

import { parseCommandLine, type ParsedCommandLine } from "../lib/config/command_line.ts";
import { PLINK } from "../lib/config/tool_specs.ts";
import { ConfigError, NoHostError } from "../lib/config/types.ts";
import type { Connected } from "../lib/session/connect.ts";
import { keyHost } from "../lib/session/interaction.ts";
import { chunksOf, pumpFromChannel, pumpToChannel } from "../lib/session/main_channel.ts";
import { runMainSession } from "../lib/session/main_session.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { connectionId } from "../lib/share/socket_path.ts";
import { VERSION } from "../lib/version.ts";
import { finishSession, mainSessionOptions } from "../lib/session/setup.ts";
import { errorText } from "../lib/util/error_text.ts";
import {
  answerStopOption,
  connectOnConsole,
  fatal,
  fatalAfterSession,
  serveWithoutSession,
  stdio,
  usageError,
  writeAll,
  writeErr,
  writeOut,
} from "./console.ts";

const USAGE = `Plink: command-line connection utility
puttykit ${VERSION}
Usage: plink [options] [user@]host [command]
       ("host" can also be a PuTTY saved session name)
Options:
  -V        print version information and exit
  -pgpfp    print PGP key fingerprints and exit
  -v        show verbose messages
  -load sessname  Load settings from saved session
  -ssh -telnet -rlogin -raw -serial
            force use of a particular protocol
  -ssh-connection
            force use of the bare ssh-connection protocol
  -P port   connect to specified port
  -l user   connect with specified username
  -batch    disable all interactive prompts
  -proxycmd command
            use 'command' as local proxy
  -sercfg configuration-string (e.g. 19200,8,n,1,X)
            Specify the serial configuration (serial only)
The following options only apply to SSH connections:
  -pwfile file   login with password read from specified file
  -D [listen-IP:]listen-port
            Dynamic SOCKS-based port forwarding
  -L [listen-IP:]listen-port:host:port
            Forward local port to remote address
  -R [listen-IP:]listen-port:host:port
            Forward remote port to local address
  -X -x     enable / disable X11 forwarding
  -A -a     enable / disable agent forwarding
  -t -T     enable / disable pty allocation
  -1 -2     force use of particular SSH protocol version
  -4 -6     force use of IPv4 or IPv6
  -C        enable compression
  -i key    private key file for user authentication
  -noagent  disable use of Pageant
  -agent    enable use of Pageant
  -no-trivial-auth
            disconnect if SSH authentication succeeds trivially
  -noshare  disable use of connection sharing
  -share    enable use of connection sharing
  -hostkey keyid
            manually specify a host key (may be repeated)
  -sanitise-stderr, -sanitise-stdout, -no-sanitise-stderr, -no-sanitise-stdout
            do/don't strip control chars from standard output/error
  -no-antispoof   omit anti-spoofing prompt after authentication
  -m file   read remote command(s) from file
  -s        remote command is an SSH subsystem (SSH-2 only)
  -N        don't start a shell/command (SSH-2 only)
  -nc host:port
            open tunnel in place of session (SSH-2 only)
  -sshlog file
  -sshrawlog file
            log protocol details to a file
  -logoverwrite
  -logappend
            control what happens when a log file already exists
  -shareexists
            test whether a connection-sharing upstream exists
`;

/**
 * Our stdout was closed by its reader (`plink ... | head -1`): say so and exit 1, as real plink
 * 0.78 does ("stdout: write: Broken pipe").
 */
async function quitIfPipeClosed(e: unknown, connected: Connected): Promise<void> {
  if (e instanceof Deno.errors.BrokenPipe) {
    await connected.abort();
    writeErr("stdout: write: Broken pipe\n");
    Deno.exit(1);
  }
}

function printUsage(): number {
  writeOut(USAGE);
  return 1;
}

export async function main(args: string[]): Promise<number> {
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(PLINK, args);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // No host at all: the usage, on stdout, as PuTTY's plink prints it.
    if (e instanceof NoHostError) return printUsage();
    usageError("plink", e.message);
  }
  if (parsed.stop) return await answerStopOption("plink", parsed.stop, "-V", USAGE, 1);
  const cfg = parsed.config;
  if (!cfg.host) return printUsage();
  if (cfg.protocol !== "ssh") {
    usageError("plink", `the ${cfg.protocol} protocol is not supported by puttykit`);
  }
  for (const w of parsed.warnings) writeErr(`${w}\n`);

  if (parsed.flags.has("-shareexists")) {
    const id = connectionId(keyHost(cfg), cfg.port, cfg.user);
    return (await upstreamExists(id)) ? 0 : 1;
  }

  const session = await connectOnConsole(
    cfg,
    (c) => c.role === "upstream" || Deno.stdin.isTerminal(),
  );
  const { connected, terminal } = session;
  // -N: no session; serve port forwardings and downstreams until the connection ends.
  if (cfg.noShell) return await serveWithoutSession(session);

  if (cfg.ncHost) {
    // -nc host:port: stdin/stdout become a direct-tcpip tunnel instead of a session.
    try {
      const ch = await connected.conn.openDirectTcpip(cfg.ncHost, cfg.ncPort ?? 0);
      pumpToChannel(chunksOf(Deno.stdin), ch);
      await pumpFromChannel(ch.stdout, (c) => writeAll(Deno.stdout, c));
      ch.close();
      await ch.closed;
    } catch (e) {
      await quitIfPipeClosed(e, connected);
      await connected.abort();
      fatal(errorText(e));
    }
    await finishSession(session);
    return 0;
  }

  const wantPty = cfg.pty ?? (!cfg.remoteCommand && !cfg.subsystem);
  let code: number | undefined;
  try {
    code = await runMainSession(
      connected.conn,
      mainSessionOptions(cfg, session, wantPty, stdio(), (t) => writeErr(t + "\n")),
    );
  } catch (e) {
    await quitIfPipeClosed(e, connected);
    await connected.abort();
    fatalAfterSession(terminal, errorText(e));
  }
  await finishSession(session);
  if (code === undefined) {
    writeErr("Remote process exit code unavailable\n");
    return 1;
  }
  return code;
}
