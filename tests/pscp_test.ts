/**
 * pscp end to end against OpenSSH's sshd on loopback (internal-sftp and its scp),
 * compared with PuTTY 0.78's own pscp where their behaviour should agree: trees with odd names
 * both ways in both protocols, a 200 MB file by checksum, -p, wildcards and -unsafe, -ls, the
 * SFTP-to-SCP fallback, a server dying mid-transfer, and upstreams (ours and PuTTY's plink).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Sshd, type SshdOptions, startSshd } from "./fixtures/sshd.ts";
import {
  collect,
  ourShellCommand,
  runOnPty,
  runOurs,
  runReal,
  spawnOurs,
  waitFor,
} from "./fixtures/tools.ts";
import { upstreamExists } from "../lib/share/rendezvous.ts";
import { startUpstream, stopUpstream, upstreamId } from "./fixtures/upstream.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const T = 180000;

function authArgs(s: Sshd): string[] {
  return ["-batch", "-hostkey", s.hostKeyFingerprint, "-i", s.userKeyPpk, "-P", String(s.port)];
}

function at(s: Sshd, path: string): string {
  return `${s.user}@${s.host}:${path}`;
}

function pscp(which: "ours" | "real", s: Sshd, args: string[], env: Record<string, string> = {}) {
  const all = [...authArgs(s), ...args];
  const o = { env: { ...s.env, ...env }, timeoutMs: T };
  return which === "ours" ? runOurs("pscp", all, o) : runReal("pscp", all, o);
}

async function sha256File(path: string): Promise<string> {
  const out = await new Deno.Command("sha256sum", { args: [path], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split(" ")[0];
}

/** Every entry under `root`: relative path, type, size, content hash, and optionally modes/times. */
async function snapshot(
  root: string,
  o: { modes?: boolean; mtimes?: boolean } = {},
): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = await Deno.lstat(path);
      const mode = o.modes ? ` mode=${(st.mode! & 0o7777).toString(8)}` : "";
      const mtime = o.mtimes ? ` mtime=${Math.floor(st.mtime!.getTime() / 1000)}` : "";
      if (st.isDirectory) {
        out.push(`${r}/ dir${mode}${mtime}`);
        await walk(path, r);
      } else {
        out.push(`${r} ${st.size} ${await sha256File(path)}${mode}${mtime}`);
      }
    }
  };
  await walk(root, "");
  return out.sort();
}

/** A local tree with the names that trip up naive tools. */
async function makeOddTree(root: string): Promise<void> {
  await Deno.mkdir(join(root, "sub dir", "-dash dir"), { recursive: true });
  await Deno.mkdir(join(root, "empty"));
  const files: [string, number, number][] = [
    ["with space.txt", 100, 0o644],
    ["ünïcödé-名前.bin", 70000, 0o644],
    ["-leading-dash", 5, 0o600],
    [".hidden", 3, 0o644],
    [" leading space", 7, 0o644],
    ["zero-length", 0, 0o644],
    ["run.sh", 20, 0o755],
    ["sub dir/nested file", 33000, 0o644],
    ["sub dir/-dash dir/deep", 1, 0o640],
  ];
  for (const [name, size, mode] of files) {
    const data = new Uint8Array(size);
    crypto.getRandomValues(data.subarray(0, Math.min(size, 65536)));
    await Deno.writeFile(join(root, name), data, { mode });
    await Deno.chmod(join(root, name), mode);
  }
}

/** A file of `mb` MiB of random data, written in pieces. */
async function makeBigFile(path: string, mb: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < mb; i++) {
    for (let off = 0; off < block.length; off += 65536) {
      crypto.getRandomValues(block.subarray(off, off + 65536));
    }
    await f.write(block);
  }
  f.close();
}

/** Runs `body` with a fresh sshd and a local scratch directory, both removed afterwards. */
async function withServer(
  ...args: [(s: Sshd, local: string) => Promise<void>] | [
    SshdOptions,
    (s: Sshd, local: string) => Promise<void>,
  ]
): Promise<void> {
  const [o, body] = args.length === 1 ? [{}, args[0]] : args;
  const s = await startSshd(o);
  const local = await Deno.makeTempDir({ prefix: "pk-pscp-" });
  try {
    await body(s, local);
  } finally {
    await s.stop();
    await Deno.remove(local, { recursive: true });
  }
}

