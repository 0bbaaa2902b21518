/**
 * psftp's get/put family (PuTTY's sftp_general_get/put, sftp_get_file/sftp_put_file): get, mget,
 * reget, put, mput, reput, with -r recursion, wildcards, and PuTTY's messages.
 *
 * Never losing data (where we go beyond PuTTY): get and put write through pscp's writers
 * (lib/files/local_file.ts, lib/files/remote_file.ts): into a temporary file beside the
 * target, renamed into place only once the whole file has arrived, so a failed or interrupted
 * transfer leaves no truncated file under the target's name (and an existing file stays as it
 * was). reget and reput resume into the existing file (appending), as PuTTY does: that partial
 * file is the point of resuming.
 */

import { type SftpHandle } from "../sftp/client.ts";
import { type Attrs, OPEN, SftpError } from "../sftp/protocol.ts";
import { download, upload } from "../files/sftp_pipeline.ts";
import { printable } from "../util/printable.ts";
import { osErrorText } from "../util/error_text.ts";
import { localGlob, localWildcardKind } from "./local_glob.ts";
import { type CommandResult, hasDirectoryBit, type PsftpSession } from "./state.ts";
import {
  listDir,
  LocalFileWriter,
  LocalReadError,
  localType,
  readChunks,
} from "../files/local_file.ts";
import { RemoteFileWriter } from "../files/remote_file.ts";
import {
  compareNames,
  dirFileCat,
  lastComponent,
  remoteJoin,
  vettedNames,
} from "../files/paths.ts";
import { isWildcard } from "../files/wildcard.ts";

/** The options of get/put and friends: -r and --. Undefined (after a message) if bad. */
function transferOptions(
  s: PsftpSession,
  words: string[],
): { recurse: boolean; first: number } | undefined {
  let recurse = false;
  let i = 1;
  while (i < words.length && words[i].startsWith("-")) {
    if (words[i] === "--") {
      i++;
      break;
    } else if (words[i] === "-r") {
      recurse = true;
    } else {
      s.print(`${words[0]}: unrecognised option '${words[i]}'\n`);
      return undefined;
    }
    i++;
  }
  if (i >= words.length) {
    s.print(`${words[0]}: expects a filename\n`);
    return undefined;
  }
  return { recurse, first: i };
}

/**
 * The shared shape of sftp_general_get/put: options, then each argument (expanded as a wildcard
 * by m-commands; otherwise an optional second word names the target), transferred in turn.
 */
async function generalTransfer(
  s: PsftpSession,
  words: string[],
  multiple: boolean,
  expand: (arg: string) => Promise<string[] | undefined> | string[],
  transfer: (name: string, target: string | undefined, recurse: boolean) => Promise<boolean>,
): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  const opts = transferOptions(s, words);
  if (!opts) return "failed";
  let i = opts.first;
  let ok = true;
  do {
    const arg = words[i++];
    const names = multiple ? await expand(arg) : [arg];
    if (!names) continue;
    if (names.length === 0) {
      s.print(`${arg}: nothing matched\n`);
      continue;
    }
    for (const name of names) {
      const target = !multiple && i < words.length ? words[i++] : undefined;
      // As in PuTTY, only the last file of a wildcard decides this argument's success.
      ok = await transfer(name, target, opts.recurse);
    }
    if (!ok) return "failed";
  } while (multiple && i < words.length);
  return ok ? "ok" : "failed";
}

/** get, mget, reget. */
export function generalGet(
  s: PsftpSession,
  words: string[],
  restart: boolean,
  multiple: boolean,
): Promise<CommandResult> {
  return generalTransfer(
    s,
    words,
    multiple,
    (arg) => isWildcard(arg) ? s.matchRemote(arg) : [arg],
    async (name, target, recurse) =>
      await getFile(s, await s.canonify(name), target ?? lastComponent(name), recurse, restart),
  );
}

