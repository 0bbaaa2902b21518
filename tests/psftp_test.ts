/**
 * psftp: the pure parts (command-line words and quoting as PuTTY's psftp splits them,
 * PuTTY's wildcards and local globbing, chmod modes, the line editor's state machine).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { quoteWord, splitCommandLine } from "../lib/psftp/command_line.ts";
import {
  isWildcard,
  remoteNameMatches,
  splitWildcardPath,
  WildcardError,
  wildcardMatch,
  wildcardUnescape,
} from "../lib/files/wildcard.ts";
import { compareNames } from "../lib/files/paths.ts";
import { localGlob, localWildcardKind } from "../lib/psftp/local_glob.ts";
import { applyChmod, parseChmodMode } from "../lib/psftp/chmod_mode.ts";
import { LineEditor } from "../lib/psftp/line_editor.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { loginArgs, passwdIds, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startUpstream, stopUpstream, upstreamId } from "./fixtures/upstream.ts";
import {
  collect,
  ourShellCommand,
  runOnPty,
  runOurs,
  runReal,
  type RunResult,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";

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
  assert.throws(() => wildcardMatch("ab\\", "abc"), WildcardError);
  assert.throws(() => wildcardMatch("ab[", "abc"), WildcardError);
  assert.throws(() => wildcardMatch("ab[c-]", "abb"), WildcardError);
  // psftp, like PuTTY's, takes a malformed pattern as matching everything.
  assert.equal(remoteNameMatches("a[", "ab"), true);
  assert.equal(remoteNameMatches("a*", "b"), false);
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
  // Typing at the end of the line is just echoed.
  r = ed.feed("ab");
  assert.equal(r.output, "ab");
  r = ed.feed("\x1b[D");
  assert.ok(r.output.endsWith("\r\x1b[8C"), JSON.stringify(r.output));
  // Other changes redraw the line, clear what followed and put the cursor back.
  r = ed.feed("X");
  assert.equal(r.output, "\rpsftp> aXb\x1b[J\r\x1b[9C");
  r = ed.feed("\x7f");
  assert.equal(r.output, "\rpsftp> ab\x1b[J\r\x1b[8C");
  // A line longer than the terminal wraps; redrawing goes back up to the prompt's row.
  r = ed.feed("0123456789012345");
  r = ed.feed("\x01");
  assert.ok(r.output.startsWith("\r\x1b[1A"), JSON.stringify(r.output));
  assert.ok(r.output.endsWith("\x1b[1A\r\x1b[7C"), JSON.stringify(r.output));
  r = ed.feed("\r");
  assert.equal(r.line, "a0123456789012345b");
  assert.ok(r.output.endsWith("\r\n"));
});

// ---------------------------------------------------------------------------------------------
// End to end: our psftp (and PuTTY 0.78's) against OpenSSH's internal-sftp on loopback.

const opts = { sanitizeOps: false, sanitizeResources: false };
/** PuTTY prints names through a locale-dependent sanitiser: give both a UTF-8 locale. */
const LOCALE = { LANG: "C.UTF-8" };

function psftpArgs(s: Sshd, ...extra: string[]): string[] {
  return loginArgs(s, ...extra);
}

function envFor(s: Sshd): Record<string, string> {
  return { ...s.env, ...LOCALE };
}

function randomBytes(n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
  return data;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every entry below `dir`: path, type, permission bits, content hash. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(dir, rel))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const st = await Deno.lstat(join(dir, p));
      const mode = ((st.mode ?? 0) & 0o7777).toString(8);
      if (st.isDirectory) {
        out.push(`${p}/ ${mode}`);
        await walk(p);
      } else {
        out.push(`${p} ${mode} ${await sha256(await Deno.readFile(join(dir, p)))}`);
      }
    }
  };
  await walk("");
  return out.sort();
}

const BLOB = randomBytes(200_000);

/** A local tree with awkward names (always the same contents). */
async function makeTree(root: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {
    "a.txt": new TextEncoder().encode("alpha\n"),
    "-dash": new TextEncoder().encode("leading dash\n"),
    "empty": new Uint8Array(0),
    "with space/b c.txt": new TextEncoder().encode("spaces\n"),
    "sub/ünï cödé.txt": new TextEncoder().encode("unicode\n"),
    "sub/deeper/blob.bin": BLOB,
  };
  for (const [name, data] of Object.entries(files)) {
    await Deno.mkdir(join(root, name, ".."), { recursive: true });
    await Deno.writeFile(join(root, name), data);
  }
  return files;
}