/** A 200 MB file locally and in a remote directory `name`. */
async function bigFileBothSides(s: Sshd, local: string, name: string) {
  const big = join(local, "big.bin");
  await makeBigFile(big, 200);
  const remote = await s.userDir(name);
  await Deno.copyFile(big, join(remote, "big.bin"));
  return { big, remote };
}

/** Sizes of the temporary files (".<name>.<random>.pscp") in `dir`. */
function partials(dir: string): number[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".pscp")).map((e) =>
    Deno.statSync(join(dir, e.name)).size
  );
}

function assertNoTrace(stderr: string) {
  assert.doesNotMatch(stderr, /\bat .*\.ts:\d+|Uncaught|Stack backtrace/);
}

Deno.test(
  "pscp: trees with odd names, both ways, SFTP and SCP, same as PuTTY's pscp",
  opts,
  async (t) => {
    await withServer(async (s, local) => {
      const tree = join(local, "tree");
      await makeOddTree(tree);
      const want = await snapshot(tree, { modes: true });

      await t.step(
        "upload: ours (SFTP, SCP) and real pscp give identical remote trees",
        async () => {
          const results: Record<string, string[]> = {};
          const runs = [["ours", "-sftp"], ["ours", "-scp"], ["real", "-sftp"]] as const;
          for (const [who, proto] of runs) {
            const dest = await s.userDir(`up-${who}${proto}`);
            const r = await pscp(who, s, ["-q", "-r", proto, tree, at(s, dest)]);
            assert.equal(r.code, 0, `${who} ${proto}: ${r.stderr}`);
            results[`${who}${proto}`] = await snapshot(join(dest, "tree"), { modes: true });
          }
          assert.deepEqual(results["ours-sftp"], want);
          assert.deepEqual(results["ours-scp"], want);
          assert.deepEqual(results["real-sftp"], want);
          // Nothing but the tree: no temporary files left behind.
          assert.deepEqual([...Deno.readDirSync(join(s.dir, "up-ours-sftp"))].map((e) => e.name), [
            "tree",
          ]);
        },
      );

      await t.step(
        "download: ours (SFTP, SCP) and real pscp give identical local trees",
        async () => {
          const src = join(s.dir, "up-ours-sftp", "tree");
          // (PuTTY's SCP sink drops leading spaces from names: compare with its SFTP mode.)
          const runs = [["ours", "-sftp"], ["ours", "-scp"], ["real", "-sftp"]] as const;
          for (const [who, proto] of runs) {
            const dest = join(local, `down-${who}${proto}`);
            await Deno.mkdir(dest);
            const r = await pscp(who, s, ["-q", "-r", proto, at(s, src), dest]);
            assert.equal(r.code, 0, `${who} ${proto}: ${r.stderr}`);
            assert.deepEqual(
              await snapshot(join(dest, "tree"), { modes: true }),
              want,
              `${who}${proto}`,
            );
          }
        },
      );

      await t.step(
        "a directory target that doesn't exist becomes the copy (like cp -r)",
        async () => {
          for (const proto of ["-sftp", "-scp"]) {
            const parent = await s.userDir(`fresh${proto}`);
            const r = await pscp("ours", s, ["-q", "-r", proto, tree, at(s, `${parent}/renamed`)]);
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual(await snapshot(join(parent, "renamed"), { modes: true }), want, proto);
            const down = join(local, `fresh-down${proto}`);
            const d = await pscp("ours", s, ["-q", "-r", proto, at(s, `${parent}/renamed`), down]);
            assert.equal(d.code, 0, d.stderr);
            assert.deepEqual(await snapshot(down, { modes: true }), want, proto);
          }
        },
      );

      await t.step(
        "several sources into a directory; errors name the file and carry on",
        async () => {
          const dest = await s.userDir("multi");
          const missing = join(local, "no-such-file");
          // The second and third runs replace the files (SFTP: by rename over them).
          for (const proto of ["-sftp", "-scp", "-sftp"]) {
            await Deno.writeTextFile(join(dest, "with space.txt"), "stale").catch(() => {});
            await Deno.chmod(join(dest, "with space.txt"), 0o640).catch(() => {});
            const r = await pscp("ours", s, [
              "-q",
              proto,
              join(tree, "with space.txt"),
              missing,
              join(tree, "-leading-dash"),
              at(s, dest),
            ]);
            assert.equal(r.code, 1, proto);
            assert.equal(r.stderr, `pscp: ${missing}: No such file or directory\n`, proto);
            assert.deepEqual(
              [...Deno.readDirSync(dest)].map((e) => e.name).sort(),
              ["-leading-dash", "with space.txt"],
            );
            const replaced = join(dest, "with space.txt");
            assert.deepEqual(
              await Deno.readFile(replaced),
              await Deno.readFile(join(tree, "with space.txt")),
            );
            assert.equal(
              Deno.statSync(replaced).mode! & 0o777,
              0o640,
              "existing file keeps its mode",
            );
          }
          // A directory without -r is refused by name, the rest still copied.
          const r = await pscp("ours", s, [
            "-q",
            join(tree, "sub dir"),
            join(tree, "run.sh"),
            at(s, dest),
          ]);
          assert.equal(r.code, 1);
          assert.match(r.stderr, /^pscp: .*sub dir: not a regular file\n$/);
          assert.ok(Deno.statSync(join(dest, "run.sh")).isFile);
        },
      );

      await t.step("saved sessions (-load, or named as the host), -l and -pw", async () => {
        const sessions = join(s.env.PUTTYDIR, "sessions");
        await Deno.mkdir(sessions, { recursive: true });
        await Deno.writeTextFile(
          join(sessions, "pkhost"),
          `HostName=${s.host}\nProtocol=ssh\nPortNumber=${s.port}\nUserName=${s.user}\n` +
            `PublicKeyFile=${s.userKeyPpk}\n`,
        );
        const dest = await s.userDir("sessions");
        const file = join(tree, "with space.txt");
        const hk = ["-batch", "-hostkey", s.hostKeyFingerprint];
        // The host word names the session: its host, port, user and key are used.
        const named = await runOurs("pscp", [...hk, "-q", file, `pkhost:${dest}/a`], {
          env: s.env,
        });
        assert.equal(named.code, 0, named.stderr);
        // -load: the session's port and key, with the host given.
        const loaded = await runOurs(
          "pscp",
          [...hk, "-q", "-load", "pkhost", file, `${s.host}:${dest}/b`],
          { env: s.env },
        );
        assert.equal(loaded.code, 0, loaded.stderr);
        assert.deepEqual([...Deno.readDirSync(dest)].map((e) => e.name).sort(), ["a", "b"]);
        if (s.password) {
          const pw = await runOurs("pscp", [
            ...hk,
            "-q",
            "-P",
            String(s.port),
            "-l",
            s.user,
            "-pw",
            s.password,
            file,
            `${s.host}:${dest}/c`,
          ], { env: s.env });
          assert.equal(pw.code, 0, pw.stderr);
          assert.ok(Deno.statSync(join(dest, "c")).isFile);
          const bad = await runOurs("pscp", [
            ...hk,
            "-q",
            "-P",
            String(s.port),
            "-pw",
            "wrong",
            file,
            `${s.user}@${s.host}:${dest}/d`,
          ], { env: s.env });
          assert.equal(bad.code, 1);
          assertNoTrace(bad.stderr);
        }
      });

      await t.step(
        "errors before and after connecting: one line, PuTTY's words, exit 1",
        async () => {
          const cases: [string[], RegExp][] = [
            [
              [at(s, "/nonexistent/file"), local],
              /^unable to identify \/nonexistent\/file: no such file or directory\n$/,
            ],
            [
              ["-scp", at(s, "/nonexistent/file"), local],
              /^scp: \/nonexistent\/file: No such file or directory\n$/,
            ],
            [[join(local, "nope"), at(s, "/tmp")], /^.*nope: No such file or directory\n$/],
            [[join(local, "a"), join(local, "b")], /^Local to local copy not supported\n$/],
            [[at(s, "a"), at(s, "b"), local], /^More than one remote source not supported\n$/],
            [
              [at(s, join(s.dir, "up-ours-sftp", "tree")), local],
              /^pscp: .*tree: is a directory\n$/,
            ],
            [["-ls", local], /^Local file listing not supported\n$/],
          ];
          for (const [args, pattern] of cases) {
            const r = await pscp("ours", s, ["-q", ...args]);
            assert.equal(r.code, 1, args.join(" "));
            assert.match(r.stderr, pattern);
            assertNoTrace(r.stderr);
          }
          const r = await runOurs("pscp", ["-nosuchoption", "a", "b"]);
          assert.equal(r.code, 1);
          assert.match(r.stderr, /^pscp: unknown option "-nosuchoption"\n/);
        },
      );
    });
  },
);

