/**
 * psftp (issue 4): the pure parts (command-line words and quoting as PuTTY's psftp splits them,
 * PuTTY's wildcards and local globbing, chmod modes, the line editor's state machine).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { quoteWord, splitCommandLine } from "../lib/psftp/command_line.ts";
import {
  compareNames,
  isWildcard,
  splitWildcardPath,
  wildcardMatch,
  WildcardSyntaxError,
  wildcardUnescape,
} from "../lib/psftp/wildcard.ts";
import { localGlob, localWildcardKind } from "../lib/psftp/local_glob.ts";
import { applyChmod, parseChmodMode } from "../lib/psftp/chmod_mode.ts";
import { LineEditor } from "../lib/psftp/line_editor.ts";

Deno.test("command line: words, quotes and doubled quotes as psftp splits them", () => {
  assert.deepEqual(
    splitCommandLine('firstword "second word" "this has ""quotes"" in" and""this""'),
    ["firstword", "second word", 'this has "quotes" in', 'and"this"'],
  );
  assert.deepEqual(splitCommandLine("  get\t a  b  "), ["get", "a", "b"]);
  assert.deepEqual(splitCommandLine(""), []);
  assert.deepEqual(splitCommandLine("   "), []);
  // A doubled quote is a literal quote even outside quotes; a lone quote at the end is empty.
  assert.deepEqual(splitCommandLine('put ""'), ["put", '"']);
  assert.deepEqual(splitCommandLine('put a "'), ["put", "a", ""]);
  assert.deepEqual(splitCommandLine('get a"b c"d'), ["get", "ab cd"]);
  // An unterminated quote runs to the end of the line.
  assert.deepEqual(splitCommandLine('get "a b'), ["get", "a b"]);
  // Backslashes are ordinary characters at this level.
  assert.deepEqual(splitCommandLine("rm a\\*b"), ["rm", "a\\*b"]);
  // The line ending is cut.
  assert.deepEqual(splitCommandLine("pwd\r\n"), ["pwd"]);
  assert.deepEqual(splitCommandLine("ls x\ry"), ["ls", "x"]);
  // "!" takes the rest of the line verbatim; "#" is a comment.
  assert.deepEqual(splitCommandLine('  !echo "a  b" >x'), ["!", 'echo "a  b" >x']);
  assert.deepEqual(splitCommandLine("!"), ["!", ""]);
  assert.deepEqual(splitCommandLine("  # get everything"), []);
  assert.deepEqual(splitCommandLine('get "#x" "!y"'), ["get", "#x", "!y"]);
});

Deno.test("command line: quoteWord round-trips through splitCommandLine", () => {
  const words = [
    "plain",
    "with space",
    'quo"te',
    '""',
    "",
    "tab\there",
    "-dash",
    "ünï",
    "#x",
    "!y",
  ];
  for (const w of words) {
    assert.deepEqual(splitCommandLine(`get ${quoteWord(w)}`), ["get", w], JSON.stringify(w));
  }
  assert.equal(quoteWord("plain"), "plain");
  assert.equal(quoteWord("a b"), 'a" "b');
  assert.deepEqual(splitCommandLine(`put ${quoteWord("")}`), ["put", ""]);
});

Deno.test("wildcards: PuTTY's wc_match", () => {
  const cases: [string, string, boolean][] = [
    ["*", "anything", true],
    ["*", ".hidden", true],
    ["*.c", "main.c", true],
    ["*.c", "main.h", false],
    ["*a", "parka", true],
    ["*a", "parks", false],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "aXbY", false],
    ["ab?", "abc", true],
    ["ab?", "ab", false],
    ["ab[cd]", "abd", true],
    ["ab[^cd]", "abe", true],
    ["ab[^cd]", "abc", false],
    ["ab[e-c]", "abd", true],
    ["ab\\*", "ab*", true],
    ["ab\\*", "abc", false],
    ["ü*", "ünï.txt", true],
    ["?nï.txt", "ünï.txt", true],
    ["**x", "abx", true],
    ["", "", true],
    ["", "a", false],
  ];
  for (const [w, t, want] of cases) assert.equal(wildcardMatch(w, t), want, `${w} ~ ${t}`);
  assert.throws(() => wildcardMatch("ab\\", "abc"), WildcardSyntaxError);
  assert.throws(() => wildcardMatch("ab[", "abc"), WildcardSyntaxError);
  assert.throws(() => wildcardMatch("ab[c-]", "abb"), WildcardSyntaxError);
});

Deno.test("wildcards: unescaping, detection, path splitting and name order", () => {
  assert.equal(wildcardUnescape("a\\*b"), "a*b");
  assert.equal(wildcardUnescape("plain name"), "plain name");
  assert.equal(wildcardUnescape("trailing\\"), "trailing");
  assert.equal(wildcardUnescape("a*"), undefined);
  assert.equal(isWildcard("x]"), true);
  assert.equal(isWildcard("x\\]"), false);
  assert.deepEqual(splitWildcardPath("dir/sub/*.txt"), { dir: "dir/sub", wildcard: "*.txt" });
  assert.deepEqual(splitWildcardPath("*.txt"), { dir: "", wildcard: "*.txt" });
  assert.deepEqual(splitWildcardPath("/x*"), { dir: "", wildcard: "x*" });
  assert.deepEqual(splitWildcardPath("d*/x*"), { dir: undefined, wildcard: "x*" });
  // strcmp order: "-" < "." < "A" < "a" < "é" < "😀"
  const names = ["😀", "a", "é", ".", "A", "-dash", "\uffff"];
  assert.deepEqual(names.sort(compareNames), ["-dash", ".", "A", "a", "é", "\uffff", "😀"]);
});

