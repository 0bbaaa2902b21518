/**
 * An upstream of ours as an OpenSSH ControlMaster: it listens on the control path too (mode 0600,
 * in a directory only we can write to) and answers what OpenSSH's client can ask without passing
 * file descriptors, which Deno cannot receive:
 *
 *   ssh -S PATH -O check          MUX_C_ALIVE_CHECK   -> MUX_S_ALIVE with our pid
 *   ssh -S PATH -O exit           MUX_C_TERMINATE     -> the upstream ends when its last
 *                                                        downstream has gone, as PuTTY's does
 *   ssh -S PATH -O stop           MUX_C_STOP_LISTENING -> this socket goes, the rest carries on
 *   ssh -S PATH -O proxy host cmd MUX_C_PROXY         -> a whole OpenSSH session through us
 *
 * A proxy client is one more downstream of the connection multiplexer (lib/share/mux.ts), so it
 * gets exactly a PuTTY downstream's checks: only its own channels, nothing that could end the
 * connection for the others. Plain `ssh -S PATH host` asks for MUX_C_NEW_SESSION (with its stdio
 * passed as descriptors) and is refused with a reason naming -O proxy.
 */

import { AcceptGuard, type Greeted } from "../share/accept_guard.ts";
import type { ConnectionMux } from "../share/mux.ts";
import { MAX_MUX_REPLY_BACKLOG, MUX_PROXY_MAX_DATA } from "../share/limits.ts";
import { SshReader } from "../ssh/wire.ts";
import { after } from "../util/timer.ts";
import { unsafeDirectory } from "./control_path.ts";
import { checkHello, helloMessage, hex, MUX, muxMessage, MuxProtocolError } from "./protocol.ts";
import { MuxSocket } from "./socket.ts";
import { osErrorText } from "../util/error_text.ts";

/** A client has this long to say hello, and to hang up after a refused descriptor request. */
const HELLO_MS = 10000;

export const NO_FD_PASSING =
  "puttykit's upstream cannot take file descriptors: use ssh -O proxy (e.g. ssh -S PATH -O proxy host command)";

/** Why we could not listen on the control path. */
export class ControlListenError extends Error {}

export interface ControlHooks {
  log(text: string): void;
  /** ssh -O exit: finish as if our own session had ended. */
  onExitRequest(): void;
}

export class ControlListener {
  private mux?: ConnectionMux;
  private readonly waiting: (() => void)[] = [];
  private retired = false;
  private count = 0;
  private readonly inode: number | null;
  private readonly guard: AcceptGuard;

  private constructor(
    private readonly listener: Deno.Listener<Deno.UnixConn>,
    readonly path: string,
    private readonly hooks: ControlHooks,
  ) {
    this.inode = Deno.lstatSync(path).ino;
    this.guard = new AcceptGuard(
      listener,
      (conn) => this.accepted(conn),
      hooks.log,
      undefined,
      "OpenSSH client",
    );
  }

  /**
   * Listens at `path`: refused when the directory is unsafe, or something other than a stale
   * socket is there. The socket is made under a temporary name, set to 0600 and renamed into
   * place, so it is never reachable with wider permissions (as OpenSSH's master does it).
   */
  static async open(path: string, hooks: ControlHooks): Promise<ControlListener> {
    const unsafe = unsafeDirectory(path);
    if (unsafe) throw new ControlListenError(unsafe);
    try {
      const st = Deno.lstatSync(path);
      if (!st.isSocket) throw new ControlListenError(`${path}: exists and is not a socket`);
      try {
        (await Deno.connect({ transport: "unix", path })).close();
        throw new ControlListenError(`${path}: something is already listening there`);
      } catch (e) {
        if (e instanceof ControlListenError) throw e;
        // Refused: a stale socket, which the rename below replaces.
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        if (e instanceof ControlListenError) throw e;
        throw new ControlListenError(`${path}: ${osErrorText(e)}`);
      }
    }
    const temp = `${path}.${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    let listener: Deno.Listener<Deno.UnixConn>;
    try {
      listener = Deno.listen({ transport: "unix", path: temp });
    } catch (e) {
      throw new ControlListenError(`${temp}: ${osErrorText(e)}`);
    }
    try {
      Deno.chmodSync(temp, 0o600);
      Deno.renameSync(temp, path);
    } catch (e) {
      listener.close();
      try {
        Deno.removeSync(temp);
      } catch { /* gone */ }
      throw new ControlListenError(`${path}: ${osErrorText(e)}`);
    }
    return new ControlListener(listener, path, hooks);
  }

  /** The SSH connection is up: proxy requests are served from now on (earlier ones wait). */
  activate(mux: ConnectionMux): void {
    this.mux = mux;
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Stops listening and removes the socket, if it is still ours. Safe to call twice. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.guard.stop();
    try {
      this.listener.close();
    } catch { /* closed */ }
    try {
      if (Deno.lstatSync(this.path).ino === this.inode) Deno.removeSync(this.path);
    } catch { /* gone */ }
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** One accepted client: served until it goes; "greeted" once its mux hello has come. */
  private accepted(conn: Deno.Conn): Greeted {
    const label = `OpenSSH client #${++this.count}`;
    const socket = new MuxSocket(conn, label, {
      padShortPackets: true,
      onProtocolError: (e) => this.hooks.log(`${label}: ${e.message}; disconnecting it`),
    });
    let helloDone!: () => void;
    let gone!: (e: Error) => void;
    const greeting = new Promise<void>((resolve, reject) => {
      helloDone = resolve;
      gone = reject;
    });
    this.serve(socket, label, helloDone).catch((e) => {
      if (e instanceof MuxProtocolError) {
        this.hooks.log(`${label}: ${e.message}; disconnecting it`);
      }
      socket.close();
    }).finally(() => gone(new Error(`${label} gone`)));
    return { greeting, close: () => socket.close() };
  }

