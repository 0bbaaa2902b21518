/**
 * Which protocol a pscp run speaks, decided the way PuTTY's do_cmd() sets up its main and
 * fallback commands:
 *  - default: the "sftp" subsystem, else the SCP (or, for -ls, `ls`) command;
 *  - -sftp: the subsystem, else sftp-server run by hand ("test -x /usr/lib/sftp-server && ...");
 *  - -scp: the SCP command only.
 */

import type { SshConnection } from "../ssh/connection.ts";
import type { Channel } from "../ssh/channel.ts";
import { SftpClient } from "../sftp/client.ts";
import { SftpUnavailableError } from "../sftp/protocol.ts";
import { openCommand, openMainChannel } from "../session/main_channel.ts";

export type TransferSession =
  | { kind: "sftp"; sftp: SftpClient }
  | { kind: "scp"; channel: Channel };

export interface StartTransferOptions {
  trySftp: boolean;
  tryScp: boolean;
  /**
   * The command to run when SFTP isn't used: "scp -t ...", "scp -f ..." or "ls -la '...'" (or
   * what works it out, only when it is needed).
   */
  command: string | (() => Promise<string>);
  /** Event log (-v). */
  log: (text: string) => void;
}

export async function startFileTransfer(
  conn: SshConnection,
  o: StartTransferOptions,
): Promise<TransferSession> {
  if (o.trySftp) {
    try {
      return {
        kind: "sftp",
        sftp: await SftpClient.start(conn, { fallbackExec: !o.tryScp, open: openMainChannel }),
      };
    } catch (e) {
      if (!(e instanceof SftpUnavailableError) || !o.tryScp) throw e;
      o.log("Primary command failed; attempting fallback");
    }
  }
  const command = typeof o.command === "string" ? o.command : await o.command();
  return { kind: "scp", channel: await openCommand(conn, command, openMainChannel) };
}

/** PuTTY's quoting of the -ls directory for `ls -la '...'` in SCP mode. */
export function lsCommand(dir: string): string {
  return `ls -la '${dir.replaceAll("'", "'\\''")}'`;
}
