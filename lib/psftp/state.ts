/**
 * One psftp session's state and the helpers its commands share (PuTTY's psftp.c): the SFTP
 * connection, the remote working directory, canonify() (path resolution against the server),
 * remote wildcard matching and wildcard_iterate().
 *
 * The library never prints: all output goes to the PsftpOutput the front end supplies (stdout
 * text through print(), diagnostics through error()). A lost connection, or anything else that
 * ends psftp the way PuTTY's connection_fatal does, is thrown as FatalError.
 */

import { type SftpClient } from "../sftp/client.ts";
import { type Attrs, SftpError } from "../sftp/protocol.ts";
import { printable } from "../util/printable.ts";
import { errorText, FatalError } from "../util/error_text.ts";
import { vettedNames } from "../files/paths.ts";
import { Temporaries } from "../files/temporaries.ts";
import { remoteNameMatches, splitWildcardPath, wildcardUnescape } from "../files/wildcard.ts";

export interface PsftpOutput {
  /** Standard output (psftp's printf). */
  print(text: string): void;
  /** Standard error. */
  error(text: string): void;
}

/** An open SFTP session on some connection. */
export interface SftpLink {
  sftp: SftpClient;
  /** Ends the session and our use of the connection, in an orderly way. */
  close(): Promise<void>;
  /** Drops it at once. */
  abort(): Promise<void>;
}

/** What psftp needs from its surroundings. */
export interface PsftpEnvironment {
  out: PsftpOutput;
  /**
   * psftp_connect(): connects to "[user@]host" (port 0: the configured one) and starts SFTP.
   * Throws on failure (the front end reports it as fatal).
   */
  connect(userhost: string, port: number): Promise<SftpLink>;
  /** The "!" command: runs a shell command with our terminal; resolves to its exit status. */
  runLocal(command: string): Promise<number>;
}

/**
 * Whether attributes say "directory" as psftp tests it (PuTTY's `permissions & 0040000`, which
 * also holds for sockets and block devices).
 */
export function hasDirectoryBit(a: Attrs | undefined): boolean {
  return a?.permissions !== undefined && (a.permissions & 0o040000) !== 0;
}

/** A command's outcome (PuTTY's 1, 0 and -1). */
export type CommandResult = "ok" | "failed" | "quit";

export class PsftpSession {
  link?: SftpLink;
  /** Remote working directory and home directory (canonical), while connected. */
  pwd = "";
  homedir = "";
  /** Files being written under temporary names (local and remote), removed if we are stopped. */
  readonly temporaries = new Temporaries();

  constructor(readonly env: PsftpEnvironment) {}

  print(text: string): void {
    this.env.out.print(text);
  }

  /** The SFTP client; commands check `link` first (not_connected). */
  get sftp(): SftpClient {
    if (!this.link) throw new FatalError("not connected");
    return this.link.sftp;
  }

  /** psftp: not connected to a host; use "open host.name". Returns false when not connected. */
  requireConnection(): boolean {
    if (this.link) return true;
    this.print('psftp: not connected to a host; use "open host.name"\n');
    return false;
  }

  /**
   * psftp_connect() and do_sftp_init(): connects and finds the home directory. Connection
   * failures are thrown (fatal, as in PuTTY).
   */
  async open(userhost: string, port: number): Promise<void> {
    const link = await this.env.connect(userhost, port);
    this.link = link;
    try {
      this.homedir = await link.sftp.realpath(".");
      this.print(`Remote working directory is ${printable(this.homedir)}\n`);
    } catch (e) {
      if (!(e instanceof SftpError)) throw this.fatal(e);
      this.env.out.error(`Warning: failed to resolve home directory: ${e.message}\n`);
      this.homedir = ".";
    }
    this.pwd = this.homedir;
  }

  /** do_sftp_cleanup(): ends the SFTP session and the connection. */
  async close(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    this.pwd = this.homedir = "";
    if (link) await link.close().catch(() => {});
  }

  /** Stops at once (fatal errors, signals): temporary files removed, connection dropped. */
  async abort(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    await this.temporaries.removeAll();
    await link?.abort().catch(() => {});
  }

