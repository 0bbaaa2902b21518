/**
 * psftp's command table, help texts and the commands other than transfers (PuTTY's psftp.c,
 * wording and behaviour kept): open, close, quit/bye/exit, help, cd, pwd, lcd, lpwd, ls/dir,
 * rm/del/delete, mkdir, rmdir, mv/ren/rename, chmod, "!", plus get/put and friends from
 * file_transfer.ts.
 */

import { atoi } from "../config/forwarding_spec.ts";
import { SftpError } from "../sftp/protocol.ts";
import { applyChmod, type ChmodChange, parseChmodMode } from "./chmod_mode.ts";
import { splitCommandLine } from "./command_line.ts";
import { printable } from "../util/printable.ts";
import { osErrorText } from "../util/error_text.ts";
import { generalGet, generalPut } from "./file_transfer.ts";
import type { CommandResult, PsftpSession } from "./state.ts";
import { compareNames, lastComponent, remoteJoin } from "../files/paths.ts";
import {
  isWildcard,
  remoteNameMatches,
  splitWildcardPath,
  wildcardUnescape,
} from "../files/wildcard.ts";

type Handler = (s: PsftpSession, words: string[]) => CommandResult | Promise<CommandResult>;

interface CommandEntry {
  name: string;
  /** Listed by plain "help". */
  listed: boolean;
  /** Primary command: one-line description; alias: the primary command's name. */
  shortHelp: string;
  /** Primary commands only: the text after the name in "help <command>". */
  longHelp?: string;
  run: Handler;
}

const ok = (v: boolean): CommandResult => (v ? "ok" : "failed");

function cmdQuit(): CommandResult {
  return "quit";
}

async function cmdClose(s: PsftpSession): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  await s.close();
  return "failed"; // as in PuTTY: so a batch script stops here unless -be
}

async function cmdLs(s: PsftpSession, words: string[]): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  let dir = words.length < 2 ? "." : words[1];
  let wildcard: string | undefined;
  const plain = wildcardUnescape(dir);
  if (plain !== undefined) {
    dir = plain;
  } else {
    const split = splitWildcardPath(dir);
    if (split.dir === undefined) {
      s.print("Multiple-level wildcards are not supported\n");
      return "failed";
    }
    dir = split.dir;
    wildcard = split.wildcard;
  }
  const cdir = await s.canonify(dir);
  s.print(`Listing directory ${printable(cdir)}\n`);
  let entries;
  try {
    entries = await s.sftp.readdir(cdir);
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    s.print(`Unable to open ${dir}: ${e.message}\n`);
    return "failed";
  }
  const shown = entries.filter((e) => wildcard === undefined || remoteNameMatches(wildcard, e.name))
    .sort((a, b) => compareNames(a.name, b.name));
  s.print(shown.map((e) => printable(e.longname) + "\n").join(""));
  return "ok";
}

async function cmdCd(s: PsftpSession, words: string[]): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  const dir = words.length < 2 ? s.homedir : await s.canonify(words[1]);
  try {
    await s.sftp.readdir(dir);
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    s.print(`Directory ${printable(dir)}: ${e.message}\n`);
    return "failed";
  }
  s.pwd = dir;
  s.print(`Remote directory is now ${printable(dir)}\n`);
  return "ok";
}

function cmdPwd(s: PsftpSession): CommandResult {
  if (!s.requireConnection()) return "failed";
  s.print(`Remote directory is ${printable(s.pwd)}\n`);
  return "ok";
}

async function cmdMkdir(s: PsftpSession, words: string[]): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  if (words.length < 2) {
    s.print("mkdir: expects a directory\n");
    return "failed";
  }
  let result = true;
  for (const w of words.slice(1)) {
    const dir = await s.canonify(w);
    try {
      await s.sftp.mkdir(dir);
      s.print(`mkdir ${printable(dir)}: OK\n`);
    } catch (e) {
      if (!(e instanceof SftpError)) throw s.fatal(e);
      s.print(`mkdir ${printable(dir)}: ${e.message}\n`);
      result = false;
    }
  }
  return ok(result);
}

