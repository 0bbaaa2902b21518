/**
 * psftp's chmod mode argument (sftp_cmd_chmod): an octal number, or comma-separated
 * [ugoa]*[-+=][rwxst]+ clauses. The result is applied as `(perms & ~clear) ^ xor`.
 * Errors are PuTTY's messages, without trailing newline.
 */

export interface ChmodChange {
  clear: number;
  xor: number;
}

/** Parses a mode; returns the change or PuTTY's error message. */
export function parseChmodMode(mode: string): ChmodChange | { error: string } {
  if (mode[0] >= "0" && mode[0] <= "9") {
    if (!/^[0-7]*$/.test(mode)) {
      return { error: "chmod: numeric file modes should contain digits 0-7 only" };
    }
    // sscanf("%o") into an unsigned int, masked with 07777.
    const value = Number(BigInt("0o" + mode) & 0xffffffffn);
    return { clear: 0o7777, xor: value & 0o7777 };
  }
  let clear = 0;
  let xor = 0;
  let p = 0;
  while (p < mode.length) {
    const begin = p;
    const clauseEnd = mode.indexOf(",", begin);
    const clause = mode.slice(begin, clauseEnd < 0 ? mode.length : clauseEnd);
    let subset = 0;
    while (p < mode.length && !",+-=".includes(mode[p])) {
      switch (mode[p]) {
        case "u":
          subset |= 0o4700;
          break;
        case "g":
          subset |= 0o2070;
          break;
        case "o":
          subset |= 0o0007;
          break;
        case "a":
          subset |= 0o6777;
          break;
        default:
          return {
            error: `chmod: file mode '${clause}' contains unrecognised user/group/other ` +
              `specifier '${mode[p]}'`,
          };
      }
      p++;
    }
    const incomplete = { error: `chmod: file mode '${clause}' is incomplete` };
    if (p >= mode.length || mode[p] === ",") return incomplete;
    const action = mode[p++];
    if (p >= mode.length || mode[p] === ",") return incomplete;
    let perms = 0;
    while (p < mode.length && mode[p] !== ",") {
      switch (mode[p]) {
        case "r":
          perms |= 0o444;
          break;
        case "w":
          perms |= 0o222;
          break;
        case "x":
          perms |= 0o111;
          break;
        case "t":
          perms |= 0o1000;
          subset |= 0o1000;
          break;
        case "s":
          if ((subset & 0o6777) !== 0o4700 && (subset & 0o6777) !== 0o2070) {
            return {
              error: `chmod: file mode '${clause}': set[ug]id bit should be used with exactly ` +
                "one of u or g only",
            };
          }
          perms |= 0o6000;
          break;
        default:
          return {
            error: `chmod: file mode '${clause}' contains unrecognised permission specifier ` +
              `'${mode[p]}'`,
          };
      }
      p++;
    }
    if (!(subset & 0o6777) && (perms & ~subset)) {
      return {
        error: `chmod: file mode '${clause}' contains no user/group/other specifier and ` +
          "permissions other than 't' ",
      };
    }
    perms &= subset;
    if (action === "+") {
      clear |= perms;
      xor |= perms;
    } else if (action === "-") {
      clear |= perms;
      xor &= ~perms;
    } else {
      clear |= subset;
      xor |= perms;
    }
    if (p < mode.length) p++; // the comma
  }
  return { clear, xor };
}

/** The permissions after applying a change (only the low 12 bits change). */
export function applyChmod(permissions: number, change: ChmodChange): number {
  return ((permissions & ~change.clear) ^ change.xor) >>> 0;
}