  /**
   * Waits for `pending` (the next command line, say), but throws FatalError if the connection
   * dies meanwhile.
   */
  async unlessConnectionLost<T>(pending: Promise<T>): Promise<T> {
    const link = this.link;
    if (!link) return await pending;
    const lost = link.sftp.closed.then((e) => {
      if (e && this.link === link) throw new FatalError(e.message);
      return new Promise<never>(() => {});
    });
    return await Promise.race([pending, lost]);
  }

  /**
   * Turns an error from the SFTP layer that is not a status reply (the connection or channel
   * died, the server broke the protocol) into a FatalError.
   */
  fatal(e: unknown): FatalError {
    if (e instanceof FatalError) return e;
    return new FatalError(errorText(e));
  }

  /**
   * canonify(): the server's canonical form of `name` relative to the working directory. If the
   * server can't resolve it (it doesn't exist), the parent is resolved and the last component
   * put back; failing that, the plain joined path.
   */
  async canonify(name: string): Promise<string> {
    const sftp = this.sftp;
    const full = name.startsWith("/")
      ? name
      : this.pwd + (this.pwd.endsWith("/") ? "" : "/") + name;
    try {
      return await sftp.realpath(full);
    } catch (e) {
      if (!(e instanceof SftpError)) throw this.fatal(e);
    }
    let f = full;
    if (f.length > 2 && f.endsWith("/")) f = f.slice(0, -1);
    const slash = f.lastIndexOf("/");
    const tail = f.slice(slash);
    if (slash < 0 || tail === "/." || tail === "/.." || f === "/") return f;
    try {
      const head = await sftp.realpath(slash === 0 ? "/" : f.slice(0, slash));
      return head + (head.endsWith("/") ? "" : "/") + f.slice(slash + 1);
    } catch (e) {
      if (!(e instanceof SftpError)) throw this.fatal(e);
      return f;
    }
  }

  /**
   * sftp_begin_wildcard_matching() and friends: the names (as "dir/name", dir as typed) that
   * match a remote wildcard, in the server's directory order; undefined (after a message) when
   * the directory can't be read or has wildcards itself.
   */
  async matchRemote(pattern: string): Promise<string[] | undefined> {
    const { dir, wildcard } = splitWildcardPath(pattern);
    if (dir === undefined) {
      this.print("Multiple-level wildcards are not supported\n");
      return undefined;
    }
    const cdir = await this.canonify(dir);
    let entries;
    try {
      entries = await this.sftp.readdir(cdir);
    } catch (e) {
      if (!(e instanceof SftpError)) throw this.fatal(e);
      this.print(`Unable to open ${printable(cdir)}: ${e.message}\n`);
      return undefined;
    }
    const out: string[] = [];
    for (const name of vettedNames(entries, (text) => this.print(printable(text) + "\n"))) {
      if (!remoteNameMatches(wildcard, name)) continue;
      out.push(dir + (dir === "" || dir.endsWith("/") ? "" : "/") + name);
    }
    return out;
  }

  /**
   * wildcard_iterate(): runs `action` on the canonical name of every match of `name` (or on
   * `name` itself when it has no wildcards). True if every action succeeded.
   */
  async forEachRemote(name: string, action: (path: string) => Promise<boolean>): Promise<boolean> {
    const plain = wildcardUnescape(name);
    if (plain !== undefined) return await action(await this.canonify(plain));
    const matches = await this.matchRemote(name);
    if (!matches) return false;
    let ok = true;
    for (const m of matches) {
      if (!await action(await this.canonify(m))) ok = false;
    }
    if (matches.length === 0) this.print(`${name}: nothing matched\n`);
    return ok;
  }

  /** Whether a remote path is a directory (check_is_dir). */
  async isRemoteDirectory(path: string): Promise<boolean> {
    try {
      return hasDirectoryBit(await this.sftp.stat(path));
    } catch (e) {
      if (!(e instanceof SftpError)) throw this.fatal(e);
      return false;
    }
  }
}