/** A simple per-file action: "<verb> <path>: OK" or "<verb> <path>: <error>". */
function simpleAction(s: PsftpSession, verb: string, op: (path: string) => Promise<void>) {
  return async (path: string): Promise<boolean> => {
    try {
      await op(path);
    } catch (e) {
      if (!(e instanceof SftpError)) throw s.fatal(e);
      s.print(`${verb} ${printable(path)}: ${e.message}\n`);
      return false;
    }
    s.print(`${verb} ${printable(path)}: OK\n`);
    return true;
  };
}

function forEachArgument(
  verb: string,
  what: string,
  op: (s: PsftpSession, p: string) => Promise<void>,
) {
  return async (s: PsftpSession, words: string[]): Promise<CommandResult> => {
    if (!s.requireConnection()) return "failed";
    if (words.length < 2) {
      s.print(`${verb}: expects a ${what}\n`);
      return "failed";
    }
    const action = simpleAction(s, verb, (p) => op(s, p));
    let result = true;
    for (const w of words.slice(1)) {
      if (!await s.forEachRemote(w, action)) result = false;
    }
    return ok(result);
  };
}

const cmdRmdir = forEachArgument("rmdir", "directory", (s, p) => s.sftp.rmdir(p));
const cmdRm = forEachArgument("rm", "filename", (s, p) => s.sftp.remove(p));

async function cmdMv(s: PsftpSession, words: string[]): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  if (words.length < 3) {
    s.print("mv: expects two filenames\n");
    return "failed";
  }
  const dst = await s.canonify(words[words.length - 1]);
  const destIsDir = await s.isRemoteDirectory(dst);
  if ((words.length > 3 || isWildcard(words[1])) && !destIsDir) {
    s.print("mv: multiple or wildcard arguments require the destination to be a directory\n");
    return "failed";
  }
  const move = async (src: string): Promise<boolean> => {
    const target = destIsDir ? await s.canonify(remoteJoin(dst, lastComponent(src))) : dst;
    try {
      await s.sftp.rename(src, target);
    } catch (e) {
      if (!(e instanceof SftpError)) throw s.fatal(e);
      s.print(`mv ${printable(src)} ${printable(target)}: ${e.message}\n`);
      return false;
    }
    s.print(`${printable(src)} -> ${printable(target)}\n`);
    return true;
  };
  let result = true;
  for (const w of words.slice(1, -1)) {
    if (!await s.forEachRemote(w, move)) result = false;
  }
  return ok(result);
}

async function cmdChmod(s: PsftpSession, words: string[]): Promise<CommandResult> {
  if (!s.requireConnection()) return "failed";
  if (words.length < 3) {
    s.print("chmod: expects a mode specifier and a filename\n");
    return "failed";
  }
  const change = parseChmodMode(words[1]);
  if ("error" in change) {
    s.print(change.error + "\n");
    return "failed";
  }
  const action = (path: string) => chmodOne(s, path, change);
  let result = true;
  for (const w of words.slice(2)) {
    if (!await s.forEachRemote(w, action)) result = false;
  }
  return ok(result);
}

async function chmodOne(s: PsftpSession, path: string, change: ChmodChange): Promise<boolean> {
  let perms: number | undefined;
  try {
    perms = (await s.sftp.stat(path)).permissions;
    if (perms === undefined) {
      s.print(`get attrs for ${printable(path)}: file permissions not provided\n`);
      return false;
    }
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    s.print(`get attrs for ${printable(path)}: ${e.message}\n`);
    return false;
  }
  const updated = applyChmod(perms, change);
  const before = perms & 0o7777;
  const after = updated & 0o7777;
  if (before === after) return true;
  try {
    await s.sftp.setstat(path, { permissions: updated });
  } catch (e) {
    if (!(e instanceof SftpError)) throw s.fatal(e);
    s.print(`set attrs for ${printable(path)}: ${e.message}\n`);
    return false;
  }
  const oct = (n: number) => n.toString(8).padStart(4, "0");
  s.print(`${printable(path)}: ${oct(before)} -> ${oct(after)}\n`);
  return true;
}

async function cmdOpen(s: PsftpSession, words: string[]): Promise<CommandResult> {
  if (s.link) {
    s.print("psftp: already connected\n");
    return "failed";
  }
  if (words.length < 2) {
    s.print("open: expects a host name\n");
    return "failed";
  }
  let port = 0;
  if (words.length > 2) {
    port = atoi(words[2]);
    if (port === 0) {
      s.print("open: invalid port number\n");
      return "failed";
    }
  }
  await s.open(words[1], port);
  return "ok";
}