Deno.test("pscp: a 200 MB file both ways in both protocols, by checksum", opts, async () => {
  await withServer(async (s, local) => {
    const big = join(local, "big.bin");
    await makeBigFile(big, 200);
    const sum = await sha256File(big);
    const remote = await s.userDir("big");
    for (const proto of ["-sftp", "-scp"]) {
      const up = await pscp("ours", s, ["-q", proto, big, at(s, `${remote}/big${proto}`)]);
      assert.equal(up.code, 0, up.stderr);
      assert.equal(await sha256File(join(remote, `big${proto}`)), sum, `upload ${proto}`);
      const back = join(local, `back${proto}`);
      const down = await pscp("ours", s, ["-q", proto, at(s, `${remote}/big${proto}`), back]);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(await sha256File(back), sum, `download ${proto}`);
      await Deno.remove(back);
    }
  });
});

Deno.test("pscp -p: permissions and times kept, both ways, both protocols", opts, async () => {
  await withServer(async (s, local) => {
    const tree = join(local, "tree");
    await makeOddTree(tree);
    // Old, distinct times; modes the umask would change.
    let n = 0;
    const stamp = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        const p = join(dir, e.name);
        if (e.isDirectory) await stamp(p);
        if (e.isFile && e.name === "run.sh") await Deno.chmod(p, 0o770);
        const when = 1000000000 + 86400 * ++n;
        await Deno.utime(p, when + 5, when);
      }
    };
    await stamp(tree);
    await Deno.chmod(join(tree, "sub dir"), 0o750);
    await Deno.utime(tree, 999999000, 999999000);
    const want = await snapshot(tree, { modes: true, mtimes: true });
    for (const proto of ["-sftp", "-scp"]) {
      const remote = await s.userDir(`p${proto}`);
      const up = await pscp("ours", s, ["-q", "-r", "-p", proto, tree, at(s, remote)]);
      assert.equal(up.code, 0, up.stderr);
      assert.deepEqual(await snapshot(join(remote, "tree"), { modes: true, mtimes: true }), want);
      const back = join(local, `back${proto}`);
      await Deno.mkdir(back);
      const down = await pscp("ours", s, ["-q", "-r", "-p", proto, at(s, `${remote}/tree`), back]);
      assert.equal(down.code, 0, down.stderr);
      assert.deepEqual(await snapshot(join(back, "tree"), { modes: true, mtimes: true }), want);
    }
    // Real pscp -p agrees on file times (it doesn't keep directory times).
    const real = await s.userDir("p-real");
    const r = await pscp("real", s, ["-q", "-p", join(tree, "run.sh"), at(s, real)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      Deno.statSync(join(real, "run.sh")).mtime!.getTime(),
      Deno.statSync(join(s.dir, "p-sftp", "tree", "run.sh")).mtime!.getTime(),
    );
  });
});