/** Runs our psftp (or PuTTY's) on a batch script. */
async function batch(
  which: "ours" | "real",
  s: Sshd,
  script: string,
  flags: string[] = ["-bc"],
): Promise<RunResult> {
  const file = await Deno.makeTempFile({ dir: s.dir, suffix: ".psftp" });
  await Deno.writeTextFile(file, script);
  const args = psftpArgs(s, "-b", file, ...flags);
  // A guard against a hang, not a speed limit: 400 MB through one script on a loaded machine.
  const opts = { env: envFor(s), timeoutMs: 180000 };
  return which === "ours" ? await runOurs("psftp", args, opts) : await runReal("psftp", args, opts);
}

/** What PuTTY's psftp says on stderr once connected (psftp is an interactive tool to PuTTY). */
function usingUser(s: Sshd): string {
  return `Using username "${s.user}".\n`;
}

/** A fresh local directory. */
function localDir(s: Sshd, name: string): string {
  const dir = join(s.dir, "local", name);
  Deno.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Files in `dir` with our temporary names (".<name>.<random>.psftp"). */
function temporaries(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    /^\..+\.[0-9a-f]{8}\.psftp$/.test(n)
  );
}

Deno.test("psftp batch mode against OpenSSH", opts, async (t) => {
  const s = await startSshd();
  try {
    await t.step("a 200 MB file up and back down, by checksum", async () => {
      const remote = await s.userDir("big-roundtrip");
      const local = localDir(s, "big-roundtrip");
      const big = join(local, "big.bin");
      const made = await new Deno.Command("sh", {
        args: ["-c", `head -c 209715200 /dev/urandom > '${big}'`],
      }).output();
      assert.ok(made.success);
      const r = await batch(
        "ours",
        s,
        [
          `lcd ${quoteWord(local)}`,
          `cd ${quoteWord(remote)}`,
          "put big.bin",
          "get big.bin back.bin",
        ]
          .join("\n") + "\n",
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const sum = async (path: string) => {
        const out = await new Deno.Command("sha256sum", { args: [path], stdout: "piped" }).output();
        return new TextDecoder().decode(out.stdout).split(" ")[0];
      };
      const want = await sum(big);
      assert.equal(await sum(join(remote, "big.bin")), want, "uploaded intact");
      assert.equal(await sum(join(local, "back.bin")), want, "downloaded intact");
      await Deno.remove(big);
      await Deno.remove(join(local, "back.bin"));
    });

    await t.step("upload and download a tree with odd names; ls; chmod", async () => {
      const remote = await s.userDir("tree-roundtrip");
      const local = localDir(s, "tree-roundtrip");
      await makeTree(join(local, "tree"));
      const r = await batch(
        "ours",
        s,
        [
          `lcd ${quoteWord(local)}`,
          `cd ${quoteWord(remote)}`,
          "put -r tree",
          "ls tree",
          'chmod 640 "tree/with space/b c.txt"',
          "chmod u+x,g+w tree/-dash",
          "chmod go-rx tree/sub",
          "get -r -- tree back",
          "get tree/-dash dash-copy",
          'get "tree/sub/ünï cödé.txt"',
        ].join("\n") + "\n",
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stderr, usingUser(s), "nothing but what PuTTY's psftp says too");
      const tree = await snapshot(join(local, "tree"));
      // chmod changed the remote copies; the downloads brought the new modes back.
      const remoteTree = await snapshot(join(remote, "tree"));
      const expected = tree.map((l) =>
        l.replace(/^(with space\/b c\.txt) 644/, "$1 640").replace(/^(-dash) 644/, "$1 764")
          .replace(/^(sub\/) 755/, "$1 700")
      );
      assert.deepEqual(remoteTree, expected);
      // Locally, new files get the remote modes less the umask, as PuTTY's do, and directories
      // are made afresh (0777 less the umask).
      const umask = process.umask();
      const masked = (m: number) => (m & ~umask).toString(8);
      assert.deepEqual(
        await snapshot(join(local, "back")),
        expected.map((l) =>
          l.replace(/^(-dash) 764/, `$1 ${masked(0o764)}`).replace(
            /^(sub\/) 700/,
            `$1 ${masked(0o777)}`,
          )
        ),
      );
      assert.match(r.stdout, /^local:tree\/-dash => remote:.*\/tree\/-dash$/m);
      assert.match(
        r.stdout,
        /^remote:.*\/tree\/sub\/ünï cödé\.txt => local:back\/sub\/ünï cödé\.txt$/m,
      );
      assert.match(r.stdout, /^-rw-r--r-- .* with space$|^drwx.* with space$/m);
      assert.match(r.stdout, /tree\/-dash: 0644 -> 0764$/m);
      assert.equal(
        await Deno.readTextFile(join(local, "dash-copy")),
        "leading dash\n",
      );
      assert.equal(await Deno.readTextFile(join(local, "ünï cödé.txt")), "unicode\n");
      assert.deepEqual(temporaries(local), []);
    });

    await t.step("reget and reput resume partial files", async () => {
      const remote = await s.userDir("resume");
      const local = localDir(s, "resume");
      const data = randomBytes(300_000);
      await Deno.writeFile(join(remote, "src.bin"), data);
      await Deno.writeFile(join(local, "partial.bin"), data.subarray(0, 100_000));
      await Deno.writeFile(join(local, "up.bin"), data);
      await Deno.writeFile(join(remote, "up-partial.bin"), data.subarray(0, 123_456));
      const [uid, gid] = passwdIds(s.user);
      await Deno.chown(join(remote, "up-partial.bin"), uid, gid);
      const r = await batch(
        "ours",
        s,
        `lcd ${local}\ncd ${remote}\nreget src.bin partial.bin\nreput up.bin up-partial.bin\n`,
      );
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.stdout, /^reget: restarting at file position 100000$/m);
      assert.match(r.stdout, /^reput: restarting at file position 123456$/m);
      assert.equal(
        await sha256(await Deno.readFile(join(local, "partial.bin"))),
        await sha256(data),
      );
      assert.equal(
        await sha256(await Deno.readFile(join(remote, "up-partial.bin"))),
        await sha256(data),
      );
      // reget needs the local file to exist.
      const missing = await batch(
        "ours",
        s,
        `lcd ${local}\ncd ${remote}\nreget src.bin nope.bin\n`,
      );
      assert.equal(missing.code, 2);
      assert.match(missing.stdout, /^local: unable to open nope\.bin$/m);
    });

    await t.step("a failing command ends the batch with status 2; -be carries on", async () => {
      const script = "pwd\nget /no/such/file\npwd\n";
      const stop = await batch("ours", s, script, []);
      assert.equal(stop.code, 2);
      assert.equal(
        stop.stdout,
        `Remote working directory is /home/${s.user}\nRemote directory is /home/${s.user}\n` +
          "/no/such/file: open for read: no such file or directory\n",
      );
      const on = await batch("ours", s, script, ["-be"]);
      assert.equal(on.code, 0);
      assert.equal(on.stdout.split("Remote directory is").length - 1, 2);
      const noFile = await runOurs("psftp", psftpArgs(s, "-b", join(s.dir, "none")), {
        env: envFor(s),
      });
      assert.equal(noFile.code, 1);
      assert.match(noFile.stdout, /^Fatal: unable to open .*\/none$/m);
    });
  } finally {
    await s.stop();
  }
});

