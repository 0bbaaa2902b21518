/**
 * Server-supplied text made safe to print in pscp's and psftp's messages (PuTTY's stripctrl, so
 * a file name or the server's stderr can't send escape sequences to the terminal).
 */

import { processLocaleIsUtf8 } from "./locale.ts";

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