Deno.test("pscp: wildcards, -unsafe and -ls as PuTTY's pscp", opts, async (t) => {
  await withServer(async (s, local) => {
    const remote = await s.userDir("wc");
    for (const name of ["a.txt", "b.txt", "c.dat", "d ü.txt"]) {
      await Deno.writeTextFile(join(remote, name), name);
    }
    await Deno.mkdir(join(remote, "dir.txt"));

    const fetchInto = async (who: "ours" | "real", args: string[]) => {
      const dest = await Deno.makeTempDir({ dir: local });
      const r = await pscp(who, s, ["-q", ...args, dest]);
      return { ...r, names: [...Deno.readDirSync(dest)].map((e) => e.name).sort() };
    };

    await t.step("SFTP globs on our side: only matching names, directories refused", async () => {
      const ours = await fetchInto("ours", [at(s, `${remote}/*.txt`)]);
      const real = await fetchInto("real", [at(s, `${remote}/*.txt`)]);
      assert.deepEqual(ours.names, ["a.txt", "b.txt", "d ü.txt"]);
      assert.deepEqual(ours.names, real.names);
      assert.equal(ours.stderr, real.stderr);
      assert.equal(ours.code, real.code);
      const none = await fetchInto("ours", [at(s, `${remote}/*.none`)]);
      assert.equal(none.code, 1);
      assert.equal(none.stderr, "pscp: wildcard '*.none' matched no files\n");
    });

    await t.step("SCP: server-side wildcards refused without -unsafe, as PuTTY", async () => {
      const ours = await fetchInto("ours", ["-scp", at(s, `${remote}/[ab].txt`)]);
      const real = await fetchInto("real", ["-scp", at(s, `${remote}/[ab].txt`)]);
      assert.deepEqual(
        ours.names,
        ["[ab].txt"],
        "renaming disallowed: written under the asked name",
      );
      assert.deepEqual(ours.names, real.names);
      assert.equal(ours.stderr, real.stderr);
      assert.match(ours.stderr, /remote host tried to write to a file called 'a.txt'/);
      const unsafe = await fetchInto("ours", ["-scp", "-unsafe", at(s, `${remote}/[ab].txt`)]);
      assert.equal(unsafe.code, 0, unsafe.stderr);
      assert.deepEqual(unsafe.names, ["a.txt", "b.txt"]);
    });

    await t.step("-ls: same listing as PuTTY's pscp in both modes and locales", async () => {
      // In the C locale PuTTY drops the bytes of a name it can't decode; in UTF-8 it keeps them.
      const locales: [string, RegExp][] = [["C.UTF-8", / d ü\.txt\n/], ["C", / d \.txt\n/]];
      for (const [LC_ALL, name] of locales) {
        for (const proto of ["-sftp", "-scp"]) {
          const ours = await pscp("ours", s, [proto, "-ls", at(s, remote)], { LC_ALL });
          const real = await pscp("real", s, [proto, "-ls", at(s, remote)], { LC_ALL });
          assert.equal(ours.code, 0, ours.stderr);
          assert.equal(ours.stdout, real.stdout, `${proto} ${LC_ALL}`);
          assert.match(ours.stdout, name);
        }
      }
      const ours = await pscp("ours", s, ["-ls", at(s, `${remote}/nope`)]);
      const real = await pscp("real", s, ["-ls", at(s, `${remote}/nope`)]);
      assert.equal(ours.code, 1);
      assert.equal(ours.stdout, real.stdout);
      assert.match(ours.stderr, /^Unable to open .*nope: no such file or directory\n$/);
    });
  });
});

