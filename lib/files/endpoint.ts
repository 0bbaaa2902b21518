/**
 * The two remote ends pscp copies with, whatever the protocol: PuTTY's pscp.c drives SCP and
 * SFTP through one set of calls (scp_send_* for uploads, scp_get_sink_action/scp_recv_* for
 * downloads); these interfaces are that seam. lib/scp/ implements them over `scp -t`/`scp -f`,
 * lib/files/sftp_endpoint.ts over an SFTP session; lib/pscp/copy.ts walks local trees,
 * writes through temporary files and draws progress on top of either.
 */

export interface FileMeta {
  /** Bytes; undefined when the server didn't say (SFTP without a size attribute). */
  size?: number;
  /** Permission bits (07777). */
  mode: number;
  /** Seconds since the epoch; present when times are to be preserved (-p). */
  times?: { mtime: number; atime: number };
}

/** A problem with one file or directory: reported, counted, and the copy goes on (PuTTY's errs++). */
export class FileError extends Error {}

/** Where an endpoint's messages go. The library never prints; the front end does. */
export interface Reporter {
  /** A problem, shown on stderr and counted: pscp exits 1 at the end. */
  error(text: string): void;
  /** Shown on stderr, not counted. */
  warn(text: string): void;
  /** Shown with -v only. */
  verbose(text: string): void;
}

/** The remote end of an upload (`pscp local... host:target`). */
export interface UploadTarget {
  /**
   * Sends one file called `name` into the current target directory (or as the target itself
   * when that is not a directory). `data` yields exactly meta.size bytes. Throws FileError when
   * the remote end refuses or fails this file, anything else when the copy can't go on.
   */
  sendFile(
    name: string,
    meta: FileMeta & { size: number },
    data: AsyncIterable<Uint8Array>,
    onProgress: (done: number) => void,
  ): Promise<void>;
  /**
   * Creates (if needed) and enters directory `name`; FileError if it can't. `times` (with -p)
   * are given to the directory once its contents are written.
   */
  enterDir(name: string, mode: number, times?: FileMeta["times"]): Promise<void>;
  leaveDir(): Promise<void>;
  /** A local problem the remote end should hear of too (SCP sends it as an error record). */
  reportError(text: string): void;
  /** Ends the session in order. */
  close(): Promise<void>;
}

export type RemoteEntry =
  | { kind: "file"; name: string; meta: FileMeta }
  | { kind: "dir"; name: string; meta: FileMeta }
  /** The current directory has no more entries. */
  | { kind: "end" };

/** The remote end of a download (`pscp host:source target`). */
export interface DownloadSource {
  /**
   * Whether the names it returns can be trusted to be what was asked for: SFTP globs on our side;
   * SCP lets the server's shell expand wildcards, so a name different from the one requested is
   * refused unless -unsafe (PuTTY's rule).
   */
  readonly namesAreOurs: boolean;
  /** Starts a level: the whole transfer, or a directory just returned by next(). */
  beginLevel(): Promise<void>;
  /** The next entry at this level; undefined when the whole transfer is done. */
  next(): Promise<RemoteEntry | undefined>;
  /**
   * Receives the file next() returned, handing its bytes in order to `write`, up to and including
   * the remote end's verdict on it. Each chunk is lent: valid until the promise `write` returns
   * settles. Throws FileError if the remote end reports a problem with the
   * file (the caller then discards what it wrote), anything else when the copy can't go on.
   */
  receive(
    write: (chunk: Uint8Array) => Promise<void>,
    onProgress: (done: number) => void,
  ): Promise<void>;
  /** The received file has been stored. */
  accepted(): Promise<void>;
  /**
   * Declines the entry next() returned (before receive(): skip it; after: it could not be
   * stored). `text` is the error as shown locally; SCP sends it to the server too.
   */
  reject(text: string): Promise<void>;
  /** Ends the session in order. */
  close(): Promise<void>;
}
