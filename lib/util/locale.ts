/**
 * The character set of the C library's locale, which PuTTY's tools follow: LC_ALL, else
 * LC_CTYPE, else LANG (an empty value counts as unset); no locale at all is "C", which is ASCII.
 */

export type EnvLookup = (name: string) => string | undefined;

/** The locale name the C library would pick for character types. */
export function ctypeLocale(env: EnvLookup): string {
  return env("LC_ALL") || env("LC_CTYPE") || env("LANG") || "C";
}

/** Whether that locale's characters are UTF-8 (en_GB.UTF-8, C.utf8, ...). */
export function localeIsUtf8(env: EnvLookup): boolean {
  return /\.utf-?8(@|$)/i.test(ctypeLocale(env));
}

let processUtf8: boolean | undefined;

/** localeIsUtf8 for this process's environment (read once). */
export function processLocaleIsUtf8(): boolean {
  processUtf8 ??= localeIsUtf8((name) => Deno.env.get(name));
  return processUtf8;
}