/** put, mput, reput. */
export function generalPut(
  s: PsftpSession,
  words: string[],
  restart: boolean,
  multiple: boolean,
): Promise<CommandResult> {
  return generalTransfer(
    s,
    words,
    multiple,
    (arg) => localWildcardKind(arg) === "wildcard" ? localGlob(arg) : [arg],
    async (name, target, recurse) =>
      await putFile(s, name, await s.canonify(target ?? lastComponent(name)), recurse, restart),
  );
}

async function remoteStat(s: PsftpSession, path: string): Promise<Attrs | undefined> {
  try {
    return await s.sftp.stat(path);
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    return undefined;
  }
}

/** Closes a remote handle, ignoring errors (the reason we are closing is what matters). */
async function closeQuietly(handle: SftpHandle): Promise<void> {
  await handle.close().catch(() => {});
}

/** sftp_get_file(). */
export async function getFile(
  s: PsftpSession,
  fname: string,
  outfname: string,
  recurse: boolean,
  restart: boolean,
): Promise<boolean> {
  const attrs = await remoteStat(s, fname);
  if (recurse && hasDirectoryBit(attrs)) return await getDirectory(s, fname, outfname, restart);
  let handle: SftpHandle;
  try {
    handle = await s.sftp.open(fname, OPEN.READ);
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    s.print(`${printable(fname)}: open for read: ${e.message}\n`);
    return false;
  }
  try {
    let local: LocalFileWriter;
    try {
      local = await LocalFileWriter.open(outfname, {
        mode: attrs?.permissions !== undefined ? attrs.permissions & 0o7777 : 0o666,
        resume: restart,
        tool: "psftp",
        temporaries: s.temporaries,
      });
    } catch {
      s.print(`local: unable to open ${printable(outfname)}\n`);
      return false;
    }
    if (restart) s.print(`reget: restarting at file position ${local.offset}\n`);
    s.print(`remote:${printable(fname)} => local:${printable(outfname)}\n`);
    let localError = false;
    try {
      await download(handle, async (chunk) => {
        try {
          await local.write(chunk);
        } catch (e) {
          localError = true;
          throw e;
        }
      }, { offset: local.offset });
    } catch (e) {
      await local.discard();
      if (localError) {
        s.print("error while writing local file\n");
      } else if (e instanceof SftpError) {
        s.print(`error while reading: ${e.message}\n`);
      } else {
        throw s.fatal(e);
      }
      return false;
    }
    try {
      await local.commit();
    } catch (e) {
      s.print(`local: unable to rename into ${printable(outfname)}: ${osErrorText(e)}\n`);
      return false;
    }
    return true;
  } finally {
    await closeQuietly(handle);
  }
}

/** The recursive half of sftp_get_file(). */
async function getDirectory(
  s: PsftpSession,
  fname: string,
  outfname: string,
  restart: boolean,
): Promise<boolean> {
  if ((await localType(outfname)) !== "dir") {
    try {
      Deno.mkdirSync(outfname, { mode: 0o777 });
    } catch {
      s.print(`${printable(outfname)}: Cannot create directory\n`);
      return false;
    }
  }
  let entries;
  try {
    entries = await s.sftp.readdir(fname);
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    s.print(`${printable(fname)}: unable to open directory: ${e.message}\n`);
    return false;
  }
  const names = vettedNames(entries, (text) => s.print(printable(text) + "\n"));
  names.sort(compareNames);
  // Resuming: everything before the last file that exists locally is done already.
  let i = 0;
  if (restart) {
    while (i < names.length && (await localType(dirFileCat(outfname, names[i]))) !== undefined) i++;
    if (i > 0) i--;
  }
  for (; i < names.length; i++) {
    const ok = await getFile(
      s,
      remoteJoin(fname, names[i]),
      dirFileCat(outfname, names[i]),
      true,
      restart,
    );
    restart = false; // after the first partial file, whole files
    if (!ok) return false;
  }
  return true;
}

