/**
 * PuTTY's host key cache: conversion of real keys (ssh-keygen / puttygen) to PuTTY's cache
 * strings, fingerprints, -hostkey matching, and interop both ways with the real plink against a
 * throwaway OpenSSH sshd (one per key type, on a free loopback port).
 */

import assert from "node:assert/strict";
import {
  checkHostKey,
  fingerprintMd5,
  fingerprintSha256,
  hostKeyCacheEntry,
  hostKeyFingerprint,
  hostKeyMatchesManual,
  hostKeysPath,
  parseHostKeyBlob,
  storeCacheEntry,
  storedHostKeyTypes,
  storeHostKey,
} from "../lib/config/hostkeys.ts";

const PATH = Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin";
const keyDir = Deno.makeTempDirSync({ prefix: "puttykit-hostkeys-" });
// Removed when the test module exits (also when --filter skips tests).
globalThis.addEventListener("unload", () => Deno.removeSync(keyDir, { recursive: true }));
const decoder = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
) {
  const child = new Deno.Command(cmd, {
    args,
    env: opts.env,
    clearEnv: opts.env !== undefined,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(15_000),
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

interface Key {
  file: string;
  blob: Uint8Array;
  pub: string;
}

const keys = new Map<string, Key>();

function blobOfPubLine(line: string): Uint8Array {
  return Uint8Array.from(atob(line.trim().split(/\s+/)[1]), (c) => c.charCodeAt(0));
}

/** A host key made by ssh-keygen (cached per type/bits for the whole file). */
async function sshKeygen(type: string, bits?: number, tag = ""): Promise<Key> {
  const name = `${type}${bits ?? ""}${tag}`;
  const have = keys.get(name);
  if (have) return have;
  const file = `${keyDir}/${name}`;
  const args = ["-q", "-t", type, "-N", "", "-C", name, "-f", file];
  if (bits) args.push("-b", String(bits));
  const r = await run("ssh-keygen", args);
  assert.equal(r.code, 0, r.stderr);
  const pub = await Deno.readTextFile(`${file}.pub`);
  const key = { file, blob: blobOfPubLine(pub), pub };
  keys.set(name, key);
  return key;
}

async function tempDir(prefix: string) {
  return await Deno.makeTempDir({ dir: keyDir, prefix });
}

/** puttygen -O text: key components as PuTTY itself computes them. */
async function puttygenComponents(file: string): Promise<Record<string, string>> {
  const r = await run("puttygen", [file, "-O", "text"]);
  assert.equal(r.code, 0, r.stderr);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  return out;
}

Deno.test("cache strings agree with PuTTY's own key components (puttygen)", async () => {
  const cases: [string, number | undefined, string, (c: Record<string, string>) => string][] = [
    ["ed25519", undefined, "ssh-ed25519", (c) => `${c.public_affine_x},${c.public_affine_y}`],
    ["rsa", 2048, "rsa2", (c) => `${c.public_exponent},${c.public_modulus}`],
    [
      "ecdsa",
      256,
      "ecdsa-sha2-nistp256",
      (c) => `nistp256,${c.public_affine_x},${c.public_affine_y}`,
    ],
    [
      "ecdsa",
      384,
      "ecdsa-sha2-nistp384",
      (c) => `nistp384,${c.public_affine_x},${c.public_affine_y}`,
    ],
    [
      "ecdsa",
      521,
      "ecdsa-sha2-nistp521",
      (c) => `nistp521,${c.public_affine_x},${c.public_affine_y}`,
    ],
    ["dsa", undefined, "dss", (c) => `${c.p},${c.q},${c.g},${c.public_y}`],
  ];
  for (const [type, bits, cacheId, expected] of cases) {
    const key = await sshKeygen(type, bits);
    const entry = hostKeyCacheEntry(key.blob);
    assert.equal(entry.keyType, cacheId);
    assert.equal(entry.value, expected(await puttygenComponents(key.file)), `${type} ${bits}`);
    assert.match(entry.value, /^(nistp\d+,)?0x[0-9a-f]+(,0x[0-9a-f]+)+$/);
  }
  // Ed448: OpenSSH has none, so let puttygen make one.
  const ppk = `${keyDir}/ed448.ppk`;
  let r = await run("puttygen", ["-t", "ed448", "-o", ppk, "--new-passphrase", "/dev/null"]);
  assert.equal(r.code, 0, r.stderr);
  r = await run("puttygen", [ppk, "-O", "public-openssh"]);
  const blob = blobOfPubLine(r.stdout);
  const c = await puttygenComponents(ppk);
  assert.deepEqual(hostKeyCacheEntry(blob), {
    keyType: "ssh-ed448",
    value: `${c.public_affine_x},${c.public_affine_y}`,
  });
  assert.equal(parseHostKeyBlob(blob).bits, 448);
  // Corrupt keys are refused rather than cached.
  const bad = blob.slice();
  bad[bad.length - 2] ^= 0xff;
  assert.throws(() => hostKeyCacheEntry(bad.subarray(0, bad.length - 3)));
  assert.throws(() => hostKeyCacheEntry(new TextEncoder().encode("junk")));
});

Deno.test("fingerprints agree with ssh-keygen -l", async () => {
  for (const [type, bits] of [["ed25519"], ["rsa", 2048], ["ecdsa", 384], ["dsa"]] as const) {
    const key = await sshKeygen(type, bits);
    const sha = await run("ssh-keygen", ["-l", "-f", `${key.file}.pub`]);
    const md5 = await run("ssh-keygen", ["-l", "-E", "md5", "-f", `${key.file}.pub`]);
    assert.equal(fingerprintSha256(key.blob), sha.stdout.split(" ")[1]);
    assert.equal("MD5:" + fingerprintMd5(key.blob), md5.stdout.split(" ")[1]);
    const info = parseHostKeyBlob(key.blob);
    // Key sizes agree, except that PuTTY calls Ed25519 255 bits where OpenSSH says 256 (the
    // display format itself is checked against plink's prompt below).
    if (type !== "ed25519") assert.equal(String(info.bits), sha.stdout.split(" ")[0]);
    else assert.equal(info.bits, 255);
    assert.equal(
      hostKeyFingerprint(key.blob),
      `${info.algorithm} ${info.bits} ${fingerprintSha256(key.blob)}`,
    );
    assert.match(hostKeyFingerprint(key.blob, "md5"), /^[\w-]+ \d+ ([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  }
});

Deno.test("host certificates: PuTTY's opensshcert-* cache ids", async () => {
  const ca = await sshKeygen("ed25519", undefined, "-ca");
  const host = await sshKeygen("ecdsa", 256);
  const certDir = await tempDir("cert-");
  await Deno.copyFile(`${host.file}.pub`, `${certDir}/host.pub`);
  const r = await run("ssh-keygen", [
    "-q",
    "-s",
    ca.file,
    "-I",
    "id",
    "-h",
    "-n",
    "h",
    `${certDir}/host.pub`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const cert = blobOfPubLine(await Deno.readTextFile(`${certDir}/host-cert.pub`));
  const entry = hostKeyCacheEntry(cert);
  assert.equal(entry.keyType, "opensshcert-ecdsa-sha2-nistp256");
  assert.equal(entry.value, hostKeyCacheEntry(host.blob).value);
  // PuTTY shows (and matches) a certificate by its certified key's fingerprint.
  assert.equal(hostKeyFingerprint(cert).split(" ").pop(), fingerprintSha256(host.blob));
  assert.equal(hostKeyMatchesManual([fingerprintSha256(host.blob)], cert), true);
  assert.equal(hostKeyMatchesManual([fingerprintSha256(cert)], cert), true);
});

Deno.test("-hostkey matching", async () => {
  const key = await sshKeygen("ed25519");
  const other = await sshKeygen("rsa", 2048);
  const sha = fingerprintSha256(key.blob);
  const md5 = fingerprintMd5(key.blob);
  assert.equal(hostKeyMatchesManual([sha], key.blob), true);
  assert.equal(hostKeyMatchesManual([`ssh-ed25519 255 ${sha}`], key.blob), true);
  assert.equal(hostKeyMatchesManual([md5], key.blob), true);
  assert.equal(hostKeyMatchesManual([`MD5:${md5.toUpperCase()}`], key.blob), true);
  assert.equal(hostKeyMatchesManual([key.pub], key.blob), true, "an OpenSSH .pub line");
  assert.equal(hostKeyMatchesManual([fingerprintSha256(other.blob), "junk"], key.blob), false);
  assert.equal(hostKeyMatchesManual([other.pub], key.blob), false);
  assert.equal(hostKeyMatchesManual([], key.blob), false);
});

Deno.test("cache file: lookup, replace, other types, atomic rewrite", async () => {
  const dir = await tempDir("cache-");
  const env = (n: string) => ({ PUTTYDIR: `${dir}/new/putty` } as Record<string, string>)[n];
  const ed = await sshKeygen("ed25519");
  const rsa = await sshKeygen("rsa", 2048);
  assert.equal(hostKeysPath(env), `${dir}/new/putty/sshhostkeys`);
  assert.equal(checkHostKey("h", 22, ed.blob, env), "unknown");
  storeHostKey("h", 22, ed.blob, env); // creates the directory
  assert.equal(checkHostKey("h", 22, ed.blob, env), "match");
  assert.equal(checkHostKey("h", 2222, ed.blob, env), "unknown", "the port is part of the key");
  assert.equal(checkHostKey("h.example", 22, ed.blob, env), "unknown");
  assert.equal(checkHostKey("H", 22, ed.blob, env), "unknown", "host names compare exactly");
  storeHostKey("h", 22, rsa.blob, env);
  storeCacheEntry("other", 22, "ssh-ed25519", "0x1,0x2", env);
  assert.deepEqual(storedHostKeyTypes("h", 22, env), ["ssh-ed25519", "rsa2"]);
  assert.deepEqual(storedHostKeyTypes("h", 23, env), []);
  // A different key of a stored type is a mismatch.
  storeCacheEntry("h", 22, "ssh-ed25519", "0x1,0x2", env);
  assert.equal(checkHostKey("h", 22, ed.blob, env), "mismatch");
  assert.equal(checkHostKey("h", 22, rsa.blob, env), "match");
  // Replacing keeps the other lines and moves the new entry to the end.
  storeHostKey("h", 22, ed.blob, env);
  const lines = (await Deno.readTextFile(hostKeysPath(env))).trimEnd().split("\n");
  assert.deepEqual(lines.map((l) => l.split(" ")[0]), [
    "rsa2@22:h",
    "ssh-ed25519@22:other",
    "ssh-ed25519@22:h",
  ]);
  assert.equal(lines[2], `ssh-ed25519@22:h ${hostKeyCacheEntry(ed.blob).value}`);
  assert.deepEqual([...Deno.readDirSync(`${dir}/new/putty`)].map((e) => e.name), ["sshhostkeys"]);
  // $PUTTYSSHHOSTKEYS names the file directly.
  const alt = (n: string) => ({ PUTTYSSHHOSTKEYS: `${dir}/alt-keys` } as Record<string, string>)[n];
  storeHostKey("h", 22, ed.blob, alt);
  assert.equal(checkHostKey("h", 22, ed.blob, alt), "match");
  assert.ok((await Deno.stat(`${dir}/alt-keys`)).isFile);
});

// ---------------------------------------------------------------------------------------------
// Interop with the real plink through a throwaway sshd.

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Sshd {
  port: number;
  stop(): Promise<void>;
}

async function startSshd(hostKey: string, extra: string[] = []): Promise<Sshd> {
  const dir = await tempDir("sshd-");
  const port = freePort();
  const config = `${dir}/sshd_config`;
  await Deno.writeTextFile(
    config,
    [
      "ListenAddress 127.0.0.1",
      `Port ${port}`,
      `HostKey ${hostKey}`,
      "PidFile none",
      "UsePAM no",
      "StrictModes no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "AuthorizedKeysFile none",
      "LogLevel INFO",
      ...extra,
      "",
    ].join("\n"),
  );
  await Deno.mkdir("/run/sshd", { recursive: true });
  const child = new Deno.Command("/usr/sbin/sshd", {
    args: ["-D", "-e", "-f", config],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const deadline = Date.now() + 5000;
  while (!log.includes("Server listening")) {
    const r = await Promise.race([
      reader.read(),
      new Promise<null>((res) => setTimeout(() => res(null), Math.max(0, deadline - Date.now()))),
    ]);
    if (r === null || r.done) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      throw new Error(`sshd did not start:\n${log}`);
    }
    log += r.value;
  }
  // Keep draining stderr so sshd never blocks on a full pipe.
  const drain = (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch {
      // stream closed
    }
  })();
  return {
    port,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await drain;
    },
  };
}

const NOT_CACHED = /host key is not cached/i;
const MISMATCH = /POTENTIAL SECURITY BREACH|does not match/i;
const AUTH_REACHED = /No supported authentication methods available/;

async function plink(puttyDir: string, port: number, extra: string[] = [], stdin?: string) {
  const args = [...(stdin === undefined ? ["-batch"] : []), "-noagent", ...extra];
  args.push("-P", String(port), "nobody@127.0.0.1", "true");
  const r = await run("plink", args, { env: { PUTTYDIR: puttyDir, HOME: puttyDir, PATH }, stdin });
  return r.stderr + r.stdout;
}

interface ServerCase {
  name: string;
  type: string;
  bits?: number;
  cacheId: string;
  sshdExtra?: string[];
}

const SERVER_CASES: ServerCase[] = [
  { name: "ed25519", type: "ed25519", cacheId: "ssh-ed25519" },
  { name: "rsa", type: "rsa", bits: 2048, cacheId: "rsa2" },
  { name: "ecdsa nistp256", type: "ecdsa", bits: 256, cacheId: "ecdsa-sha2-nistp256" },
  { name: "ecdsa nistp384", type: "ecdsa", bits: 384, cacheId: "ecdsa-sha2-nistp384" },
  { name: "ecdsa nistp521", type: "ecdsa", bits: 521, cacheId: "ecdsa-sha2-nistp521" },
  {
    name: "dsa",
    type: "dsa",
    cacheId: "dss",
    sshdExtra: ["HostKeyAlgorithms ssh-dss"],
  },
];

// sshd must run as root (privilege separation); skip, visibly, elsewhere.
const canRunSshd = Deno.uid() === 0;

for (const sc of SERVER_CASES) {
  Deno.test({
    name: `real plink and our cache agree: ${sc.name}`,
    ignore: !canRunSshd,
  }, async () => {
    const key = await sshKeygen(sc.type, sc.bits);
    const sshd = await startSshd(key.file, sc.sshdExtra);
    try {
      const entry = hostKeyCacheEntry(key.blob);
      assert.equal(entry.keyType, sc.cacheId);

      // Control: with an empty cache, plink -batch refuses, showing the fingerprint as we do.
      const empty = await tempDir("empty-");
      let out = await plink(empty, sshd.port);
      assert.match(out, NOT_CACHED, out);
      assert.ok(out.includes(`  ${hostKeyFingerprint(key.blob)}\n`), out);
      assert.doesNotMatch(out, AUTH_REACHED, out);

      // Our entry is understood: no host key complaint, the session gets as far as auth.
      const ours = await tempDir("ours-");
      const env = (n: string) => ({ PUTTYDIR: ours } as Record<string, string>)[n];
      storeHostKey("127.0.0.1", sshd.port, key.blob, env);
      out = await plink(ours, sshd.port);
      assert.doesNotMatch(out, NOT_CACHED, out);
      assert.doesNotMatch(out, MISMATCH, out);
      assert.match(out, AUTH_REACHED, out);

      // A wrong value for the same key type: plink sees a changed key, and so do we.
      const wrong = await tempDir("wrong-");
      const wenv = (n: string) => ({ PUTTYDIR: wrong } as Record<string, string>)[n];
      storeCacheEntry(
        "127.0.0.1",
        sshd.port,
        entry.keyType,
        entry.value.replace(/.$/, (c) => c === "1" ? "2" : "1"),
        wenv,
      );
      out = await plink(wrong, sshd.port);
      assert.match(out, MISMATCH, out);
      assert.equal(checkHostKey("127.0.0.1", sshd.port, key.blob, wenv), "mismatch");

      // Reverse: plink stores the key (answering "y" on stdin); we find it and read it back.
      const theirs = await tempDir("theirs-");
      const tenv = (n: string) => ({ PUTTYDIR: theirs } as Record<string, string>)[n];
      out = await plink(theirs, sshd.port, [], "y\n");
      assert.match(out, AUTH_REACHED, out);
      assert.equal(checkHostKey("127.0.0.1", sshd.port, key.blob, tenv), "match");
      assert.deepEqual(storedHostKeyTypes("127.0.0.1", sshd.port, tenv), [sc.cacheId]);
      const stored = await Deno.readTextFile(`${theirs}/sshhostkeys`);
      assert.equal(stored, `${sc.cacheId}@${sshd.port}:127.0.0.1 ${entry.value}\n`);

      // -hostkey with our fingerprints / blob: accepted without any cache.
      for (const hk of [fingerprintSha256(key.blob), fingerprintMd5(key.blob)]) {
        out = await plink(empty, sshd.port, ["-hostkey", hk]);
        assert.doesNotMatch(out, NOT_CACHED, out);
        assert.match(out, AUTH_REACHED, out);
        assert.equal(hostKeyMatchesManual([hk], key.blob), true);
      }
    } finally {
      await sshd.stop();
    }
  });
}

Deno.test({
  name: "user name precedence agrees with real plink, pscp and psftp",
  ignore: !canRunSshd,
}, async () => {
  const { parseCommandLine } = await import("../lib/config/command_line.ts");
  const { PLINK, PSCP, PSFTP } = await import("../lib/config/tool_specs.ts");
  const key = await sshKeygen("ed25519");
  const sshd = await startSshd(key.file);
  try {
    const pd = await tempDir("users-");
    const env = (n: string) => ({ PUTTYDIR: pd } as Record<string, string>)[n];
    storeHostKey("127.0.0.1", sshd.port, key.blob, env);
    const p = String(sshd.port);
    const common = ["-v", "-batch", "-noagent", "-P", p];
    const real = async (tool: string, args: string[]) => {
      const r = await run(tool, [...common, ...args], { env: { PUTTYDIR: pd, HOME: pd, PATH } });
      return /Using username "([^"]*)"/.exec(r.stderr + r.stdout)?.[1] ?? r.stderr;
    };
    const local = { env, localUser: () => "root" };
    const plinkUser = (argv: string[]) =>
      parseCommandLine(PLINK, [...common, ...argv], local).config.user;
    for (const argv of [["-l", "bob", "alice@127.0.0.1"], ["alice@127.0.0.1", "-l", "bob"]]) {
      assert.equal(await real("plink", [...argv, "true"]), plinkUser(argv));
    }
    if (Deno.uid() === 0) assert.equal(await real("plink", ["127.0.0.1", "true"]), "root");
    // pscp and psftp: user@host beats -l.
    const pscp = parseCommandLine(
      PSCP,
      [...common, "-l", "bob", "alice@127.0.0.1:/x", "/y"],
      local,
    );
    assert.equal(pscp.forHost("127.0.0.1", "alice").user, "alice");
    assert.equal(await real("pscp", ["-l", "bob", "alice@127.0.0.1:/x", `${pd}/y`]), "alice");
    assert.equal(await real("pscp", ["-l", "bob", "127.0.0.1:/x", `${pd}/y`]), "bob");
    const psftp = parseCommandLine(PSFTP, [...common, "-l", "bob", "alice@127.0.0.1"], local);
    assert.equal(psftp.forHost("127.0.0.1", "alice").user, "alice");
    assert.equal(await real("psftp", ["-l", "bob", "alice@127.0.0.1"]), "alice");
  } finally {
    await sshd.stop();
  }
});