Deno.test("pscp falls back to SCP when the server has no SFTP subsystem", opts, async () => {
  await withServer({ sftp: false }, async (s, local) => {
    const file = join(local, "f.txt");
    await Deno.writeTextFile(file, "fallback\n");
    const remote = await s.userDir("fb");
    const r = await pscp("ours", s, ["-v", "-q", file, at(s, remote)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Using SCP1/);
    assert.equal(await Deno.readTextFile(join(remote, "f.txt")), "fallback\n");
    // -sftp: no SCP, but sftp-server started by hand ("test -x /usr/lib/sftp-server && exec ..."),
    // as PuTTY does; Debian has it there.
    await Deno.remove(join(remote, "f.txt"));
    const f = await pscp("ours", s, ["-v", "-q", "-sftp", file, at(s, remote)]);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stderr, /Using SFTP/);
    assert.equal(await Deno.readTextFile(join(remote, "f.txt")), "fallback\n");
    // -ls falls back to `ls -la` like real pscp.
    const ours = await pscp("ours", s, ["-ls", at(s, remote)]);
    const real = await pscp("real", s, ["-ls", at(s, remote)]);
    assert.equal(ours.code, 0, ours.stderr);
    assert.match(ours.stdout, / f\.txt\n/);
    assert.equal(ours.stdout, real.stdout);
  });
});

