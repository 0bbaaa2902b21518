/**
 * A pscp run once its options are parsed (PuTTY's toremote()/tolocal()/get_dir_list()): what the
 * file arguments ask for, the remote command, the protocol, and the copy or listing over an
 * SshConnection. The front end (cmd/pscp.ts) connects and prints.
 */

import type { SshConnection } from "../ssh/connection.ts";
import { ScpDownloadSource } from "../scp/download.ts";
import { scpCommand } from "../scp/protocol.ts";
import { planScpUpload, type ScpUploadPlan, ScpUploadTarget } from "../scp/upload.ts";
import { RemotePlacer } from "../scp/placer.ts";
import { Copier, type CopyOptions } from "./copy.ts";
import { type DownloadSource, type Reporter, type UploadTarget } from "../files/endpoint.ts";
import { FatalError } from "../util/error_text.ts";
import { localType } from "../files/local_file.ts";
import { parseRemoteSpec, remoteColon, type RemoteSpec } from "../files/paths.ts";
import { listDirectory, SftpDownloadSource, SftpUploadTarget } from "../files/sftp_endpoint.ts";
import { lsCommand, startFileTransfer, type TransferSession } from "./protocol_choice.ts";
import { commandSucceeds, openCommand } from "../session/main_channel.ts";
import { SftpError } from "../sftp/protocol.ts";
import { Temporaries } from "../files/temporaries.ts";

export type PscpJob =
  | { kind: "upload"; sources: string[]; remote: RemoteSpec }
  | { kind: "download"; remote: RemoteSpec; target: string }
  | { kind: "list"; remote: RemoteSpec };

/** The file arguments don't fit any form: show the usage text. */
export class UsageNeeded extends Error {}

/**
 * What the file arguments ask for. Throws UsageNeeded, or FatalError with PuTTY's message for
 * the forms it refuses before connecting.
 */
export async function pscpJob(files: string[], list: boolean): Promise<PscpJob> {
  if (list) {
    if (files.length !== 1) throw new UsageNeeded();
    if (remoteColon(files[0]) < 0) throw new FatalError("Local file listing not supported");
    return { kind: "list", remote: parseRemoteSpec(files[0]) };
  }
  if (files.length < 2) throw new UsageNeeded();
  const last = files[files.length - 1];
  if (remoteColon(last) >= 0) {
    const sources = files.slice(0, -1);
    if (sources.length === 1) {
      if (remoteColon(sources[0]) >= 0) {
        throw new FatalError(`${sources[0]}: Remote to remote not supported`);
      }
      if ((await localType(sources[0])) === undefined) {
        throw new FatalError(`${sources[0]}: No such file or directory`);
      }
    }
    return { kind: "upload", sources, remote: parseRemoteSpec(last) };
  }
  if (files.length !== 2) throw new FatalError("More than one remote source not supported");
  if (remoteColon(files[0]) < 0) throw new FatalError("Local to local copy not supported");
  return { kind: "download", remote: parseRemoteSpec(files[0]), target: last };
}

export interface PscpOptions extends Omit<CopyOptions, "targetShouldBeDir"> {
  verbose: boolean;
  trySftp: boolean;
  tryScp: boolean;
}

export interface PscpIo {
  reporter: Reporter;
  /** Event log (-v). */
  log(text: string): void;
  /** Standard output (-ls listings). */
  out(text: string): void | Promise<void>;
  /** The remote command's stderr (SCP mode). */
  remoteStderr(data: Uint8Array): void;
}

/** A started run: it can be aborted (signals) to remove half-written files. */
export class PscpRun {
  /** Files being written under temporary names, local and remote. */
  private readonly temporaries = new Temporaries();

  constructor(
    private readonly job: PscpJob,
    private readonly opts: PscpOptions,
    private readonly io: PscpIo,
  ) {}

  /** Where an SCP upload lands (worked out only when SCP is used). */
  private scpPlan?: ScpUploadPlan;

  /** PuTTY's scp command for `path`. */
  private scpCommand(path: string, targetIsDir: boolean): string {
    const o = this.opts;
    const flags = { verbose: o.verbose, recursive: o.recursive, preserve: o.preserve, targetIsDir };
    return scpCommand(this.job.kind === "upload" ? "to" : "from", path, flags);
  }

