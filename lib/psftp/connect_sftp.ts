/**
 * psftp_connect(): from "[user@]host" (and an `open` command's port) to a running SFTP session,
 * on the shared configuration module: the command line's settings applied for that host
 * (a saved session named like the host is used when no -load was given), then a connection as
 * lib/session/connect.ts decides it — a downstream of a live upstream with -share, else a direct one.
 * psftp never becomes an upstream. `kept` carries what PuTTY's psftp keeps in its one
 * configuration from one connection to the next: a user name once given serves a later
 * `open host` that names none.
 */

import type { ParsedCommandLine } from "../config/command_line.ts";
import { connect } from "../session/connect.ts";
import type { Interaction } from "../session/interaction.ts";
import { SftpClient } from "../sftp/client.ts";
import { openMainChannel } from "../session/main_channel.ts";
import { splitUserHost } from "../files/paths.ts";
import type { SftpLink } from "./state.ts";

export async function connectSftp(
  parsed: ParsedCommandLine,
  userhost: string,
  port: number,
  ui: Interaction,
  kept: { user?: string },
): Promise<SftpLink> {
  const { host, user } = splitUserHost(userhost);
  const config = parsed.forHost(host, user);
  config.user ??= kept.user;
  kept.user = config.user;
  if (port) config.port = port;
  const connected = await connect({
    config,
    mayBeUpstream: false,
    ui,
    interactive: true,
    session: true,
  });
  let sftp: SftpClient;
  try {
    // Like PuTTY, fall back to running sftp-server when the subsystem is refused.
    sftp = await SftpClient.start(connected.conn, { fallbackExec: true, open: openMainChannel });
  } catch (e) {
    await connected.abort();
    throw e;
  }
  return {
    sftp,
    close: async () => {
      await sftp.close().catch(() => {});
      await connected.finish();
    },
    abort: () => connected.abort(),
  };
}
