/**
 * Uploading with SCP: we are the source, the server runs `scp -t target` (PuTTY's scp_send_*).
 *
 * Data safety: the remote scp writes each file where it is told, so each file is sent under a
 * temporary name beside its target (".name.1a2b3c4d.pscp") and put in place by RemotePlacer
 * (lib/scp/placer.ts) once the server has confirmed all of it; a transfer cut short leaves the
 * target as it was. Where that isn't possible the file is written in place, as PuTTY's pscp
 * always does: a directory that refuses new files (while the target itself may be writable),
 * and targets the remote shell would split or expand (ScpPlace.safe false).
 */

import type { Channel } from "../ssh/channel.ts";
import { FileError, type FileMeta, type Reporter, type UploadTarget } from "../files/endpoint.ts";
import { printable } from "../util/printable.ts";
import { type Temporaries, type Temporary, temporaryPath } from "../files/temporaries.ts";
import { entryRecord, ScpStream, timesRecord } from "./protocol.ts";
import { type RemotePlacer, shellWord } from "./placer.ts";

/**
 * Where an SCP upload's entries land, as decided before `scp -t` starts (see scpUploadPlan):
 *  - "into": inside `target`, a directory (several sources, or one that exists);
 *  - "file": one file that becomes `target` itself, sent into `dir` (target's parent);
 *  - "dir": one directory that becomes `target` itself (scp -r creates it);
 *  - "in place": PuTTY's way, no temporary files.
 */
export type ScpPlace =
  | { how: "into"; target: string }
  | { how: "file"; target: string; dir: string }
  | { how: "dir"; target: string }
  | { how: "in place" };

export interface ScpUploadOptions {
  place: ScpPlace;
  /** Puts finished files in place on the server (not needed "in place"). */
  placer?: RemotePlacer;
  /** -p: the files' modes go to the targets too. */
  preserve: boolean;
  temporaries?: Temporaries;
  /**
   * Starts PuTTY's own `scp -t target` ("file" place): where the target's directory refuses a
   * temporary file, the file is written in place through it.
   */
  openInPlace?: () => Promise<Channel>;
}

export class ScpUploadTarget implements UploadTarget {
  private scp: ScpStream;
  /** Shell text of each directory entered, innermost last (the target's, at the top). */
  private readonly dirs: string[] = [];

  private constructor(
    channel: Channel,
    private readonly reporter: Reporter,
    private readonly o: ScpUploadOptions,
  ) {
    this.scp = new ScpStream(channel);
  }

  /** Waits for the remote sink's go-ahead (an error there is reported, and we go on, as PuTTY). */
  static async start(
    channel: Channel,
    reporter: Reporter,
    o: ScpUploadOptions = { place: { how: "in place" }, preserve: false },
  ): Promise<ScpUploadTarget> {
    const t = new ScpUploadTarget(channel, reporter, o);
    const status = await t.scp.response();
    if (status !== undefined) reporter.error(status);
    return t;
  }

  private async expectOk(): Promise<void> {
    const status = await this.scp.response();
    if (status !== undefined) throw new FileError(status);
  }

  /**
   * Where a file called `name` goes now: the temporary name to send, and the shell paths of the
   * temporary file and of the target; undefined to write in place.
   */
  private paths(name: string): { tempName: string; temp: string; final: string } | undefined {
    const p = this.o.place;
    if (p.how === "in place") return undefined;
    const tempName = temporaryPath(name, "pscp");
    if (this.dirs.length === 0 && p.how === "file") {
      return { tempName, temp: `${p.dir}/${shellWord(tempName)}`, final: p.target };
    }
    const dir = this.dirs.at(-1) ?? p.target;
    return { tempName, temp: `${dir}/${shellWord(tempName)}`, final: `${dir}/${shellWord(name)}` };
  }

  async sendFile(
    name: string,
    meta: FileMeta & { size: number },
    data: AsyncIterable<Uint8Array>,
    onProgress: (done: number) => void,
  ): Promise<void> {
    refuseNewline(name);
    let paths = this.paths(name);
    const header = async (sentName: string) => {
      if (meta.times) {
        await this.scp.send(timesRecord(meta.times.mtime, meta.times.atime));
        await this.expectOk();
      }
      await this.scp.send(entryRecord("C", meta.mode, meta.size, sentName));
      return await this.scp.response();
    };
    let status = await header(paths ? paths.tempName : name);
    if (status !== undefined && paths) {
      // No new file here (an unwritable directory): write the target itself, as PuTTY does.
      this.reporter.verbose(`${printable(name)}: no temporary file here; writing in place`);
      if (this.o.place.how === "file" && this.o.openInPlace) await this.switchToInPlace();
      paths = undefined;
      status = await header(name);
    }
    if (status !== undefined) throw new FileError(status);

    const tempPath = paths?.temp;
    const temp: Temporary | undefined = tempPath === undefined
      ? undefined
      : { remove: () => this.dropTemp(tempPath) };
    if (temp) this.o.temporaries?.add(temp);
    let done = 0;
    for await (const chunk of data) {
      await this.scp.send(chunk);
      done += chunk.length;
      onProgress(done);
    }
    await this.scp.send(new Uint8Array(1));
    status = await this.scp.response();
    if (temp) this.o.temporaries?.delete(temp);
    if (status !== undefined) {
      if (paths) this.o.placer?.remove(paths.temp);
      throw new FileError(status);
    }
    if (paths) {
      this.o.placer?.place(paths.temp, paths.final, this.o.preserve ? meta.mode : undefined);
    }
  }

