/**
 * Our own /etc/passwd entry (getpwuid(getuid())): PuTTY names the sharing socket's directory
 * after the user name and looks for its files under the home directory.
 */

let passwd: { name: string; home: string } | null | undefined;

/**
 * getpwuid(getuid()) from /etc/passwd, without node:os (whose first import costs milliseconds of
 * start-up). Users only known to NSS (LDAP etc.) are not found; callers fall back to $USER.
 */
export function passwdEntry(): { name: string; home: string } | undefined {
  if (passwd === undefined) {
    passwd = null;
    try {
      const uid = Deno.uid();
      for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
        const f = line.split(":");
        if (f.length >= 7 && f[2] === String(uid)) {
          passwd = { name: f[0], home: f[5] };
          break;
        }
      }
    } catch {
      // no passwd file, or no permission to ask for the uid
    }
  }
  return passwd ?? undefined;
}
