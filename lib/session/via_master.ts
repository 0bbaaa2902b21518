/**
 * A tool's connection through a live OpenSSH ControlMaster (-controlpath with sharing on): our
 * connection-layer client over the master's proxy mode. What a master cannot do for a proxy
 * client is turned off here with one line each, rather than left to hang: remote forwardings (it
 * never relays the server's reply to tcpip-forward), agent and X11 forwarding (the server's
 * agent and X11 channels would go to the master itself, channels.c).
 */

import type { Interaction } from "./interaction.ts";
import type { PuttyConfig } from "../config/types.ts";
import { DIRECT_LIMITS } from "../share/limits.ts";
import { SshConnection } from "../ssh/connection.ts";
import { openMaster } from "../openssh_mux/client.ts";
import { errorText } from "../util/error_text.ts";

export { controlPathFor } from "../openssh_mux/control_path.ts";

/** Our connection-layer client through the master at `path`; undefined (logged why) if none. */
export async function connectViaMaster(
  cfg: PuttyConfig,
  path: string,
  ui: Interaction,
  interactive: boolean,
): Promise<SshConnection | undefined> {
  let link;
  try {
    link = await openMaster(path);
  } catch (e) {
    ui.log(`No OpenSSH master to use: ${errorText(e)}`);
    return undefined;
  }
  ui.log(`Using OpenSSH master at ${path} (pid ${link.pid}) in proxy mode`);
  if (cfg.verbose || interactive) ui.warn("Reusing a shared connection to this server.\r");
  refuseWhatMastersCannot(cfg, path, ui);
  // The master takes frames of up to 256 KiB: the limits of a connection of our own.
  return new SshConnection(link.port, DIRECT_LIMITS);
}

function refuseWhatMastersCannot(cfg: PuttyConfig, path: string, ui: Interaction): void {
  const remote = cfg.portForwards.filter((f) => f.kind === "R");
  for (const f of remote) {
    ui.warn(
      `Remote port forwarding from ${f.bindAddress ? `${f.bindAddress}:` : ""}${f.bindPort} ` +
        `refused: the OpenSSH master at ${path} cannot forward remote ports for its clients`,
    );
  }
  if (remote.length) cfg.portForwards = cfg.portForwards.filter((f) => f.kind !== "R");
  if (cfg.agentForward) {
    ui.warn(
      `Agent forwarding refused: the OpenSSH master at ${path} cannot forward it for its clients`,
    );
    cfg.agentForward = false;
  }
  if (cfg.x11Forward) {
    ui.warn(
      `X11 forwarding refused: the OpenSSH master at ${path} cannot forward it for its clients`,
    );
    cfg.x11Forward = false;
  }
}
