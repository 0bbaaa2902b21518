/**
 * A connection of the library API: commands (buffered and streaming), SFTP, port forwarding, over
 * whichever connection the tools' own rules give (lib/session/connect.ts): a live sharing upstream, this
 * process as the upstream, or a connection of its own.
 */

import { parseCommandLine } from "../config/command_line.ts";
import { PLINK } from "../config/tool_specs.ts";
import { connect as connectSession, type Connected } from "../session/connect.ts";
import type { Interaction } from "../session/interaction.ts";
import { startForwardings } from "../forward/forwardings.ts";
import { startMainChannel } from "../session/main_channel.ts";
import type { Channel, ExitStatus } from "../ssh/channel.ts";
import { ConfigurationError, ConnectionError, RefusedError } from "./errors.ts";
import type { ConnectOptions, Role } from "./types.ts";
import { apiError } from "./error_mapping.ts";
import type { SftpSession } from "./sftp.ts";

/**
 * How to run a command.
 *
 * @example
 * ```ts
 * const options: ExecOptions = { stdin: "data\n", env: { LC_ALL: "C" }, pty: false };
 * ```
 */
export interface ExecOptions {
  /** Sent to the command's standard input, then EOF (none: EOF at once). */
  stdin?: Uint8Array | string | ReadableStream<Uint8Array>;
  /** Ask for a pseudo-terminal (`true`: "xterm", 80x24). */
  pty?: boolean | { term?: string; cols?: number; rows?: number };
  /** Environment variables (the server may refuse them: OpenSSH's AcceptEnv). */
  env?: Record<string, string>;
}

/**
 * A finished command: its status and everything it wrote.
 *
 * @example
 * ```ts
 * const { code, stdout }: ExecResult = await conn.exec("id -u");
 * ```
 */
export interface ExecResult {
  /** The exit status; null when the command died of a signal or the server reported none. */
  code: number | null;
  /** The signal's name without "SIG" ("TERM") when the command was killed. */
  signal?: string;
  /** All the command wrote to its standard output. */
  stdout: Uint8Array;
  /** All the command wrote to its standard error. */
  stderr: Uint8Array;
}

/**
 * A running remote command with its data as web streams (the SSH window is the back-pressure).
 *
 * @example
 * ```ts
 * const p: RemoteProcess = await conn.spawn("tail -f log");
 * setTimeout(() => p.kill("INT"), 1000);
 * await p.stdout.pipeTo(Deno.stdout.writable, { preventClose: true });
 * ```
 */
export interface RemoteProcess {
  /** Closing it sends EOF. */
  readonly stdin: WritableStream<Uint8Array>;
  /** The command's standard output (read it, or the command stalls once the window is full). */
  readonly stdout: ReadableStream<Uint8Array>;
  /** The command's standard error (likewise). */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles when the command has finished and its channel is closed. */
  readonly status: Promise<{ code: number | null; signal?: string }>;
  /** Sends a signal ("TERM", "INT", "KILL", ...); servers may ignore it. */
  kill(signal?: string): void;
  /** Closes the channel without waiting for the command. */
  close(): void;
}

/**
 * A local port forwarding (plink's -L).
 *
 * @example
 * ```ts
 * const fwd = await conn.forwardLocal({ listenPort: 8080, host: "intranet", port: 80 });
 * ```
 */
export interface ForwardLocalOptions {
  /** Local port to listen on; 0 picks a free one (see `Forwarding.port`). */
  listenPort: number;
  /** Local address (default: loopback, 127.0.0.1 and ::1). */
  listenHost?: string;
  /** Where the server connects each forwarded connection to. */
  host: string;
  /** The destination's port. */
  port: number;
}

/**
 * A remote port forwarding (plink's -R).
 *
 * @example
 * ```ts
 * const fwd = await conn.forwardRemote({ listenPort: 2222, host: "localhost", port: 22 });
 * ```
 */
export interface ForwardRemoteOptions {
  /** The port the server listens on. */
  listenPort: number;
  /** The server-side address (default "localhost", as PuTTY asks). */
  listenHost?: string;
  /** Where each connection the server takes goes, from this machine. */
  host: string;
  /** The destination's port. */
  port: number;
}

/**
 * A port forwarding in place.
 *
 * @example
 * ```ts
 * const fwd: Forwarding = await conn.forwardLocal({ listenPort: 0, host: "db", port: 5432 });
 * console.log(fwd.port);
 * fwd.close();
 * ```
 */
export interface Forwarding {
  /** The listening port (for a local forwarding asked on port 0, the one picked). */
  readonly port: number;
  /** Stops the forwarding and drops its connections. */
  close(): void;
}

