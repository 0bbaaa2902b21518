/**
 * Using a live OpenSSH ControlMaster as our connection: hello, an alive check (for its pid), then
 * MUX_C_PROXY, after which the control socket carries our connection-layer packets and the
 * master relays them over its own SSH connection (no key exchange, no authentication here).
 *
 * What the master does with a proxy client's packets decides what we may send (channels.c,
 * channel_proxy_downstream): every message goes on to the server as it is, so a DISCONNECT would
 * end the master's own connection; a global request other than tcpip-forward makes it drop us,
 * and no global reply ever comes back. So MasterPort never sends a message outside the
 * connection protocol and answers our global requests itself, with a failure.
 */

import { type PacketHandlers, type PacketPort } from "../ssh/packet_port.ts";
import { message, MSG, SshReader } from "../ssh/wire.ts";
import { checkHello, helloMessage, hex, MUX, muxMessage, replyReason } from "./protocol.ts";
import { MuxSocket } from "./socket.ts";
import { untrustedSocket } from "./control_path.ts";
import { after } from "../util/timer.ts";
import { osErrorText } from "../util/error_text.ts";

/** How long the master has to answer each step before we take it as not there. */
const MASTER_REPLY_MS = 5000;

export interface MasterLink {
  port: PacketPort;
  /** The master's process id, from its alive check. */
  pid: number;
}

/** Why there is no usable master at the path (none, stale, untrusted, refused us). */
export class NoMasterError extends Error {}

export async function openMaster(path: string): Promise<MasterLink> {
  const unsafe = untrustedSocket(path);
  if (unsafe) throw new NoMasterError(unsafe);
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    throw new NoMasterError(`${path}: ${osErrorText(e)}`);
  }
  const socket = new MuxSocket(conn, "OpenSSH master");
  const cancelTimer = after(MASTER_REPLY_MS, () => socket.close());
  try {
    socket.sendMessage(helloMessage());
    checkHello(await socket.readMessage());
    socket.sendMessage(muxMessage(MUX.C_ALIVE_CHECK, (w) => w.uint32(1)));
    const alive = new SshReader(await socket.readMessage());
    const aliveType = alive.uint32();
    if (aliveType !== MUX.S_ALIVE) throw refusal("alive check", aliveType, alive);
    alive.uint32();
    const pid = alive.uint32();
    socket.sendMessage(muxMessage(MUX.C_PROXY, (w) => w.uint32(2)));
    const proxy = new SshReader(await socket.readMessage());
    const proxyType = proxy.uint32();
    if (proxyType !== MUX.S_PROXY) throw refusal("proxy request", proxyType, proxy);
    socket.enterProxy();
    return { port: new MasterPort(socket), pid };
  } catch (e) {
    socket.close();
    throw new NoMasterError(`${path}: ${osErrorText(e)}`);
  } finally {
    cancelTimer();
  }
}

function refusal(what: string, type: number, r: SshReader): NoMasterError {
  if (type === MUX.S_FAILURE || type === MUX.S_PERMISSION_DENIED) {
    r.uint32();
    return new NoMasterError(`master refused the ${what}: ${replyReason(r)}`);
  }
  return new NoMasterError(`unexpected reply 0x${hex(type)} to the ${what}`);
}

/** The proxy-mode socket as a PacketPort, minus what the master must never be sent. */
class MasterPort implements PacketPort {
  private handlers?: PacketHandlers;

  constructor(private readonly socket: MuxSocket) {}

  get backlog(): number {
    return this.socket.backlog;
  }

  send(payload: Uint8Array): void {
    const type = payload[0];
    if (type === MSG.GLOBAL_REQUEST) return this.answerGlobalRequest(payload);
    // DISCONNECT, IGNORE, DEBUG, UNIMPLEMENTED: OpenSSH's own proxy client drops them too.
    if (type < MSG.GLOBAL_REQUEST || type > 127) return;
    this.socket.send(payload);
  }

  private answerGlobalRequest(payload: Uint8Array): void {
    let wantReply = false;
    try {
      const r = new SshReader(payload, 1);
      r.bytes();
      wantReply = r.bool();
    } catch { /* malformed: nothing to answer */ }
    if (!wantReply) return;
    queueMicrotask(() => {
      if (!this.socket.isClosed) this.handlers?.packet(message(MSG.REQUEST_FAILURE));
    });
  }

  start(handlers: PacketHandlers): void {
    this.handlers = handlers;
    this.socket.start(handlers);
  }

  close(err?: Error): void {
    this.socket.close(err);
  }
}