/** The same batch script through PuTTY's psftp and ours, each in its own directories. */
Deno.test("psftp: ours and PuTTY 0.78's give the same transcript and results", opts, async () => {
  const s = await startSshd();
  try {
    const script = (remote: string, local: string) =>
      [
        `lcd ${quoteWord(local)}`,
        `cd ${quoteWord(remote)}`,
        "# a comment, then a blank line",
        "",
        "pwd",
        "mkdir work",
        "mkdir work",
        "cd work",
        "put -r tree",
        "put -r -- tree tree2",
        "ls tree",
        "ls tree/*.txt",
        'dir "tree/sub/ü*"',
        "ls tree/*/x*",
        "put big.bin",
        'put big.bin "name with ""quotes"""',
        "reget big.bin partial.bin",
        "mput *.bin",
        "mput nomatch*",
        "put -x big.bin",
        "put",
        "chmod 600 big.bin",
        "chmod u+x,g+w big.bin",
        "chmod a-r big.bin",
        "chmod 644 big.bin",
        "chmod go-r *.bin",
        "chmod foo big.bin",
        "chmod u+s big.bin",
        "chmod +t big.bin",
        "put tree/a.txt big.bin",
        "chmod 9 big.bin",
        "chmod 644",
        "mv big.bin big2.bin",
        "mv big2.bin tree",
        "mv tree/big2.bin tree/a.txt tree2",
        "mv nothere x",
        "mv tree/*.txt nothere",
        "rm nomatch*",
        "rm tree/-dash",
        "del tree2/-dash tree2/empty",
        "get -r tree gotten",
        "mget tree/*.txt",
        "mget -r tree/w*",
        "reput big.bin rpartial.bin",
        "put tree/a.txt rpartial.bin",
        "reput big.bin rpartial.bin",
        "get nothere",
        "get tree/a.txt -dash",
        "get tree/a.txt keep.txt",
        "rmdir tree2",
        'rmdir "tree2/with space"',
        "cd /nonexist",
        "cd ..",
        "cd work",
        "pwd",
        "lpwd",
        "frobnicate",
        "help get mv exit nope",
        "help",
        "open example.org",
        // ("!" is tested on its own: PuTTY's stdout is block-buffered into a pipe, so a shell
        // command's output overtakes psftp's own.)
      ].join("\n") + "\n";
    const results: Record<string, { out: string; remote: string[]; local: string[] }> = {};
    for (const which of ["real", "ours"] as const) {
      const remote = await s.userDir(`cmp-${which}`);
      const local = localDir(s, `cmp-${which}`);
      const files = await makeTree(join(local, "tree"));
      await Deno.writeFile(join(local, "big.bin"), files["sub/deeper/blob.bin"]);
      // An existing file to overwrite (keeping its mode, as PuTTY's truncation does).
      await Deno.writeTextFile(join(local, "keep.txt"), "old\n", { mode: 0o600 });
      await Deno.chmod(join(local, "keep.txt"), 0o600);
      // A partial local copy to resume.
      await Deno.writeFile(join(local, "partial.bin"), files["sub/deeper/blob.bin"].slice(0, 5000));
      const r = await batch(which, s, script(remote, local), ["-bc", "-be"]);
      assert.equal(r.code, 0, `${which}: ${r.stdout}\n${r.stderr}`);
      results[which] = {
        // Directories differ by name; ls dates by the minute.
        out: r.stdout.replaceAll(remote, "REMOTE").replaceAll(local, "LOCAL")
          .replace(/ \w{3} [ \d]\d ( \d{4}|\d\d:\d\d) /g, " DATE "),
        remote: await snapshot(remote),
        local: await snapshot(local),
      };
    }
    assert.deepEqual(results.ours.out.split("\n"), results.real.out.split("\n"));
    assert.deepEqual(results.ours.remote, results.real.remote);
    assert.deepEqual(results.ours.local, results.real.local);
    // The script did what it says (not just the same thing twice).
    assert.match(results.ours.out, /^mkdir REMOTE\/work: failure$/m);
    assert.match(results.ours.out, /^REMOTE\/work\/big\.bin: 0644 -> 0600$/m);
    assert.match(results.ours.out, /^reget: restarting at file position 5000$/m);
    assert.match(results.ours.out, /^reput: restarting at file position 6$/m);
    assert.ok(results.ours.local.some((l) => /^keep\.txt 600 /.test(l)), results.ours.local.join());
    assert.ok(results.ours.remote.includes(
      'work/name with "quotes" 644 ' +
        results.ours.remote.find((l) => l.startsWith("work/tree/sub/deeper/blob.bin"))!.split(
          " ",
        )[2],
    ));
  } finally {
    await s.stop();
  }
});