  /** Ends the session into the target's directory and starts PuTTY's `scp -t target`. */
  private async switchToInPlace(): Promise<void> {
    await this.endSession();
    this.scp = new ScpStream(await this.o.openInPlace!());
    const status = await this.scp.response();
    if (status !== undefined) throw new FileError(status);
  }

  private async endSession(): Promise<void> {
    // EOF tells the remote scp we're done; it exits and closes the channel.
    this.scp.channel.eof();
    await this.scp.reader.drain().catch(() => {});
    await this.scp.channel.closed;
  }

  private async dropTemp(temp: string): Promise<void> {
    this.o.placer?.remove(temp);
    await this.o.placer?.settled();
  }

  async enterDir(name: string, mode: number, times?: FileMeta["times"]): Promise<void> {
    refuseNewline(name);
    if (times) {
      await this.scp.send(timesRecord(times.mtime, times.atime));
      await this.expectOk();
    }
    await this.scp.send(entryRecord("D", mode, 0, name));
    await this.expectOk();
    const p = this.o.place;
    if (p.how === "in place") return;
    // A top-level directory sent to a target that is no directory becomes the target itself.
    const dir = this.dirs.length === 0 && p.how === "dir"
      ? p.target
      : `${this.dirs.at(-1) ?? (p.how === "file" ? p.dir : p.target)}/${shellWord(name)}`;
    this.dirs.push(dir);
  }

  async leaveDir(): Promise<void> {
    // The remote scp gives a directory its times (-p) at "E": files must be in place by then.
    if (this.o.preserve) await this.o.placer?.settled();
    await this.scp.send("E\n");
    this.dirs.pop();
    const status = await this.scp.response();
    if (status !== undefined) this.reporter.error(status);
  }

  reportError(text: string): void {
    this.scp.sendError(text).catch(() => {});
  }

  async close(): Promise<void> {
    await this.endSession();
    await this.o.placer?.settled();
  }
}

/** An SCP record ends at a newline: such a name can't be sent (PuTTY's pscp hangs on it). */
function refuseNewline(name: string): void {
  if (name.includes("\n")) {
    const shown = printable(name.replaceAll("\n", "\\n"));
    throw new FileError(`pscp: ${shown}: file names with newlines can't be sent by SCP`);
  }
}

/** Shell text that means the same path to every shell, unexpanded but for a leading "~". */
function plainShellPath(path: string): boolean {
  return /^[A-Za-z0-9._~/+@%,:=-]*$/.test(path) && !path.slice(1).includes("~");
}

/** The directory part of a shell path: "a/b" -> "a", "b" -> ".", "/b" -> "/". */
function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

export interface ScpUploadPlan {
  /** The scp command (PuTTY's, but for a single file's directory; see ScpPlace). */
  command: string;
  place: ScpPlace;
}

/**
 * Where an SCP upload to `target` will land, and the scp command for it. Several sources go into
 * `target` (scp -d). For one source the server is asked (`test -d`) whether `target` is a
 * directory: if so the source goes into it; if not, a file is sent into target's directory under
 * a temporary name and a directory becomes the target. `runs(command)` runs a command on the
 * server and says whether it succeeded.
 */
export async function planScpUpload(
  target: string,
  source: { count: number; isDir: boolean },
  scpCommandFor: (target: string, targetIsDir: boolean) => string,
  runs: (command: string) => Promise<boolean>,
): Promise<ScpUploadPlan> {
  if (source.count > 1) {
    const place: ScpPlace = plainShellPath(target) ? { how: "into", target } : { how: "in place" };
    return { command: scpCommandFor(target, true), place };
  }
  const inPlace = { command: scpCommandFor(target, false), place: { how: "in place" } as const };
  if (!plainShellPath(target)) return inPlace;
  if (await runs(`test -d ${target}`)) {
    return { command: scpCommandFor(target, false), place: { how: "into", target } };
  }
  if (source.isDir) return { command: scpCommandFor(target, false), place: { how: "dir", target } };
  const dir = parentOf(target);
  return { command: scpCommandFor(dir, false), place: { how: "file", target, dir } };
}