Deno.test(
  "pscp: statistics line on a terminal (up and down), none with -q",
  opts,
  async () => {
    await withServer(async (s, local) => {
      const file = join(local, "stats.bin");
      await makeBigFile(file, 3);
      const remote = await s.userDir("stats");
      const args = [...authArgs(s), file, at(s, remote)];
      const tty = await runOnPty(ourShellCommand("pscp", args), () => undefined, { env: s.env });
      assert.equal(tty.code, 0, tty.stdout);
      assert.match(
        tty.stdout,
        /\rstats\.bin {17}\| 3072 kB \| +\d+\.\d kB\/s \| ETA: 00:00:00 \| 100%/,
      );
      const quiet = await runOnPty(ourShellCommand("pscp", ["-q", ...args]), () => undefined, {
        env: s.env,
      });
      assert.doesNotMatch(quiet.stdout, /kB\/s/);
      // Downloads too, in both protocols.
      for (const proto of ["-sftp", "-scp"]) {
        const down = join(local, `down${proto}`);
        const get = [...authArgs(s), proto, at(s, `${remote}/stats.bin`), down];
        const r = await runOnPty(ourShellCommand("pscp", get), () => undefined, { env: s.env });
        assert.equal(r.code, 0, r.stdout);
        // Named after the local file, as PuTTY's pscp does.
        const name = `down${proto}`.padEnd(25);
        assert.ok(r.stdout.includes(`\r${name} | 3072 kB | `), r.stdout);
        assert.match(r.stdout, /kB\/s \| ETA: 00:00:00 \| 100%\r?\n/);
        assert.equal((await Deno.stat(down)).size, 3 << 20);
      }
    });
  },
);

Deno.test(
  "pscp: a server dying mid-transfer leaves no partial file under the target name",
  opts,
  async (t) => {
    await withServer(async (s, local) => {
      const { big, remote } = await bigFileBothSides(s, local, "drop");

      for (const proto of ["-sftp", "-scp"]) {
        await t.step(`download (${proto})`, async () => {
          const dest = await Deno.makeTempDir({ dir: local });
          const child = spawnOurs("pscp", [
            ...authArgs(s),
            "-q",
            proto,
            at(s, `${remote}/big.bin`),
            dest,
          ], {
            env: s.env,
          });
          await waitFor(() => partials(dest).some((n) => n > 1 << 20), 60000, "a partial download");
          s.killConnections();
          const r = await collect(child, { timeoutMs: T });
          assert.equal(r.code, 1);
          assert.match(r.stderr, /big\.bin: Lost connection/, "the error names the file");
          assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
          assertNoTrace(r.stderr);
          assert.deepEqual([...Deno.readDirSync(dest)], [], "no target, no temporary file");
        });
      }

      for (const proto of ["-sftp", "-scp"]) {
        await t.step(`upload (${proto}): the target name never holds a partial file`, async () => {
          const dest = await s.userDir(`drop-up${proto}`);
          await Deno.writeTextFile(join(dest, "big.bin"), "previous version\n");
          const child = spawnOurs("pscp", [...authArgs(s), "-q", proto, big, at(s, dest)], {
            env: s.env,
          });
          await waitFor(() => partials(dest).some((n) => n > 1 << 20), 60000, "a partial upload");
          s.killConnections();
          const r = await collect(child, { timeoutMs: T });
          assert.equal(r.code, 1);
          assert.match(r.stderr, /big\.bin: Lost connection/);
          assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
          assertNoTrace(r.stderr);
          assert.equal(await Deno.readTextFile(join(dest, "big.bin")), "previous version\n");
        });
      }
    });
  },
);