  /** The command SCP mode runs (also the fallback when SFTP is refused). */
  private async command(conn: SshConnection): Promise<string> {
    const j = this.job;
    if (j.kind === "list") return lsCommand(j.remote.path);
    if (j.kind === "download") return this.scpCommand(j.remote.path, false);
    const isDir = j.sources.length === 1 && (await localType(j.sources[0])) === "dir";
    this.scpPlan = await planScpUpload(
      j.remote.path,
      { count: j.sources.length, isDir },
      (path, targetIsDir) => this.scpCommand(path, targetIsDir),
      (command) => commandSucceeds(conn, command),
    );
    return this.scpPlan.command;
  }

  async run(conn: SshConnection): Promise<void> {
    const session = await startFileTransfer(conn, {
      trySftp: this.opts.trySftp,
      tryScp: this.opts.tryScp,
      command: () => this.command(conn),
      log: this.io.log,
    });
    this.io.reporter.verbose(session.kind === "sftp" ? "Using SFTP" : "Using SCP1");
    if (session.kind === "scp") this.pumpStderr(session);
    const j = this.job;
    if (j.kind === "list") return await this.list(session, j.remote.path);
    const copier = new Copier(
      {
        ...this.opts,
        targetShouldBeDir: j.kind === "upload" && j.sources.length > 1,
      },
      this.io.reporter,
      this.temporaries,
    );
    if (j.kind === "upload") {
      const target = await this.uploadTarget(conn, session, j.remote.path, j.sources.length > 1);
      await copier.upload(j.sources, target);
      await target.close();
    } else {
      const source = this.downloadSource(session, j.remote.path);
      if (!source) return await closeSession(session);
      await copier.download(j.target, j.remote.path, source);
      await source.close();
    }
  }

  /** Removes the temporary files of the transfers in progress (the process is being stopped). */
  async abort(): Promise<void> {
    await this.temporaries.removeAll();
  }

  private pumpStderr(session: { channel: { stderr: AsyncIterable<Uint8Array> } }): void {
    (async () => {
      for await (const chunk of session.channel.stderr) this.io.remoteStderr(chunk);
    })().catch(() => {});
  }

  private async uploadTarget(
    conn: SshConnection,
    s: TransferSession,
    path: string,
    shouldBeDir: boolean,
  ): Promise<UploadTarget> {
    if (s.kind === "sftp") {
      return await SftpUploadTarget.start(
        s.sftp,
        path,
        shouldBeDir,
        this.io.reporter,
        this.temporaries,
      );
    }
    const place = this.scpPlan?.place ?? { how: "in place" };
    return await ScpUploadTarget.start(s.channel, this.io.reporter, {
      place,
      placer: place.how === "in place"
        ? undefined
        : new RemotePlacer(conn, this.io.reporter, "pscp"),
      preserve: this.opts.preserve,
      temporaries: this.temporaries,
      openInPlace: () => openCommand(conn, this.scpCommand(path, false)),
    });
  }

  private downloadSource(s: TransferSession, path: string): DownloadSource | undefined {
    const o = { recursive: this.opts.recursive, preserve: this.opts.preserve };
    if (s.kind === "sftp") return SftpDownloadSource.create(s.sftp, path, o, this.io.reporter);
    return new ScpDownloadSource(s.channel, this.io.reporter, this.opts.recursive);
  }

  /** get_dir_list(): SFTP lists (sorted long names); SCP mode shows `ls -la`'s output. */
  private async list(s: TransferSession, dir: string): Promise<void> {
    if (s.kind === "scp") {
      const dec = new TextDecoder();
      for await (const chunk of s.channel.stdout) {
        await this.io.out(dec.decode(chunk, { stream: true }));
      }
      await s.channel.closed;
      return;
    }
    await this.io.out(`Listing directory ${dir}\n`);
    try {
      const lines = await listDirectory(s.sftp, dir);
      for (const l of lines) await this.io.out(l + "\n");
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
      this.io.reporter.error(`Unable to open ${dir}: ${e.message}`);
    }
    await s.sftp.close();
  }
}

async function closeSession(s: TransferSession): Promise<void> {
  if (s.kind === "sftp") return await s.sftp.close();
  s.channel.eof();
  s.channel.close();
  await s.channel.closed;
}
