/**
 * Which protocol a pscp run speaks, decided the way PuTTY's do_cmd() sets up its main and
 * fallback commands:
 *  - default: the "sftp" subsystem, else the SCP (or, for -ls, `ls`) command;
 *  - -sftp: the subsystem, else sftp-server run by hand ("test -x /usr/lib/sftp-server && ...");
 *  - -scp: the SCP command only.
 */

import type { Channel, SshConnection } from "../ssh/connection.ts";
import { SftpClient, SftpUnavailableError } from "../sftp/client.ts";
import { RemoteRefusedError } from "../session/main_channel.ts";

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
      return { kind: "sftp", sftp: await SftpClient.start(conn, { fallbackExec: !o.tryScp }) };
    } catch (e) {
      if (!(e instanceof SftpUnavailableError) || !o.tryScp) throw e;
      o.log("Primary command failed; attempting fallback");
    }
  }
  const command = typeof o.command === "string" ? o.command : await o.command();
  return { kind: "scp", channel: await openCommand(conn, command) };
}

/** A session channel running `command`. */
export async function openCommand(conn: SshConnection, command: string): Promise<Channel> {
  const channel = await conn.openSession();
  if (!(await channel.exec(command))) {
    channel.close();
    throw new RemoteRefusedError("Server refused to start a shell/command");
  }
  return channel;
}

/** Runs `command` on the server; true when it exits with status 0. */
export async function commandSucceeds(conn: SshConnection, command: string): Promise<boolean> {
  let ch: Channel;
  try {
    ch = await openCommand(conn, command);
  } catch (e) {
    if (e instanceof RemoteRefusedError) return false;
    throw e;
  }
  ch.stdout.discard();
  ch.stderr.discard();
  await ch.closed;
  return ch.exit?.code === 0;
}

/** PuTTY's quoting of the -ls directory for `ls -la '...'` in SCP mode. */
export function lsCommand(dir: string): string {
  return `ls -la '${dir.replaceAll("'", "'\\''")}'`;
}