function cmdLcd(s: PsftpSession, words: string[]): CommandResult {
  if (words.length < 2) {
    s.print("lcd: expects a local directory name\n");
    return "failed";
  }
  try {
    Deno.chdir(words[1]);
  } catch (e) {
    s.print(`lcd: unable to change directory: ${words[1]}: chdir: ${osErrorText(e)}\n`);
    return "failed";
  }
  s.print(`New local directory is ${localCwd()}\n`);
  return "ok";
}

function localCwd(): string {
  try {
    return Deno.cwd();
  } catch (e) {
    return `[cwd unavailable: ${osErrorText(e)}]`;
  }
}

function cmdLpwd(s: PsftpSession): CommandResult {
  s.print(`Current local directory is ${localCwd()}\n`);
  return "ok";
}

async function cmdPling(s: PsftpSession, words: string[]): Promise<CommandResult> {
  return ok(await s.env.runLocal(words[1] ?? "") === 0);
}

function cmdHelp(s: PsftpSession, words: string[]): CommandResult {
  s.print(helpText(words.slice(1)));
  return "ok";
}

/** PuTTY's table, in ASCII order (it is binary-searched there). */
const COMMANDS: CommandEntry[] = [
  {
    name: "!",
    listed: true,
    shortHelp: "run a local command",
    longHelp: "<command>\n" +
      '  Runs a local command. For example, "!del myfile".\n',
    run: cmdPling,
  },
  {
    name: "bye",
    listed: true,
    shortHelp: "finish your SFTP session",
    longHelp: "\n  Terminates your SFTP session and quits the PSFTP program.\n",
    run: cmdQuit,
  },
  {
    name: "cd",
    listed: true,
    shortHelp: "change your remote working directory",
    longHelp: " [ <new working directory> ]\n" +
      "  Change the remote working directory for your SFTP session.\n" +
      "  If a new working directory is not supplied, you will be\n" +
      "  returned to your home directory.\n",
    run: cmdCd,
  },
  {
    name: "chmod",
    listed: true,
    shortHelp: "change file permissions and modes",
    longHelp: " <modes> <filename-or-wildcard> [ <filename-or-wildcard>... ]\n" +
      "  Change the file permissions on one or more remote files or\n" +
      "  directories.\n" +
      "  <modes> can be any octal Unix permission specifier.\n" +
      "  Alternatively, <modes> can include the following modifiers:\n" +
      "    u+r     make file readable by owning user\n" +
      "    u+w     make file writable by owning user\n" +
      "    u+x     make file executable by owning user\n" +
      "    u-r     make file not readable by owning user\n" +
      "    [also u-w, u-x]\n" +
      "    g+r     make file readable by members of owning group\n" +
      "    [also g+w, g+x, g-r, g-w, g-x]\n" +
      "    o+r     make file readable by all other users\n" +
      "    [also o+w, o+x, o-r, o-w, o-x]\n" +
      "    a+r     make file readable by absolutely everybody\n" +
      "    [also a+w, a+x, a-r, a-w, a-x]\n" +
      "    u+s     enable the Unix set-user-ID bit\n" +
      "    u-s     disable the Unix set-user-ID bit\n" +
      "    g+s     enable the Unix set-group-ID bit\n" +
      "    g-s     disable the Unix set-group-ID bit\n" +
      '    +t      enable the Unix "sticky bit"\n' +
      '  You can give more than one modifier for the same user ("g-rwx"), and\n' +
      '  more than one user for the same modifier ("ug+w"). You can\n' +
      '  use commas to separate different modifiers ("u+rwx,g+s").\n',
    run: cmdChmod,
  },
  {
    name: "close",
    listed: true,
    shortHelp: "finish your SFTP session but do not quit PSFTP",
    longHelp: "\n" +
      "  Terminates your SFTP session, but does not quit the PSFTP\n" +
      '  program. You can then use "open" to start another SFTP\n' +
      "  session, to the same server or to a different one.\n",
    run: cmdClose,
  },
  {
    name: "del",
    listed: true,
    shortHelp: "delete files on the remote server",
    longHelp: " <filename-or-wildcard> [ <filename-or-wildcard>... ]\n" +
      "  Delete a file or files from the server.\n",
    run: cmdRm,
  },
  { name: "delete", listed: false, shortHelp: "del", run: cmdRm },
  {
    name: "dir",
    listed: true,
    shortHelp: "list remote files",
    longHelp: " [ <directory-name> ]/[ <wildcard> ]\n" +
      "  List the contents of a specified directory on the server.\n" +
      "  If <directory-name> is not given, the current working directory\n" +
      "  is assumed.\n" +
      "  If <wildcard> is given, it is treated as a set of files to\n" +
      "  list; otherwise, all files are listed.\n",
    run: cmdLs,
  },
  { name: "exit", listed: true, shortHelp: "bye", run: cmdQuit },
  {
    name: "get",
    listed: true,
    shortHelp: "download a file from the server to your local machine",
    longHelp: " [ -r ] [ -- ] <filename> [ <local-filename> ]\n" +
      "  Downloads a file on the server and stores it locally under\n" +
      "  the same name, or under a different one if you supply the\n" +
      "  argument <local-filename>.\n" +
      "  If -r specified, recursively fetch a directory.\n",
    run: (s, w) => generalGet(s, w, false, false),
  },
  {
    name: "help",
    listed: true,
    shortHelp: "give help",
    longHelp: " [ <command> [ <command> ... ] ]\n" +
      "  Give general help if no commands are specified.\n" +
      "  If one or more commands are specified, give specific help on\n" +
      "  those particular commands.\n",
    run: cmdHelp,
  },
  {
    name: "lcd",
    listed: true,
    shortHelp: "change local working directory",
    longHelp: " <local-directory-name>\n" +
      "  Change the local working directory of the PSFTP program (the\n" +
      '  default location where the "get" command will save files).\n',
    run: cmdLcd,
  },
  {
    name: "lpwd",
    listed: true,
    shortHelp: "print local working directory",
    longHelp: "\n" +
      "  Print the local working directory of the PSFTP program (the\n" +
      '  default location where the "get" command will save files).\n',
    run: cmdLpwd,
  },
  { name: "ls", listed: true, shortHelp: "dir", run: cmdLs },
  {
    name: "mget",
    listed: true,
    shortHelp: "download multiple files at once",
    longHelp: " [ -r ] [ -- ] <filename-or-wildcard> [ <filename-or-wildcard>... ]\n" +
      "  Downloads many files from the server, storing each one under\n" +
      "  the same name it has on the server side. You can use wildcards\n" +
      '  such as "*.c" to specify lots of files at once.\n' +
      "  If -r specified, recursively fetch files and directories.\n",
    run: (s, w) => generalGet(s, w, false, true),
  },
  {
    name: "mkdir",
    listed: true,
    shortHelp: "create directories on the remote server",
    longHelp: " <directory-name> [ <directory-name>... ]\n" +
      "  Creates directories with the given names on the server.\n",
    run: cmdMkdir,
  },
  {
    name: "mput",
    listed: true,
    shortHelp: "upload multiple files at once",
    longHelp: " [ -r ] [ -- ] <filename-or-wildcard> [ <filename-or-wildcard>... ]\n" +
      "  Uploads many files to the server, storing each one under the\n" +
      "  same name it has on the client side. You can use wildcards\n" +
      '  such as "*.c" to specify lots of files at once.\n' +
      "  If -r specified, recursively store files and directories.\n",
    run: (s, w) => generalPut(s, w, false, true),
  },
  {
    name: "mv",
    listed: true,
    shortHelp: "move or rename file(s) on the remote server",
    longHelp: " <source> [ <source>... ] <destination>\n" +
      "  Moves or renames <source>(s) on the server to <destination>,\n" +
      "  also on the server.\n" +
      "  If <destination> specifies an existing directory, then <source>\n" +
      "  may be a wildcard, and multiple <source>s may be given; all\n" +
      "  source files are moved into <destination>.\n" +
      "  Otherwise, <source> must specify a single file, which is moved\n" +
      "  or renamed so that it is accessible under the name <destination>.\n",
    run: cmdMv,
  },
  {
    name: "open",
    listed: true,
    shortHelp: "connect to a host",
    longHelp: " [<user>@]<hostname> [<port>]\n" +
      "  Establishes an SFTP connection to a given host. Only usable\n" +
      "  when you are not already connected to a server.\n",
    run: cmdOpen,
  },
  {
    name: "put",
    listed: true,
    shortHelp: "upload a file from your local machine to the server",
    longHelp: " [ -r ] [ -- ] <filename> [ <remote-filename> ]\n" +
      "  Uploads a file to the server and stores it there under\n" +
      "  the same name, or under a different one if you supply the\n" +
      "  argument <remote-filename>.\n" +
      "  If -r specified, recursively store a directory.\n",
    run: (s, w) => generalPut(s, w, false, false),
  },
  {
    name: "pwd",
    listed: true,
    shortHelp: "print your remote working directory",
    longHelp: "\n  Print the current remote working directory for your SFTP session.\n",
    run: cmdPwd,
  },
  { name: "quit", listed: true, shortHelp: "bye", run: cmdQuit },
  {
    name: "reget",
    listed: true,
    shortHelp: "continue downloading files",
    longHelp: " [ -r ] [ -- ] <filename> [ <local-filename> ]\n" +
      '  Works exactly like the "get" command, but the local file\n' +
      "  must already exist. The download will begin at the end of the\n" +
      "  file. This is for resuming a download that was interrupted.\n" +
      '  If -r specified, resume interrupted "get -r".\n',
    run: (s, w) => generalGet(s, w, true, false),
  },
  { name: "ren", listed: true, shortHelp: "mv", run: cmdMv },
  { name: "rename", listed: false, shortHelp: "mv", run: cmdMv },
  {
    name: "reput",
    listed: true,
    shortHelp: "continue uploading files",
    longHelp: " [ -r ] [ -- ] <filename> [ <remote-filename> ]\n" +
      '  Works exactly like the "put" command, but the remote file\n' +
      "  must already exist. The upload will begin at the end of the\n" +
      "  file. This is for resuming an upload that was interrupted.\n" +
      '  If -r specified, resume interrupted "put -r".\n',
    run: (s, w) => generalPut(s, w, true, false),
  },
  { name: "rm", listed: true, shortHelp: "del", run: cmdRm },
  {
    name: "rmdir",
    listed: true,
    shortHelp: "remove directories on the remote server",
    longHelp: " <directory-name> [ <directory-name>... ]\n" +
      "  Removes the directory with the given name on the server.\n" +
      "  The directory will not be removed unless it is empty.\n" +
      "  Wildcards may be used to specify multiple directories.\n",
    run: cmdRmdir,
  },
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));