  private async serve(socket: MuxSocket, label: string, helloDone: () => void): Promise<void> {
    socket.sendMessage(helloMessage());
    checkHello(await within(HELLO_MS, socket, socket.readMessage()));
    helloDone();
    for (;;) {
      const body = await socket.readMessage();
      const r = new SshReader(body);
      const type = r.uint32();
      if (type === MUX.HELLO) throw new MuxProtocolError("second mux hello");
      const rid = r.uint32();
      if (socket.backlog > MAX_MUX_REPLY_BACKLOG) {
        throw new MuxProtocolError("not reading our replies");
      }
      switch (type) {
        case MUX.C_ALIVE_CHECK:
          socket.sendMessage(muxMessage(MUX.S_ALIVE, (w) => w.uint32(rid).uint32(Deno.pid)));
          break;
        case MUX.C_TERMINATE:
          this.hooks.log(`${label}: asked us to exit (ssh -O exit)`);
          socket.sendMessage(muxMessage(MUX.S_OK, (w) => w.uint32(rid)));
          this.hooks.onExitRequest();
          break;
        case MUX.C_STOP_LISTENING:
          this.hooks.log(`${label}: asked us to stop listening at ${this.path} (ssh -O stop)`);
          socket.sendMessage(muxMessage(MUX.S_OK, (w) => w.uint32(rid)));
          this.retire();
          break;
        case MUX.C_PROXY:
          return await this.proxy(socket, label, rid);
        case MUX.C_NEW_SESSION:
        case MUX.C_NEW_STDIO_FWD:
          // Its descriptors follow (SCM_RIGHTS, a byte of data each) before it reads our answer:
          // hanging up at once would fail its sendmsg() before it could show the reason. So wait
          // for it to hang up; anything more from it ends the connection too.
          this.hooks.log(`${label}: refused a request that passes file descriptors`);
          socket.sendMessage(failure(rid, NO_FD_PASSING));
          await within(HELLO_MS, socket, socket.readMessage().catch(() => {}));
          socket.close();
          return;
        case MUX.C_OPEN_FWD:
        case MUX.C_CLOSE_FWD:
          socket.sendMessage(
            failure(rid, "forwarding requests are not supported: use ssh -O proxy"),
          );
          break;
        default:
          this.hooks.log(`${label}: unsupported mux message 0x${hex(type)}`);
          socket.sendMessage(failure(rid, "unsupported request"));
      }
    }
  }

  private async proxy(socket: MuxSocket, label: string, rid: number): Promise<void> {
    if (!this.mux && !this.retired) await new Promise<void>((r) => this.waiting.push(r));
    if (!this.mux || this.mux.closedError || socket.isClosed) {
      socket.sendMessage(failure(rid, "the upstream's connection is gone"));
      socket.close();
      return;
    }
    socket.sendMessage(muxMessage(MUX.S_PROXY, (w) => w.uint32(rid)));
    socket.enterProxy();
    this.hooks.log(`${label} connected in proxy mode`);
    this.mux.addDownstream(socket, { label, maxData: MUX_PROXY_MAX_DATA });
  }
}

/** `p`, with `socket` closed if it takes longer than `ms` (which settles a pending read). */
async function within<T>(ms: number, socket: MuxSocket, p: Promise<T>): Promise<T> {
  const cancel = after(ms, () => socket.close());
  try {
    return await p;
  } finally {
    cancel();
  }
}

function failure(rid: number, reason: string): Uint8Array {
  return muxMessage(MUX.S_FAILURE, (w) => w.uint32(rid).string(reason));
}
