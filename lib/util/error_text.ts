/**
 * The one line a user sees for an error: its message (errorText), or for OS errors the C
 * library's strerror() words, as PuTTY prints them (osErrorText). Deno's messages carry extras
 * (" (os error 2): readfile '/x'"); Node's have codes ("ECONNREFUSED").
 */

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
  ECONNREFUSED: "Connection refused",
  ECONNRESET: "Connection reset by peer",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
  ENETUNREACH: "Network is unreachable",
  EPIPE: "Broken pipe",
  EADDRINUSE: "Address already in use",
  EADDRNOTAVAIL: "Cannot assign requested address",
};

/** strerror() of an OS error from Deno or Node: "No such file or directory", "Connection refused", ... */
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

/** An error's message; anything else thrown, as a string. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The tool cannot go on (lost connection, protocol or security violation): PuTTY's bump() in
 * pscp, connection_fatal() in psftp. The message is the one line the front-end shows.
 */
export class FatalError extends Error {}