Deno.test(
  "pscp -scp: each file whole or not at all, in place as PuTTY's pscp leaves it",
  opts,
  async () => {
    await withServer(async (s, local) => {
      // Two remote directories set up alike: real pscp writes in place into one, ours into the other.
      const setUp = async (name: string) => {
        const dir = await s.userDir(name);
        const { uid, gid } = Deno.statSync(dir);
        const own = (p: string) => Deno.chownSync(p, uid!, gid!);
        Deno.writeTextFileSync(join(dir, "run.sh"), "old script\n");
        Deno.chmodSync(join(dir, "run.sh"), 0o755);
        Deno.writeTextFileSync(join(dir, "real.txt"), "old real\n");
        Deno.symlinkSync("real.txt", join(dir, "link.txt"));
        Deno.mkdirSync(join(dir, "locked"));
        Deno.writeTextFileSync(join(dir, "locked", "kept.txt"), "old locked\n");
        for (const p of ["run.sh", "real.txt", "locked", "locked/kept.txt"]) own(join(dir, p));
        Deno.chmodSync(join(dir, "locked"), 0o555); // no new files: written in place
        return dir;
      };
      const ours = await setUp("scp-ours");
      const theirs = await setUp("scp-real");
      const file = (name: string, text: string) => {
        Deno.writeTextFileSync(join(local, name), text);
        Deno.chmodSync(join(local, name), 0o644);
        return join(local, name);
      };
      const script = file("run.sh", "new script\n");
      const viaLink = file("link.txt", "written through the link\n");
      const locked = file("kept.txt", "new locked\n");
      const fresh = file("fresh.txt", "brand new\n");
      for (const [which, dir] of [["ours", ours], ["real", theirs]] as const) {
        for (
          const [src, dst] of [[script, ""], [viaLink, "link.txt"], [locked, "locked/kept.txt"]]
        ) {
          const r = await pscp(which, s, ["-q", "-scp", src, at(s, `${dir}/${dst}`)]);
          assert.equal(r.code, 0, `${which} ${dst}: ${r.stderr}`);
        }
        const r = await pscp(which, s, ["-q", "-scp", fresh, script, at(s, dir)]);
        assert.equal(r.code, 0, `${which}: ${r.stderr}`);
      }
      const state = (dir: string) =>
        ["run.sh", "real.txt", "link.txt", "locked/kept.txt", "fresh.txt"].map((n) => {
          const st = Deno.lstatSync(join(dir, n));
          const what = st.isSymlink
            ? `-> ${Deno.readLinkSync(join(dir, n))}`
            : Deno.readTextFileSync(join(dir, n));
          return `${n} ${(st.mode! & 0o7777).toString(8)} ${what}`;
        });
      assert.deepEqual(state(ours), state(theirs));
      assert.deepEqual(state(ours).slice(0, 2), [
        "run.sh 755 new script\n",
        "real.txt 644 written through the link\n",
      ]);
      const leftovers = [ours, join(ours, "locked")].flatMap((d) =>
        [...Deno.readDirSync(d)].map((e) => e.name).filter((n) => n.endsWith(".pscp"))
      );
      assert.deepEqual(leftovers, [], "no temporary files left");

      // A name SCP can't carry (PuTTY's pscp hangs on it): refused by name, the rest arrive.
      const tree = join(local, "tree");
      Deno.mkdirSync(tree);
      Deno.writeTextFileSync(join(tree, "good.txt"), "good\n");
      Deno.writeTextFileSync(join(tree, "bad\nname"), "bad\n");
      const r = await pscp("ours", s, ["-q", "-scp", "-r", tree, at(s, `${ours}/tree`)]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^pscp: bad\\nname: file names with newlines can't be sent by SCP$/m);
      assert.deepEqual([...Deno.readDirSync(join(ours, "tree"))].map((e) => e.name), ["good.txt"]);
    });
  },
);

Deno.test("pscp stopped by a signal removes its temporary files", opts, async () => {
  await withServer(async (s, local) => {
    const { big, remote } = await bigFileBothSides(s, local, "sig");
    const dest = await Deno.makeTempDir({ dir: local });
    const down = spawnOurs("pscp", [...authArgs(s), "-q", at(s, `${remote}/big.bin`), dest], {
      env: s.env,
    });
    await waitFor(() => partials(dest).some((n) => n > 1 << 20), 60000, "a partial download");
    down.kill("SIGINT");
    const d = await collect(down, { timeoutMs: T });
    assert.notEqual(d.code, 0);
    assert.deepEqual([...Deno.readDirSync(dest)], [], "no target, no temporary file");

    const upDir = await s.userDir("sig-up");
    const up = spawnOurs("pscp", [...authArgs(s), "-q", big, at(s, upDir)], { env: s.env });
    await waitFor(() => partials(upDir).some((n) => n > 1 << 20), 60000, "a partial upload");
    up.kill("SIGINT");
    const u = await collect(up, { timeoutMs: T });
    assert.notEqual(u.code, 0);
    assert.deepEqual([...Deno.readDirSync(upDir)], [], "the server keeps nothing either");
  });
});

Deno.test(
  "pscp through an upstream (ours and PuTTY's plink): one authentication",
  opts,
  async (t) => {
    for (const which of ["ours", "real"] as const) {
      await t.step(`${which} plink -share -N upstream`, async () => {
        const s = await startSshd();
        const local = await Deno.makeTempDir({ prefix: "pk-pscp-share-" });
        const up = await startUpstream(s, which);
        try {
          const file = join(local, "shared.bin");
          await makeBigFile(file, 5);
          const remote = await s.userDir("shared");
          // No key, no host key: a downstream needs neither.
          const share = ["-share", "-batch", "-P", String(s.port)];
          for (const proto of ["-sftp", "-scp"]) {
            const upload = await runOurs("pscp", [
              ...share,
              "-v",
              "-q",
              proto,
              file,
              at(s, `${remote}/x${proto}`),
            ], {
              env: s.env,
              timeoutMs: T,
            });
            assert.equal(upload.code, 0, upload.stderr);
            assert.match(upload.stderr, /Using existing shared connection/);
            const back = join(local, `back${proto}`);
            const down = await runOurs("pscp", [
              ...share,
              "-q",
              proto,
              at(s, `${remote}/x${proto}`),
              back,
            ], {
              env: s.env,
              timeoutMs: T,
            });
            assert.equal(down.code, 0, down.stderr);
            assert.equal(await sha256File(back), await sha256File(file));
          }
          assert.equal(await s.authCount(), 1);
          // pscp never becomes an upstream: the upstream still serves others afterwards.
          assert.ok(await upstreamExists(upstreamId(s)));
          // -noshare (last wins, as in PuTTY) ignores the live upstream: a login of its own.
          const own = await pscp("ours", s, [
            "-share",
            "-noshare",
            "-v",
            "-q",
            file,
            at(s, remote),
          ]);
          assert.equal(own.code, 0, own.stderr);
          assert.doesNotMatch(own.stderr, /shared connection/);
          assert.equal(await s.authCount(), 2);
        } finally {
          await stopUpstream(up);
          await s.stop();
          await Deno.remove(local, { recursive: true });
        }
      });
    }
  },
);

Deno.test(
  "pscp -share with no upstream connects directly and doesn't become one",
  opts,
  async () => {
    await withServer(async (s, local) => {
      const file = join(local, "f");
      await Deno.writeTextFile(file, "direct\n");
      const remote = await s.userDir("noup");
      const r = await pscp("ours", s, ["-share", "-v", "-q", file, at(s, remote)]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /Sharing this connection/);
      assert.equal(await Deno.readTextFile(join(remote, "f")), "direct\n");
      assert.equal(await upstreamExists(upstreamId(s)), false);
    });
  },
);
