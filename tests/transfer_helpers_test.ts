/**
 * pscp's building blocks that need no server: PuTTY's wildcard syntax, which arguments are
 * remote, the statistics line, and SCP record parsing.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { WildcardError, wildcardMatch, wildcardUnescape } from "../lib/files/wildcard.ts";
import {
  dirFileCat,
  isDots,
  parseRemoteSpec,
  remoteColon,
  sourceName,
  vetFilename,
} from "../lib/files/paths.ts";
import { FileProgress, ProgressLine, progressText } from "../lib/files/progress.ts";
import { entryRecord, parseEntry, parseTimes, scpCommand } from "../lib/scp/protocol.ts";
import { LocalFileWriter, readChunks } from "../lib/files/local_file.ts";
import { printable } from "../lib/util/printable.ts";
import { localeIsUtf8 } from "../lib/util/locale.ts";

Deno.test("wildcards match as PuTTY's wc_match does", () => {
  // Cases from PuTTY's own wildcard.c test table.
  const cases: [string, string, boolean][] = [
    ["abc", "abc", true],
    ["abc", "abd", false],
    ["abc", "abcd", false],
    ["ab[cd]", "abd", true],
    ["ab[^cd]", "abe", true],
    ["ab[^cd]", "abc", false],
    ["ab\\*", "ab*", true],
    ["ab\\?", "ab*", false],
    ["ab?", "abc", true],
    ["ab?", "ab", false],
    ["ab[c-e]", "abd", true],
    ["ab[e-c]", "abd", true],
    ["ab[^c-e]", "abf", true],
    ["ab[a^]", "ab^", true],
    ["ab[-_]", "ab-", true],
    ["*", "", true],
    ["*", "anything", true],
    ["a*b", "ab", true],
    ["a*b", "axxxb", true],
    ["a*b", "axxxbc", false],
    ["*.txt", "notes.txt", true],
    ["*.txt", "notes.txt.bak", false],
    ["*a*b*c*", "xaxbxcx", true],
    ["*a*b*c*", "xaxcxbx", false],
    ["?ü*", "xü.dat", true],
    ["[]", "a", false],
  ];
  for (const [p, t, want] of cases) assert.equal(wildcardMatch(p, t), want, `${p} vs ${t}`);
  assert.throws(() => wildcardMatch("ab\\", "abc"), WildcardError);
  assert.throws(() => wildcardMatch("ab[", "abc"), WildcardError);
  assert.throws(() => wildcardMatch("ab[c-]", "abb"), /not terminated/);
  assert.equal(wildcardUnescape("plain\\*name"), "plain*name");
  assert.equal(wildcardUnescape("a*"), undefined);
  assert.equal(wildcardUnescape("x]"), undefined);
  assert.equal(wildcardUnescape("trailing\\"), "trailing");
});

Deno.test("which arguments are remote (PuTTY's colon())", () => {
  assert.equal(remoteColon("host:file"), 4);
  assert.equal(remoteColon("user@host:"), 9);
  assert.equal(remoteColon("c:file"), -1, "drive-letter-like second-place colon");
  assert.equal(remoteColon(":file"), -1);
  assert.equal(remoteColon("./a:b"), -1, "a slash before the colon makes it local");
  assert.equal(remoteColon("dir/x:y"), -1);
  assert.equal(remoteColon("[::1]:/tmp"), 5, "colons in an IPv6 literal are skipped");
  assert.equal(remoteColon("plain"), -1);
  assert.deepEqual(parseRemoteSpec("me@h:"), { host: "h", user: "me", path: "." });
  assert.deepEqual(parseRemoteSpec("a@b@h:x"), { host: "h", user: "a@b", path: "x" });
  assert.deepEqual(parseRemoteSpec("@h:x"), { host: "h", user: undefined, path: "x" });
  assert.equal(sourceName("/a/b/c.txt"), "c.txt");
  assert.equal(sourceName("dir\\win.txt"), "win.txt");
  assert.equal(sourceName("odd:name"), "name");
  assert.ok(isDots("..") && isDots("...") && isDots("") && !isDots(".a"));
  assert.ok(!vetFilename("../x") && !vetFilename("..") && vetFilename("...x"));
  assert.equal(dirFileCat("d/", "f"), "d/f");
  assert.equal(dirFileCat("d", "f"), "d/f");
});

Deno.test("statistics line in PuTTY's print_stats() format", () => {
  assert.equal(
    progressText({ name: "f3m", size: 3000000, done: 2978816, elapsed: 1 }),
    "f3m                       | 2909 kB | 2909.0 kB/s | ETA: 00:00:00 |  99%",
  );
  // Same second as the start: the rate is the bytes done; ETA from that.
  assert.equal(
    progressText({
      name: "a-rather-long-file-name-that-is-cut.bin",
      size: 1 << 30,
      done: 4096,
      elapsed: 0,
    }),
    "a-rather-long-file-name-t | 4 kB |   4.0 kB/s | ETA: 72:49:03 |   0%",
  );
  const out: string[] = [];
  const line = new ProgressLine((t) => out.push(t));
  line.draw({ name: "x", size: 100, done: 50, elapsed: 0 });
  line.draw({ name: "x", size: 10000, done: 10000, elapsed: 3 });
  assert.equal(out.length, 3);
  assert.ok(out[0].startsWith("\rx "));
  assert.equal(out[2], "\n", "a complete file ends its line");
  // Redrawn once per second, plus the last chunk.
  let now = 100;
  const drawn: number[] = [];
  const p = new FileProgress("n", 300, (s) => drawn.push(s.done), () => now);
  p.update(100);
  p.update(200);
  now++;
  p.update(250);
  p.update(300);
  assert.deepEqual(drawn, [100, 250, 300]);
});

Deno.test("SCP records and command", () => {
  assert.equal(
    scpCommand("to", "dir", { verbose: true, recursive: true, preserve: true, targetIsDir: true }),
    "scp -v -r -p -d -t dir",
  );
  assert.equal(scpCommand("from", "a b", {}), "scp -f a b");
  assert.equal(entryRecord("C", 0o100644, 12, "x y"), "C0644 12 x y\n");
  assert.deepEqual(parseEntry("0755 0  lead space"), { mode: 0o755, size: 0, name: " lead space" });
  assert.equal(parseEntry("0644 x name"), undefined);
  assert.deepEqual(parseTimes("1700000000 0 1600000000 0"), {
    mtime: 1700000000,
    atime: 1600000000,
  });
  assert.equal(parseTimes("junk"), undefined);
});

Deno.test("temporary files: renamed over the target, or removed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = join(dir, "out.bin");
    await Deno.writeTextFile(target, "old");
    await Deno.chmod(target, 0o600);
    const t = await LocalFileWriter.open(target, { mode: 0o644, tool: "pscp" });
    await t.write(new TextEncoder().encode("new data"));
    assert.equal(await Deno.readTextFile(target), "old", "target untouched while writing");
    await t.commit({ times: { mtime: 1000000000, atime: 1000000001 } });
    assert.equal(await Deno.readTextFile(target), "new data");
    const st = await Deno.stat(target);
    assert.equal(st.mode! & 0o777, 0o600, "an existing target keeps its permissions");
    assert.equal(st.mtime!.getTime(), 1000000000 * 1000);
    const t2 = await LocalFileWriter.open(target, { mode: 0o644, tool: "pscp" });
    await t2.write(new Uint8Array(10));
    await t2.discard();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out.bin"]);
    // Reading exactly the announced size; a shorter file is an error.
    const f = await Deno.open(target);
    const chunks: Uint8Array[] = [];
    await assert.rejects(async () => {
      for await (const c of readChunks(f, 20)) chunks.push(c);
    }, /shrank/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("printable: PuTTY's stripctrl in a UTF-8 locale and in the C locale", () => {
  const text = "tab\there\u001b[31m red\u009b é\u{1F600}\nnext\r";
  assert.equal(printable(text, true), "tabhere[31m red é\u{1F600}\nnext");
  assert.equal(printable(text, false), "tabhere[31m red \nnext");
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(localeIsUtf8(env({ LANG: "en_GB.UTF-8" })), true);
  assert.equal(localeIsUtf8(env({ LANG: "C.utf8" })), true);
  assert.equal(localeIsUtf8(env({ LC_ALL: "C", LANG: "en_GB.UTF-8" })), false);
  assert.equal(localeIsUtf8(env({ LC_ALL: "", LC_CTYPE: "de_DE.UTF-8@euro" })), true);
  assert.equal(localeIsUtf8(env({ LANG: "en_GB.ISO-8859-1" })), false);
  assert.equal(localeIsUtf8(env({})), false);
});