Deno.test("local wildcards: glob(3) rules", () => {
  const dir = Deno.makeTempDirSync({ prefix: "psftp-glob-" });
  try {
    for (const f of ["b.bin", "a.bin", ".hidden.bin", "c.txt", "sub/x.bin", "sub2/y.bin"]) {
      Deno.mkdirSync(join(dir, f, ".."), { recursive: true });
      Deno.writeTextFileSync(join(dir, f), f);
    }
    Deno.writeTextFileSync(join(dir, "lit*eral"), "");
    assert.deepEqual(localGlob(`${dir}/*.bin`), [`${dir}/a.bin`, `${dir}/b.bin`]);
    assert.deepEqual(localGlob(`${dir}/.*.bin`), [`${dir}/.hidden.bin`]);
    assert.deepEqual(localGlob(`${dir}/sub*/*.bin`), [`${dir}/sub/x.bin`, `${dir}/sub2/y.bin`]);
    assert.deepEqual(localGlob(`${dir}/[!ab]*`), [
      `${dir}/c.txt`,
      `${dir}/lit*eral`,
      `${dir}/sub`,
      `${dir}/sub2`,
    ]);
    assert.deepEqual(localGlob(`${dir}/*.none`), []);
    assert.equal(localWildcardKind(`${dir}/lit*eral`), "filename");
    assert.equal(localWildcardKind(`${dir}/*.bin`), "wildcard");
    assert.equal(localWildcardKind(`${dir}/*.none`), "nonexistent");
    const here = Deno.cwd();
    Deno.chdir(dir);
    try {
      assert.deepEqual(localGlob("*.txt"), ["c.txt"]);
    } finally {
      Deno.chdir(here);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("chmod modes: octal and [ugoa][+-=][rwxst] as psftp parses them", () => {
  const apply = (mode: string, perms: number) => {
    const c = parseChmodMode(mode);
    if ("error" in c) throw new Error(c.error);
    return applyChmod(perms, c);
  };
  assert.equal(apply("600", 0o100644), 0o100600);
  assert.equal(apply("0", 0o100644), 0o100000);
  assert.equal(apply("u+x,g+w", 0o600), 0o720);
  assert.equal(apply("a-r", 0o720), 0o320);
  assert.equal(apply("go-r", 0o644), 0o600);
  assert.equal(apply("u+s", 0o600), 0o4600);
  assert.equal(apply("+t", 0o4600), 0o5600);
  assert.equal(apply("g=rx", 0o777), 0o757);
  assert.equal(apply("ug+w", 0o444), 0o664);
  const err = (mode: string) => {
    const c = parseChmodMode(mode);
    assert.ok("error" in c, mode);
    return c.error;
  };
  assert.equal(err("9"), "chmod: numeric file modes should contain digits 0-7 only");
  assert.equal(
    err("foo"),
    "chmod: file mode 'foo' contains unrecognised user/group/other specifier 'f'",
  );
  assert.equal(err("u+r,g"), "chmod: file mode 'g' is incomplete");
  assert.equal(err("o="), "chmod: file mode 'o=' is incomplete");
  assert.equal(err("u+"), "chmod: file mode 'u+' is incomplete");
  assert.equal(err("u+q"), "chmod: file mode 'u+q' contains unrecognised permission specifier 'q'");
  assert.equal(
    err("a+s"),
    "chmod: file mode 'a+s': set[ug]id bit should be used with exactly one of u or g only",
  );
  assert.equal(
    err("+r"),
    "chmod: file mode '+r' contains no user/group/other specifier and permissions other than 't' ",
  );
});

/** Feeds keys one chunk at a time; returns the finished lines and whether input ended. */
function type(ed: LineEditor, ...chunks: string[]) {
  const lines: string[] = [];
  let eof = false;
  let screen = ed.begin("psftp> ").output;
  for (const c of chunks) {
    let r = ed.feed(c);
    for (;;) {
      screen += r.output;
      if (r.eof) eof = true;
      if (r.line === undefined) break;
      lines.push(r.line);
      r = ed.begin("psftp> ");
    }
  }
  return { lines, eof, screen };
}

Deno.test("line editor: typing, cursor movement and deletion", () => {
  const ed = new LineEditor();
  assert.deepEqual(type(ed, "pwd\r").lines, ["pwd"]);
  // Left twice, insert, Home, Delete, End, Backspace.
  assert.deepEqual(
    type(ed, "lsx", "\x1b[D\x1b[D", "Z", "\x01", "\x1b[3~", "\x05", "\x7f", "\r").lines,
    [
      "Zs",
    ],
  );
  // ^U kills to the start, ^K to the end, ^W the previous word.
  assert.deepEqual(type(ed, "garbage", "\x15", "get a\r").lines, ["get a"]);
  assert.deepEqual(type(ed, "get abc", "\x02\x02", "\x0b", "\r").lines, ["get a"]);
  assert.deepEqual(type(ed, "get one two", "\x17", "three\r").lines, ["get one three"]);
  // ^B/^F and the ESC O forms.
  assert.deepEqual(type(ed, "ac", "\x02", "b", "\x06", "d", "\x1bOD", "\x1bOC", "!\r").lines, [
    "abcd!",
  ]);
  // Unicode is edited by code point.
  assert.deepEqual(type(ed, "get ünï😀", "\x7f", "\x1b[D", "\x7f", "i\r").lines, ["get üiï"]);
});

Deno.test("line editor: history with up and down", () => {
  const ed = new LineEditor();
  type(ed, "cd /tmp\r", "pwd\r", "pwd\r", "   \r");
  assert.deepEqual(ed.history, ["cd /tmp", "pwd"]); // no duplicates in a row, no blank lines
  // Up re-runs the last command; up twice the one before.
  assert.deepEqual(type(ed, "\x1b[A\r").lines, ["pwd"]);
  assert.deepEqual(type(ed, "\x1b[A\x1b[A\r").lines, ["cd /tmp"]);
  // Past the oldest entry stays there; down returns to the line being typed.
  assert.deepEqual(type(ed, "ls", "\x1b[A\x1b[A\x1b[A\x1b[A", "\x1b[B\x1b[B\x1b[B", "\r").lines, [
    "ls",
  ]);
  // An edited recalled line is run as edited; the history entry itself is unchanged.
  assert.deepEqual(type(ed, "\x10", "\x7fwd\r").lines, ["lwd"]);
  assert.deepEqual(ed.history, ["cd /tmp", "pwd", "cd /tmp", "ls", "lwd"]);
  // Bounded history.
  const small = new LineEditor({ maxHistory: 2 });
  type(small, "a\r", "b\r", "c\r");
  assert.deepEqual(small.history, ["b", "c"]);
});

Deno.test("line editor: ^C, ^D, typed-ahead lines, split escapes", () => {
  const ed = new LineEditor();
  // ^C abandons the line and shows a fresh prompt.
  const c = type(ed, "get junk", "\x03", "pwd\r");
  assert.deepEqual(c.lines, ["pwd"]);
  assert.match(c.screen, /\^C\r\npsftp> /);
  // ^D on an empty line ends input; elsewhere it deletes under the cursor.
  assert.equal(type(ed, "\x04").eof, true);
  assert.deepEqual(type(ed, "ab", "\x02", "\x04", "\r").lines, ["a"]);
  // A pasted block: each line is handed out in turn, after its own prompt.
  const p = type(ed, "pwd\nlpwd\r\nls\n");
  assert.deepEqual(p.lines, ["pwd", "lpwd", "ls"]);
  assert.equal(p.screen.split("\r\n").length - 1, 3);
  assert.ok(p.screen.endsWith("psftp> "));
  // An escape sequence split across reads.
  assert.deepEqual(type(ed, "xy", "\x1b", "[", "D", "Z\r").lines, ["xZy"]);
  // Unknown sequences and control characters are ignored.
  assert.deepEqual(type(ed, "a\x1b[15~\x07b\r").lines, ["ab"]);
});

Deno.test("line editor: rendering on the terminal", () => {
  const ed = new LineEditor({ columns: 20 });
  let r = ed.begin("psftp> ");
  assert.equal(r.output, "psftp> ");
  r = ed.feed("ab");
  // Each change redraws the line and clears what followed.
  assert.ok(r.output.endsWith("psftp> ab\x1b[J\r\x1b[9C"), JSON.stringify(r.output));
  r = ed.feed("\x1b[D");
  assert.ok(r.output.endsWith("\r\x1b[8C"), JSON.stringify(r.output));
  // A line longer than the terminal wraps; redrawing goes back up to the prompt's row.
  r = ed.feed("0123456789012345");
  r = ed.feed("\x01");
  assert.ok(r.output.startsWith("\r\x1b[1A"), JSON.stringify(r.output));
  assert.ok(r.output.endsWith("\x1b[1A\r\x1b[7C"), JSON.stringify(r.output));
  r = ed.feed("\r");
  assert.equal(r.line, "a0123456789012345b");
  assert.ok(r.output.endsWith("\r\n"));
});