Deno.test("psftp: exit statuses and transcripts match PuTTY's in every mode", opts, async () => {
  const s = await startSshd();
  try {
    const script = "pwd\n\nget /no/such\nls /no/such\npwd\n";
    const cases: [string, string[], string | undefined][] = [
      ["batch, stops at the failure", ["-b", "SCRIPT"], undefined],
      ["batch with -bc", ["-b", "SCRIPT", "-bc"], undefined],
      ["batch with -be", ["-b", "SCRIPT", "-be"], undefined],
      ["commands from a pipe", [], script],
      ["a pipe ending in a line without newline", [], "pwd\nclose\nclose\npwd"],
      ["quit", [], "pwd\nquit\npwd\n"],
    ];
    const file = join(s.dir, "script.psftp");
    await Deno.writeTextFile(file, script);
    for (const [what, extra, stdin] of cases) {
      const args = psftpArgs(s, ...extra.map((a) => (a === "SCRIPT" ? file : a)));
      const o = { env: envFor(s), stdin };
      const [ours, real] = [await runOurs("psftp", args, o), await runReal("psftp", args, o)];
      assert.equal(ours.stdout, real.stdout, what);
      assert.equal(ours.code, real.code, what);
    }
    // Without a host: the hint, and commands that need a connection say so.
    const noHost = ["-batch"];
    const o = { env: envFor(s), stdin: "pwd\nlpwd\nopen\nopen h 0\nbye\n" };
    const [ours, real] = [await runOurs("psftp", noHost, o), await runReal("psftp", noHost, o)];
    assert.equal(ours.stdout, real.stdout);
    assert.match(ours.stdout, /^psftp: no hostname specified; use "open host.name" to connect$/m);
    assert.equal(ours.code, 0);
    // Bad options: one line naming the problem and the help hint, status 1.
    for (const bad of [["-foo"], ["-b"], ["-L", "1:h:2"]]) {
      const [o2, r2] = [await runOurs("psftp", bad), await runReal("psftp", bad)];
      assert.equal(o2.stderr, r2.stderr, bad.join(" "));
      assert.equal(o2.code, 1);
      assert.equal(r2.code, 1);
    }
  } finally {
    await s.stop();
  }
});

