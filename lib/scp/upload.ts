/**
 * Uploading with SCP: we are the source, the server runs `scp -t target` (PuTTY's scp_send_*).
 *
 * Data safety: the remote scp writes each file in place under its final name (it opens the target
 * with O_TRUNC), so a transfer cut short leaves a truncated file on the server. What we guarantee
 * is that the failure is reported, naming the file, and pscp exits non-zero. (SFTP, the default,
 * writes to a temporary name and renames.)
 */

import type { Channel } from "../ssh/connection.ts";
import {
  FileError,
  type FileMeta,
  type Reporter,
  type UploadTarget,
} from "../transfer/endpoint.ts";
import { entryRecord, ScpStream, timesRecord } from "./protocol.ts";

export class ScpUploadTarget implements UploadTarget {
  private readonly scp: ScpStream;

  private constructor(channel: Channel, private readonly reporter: Reporter) {
    this.scp = new ScpStream(channel);
  }

  /** Waits for the remote sink's go-ahead (an error there is reported, and we go on, as PuTTY). */
  static async start(channel: Channel, reporter: Reporter): Promise<ScpUploadTarget> {
    const t = new ScpUploadTarget(channel, reporter);
    const status = await t.scp.response();
    if (status !== undefined) reporter.error(status);
    return t;
  }

  private async expectOk(): Promise<void> {
    const status = await this.scp.response();
    if (status !== undefined) throw new FileError(status);
  }

  async sendFile(
    name: string,
    meta: FileMeta & { size: number },
    data: AsyncIterable<Uint8Array>,
    onProgress: (done: number) => void,
  ): Promise<void> {
    if (meta.times) {
      await this.scp.send(timesRecord(meta.times.mtime, meta.times.atime));
      await this.expectOk();
    }
    await this.scp.send(entryRecord("C", meta.mode, meta.size, name));
    await this.expectOk();
    let done = 0;
    for await (const chunk of data) {
      await this.scp.send(chunk);
      done += chunk.length;
      onProgress(done);
    }
    await this.scp.send(new Uint8Array(1));
    await this.expectOk();
  }

  async enterDir(name: string, mode: number, times?: FileMeta["times"]): Promise<void> {
    if (times) {
      await this.scp.send(timesRecord(times.mtime, times.atime));
      await this.expectOk();
    }
    await this.scp.send(entryRecord("D", mode, 0, name));
    await this.expectOk();
  }

  async leaveDir(): Promise<void> {
    await this.scp.send("E\n");
    const status = await this.scp.response();
    if (status !== undefined) this.reporter.error(status);
  }

  reportError(text: string): void {
    this.scp.sendError(text).catch(() => {});
  }

  async close(): Promise<void> {
    // EOF tells the remote scp we're done; it exits and closes the channel.
    this.scp.channel.eof();
    await this.scp.reader.drain().catch(() => {});
    await this.scp.channel.closed;
  }
}