/** The command line plink would be given for these options: the tools' own resolution rules. */
function commandLine(target: string, o: ConnectOptions): string[] {
  const argv = ["-ssh"];
  if (o.port !== undefined) argv.push("-P", String(o.port));
  if (o.user !== undefined) argv.push("-l", o.user);
  if (o.keyFile !== undefined) argv.push("-i", o.keyFile);
  for (const key of o.hostKeys ?? []) argv.push("-hostkey", key);
  if (o.share !== undefined) argv.push(o.share ? "-share" : "-noshare");
  if (o.controlPath !== undefined) argv.push("-controlpath", o.controlPath);
  if (o.verbose) argv.push("-v");
  if (o.batch ?? !o.questions) argv.push("-batch");
  argv.push(target);
  return argv;
}

function interaction(o: ConnectOptions): Interaction {
  const log = o.log ?? (() => {});
  const q = o.questions;
  return {
    log,
    warn: log,
    prompt: (text, echo) => q?.prompt?.(text, { echo }) ?? Promise.resolve(undefined),
    confirmHostKey: async (k) =>
      (await q?.hostKey?.({
        host: k.host,
        port: k.port,
        keyType: k.keyType,
        fingerprint: k.fingerprint,
      })) ?? "no",
    banner: q?.banner ? (text) => q.banner!(text) : undefined,
  };
}

function abortError(): DOMException {
  return new DOMException("connection aborted", "AbortError");
}

export async function openConnection(target: string, o: ConnectOptions): Promise<Connection> {
  if (o.signal?.aborted) throw abortError();
  let config;
  try {
    config = parseCommandLine(PLINK, commandLine(target, o)).config;
  } catch (e) {
    throw apiError(e);
  }
  if (!config.host) throw new ConfigurationError(`no host name in "${target}"`);
  if (o.password !== undefined) config.password = o.password;
  const attempt = connectSession({ config, mayBeUpstream: true, ui: interaction(o) });
  let connected: Connected;
  try {
    connected = await (o.signal ? abortable(attempt, o.signal) : attempt);
  } catch (e) {
    throw apiError(e);
  }
  return new Connection(connected, o.signal);
}

/** `attempt`, or an AbortError as soon as `signal` fires (a connection made later is closed). */
function abortable(attempt: Promise<Connected>, signal: AbortSignal): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(abortError());
      attempt.then((c) => c.abort(), () => {});
    };
    signal.addEventListener("abort", onAbort, { once: true });
    attempt.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function bytesOf(input: Uint8Array | string): Uint8Array {
  return typeof input === "string" ? new TextEncoder().encode(input) : input;
}

