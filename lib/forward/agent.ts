/**
 * Agent forwarding (-A): the server opens an auth-agent@openssh.com channel whenever a program on
 * the remote side talks to its SSH_AUTH_SOCK; we join each such channel to a new connection to
 * our own agent's Unix socket (the agent protocol is a byte stream, so it is bridged as is).
 *
 * Who serves those channels, mirroring PuTTY's ssh/sharing.c: the server's agent channels carry
 * nothing that says which session asked for them, so one connection can forward only one agent,
 * and that is the upstream's, i.e. the agent of whoever holds the real SSH connection:
 *
 * - The upstream (or a tool connected alone) forwards its own SSH_AUTH_SOCK, and only when it was
 *   itself started with -A (PuTTY's ssh_agent_forwarding_permitted: AgentFwd on and an agent
 *   present). It serves agent channels for as long as the connection lives, also after its own
 *   session has ended while downstreams carry on.
 * - A downstream's -A reaches the server only if the upstream permits it, by the same rule;
 *   otherwise the upstream answers the request with failure itself. Granted, the downstream's
 *   remote programs get the upstream's agent.
 * - A tool asks for agent forwarding (auth-agent-req) only if -A is on and it has an agent
 *   itself, as PuTTY does; the answer is logged, not shown (OpenSSH grants one request per
 *   connection, yet every later session gets the agent anyway).
 */

import type { SessionConfig } from "../config/types.ts";
import type { IncomingChannel, SshConnection } from "../ssh/connection.ts";
import { OPEN_FAILURE } from "../ssh/wire.ts";
import { acceptFor, bridge } from "./bridge.ts";
import { osErrorText } from "../util/error_text.ts";

/** The local agent's socket (SSH_AUTH_SOCK), if there is one. */
export function agentSocketPath(): string | undefined {
  const p = Deno.env.get("SSH_AUTH_SOCK");
  return p ? p : undefined;
}

/** Whether this tool forwards its agent: -A given and an agent to forward. */
export function agentForwardingPermitted(cfg: Pick<SessionConfig, "agentForward">): boolean {
  return cfg.agentForward && agentSocketPath() !== undefined;
}

/**
 * Serves every auth-agent@openssh.com channel opened on `conn` with a connection to the agent at
 * `socketPath`; other channel types are refused. Used by the upstream on a connection of its own
 * that the multiplexer hands agent channels to.
 */
export function serveAgentChannels(
  conn: SshConnection,
  socketPath: string,
  log: (text: string) => void,
): void {
  conn.onChannelOpen = (req: IncomingChannel) => {
    if (req.type !== "auth-agent@openssh.com") {
      req.reject(OPEN_FAILURE.UNKNOWN_CHANNEL_TYPE, "Unsupported channel type requested");
      return;
    }
    Deno.connect({ transport: "unix", path: socketPath }).then((sock) => {
      const ch = acceptFor(req, sock);
      if (ch) bridge(sock, ch);
    }, (e) => {
      log(`Agent forwarding: cannot connect to the agent at ${socketPath}: ${osErrorText(e)}`);
      req.reject(OPEN_FAILURE.CONNECT_FAILED, "Cannot connect to the SSH agent");
    });
  };
}