/**
 * Starts our psftp on a batch script and, once `ready` holds, interrupts it: by default the
 * server's connections are killed, else `interrupt` acts on psftp's process.
 */
async function interruptMidway(
  s: Sshd,
  script: string,
  ready: () => boolean,
  interrupt: (child: Deno.ChildProcess) => void = () => s.killConnections(),
): Promise<RunResult> {
  const file = await Deno.makeTempFile({ dir: s.dir, suffix: ".psftp" });
  await Deno.writeTextFile(file, script);
  const child = spawnOurs("psftp", psftpArgs(s, "-b", file), { env: envFor(s) });
  const result = collect(child, { timeoutMs: 60000 });
  await waitFor(ready, 30000, "the transfer to be under way");
  interrupt(child);
  return await result;
}

function sizeOf(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

function growing(dir: string): boolean {
  return temporaries(dir).some((n) => sizeOf(join(dir, n)) > 4 * 1024 * 1024);
}

Deno.test("psftp: a server dropping mid-transfer leaves no partial target", opts, async (t) => {
  const s = await startSshd();
  try {
    const remote = await s.userDir("drop");
    // 2 GiB, sparse: far more than can arrive before the kill.
    const huge = join(remote, "huge.bin");
    await Deno.writeFile(huge, new Uint8Array(0));
    await Deno.truncate(huge, 2 ** 31);

    await t.step(
      "get: an existing target keeps its contents, a new one never appears",
      async () => {
        const local = localDir(s, "drop-get");
        await Deno.writeTextFile(join(local, "precious.bin"), "precious\n");
        for (const target of ["precious.bin", "fresh.bin"]) {
          const r = await interruptMidway(
            s,
            `lcd ${local}\nget ${huge} ${target}\n`,
            () => growing(local),
          );
          assert.equal(r.code, 1, r.stdout + r.stderr);
          assert.match(r.stderr.replace(usingUser(s), ""), /^FATAL ERROR: .+\n$/);
          assert.match(r.stdout, /remote:.*huge\.bin => local:/);
          assert.deepEqual(temporaries(local), [], "the temporary file was removed");
        }
        assert.equal(await Deno.readTextFile(join(local, "precious.bin")), "precious\n");
        assert.equal(sizeOf(join(local, "fresh.bin")), 0);
        assert.throws(() => Deno.statSync(join(local, "fresh.bin")), Deno.errors.NotFound);
      },
    );

    await t.step("get interrupted by ^C (SIGINT): temporary file removed, status 130", async () => {
      const local = localDir(s, "drop-sigint");
      const r = await interruptMidway(
        s,
        `lcd ${local}\nget ${huge} fresh.bin\n`,
        () => growing(local),
        (child) => child.kill("SIGINT"),
      );
      assert.equal(r.code, 130);
      assert.deepEqual([...Deno.readDirSync(local)], []);
    });

    await t.step("put interrupted by SIGINT: the remote temporary file is removed", async () => {
      const local = localDir(s, "drop-put-sigint");
      const big = join(local, "big.bin");
      await Deno.writeFile(big, new Uint8Array(0));
      await Deno.truncate(big, 2 ** 31);
      const r = await interruptMidway(
        s,
        `cd ${remote}\nput ${big} sigint.bin\n`,
        () => growing(remote),
        (child) => child.kill("SIGINT"),
      );
      assert.equal(r.code, 130);
      assert.deepEqual(temporaries(remote), []);
      assert.throws(() => Deno.statSync(join(remote, "sigint.bin")), Deno.errors.NotFound);
    });

    await t.step("put: the remote target is untouched", async () => {
      const local = localDir(s, "drop-put");
      const big = join(local, "big.bin");
      await Deno.writeFile(big, new Uint8Array(0));
      await Deno.truncate(big, 2 ** 31);
      await Deno.writeTextFile(join(remote, "old.bin"), "old contents\n");
      const [uid, gid] = passwdIds(s.user);
      await Deno.chown(join(remote, "old.bin"), uid, gid);
      for (const target of ["old.bin", "new.bin"]) {
        // (A killed upload leaves its temporary file on the server: nothing can remove it.)
        for (const n of temporaries(remote)) await Deno.remove(join(remote, n));
        const r = await interruptMidway(
          s,
          `cd ${remote}\nput ${big} ${target}\n`,
          () => growing(remote),
        );
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr.replace(usingUser(s), ""), /^FATAL ERROR: .+\n$/);
      }
      assert.equal(await Deno.readTextFile(join(remote, "old.bin")), "old contents\n");
      assert.throws(() => Deno.statSync(join(remote, "new.bin")), Deno.errors.NotFound);
    });
  } finally {
    await s.stop();
  }
});

