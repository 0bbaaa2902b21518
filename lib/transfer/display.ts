/**
 * Text for pscp's and psftp's messages: server-supplied text made safe to print (PuTTY's
 * stripctrl, so a file name or the server's stderr can't send escape sequences to the terminal),
 * local errors as strerror() words, and any error's message.
 */

import { processLocaleIsUtf8 } from "../locale.ts";

/**
 * Drops control characters (C0 except newline, DEL, C1) and lone surrogates, as PuTTY's
 * stripctrl does in a UTF-8 locale (without permit_cr, as pscp and psftp use it: carriage
 * returns and tabs go too). In any other locale (the C locale when none is set) every non-ASCII
 * character goes as well, as the C library can't decode it there and stripctrl drops it.
 */
export function printable(text: string, utf8 = processLocaleIsUtf8()): string {
  const unprintable = utf8 ? /\p{Cc}|\p{Cs}/gu : /[^\n\x20-\x7e]/gu;
  return text.replace(unprintable, (c) => (c === "\n" ? c : ""));
}

const STRERROR: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EEXIST: "File exists",
  ENOTEMPTY: "Directory not empty",
  ENOSPC: "No space left on device",
  EROFS: "Read-only file system",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  EBUSY: "Device or resource busy",
  EIO: "Input/output error",
  EXDEV: "Invalid cross-device link",
  EMFILE: "Too many open files",
  EINVAL: "Invalid argument",
};

/** strerror() of a Deno file-system error: "No such file or directory", ... */
export function osErrorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: string }).code;
    if (code && STRERROR[code]) return STRERROR[code];
    // Deno's messages start with the strerror text: "No such file or directory (os error 2)".
    const m = /^(.*?) \(os error \d+\)/.exec(e.message);
    if (m) return m[1];
    return e.message;
  }
  return String(e);
}

/** The message of anything thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