async function collect(source: { read(): Promise<Uint8Array | null> }): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let c = await source.read(); c; c = await source.read()) {
    parts.push(c);
    size += c.length;
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

async function feed(ch: Channel, input: ExecOptions["stdin"]): Promise<void> {
  try {
    if (input instanceof ReadableStream) {
      for await (const chunk of input) await ch.write(chunk);
    } else if (input !== undefined) {
      await ch.write(bytesOf(input));
    }
    ch.eof();
  } catch {
    // the channel went away: the command's result says why
  }
}

function statusOf(exit: ExitStatus | undefined): { code: number | null; signal?: string } {
  if (!exit) return { code: null };
  return exit.signal !== undefined ? { code: exit.code, signal: exit.signal } : { code: exit.code };
}

/**
 * An open connection. `role` says how it was made. Close it with `close()` or `await using`:
 * an upstream keeps serving its downstreams until the last has gone, as PuTTY's does.
 *
 * @example
 * ```ts
 * import { connect } from "./mod.ts";
 * await using conn = await connect("build-host", { share: true });
 * const sftp = await conn.sftp();
 * await sftp.put("dist/app.tar.gz", "releases/app.tar.gz");
 * ```
 */
export class Connection implements AsyncDisposable {
  private closing?: Promise<void>;
  private readonly forwardings = new Set<Forwarding>();

  /** @internal */
  constructor(private readonly connected: Connected, signal?: AbortSignal) {
    signal?.addEventListener("abort", () => this.close({ force: true }), { once: true });
  }

  /** "downstream": through a live upstream; "upstream": serving others too; "direct": alone. */
  get role(): Role {
    return this.connected.role;
  }

  /** The sharing socket used or served (downstream and upstream). */
  get socketPath(): string | undefined {
    return this.connected.socketPath;
  }

  /** Settles when the connection has gone, with the reason unless it was closed by us. */
  get closed(): Promise<Error | undefined> {
    return this.connected.conn.closed.then((e) => (e ? apiError(e) : undefined));
  }

  /** Opens a session channel and starts `command` in it as `o` says. */
  private async start(command: string, o: ExecOptions): Promise<Channel> {
    if (this.closing) throw new ConnectionError("connection closed");
    const pty = o.pty === true ? {} : o.pty || undefined;
    try {
      return await startMainChannel(this.connected.conn, {
        command,
        env: o.env ? Object.entries(o.env) : undefined,
        pty: pty
          ? { term: pty.term ?? "xterm", cols: pty.cols ?? 80, rows: pty.rows ?? 24 }
          : undefined,
      });
    } catch (e) {
      throw apiError(e);
    }
  }

  /**
   * Runs `command` to its end and gives its exit status and whole output.
   *
   * @example
   * ```ts
   * const { code, stdout } = await conn.exec("sort", { stdin: "b\na\n" });
   * ```
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const ch = await this.start(command, options);
    const input = feed(ch, options.stdin);
    const [stdout, stderr] = await Promise.all([collect(ch.stdout), collect(ch.stderr)])
      .catch((e) => {
        ch.close();
        throw apiError(e);
      });
    await input;
    ch.close();
    await ch.closed;
    if (!ch.exit && ch.failure) throw apiError(ch.failure);
    return { ...statusOf(ch.exit), stdout, stderr };
  }

  /**
   * Starts `command` with its standard streams as web streams.
   *
   * @example
   * ```ts
   * const p = await conn.spawn("gzip -c");
   * const piped = file.readable.pipeTo(p.stdin);
   * await p.stdout.pipeTo(out.writable);
   * console.log((await p.status).code);
   * ```
   */
  async spawn(command: string, options: Omit<ExecOptions, "stdin"> = {}): Promise<RemoteProcess> {
    const ch = await this.start(command, options);
    const status = (async () => {
      await ch.closed;
      if (!ch.exit && ch.failure) throw apiError(ch.failure);
      return statusOf(ch.exit);
    })();
    return {
      stdin: ch.writable(),
      stdout: ch.stdout.stream,
      stderr: ch.stderr.stream,
      status,
      kill: (signal = "TERM") => ch.signal(signal),
      close: () => ch.close(),
    };
  }

  /**
   * An SFTP session on this connection (a channel of its own).
   *
   * @example
   * ```ts
   * const sftp = await conn.sftp();
   * await sftp.writeFile("notes.txt", "hello\n");
   * console.log(await sftp.list("."));
   * await sftp.close();
   * ```
   */
  async sftp(): Promise<SftpSession> {
    const { SftpSession } = await import("./sftp.ts");
    return await SftpSession.open(this.connected.conn);
  }

  /**
   * Listens locally and sends each connection through the server to `host:port` (plink -L).
   *
   * @example
   * ```ts
   * const fwd = await conn.forwardLocal({ listenPort: 0, host: "localhost", port: 5432 });
   * console.log(`postgres at 127.0.0.1:${fwd.port}`);
   * ```
   */
  forwardLocal(o: ForwardLocalOptions): Promise<Forwarding> {
    return this.forward("L", o);
  }

  /**
   * Asks the server to listen on `listenPort` and sends each connection to `host:port` from here
   * (plink -R). Rejects with RefusedError when the server says no.
   */
  forwardRemote(o: ForwardRemoteOptions): Promise<Forwarding> {
    return this.forward("R", o);
  }

  /** One -L or -R forwarding, through the tools' forwarding code. */
  private async forward(
    kind: "L" | "R",
    o: ForwardLocalOptions | ForwardRemoteOptions,
  ): Promise<Forwarding> {
    if (this.closing) throw new ConnectionError("connection closed");
    let failure: string | undefined;
    const started = startForwardings(this.connected.conn, {
      portForwards: [{
        kind,
        bindAddress: o.listenHost,
        bindPort: o.listenPort,
        host: o.host,
        port: o.port,
      }],
      localPortAcceptAll: false,
      remotePortAcceptAll: false,
    }, { log: () => {}, warn: (text) => (failure ??= text) });
    await started.ready;
    if (started.count === 0) {
      started.close();
      throw new RefusedError(failure ?? "port forwarding could not be set up");
    }
    const forwarding: Forwarding = {
      port: kind === "L" ? started.localPorts[0] ?? o.listenPort : o.listenPort,
      close: () => {
        this.forwardings.delete(forwarding);
        started.close();
      },
    };
    this.forwardings.add(forwarding);
    return forwarding;
  }

  /**
   * Ends this connection. An upstream first waits for its downstreams to finish, as PuTTY's
   * upstream does; `force` drops everything at once.
   */
  close(options: { force?: boolean } = {}): Promise<void> {
    if (options.force) {
      for (const f of [...this.forwardings]) f.close();
      return this.connected.abort();
    }
    return this.closing ??= (async () => {
      for (const f of [...this.forwardings]) f.close();
      await this.connected.finish();
    })();
  }

  /** As `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