for (const which of ["ours", "real"] as const) {
  Deno.test(`psftp -share through ${which} plink -share -N: one authentication`, opts, async () => {
    const s = await startSshd();
    const up = await startUpstream(s, which);
    try {
      const remote = await s.userDir("shared");
      const local = localDir(s, "shared");
      await makeTree(join(local, "tree"));
      // No -i and no -hostkey: a downstream needs neither.
      const args = ["-share", "-batch", "-v", "-P", String(s.port), `${s.user}@${s.host}`];
      const file = join(s.dir, "shared.psftp");
      await Deno.writeTextFile(
        file,
        `lcd ${local}\ncd ${remote}\nput -r tree\nget -r tree back\nls tree/sub\n`,
      );
      const r = await runOurs("psftp", [...args, "-b", file], { env: envFor(s) });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, /Using existing shared connection at /);
      assert.match(r.stdout, /ünï cödé\.txt/);
      assert.deepEqual(await snapshot(join(local, "back")), await snapshot(join(local, "tree")));
      assert.deepEqual(await snapshot(join(remote, "tree")), await snapshot(join(local, "tree")));
      assert.equal(await s.authCount(), 1);
    } finally {
      await stopUpstream(up);
      await s.stop();
    }
  });
}

Deno.test("psftp -share never becomes an upstream itself", opts, async () => {
  const s = await startSshd();
  try {
    const id = upstreamId(s);
    const marker = join(s.dir, "connected");
    const file = join(s.dir, "never.psftp");
    // While psftp is connected, "!" lets the test look for a sharing socket.
    await Deno.writeTextFile(file, `!touch ${marker}; sleep 1\npwd\n`);
    const child = spawnOurs("psftp", psftpArgs(s, "-share", "-b", file), { env: envFor(s) });
    const done = collect(child);
    await waitFor(() => existsSync(marker), 20000, "psftp to connect");
    assert.equal(await upstreamExists(id), false);
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Remote directory is/);
  } finally {
    await s.stop();
  }
});

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test(
  "psftp on a terminal: line editing and history; the terminal is restored",
  opts,
  async () => {
    const s = await startSshd();
    try {
      const cmd = ourShellCommand("psftp", psftpArgs(s));
      const count = (screen: string, text: string) => screen.split(text).length - 1;
      const steps: [(screen: string) => boolean, string][] = [
        [(sc) => sc.endsWith("psftp> "), "pwd\r"],
        // Up-arrow brings "pwd" back; Enter runs it again.
        [(sc) => count(sc, "Remote directory is") === 1 && sc.endsWith("psftp> "), "\x1b[A"],
        [(sc) => sc.lastIndexOf("psftp> pwd") > sc.lastIndexOf("Remote directory is"), "\r"],
        // Typing with a mistake, fixed with ^A and ^D (delete under the cursor).
        [(sc) => count(sc, "Remote directory is") === 2 && sc.endsWith("psftp> "), "Xlpwd"],
        [(sc) => sc.includes("Xlpwd"), "\x01\x04\r"],
        // ^C during a "!" command goes to that command, not to psftp.
        [(sc) => sc.includes("Current local directory is"), "!echo started; sleep 5\r"],
        [(sc) => /^started/m.test(sc), "\x03"],
        // ^C abandons a line; ^D on an empty line quits.
        [(sc) => /started[^]*psftp> $/.test(sc), "junk\x03"],
        [(sc) => /\^C\r*\n\r*psftp> $/.test(sc), "\x04"],
      ];
      let step = 0;
      const r = await runOnPty(
        `(${cmd}); echo EXIT=$?; stty -a | grep -o -- '-\\?icanon'`,
        (screen) => {
          if (step >= steps.length || !steps[step][0](screen)) return undefined;
          return steps[step++][1];
        },
        { env: envFor(s) },
      );
      assert.equal(step, steps.length, r.stdout);
      assert.equal(count(r.stdout, `Remote directory is /home/${s.user}`), 2);
      assert.match(r.stdout, /psftp> quit\r?\n/);
      assert.doesNotMatch(r.stdout, /unknown command/);
      assert.match(r.stdout, /EXIT=0/);
      assert.match(r.stdout, /\bicanon/);
      assert.doesNotMatch(r.stdout, /-icanon/);
    } finally {
      await s.stop();
    }
  },
);

