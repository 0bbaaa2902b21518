/**
 * Downloading with SCP: the server runs `scp -f source` and sends records; we are the sink
 * (PuTTY's scp_get_sink_action and friends, SCP half).
 */

import type { Channel } from "../ssh/channel.ts";
import {
  type DownloadSource,
  FileError,
  type RemoteEntry,
  type Reporter,
} from "../files/endpoint.ts";
import { FatalError } from "../util/error_text.ts";
import { lost, parseEntry, parseTimes, ScpStream } from "./protocol.ts";

/**
 * File data is handed on in pieces of at most this size, as it lies in the channel's buffer
 * when there is a good run of it (DIRECT bytes or more), else gathered in one buffer reused for
 * every file: a write per 32 KiB packet cost more than the copy does.
 */
const CHUNK = 512 * 1024;
const DIRECT = 64 * 1024;

export class ScpDownloadSource implements DownloadSource {
  readonly namesAreOurs = false;
  private readonly scp: ScpStream;
  private current?: { size: number };
  private gather?: Uint8Array;

  constructor(
    channel: Channel,
    private readonly reporter: Reporter,
    private readonly recursive: boolean,
  ) {
    this.scp = new ScpStream(channel);
  }

  async beginLevel(): Promise<void> {
    await this.scp.send(new Uint8Array(1));
  }

  async next(): Promise<RemoteEntry | undefined> {
    let times: { mtime: number; atime: number } | undefined;
    for (;;) {
      let kind: number | undefined;
      try {
        kind = await this.scp.reader.byte();
      } catch (e) {
        throw lost(e);
      }
      if (kind === undefined) return undefined;
      if (kind === 10) throw new FatalError("Protocol error: Unexpected newline");
      let text: string;
      try {
        text = await this.scp.reader.line();
      } catch (e) {
        throw lost(e);
      }
      switch (kind) {
        case 1:
          this.reporter.error(text);
          continue;
        case 2:
          throw new FatalError(text);
        case 0x45: // E
          await this.scp.send(new Uint8Array(1));
          return { kind: "end" };
        case 0x54: // T
          times = parseTimes(text);
          if (!times) throw new FatalError("Protocol error: Illegal time format");
          await this.scp.send(new Uint8Array(1));
          continue;
        case 0x43: // C
        case 0x44: { // D
          const isDir = kind === 0x44;
          if (isDir && !this.recursive) {
            throw new FatalError(
              "security violation: remote host attempted to create a subdirectory in a " +
                "non-recursive copy!",
            );
          }
          const e = parseEntry(text);
          if (!e) throw new FatalError("Protocol error: Illegal file descriptor format");
          const meta = { size: e.size, mode: e.mode, times };
          if (isDir) return { kind: "dir", name: e.name, meta };
          this.current = { size: e.size };
          return { kind: "file", name: e.name, meta };
        }
        default:
          throw new FatalError("Protocol error: Expected control record");
      }
    }
  }

  async receive(
    write: (chunk: Uint8Array) => Promise<void>,
    onProgress: (done: number) => void,
  ): Promise<void> {
    const size = this.current?.size ?? 0;
    this.current = undefined;
    await this.scp.send(new Uint8Array(1));
    let done = 0;
    let filled = 0;
    while (done < size) {
      let chunk: Uint8Array;
      try {
        chunk = await this.scp.reader.some(Math.min(CHUNK - filled, size - done));
      } catch (e) {
        throw lost(e);
      }
      done += chunk.length;
      if (filled === 0 && (chunk.length >= DIRECT || done === size)) {
        await write(chunk);
      } else {
        const gather = this.gather ??= new Uint8Array(CHUNK);
        gather.set(chunk, filled);
        filled += chunk.length;
        if (filled < CHUNK && done < size) continue;
        await write(gather.subarray(0, filled));
        filled = 0;
      }
      onProgress(done);
    }
    // The source's verdict on the file it sent (an error if it failed to read it, say).
    const status = await this.scp.response();
    if (status !== undefined) {
      await this.scp.send(new Uint8Array(1));
      throw new FileError(status);
    }
  }

  async accepted(): Promise<void> {
    await this.scp.send(new Uint8Array(1));
  }

  async reject(text: string): Promise<void> {
    this.current = undefined;
    await this.scp.sendError(text);
  }

  async close(): Promise<void> {
    this.scp.channel.eof();
    await this.scp.reader.drain().catch(() => {});
    await this.scp.channel.closed;
  }
}