/** The names psftp knows, for completion or documentation. */
export const COMMAND_NAMES: readonly string[] = COMMANDS.map((c) => c.name);

/** The primary entry for a name (an alias's target), or undefined. */
function primary(name: string): CommandEntry | undefined {
  const c = BY_NAME.get(name);
  if (!c) return undefined;
  return c.longHelp === undefined ? BY_NAME.get(c.shortHelp) : c;
}

/** What "help" prints: the command list, or the long help of each named command. */
export function helpText(names: string[]): string {
  let out = "";
  if (names.length === 0) {
    const listed = COMMANDS.filter((c) => c.listed);
    const width = Math.max(...listed.map((c) => c.name.length)) + 2;
    for (const c of listed) out += c.name.padEnd(width) + primary(c.name)!.shortHelp + "\n";
    return out;
  }
  for (const name of names) {
    const c = BY_NAME.get(name);
    if (!c) out += `help: ${name}: command not found\n`;
    else out += c.name + primary(name)!.longHelp!;
  }
  return out;
}

/**
 * Runs one command line (sftp_getcmd's parsing, then the command). Throws FatalError when psftp
 * must stop (the connection died, a connection could not be made).
 */
export async function runCommandLine(s: PsftpSession, line: string): Promise<CommandResult> {
  const words = splitCommandLine(line);
  if (words.length === 0) return "ok";
  const c = BY_NAME.get(words[0]);
  if (!c) {
    s.print(`psftp: unknown command "${words[0]}"\n`);
    return "failed";
  }
  try {
    return await c.run(s, words);
  } catch (e) {
    throw s.fatal(e);
  }
}