Deno.test(
  "psftp and plink ask as PuTTY's do: about the host key, then login as:",
  opts,
  async () => {
    const s = await startSshd();
    try {
      // Nothing is asked before the connection is up: a dead port is the error, as with PuTTY.
      const closed = ["-batch", "-P", "1", "127.0.0.1"];
      const ours = await runOurs("psftp", closed, { env: envFor(s), stdin: "" });
      const real = await runReal("psftp", closed, { env: envFor(s), stdin: "" });
      assert.equal(ours.code, 1);
      assert.equal(ours.stderr, real.stderr);
      assert.equal(ours.stderr, "FATAL ERROR: Connection refused\n");

      for (const tool of ["psftp", "plink"]) {
        // A PuTTY directory of its own: the host key is new to each tool.
        const env = { ...envFor(s), PUTTYDIR: await Deno.makeTempDir({ prefix: "pk-order-" }) };
        const asked: string[] = [];
        const args = ["-i", s.userKeyPpk, "-P", String(s.port), s.host];
        const cmd = ourShellCommand(tool, tool === "plink" ? [...args, "echo in-$((6*7))"] : args);
        const r = await runOnPty(cmd, (screen) => {
          if (asked.length === 0 && /Store key in cache\? \(y\/n.*\) $/.test(screen)) {
            asked.push("host key");
            return "y\r";
          }
          if (asked.length === 1 && screen.endsWith("login as: ")) {
            asked.push("login as");
            return `${s.user}\r`;
          }
          if (asked.length === 2 && screen.endsWith("psftp> ")) {
            asked.push("prompt");
            return "quit\r";
          }
          return undefined;
        }, { env, timeoutMs: 20000 });
        await Deno.remove(env.PUTTYDIR, { recursive: true });
        // PuTTY's plink takes the local user name (get_username()); psftp asks for one.
        const expected = tool === "psftp" ? ["host key", "login as"] : ["host key"];
        assert.deepEqual(asked.slice(0, 2), expected, `${tool}: ${r.stdout}`);
        assert.equal(r.code, 0, r.stdout);
        if (tool === "plink") assert.match(r.stdout, /in-42/);
      }
    } finally {
      await s.stop();
    }
  },
);

