/**
 * Splitting a psftp command line into words, exactly as PuTTY's psftp (sftp_getcmd) does:
 *
 * - leading spaces and tabs are skipped; a line starting with "!" is two words: "!" and the rest
 *   of the line verbatim (for the local shell); a line starting with "#" is a comment (no words);
 * - otherwise words are separated by spaces and tabs; double quotes are removed but make spaces
 *   inside them part of the word; a doubled double quote ("") is a literal quote, inside or
 *   outside quotes. No backslash escapes (a backslash is an ordinary character here; wildcard
 *   escaping with backslashes happens later, per command).
 *
 *   firstword "second word" "this has ""quotes"" in" and""this""
 *   -> firstword | second word | this has "quotes" in | and"this"
 */

/** The words of one command line (without its line ending). */
export function splitCommandLine(line: string): string[] {
  const end = line.search(/[\r\n]/);
  if (end >= 0) line = line.slice(0, end);
  let p = 0;
  while (p < line.length && (line[p] === " " || line[p] === "\t")) p++;
  if (line[p] === "!") return ["!", line.slice(p + 1)];
  if (line[p] === "#") return [];
  const words: string[] = [];
  for (;;) {
    while (p < line.length && (line[p] === " " || line[p] === "\t")) p++;
    if (p >= line.length) break;
    let word = "";
    let quoting = false;
    while (p < line.length) {
      const c = line[p];
      if (!quoting && (c === " " || c === "\t")) break;
      if (c === '"' && line[p + 1] === '"') {
        word += '"';
        p += 2;
      } else if (c === '"') {
        quoting = !quoting;
        p++;
      } else {
        word += c;
        p++;
      }
    }
    if (p < line.length) p++; // the separating blank
    words.push(word);
  }
  return words;
}

/**
 * A word written so that splitCommandLine() reads it back unchanged (not as the first word of a
 * line when it starts with "!" or "#"). Quotes are doubled; the stretch from the first to the last
 * blank is put in quotes. (A run of quote characters is read greedily in pairs, so two toggling
 * quotes must never meet: they would read as one literal quote.) An empty word can only be
 * written at the end of a line: a lone quote.
 */
export function quoteWord(word: string): string {
  if (word === "") return '"';
  const first = word.search(/[ \t]/);
  if (first < 0) return word.replace(/"/g, '""');
  const last = Math.max(word.lastIndexOf(" "), word.lastIndexOf("\t"));
  const esc = (s: string) => s.replace(/"/g, '""');
  return esc(word.slice(0, first)) + '"' + esc(word.slice(first, last + 1)) + '"' +
    esc(word.slice(last + 1));
}