/** sftp_put_file(). */
export async function putFile(
  s: PsftpSession,
  fname: string,
  outfname: string,
  recurse: boolean,
  restart: boolean,
): Promise<boolean> {
  if (recurse && (await localType(fname)) === "dir") {
    return await putDirectory(s, fname, outfname, restart);
  }
  let file: Deno.FsFile;
  let permissions: number;
  try {
    file = await Deno.open(fname, { read: true });
    permissions = ((await file.stat()).mode ?? 0o644) & 0o7777;
  } catch {
    s.print(`local: unable to open ${fname}\n`);
    return false;
  }
  try {
    let out: RemoteFileWriter;
    try {
      out = await RemoteFileWriter.open(s.sftp, outfname, {
        mode: permissions,
        resume: restart,
        tool: "psftp",
        temporaries: s.temporaries,
      });
    } catch (e) {
      if (!(e instanceof SftpError)) throw s.fatal(e);
      s.print(`${outfname}: open for write: ${e.message}\n`);
      return false;
    }
    try {
      return await sendFile(s, file, fname, outfname, out, restart);
    } catch (e) {
      throw s.fatal(e);
    } finally {
      await out.discard();
    }
  } finally {
    try {
      file.close();
    } catch { /* closed */ }
  }
}

/** The transfer itself for putFile(), then the temporary file renamed into place. */
async function sendFile(
  s: PsftpSession,
  file: Deno.FsFile,
  fname: string,
  outfname: string,
  out: RemoteFileWriter,
  restart: boolean,
): Promise<boolean> {
  let offset = 0;
  if (restart) {
    let attrs: Attrs;
    try {
      attrs = await out.handle.fstat();
    } catch (e) {
      if (!(e instanceof SftpError)) throw e;
      s.print(`read size of ${outfname}: ${e.message}\n`);
      return false;
    }
    if (attrs.size === undefined) {
      s.print(`read size of ${outfname}: size was not given\n`);
      return false;
    }
    offset = attrs.size;
    s.print(`reput: restarting at file position ${offset}\n`);
    try {
      await file.seek(offset, Deno.SeekMode.Start);
    } catch {
      await file.seek(0, Deno.SeekMode.End);
    }
  }
  s.print(`local:${fname} => remote:${outfname}\n`);
  let err = false;
  try {
    await upload(out.handle, readChunks(file), { offset });
  } catch (e) {
    err = true;
    if (e instanceof LocalReadError) s.print("error while reading local file\n");
    else if (e instanceof SftpError) s.print(`error while writing: ${e.message}\n`);
    else throw e;
  }
  try {
    await out.close();
  } catch (e) {
    if (!(e instanceof SftpError)) throw e;
    if (!err) s.print(`error while closing: ${e.message}\n`);
    err = true;
  }
  if (err) return false;
  try {
    await out.commit();
  } catch (e) {
    if (!(e instanceof SftpError)) throw e;
    s.print(`${outfname}: unable to rename into place: ${e.message}\n`);
    return false;
  }
  return true;
}

/** The recursive half of sftp_put_file(). */
async function putDirectory(
  s: PsftpSession,
  fname: string,
  outfname: string,
  restart: boolean,
): Promise<boolean> {
  if (!await s.isRemoteDirectory(outfname)) {
    try {
      await s.sftp.mkdir(outfname);
    } catch (e) {
      if (!(e instanceof SftpError)) throw s.fatal(e);
      s.print(`${outfname}: create directory: ${e.message}\n`);
      return false;
    }
  }
  let names: string[];
  try {
    names = await listDir(fname);
  } catch (e) {
    s.print(`${fname}: unable to open directory: ${osErrorText(e)}\n`);
    return false;
  }
  names.sort(compareNames);
  let i = 0;
  if (restart) {
    while (i < names.length && await remoteStat(s, remoteJoin(outfname, names[i]))) i++;
    if (i > 0) i--;
  }
  for (; i < names.length; i++) {
    const ok = await putFile(
      s,
      dirFileCat(fname, names[i]),
      remoteJoin(outfname, names[i]),
      true,
      restart,
    );
    restart = false;
    if (!ok) return false;
  }
  return true;
}