Deno.test("psftp: the ! command runs a local shell command", opts, async () => {
  const s = await startSshd();
  try {
    const r = await runOurs("psftp", ["-batch"], {
      env: envFor(s),
      stdin: '!echo from-the-shell\n! exit 3\n!   echo "two  spaces"\n',
    });
    assert.equal(
      r.stdout,
      'psftp: no hostname specified; use "open host.name" to connect\n' +
        "psftp> from-the-shell\npsftp> psftp> two  spaces\npsftp> quit\n",
    );
    // In a batch file, a failing local command ends the script.
    const file = join(s.dir, "pling.psftp");
    await Deno.writeTextFile(file, "!false\n!echo not-reached\n");
    const b = await runOurs("psftp", ["-batch", "-b", file], { env: envFor(s) });
    assert.equal(b.code, 2);
    assert.doesNotMatch(b.stdout, /not-reached/);
  } finally {
    await s.stop();
  }
});

Deno.test(
  "psftp on a terminal: asks for the user name; dies if the server goes",
  opts,
  async () => {
    const s = await startSshd();
    try {
      // No user@ and no -l: PuTTY asks (with -batch it may not: a clean fatal error instead).
      const args = ["-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk, "-P", String(s.port)];
      const batchRun = await runOurs("psftp", ["-batch", ...args, s.host], {
        env: envFor(s),
        stdin: "",
      });
      const realRun = await runReal("psftp", ["-batch", ...args, s.host], {
        env: envFor(s),
        stdin: "",
      });
      assert.equal(batchRun.code, 1);
      assert.equal(batchRun.stderr, realRun.stderr);
      let step = 0;
      const r = await runOnPty(
        `(${
          ourShellCommand("psftp", [...args, s.host])
        }); echo EXIT=$?; stty -a | grep -o -- '-\\?icanon'`,
        (screen) => {
          if (step === 0 && screen.endsWith("login as: ")) {
            step++;
            return `${s.user}\r`;
          }
          if (step === 1 && screen.endsWith("psftp> ")) {
            step++;
            // The server goes away while psftp waits for a command.
            s.killConnections();
          }
          return undefined;
        },
        { env: envFor(s), timeoutMs: 20000 },
      );
      assert.equal(step, 2, r.stdout);
      assert.match(r.stdout, new RegExp(`Remote working directory is /home/${s.user}`));
      assert.match(r.stdout, /FATAL ERROR: .+\r?\n/);
      assert.match(r.stdout, /EXIT=1/);
      assert.doesNotMatch(r.stdout, /-icanon/);
    } finally {
      await s.stop();
    }
  },
);

Deno.test("psftp's static imports load neither ssh2 nor key code (the downstream path)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../cmd/psftp.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "null",
  }).output();
  type Dep = { code?: { specifier: string }; isDynamic?: boolean };
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: Dep[] }[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length) {
    const spec = stack.pop()!;
    if (seen.has(spec)) continue;
    seen.add(spec);
    for (const d of bySpecifier.get(spec)?.dependencies ?? []) {
      if (d.code && !d.isDynamic) stack.push(d.code.specifier);
    }
  }
  const loaded = [...seen];
  assert.ok(loaded.some((s) => s.endsWith("/lib/psftp/commands.ts")), loaded.join("\n"));
  for (
    const heavy of [
      "npm:",
      "ssh2",
      "/lib/transport/transport.ts",
      "/lib/session/auth.ts",
      "private_key",
    ]
  ) {
    assert.ok(!loaded.some((s) => s.includes(heavy)), `${heavy} is imported statically`);
  }
});
