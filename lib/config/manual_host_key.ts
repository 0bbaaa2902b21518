/**
 * -hostkey arguments as PuTTY checks them (utils/validate_manual_hostkey.c): a fingerprint
 * (SHA256:... or MD5 hex pairs) or a whole public key blob in base64, in PuTTY's canonical form.
 */

const B64_NOEQ = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/";

function spanOf(s: string, set: string, from = 0): number {
  let n = 0;
  while (from + n < s.length && set.includes(s[from + n])) n++;
  return n;
}

function b64val(c: string): number {
  if (c === "=") return -1;
  const v = B64_NOEQ.indexOf(c);
  // B64_NOEQ is ordered 0-9 a-z A-Z + /; map to the real base64 alphabet values.
  if (v < 0) return -2;
  if (v < 10) return v + 52;
  if (v < 36) return v - 10 + 26;
  if (v < 62) return v - 36;
  return v; // '+' = 62, '/' = 63
}

/** base64_decode_atom(): the bytes of one 4-character atom ([] if invalid). */
function decodeAtom(atom: string): number[] {
  const v = [...atom].map(b64val);
  if (v.length < 4 || v.some((x) => x === -2) || v[0] === -1 || v[1] === -1) return [];
  if (v[2] === -1 && v[3] !== -1) return [];
  const len = v[3] !== -1 ? 3 : v[2] !== -1 ? 2 : 1;
  const word = (v[0] << 18) | (v[1] << 12) | ((v[2] & 0x3f) << 6) | (v[3] & 0x3f);
  return [(word >> 16) & 0xff, (word >> 8) & 0xff, word & 0xff].slice(0, len);
}

/**
 * validate_manual_hostkey(): the canonical form of a -hostkey argument, or undefined if it is not
 * one. Accepts (as any whitespace-separated word) "SHA256:<43 base64 chars>", an MD5 fingerprint
 * "aa:bb:...:pp" with or without "MD5:" (canonically lower case, no prefix), or a base64 SSH-2
 * public key blob (e.g. pasted from an OpenSSH .pub line).
 */
export function canonicalManualHostKey(spec: string): string | undefined {
  for (const word of spec.split(/[ \t]+/)) {
    if (word === "") continue;
    if (word.startsWith("SHA256:") && spanOf(word, B64_NOEQ, 7) === 43) return word.slice(0, 50);
    const md5 = word.startsWith("MD5:") ? word.slice(4) : word;
    if (/^([0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}$/.test(md5)) return md5.toLowerCase();
    const q = word.replace(/[\r\n]/g, "");
    if (q.length % 4 === 0 && q.length > 8 && spanOf(q, B64_NOEQ + "=") === q.length) {
      const decoded = [...decodeAtom(q.slice(0, 4))];
      if (decoded.length < 3) continue;
      decoded.push(...decodeAtom(q.slice(4, 8)));
      if (decoded.length < 4) continue;
      const alglen = ((decoded[0] << 24) | (decoded[1] << 16) | (decoded[2] << 8) | decoded[3]) >>>
        0;
      if (alglen > 64) continue;
      if (q.length < Math.floor((alglen + 4 + 2) / 3)) continue;
      return q;
    }
  }
  return undefined;
}
