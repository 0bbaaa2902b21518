/**
 * The shared command-line parser: per-tool accepted/rejected options, PuTTY's precedence rules
 * (Default Settings < -load / session-named host < options, with PuTTY's deferral and
 * priorities), user@host, port-forward specs, -m, -hostkey, errors; and a cross-check of the
 * resulting host/port against the real plink.
 */

import assert from "node:assert/strict";
import { parseCommandLine } from "../lib/config/command_line.ts";
import { type ParseOptions } from "../lib/config/common_options.ts";
import { canonicalManualHostKey } from "../lib/config/manual_host_key.ts";
import { PLINK, PSCP, PSFTP, PUTTY, type ToolSpec } from "../lib/config/tool_specs.ts";
import { saveSession } from "../lib/config/settings_file.ts";
import { defaultPuttyConfig } from "../lib/config/types.ts";
import { ConfigError } from "../lib/config/types.ts";

const dir = Deno.makeTempDirSync({ prefix: "puttykit-options-" });
// Removed when the test module exits (also when --filter skips tests).
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const vars: Record<string, string> = { PUTTYDIR: `${dir}/putty`, HOME: dir };
const env = (name: string) => vars[name];
const opts: ParseOptions = { env, localUser: () => "localme" };

function parse(spec: ToolSpec, ...argv: string[]) {
  return parseCommandLine(spec, argv, opts);
}

function fails(spec: ToolSpec, argv: string[], message: string | RegExp) {
  assert.throws(() => parseCommandLine(spec, argv, opts), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

function session(name: string, fields: Partial<ReturnType<typeof defaultPuttyConfig>>) {
  saveSession(name, { ...defaultPuttyConfig(), ...fields }, env);
}

function clearSessions() {
  try {
    Deno.removeSync(`${dir}/putty`, { recursive: true });
  } catch {
    // nothing saved yet
  }
}

Deno.test("plink: user@host and a command", () => {
  clearSessions();
  const p = parse(PLINK, "alice@example.com", "ls", "-l", "/tmp dir");
  assert.equal(p.config.host, "example.com");
  assert.equal(p.config.user, "alice");
  assert.equal(p.config.port, 22);
  assert.deepEqual(p.args, ["ls", "-l", "/tmp dir"]);
  assert.equal(p.config.remoteCommand, "ls -l /tmp dir");
  assert.equal(p.config.pty, false, "a command means no pty");
  assert.equal(p.config.protocol, "ssh");
  assert.equal(p.loadedSession, false);

  const q = parse(PLINK, "host");
  assert.equal(q.config.user, "localme", "plink falls back to the local user name");
  assert.equal(q.config.remoteCommand, undefined);
  assert.equal(q.config.pty, undefined);
  assert.deepEqual(q.args, []);
});

Deno.test("plink: options after the host, -P, -l beats user@host, :suffix ignored", () => {
  clearSessions();
  const p = parse(PLINK, "-l", "bob", "alice@127.0.0.1:2200", "-P", "2299", "-v", "true");
  assert.equal(p.config.user, "bob");
  assert.equal(p.config.host, "127.0.0.1");
  assert.equal(p.config.port, 2299);
  assert.equal(p.config.verbose, true);
  assert.equal(p.config.remoteCommand, "true");
  // An unbracketed IPv6 literal (several colons) is left alone; brackets are not stripped.
  assert.equal(parse(PLINK, "fe80::1").config.host, "fe80::1");
  assert.equal(parse(PLINK, "[::1]:22").config.host, "[::1]");
  // user@ is split at the last @.
  const r = parse(PLINK, "a@b@host");
  assert.equal(r.config.user, "a@b");
  assert.equal(r.config.host, "host");
  // Whitespace is removed from the host name.
  assert.equal(parse(PLINK, " ho st ").config.host, "host");
});

Deno.test("plink: flags", () => {
  clearSessions();
  const p = parse(
    PLINK,
    "-batch",
    "-ssh",
    "-4",
    "-C",
    "-A",
    "-N",
    "-T",
    "-share",
    "-noagent",
    "-s",
    "-shareexists",
    "-i",
    "key.ppk",
    "-pw",
    "secret",
    "-X",
    "-no-trivial-auth",
    "h",
    "sftp",
  );
  const c = p.config;
  assert.equal(c.batch, true);
  assert.equal(c.addressFamily, "ipv4");
  assert.equal(c.compression, true);
  assert.equal(c.agentForward, true);
  assert.equal(c.noShell, true);
  assert.equal(c.pty, false);
  assert.equal(c.share, true);
  assert.equal(c.tryAgent, false);
  assert.equal(c.subsystem, true);
  assert.equal(c.keyFile, "key.ppk");
  assert.equal(c.password, "secret");
  assert.equal(c.x11Forward, true);
  assert.equal(c.noTrivialAuth, true);
  assert.equal(c.remoteCommand, "sftp");
  assert.deepEqual([...p.flags].sort(), ["-s", "-shareexists"]);
  // Later flags win, aliases work.
  const q = parse(PLINK, "-A", "-a", "-share", "-noshare", "-pageant", "-6", "-ipv4", "-t", "h");
  assert.equal(q.config.agentForward, false);
  assert.equal(q.config.share, false);
  assert.equal(q.config.tryAgent, true);
  assert.equal(q.config.addressFamily, "ipv4");
  assert.equal(q.config.pty, true);
  assert.equal(parse(PLINK, "-t", "h", "cmd").config.pty, true, "-t beats a command's no-pty");
});

Deno.test("errors carry PuTTY's messages", () => {
  clearSessions();
  fails(PLINK, ["-foo", "host"], 'unknown option "-foo"');
  fails(PLINK, ["host", "-P"], 'option "-P" requires an argument');
  fails(PLINK, ["-l"], 'option "-l" requires an argument');
  fails(PLINK, [], "no valid host name provided");
  fails(PLINK, ["-v", "-P", "22"], "no valid host name provided");
  fails(PLINK, ["-L", "80", "host"], "-L expects at least two colons in its argument");
  fails(
    PLINK,
    ["-hostkey", "zz", "host"],
    "'zz' is not a valid format for a manual host key specification",
  );
  fails(
    PLINK,
    ["-m", `${dir}/no-such-file`, "host"],
    `unable to open command file "${dir}/no-such-file"`,
  );
  fails(PLINK, ["-nc", "nocolon", "host"], "-nc expects argument of form 'host:port'");
  fails(
    PLINK,
    ["-telnet", "-pw", "x", "host"],
    "the -pw option can only be used with the SSH protocol",
  );
  fails(PLINK, ["bogus,host"], "unrecognised protocol prefix 'bogus'");
  // Deferred options are checked after the host: PuTTY reports the missing host first.
  fails(PLINK, ["-L", "80"], "no valid host name provided");
  // plink has no -h, -r.
  fails(PLINK, ["-h", "host"], 'unknown option "-h"');
  fails(PLINK, ["-r", "host"], 'unknown option "-r"');
});

Deno.test("help/version stop parsing before anything else is checked", () => {
  clearSessions();
  assert.equal(parse(PLINK, "--help", "-foo").stop, "--help");
  assert.equal(parse(PLINK, "--version").stop, "-V");
  assert.equal(parse(PLINK, "-pgpfp").stop, "-pgpfp");
  assert.equal(parse(PSCP, "-h").stop, "--help");
  assert.equal(parse(PSCP, "-?").stop, "--help");
  assert.equal(parse(PSFTP, "-V").stop, "-V");
  assert.equal(parse(PLINK, "host").stop, undefined);
});

Deno.test("pscp: accepted and rejected options, files", () => {
  clearSessions();
  const p = parse(
    PSCP,
    "-r",
    "-p",
    "-q",
    "-unsafe",
    "-scp",
    "-batch",
    "-P",
    "2222",
    "-l",
    "u",
    "-pw",
    "pw",
    "-i",
    "k",
    "-share",
    "-v",
    "-4",
    "-C",
    "-hostkey",
    "SHA256:ypoSlRGI8Mmnn9Si5DsrveC51r0sM7oLQHi3Uovx8EY",
    "-noagent",
    "src",
    "-r",
    "host:dst",
  );
  assert.deepEqual([...p.flags].sort(), ["-p", "-q", "-r", "-scp", "-unsafe"]);
  assert.deepEqual(p.args, ["src", "-r", "host:dst"], "options end at the first file");
  assert.equal(p.config.verbose, true);
  assert.equal(p.config.batch, true);
  assert.deepEqual(parse(PSCP, "-ls", "h:/").flags, new Set(["-ls"]));
  assert.deepEqual(parse(PSCP, "-sftp", "a", "b").flags, new Set(["-sftp"]));
  assert.deepEqual(parse(PSCP, "--", "-r", "h:x").args, ["-r", "h:x"]);
  for (const o of ["-A", "-a", "-L", "-R", "-D", "-m", "-t", "-T", "-N", "-X", "-x", "-nc"]) {
    const needsArg = ["-L", "-R", "-D", "-m", "-nc"].includes(o);
    fails(
      PSCP,
      needsArg ? [o, "1:h:2", "a", "b"] : [o, "a", "b"],
      `option "${o}" not available in this tool`,
    );
  }
  fails(PSCP, ["-telnet", "a", "b"], 'unknown option "-telnet"');
  fails(PSCP, ["-foo", "a", "b"], 'unknown option "-foo"');
  fails(PSCP, ["-s", "a", "b"], 'unknown option "-s"');
  fails(PSCP, ["-P"], 'option "-P" requires an argument');
  // A missing argument is reported before availability, as cmdline.c does.
  fails(PSCP, ["-L"], 'option "-L" requires an argument');
});

Deno.test("pscp/psftp: forHost applies the saved options", () => {
  clearSessions();
  const p = parse(PSCP, "-l", "fromdashl", "-P", "2200", "-C", "a", "h:b");
  const c = p.forHost("server", "fromuserhost");
  assert.equal(c.host, "server");
  assert.equal(c.user, "fromuserhost", "pscp: user@host wins over -l");
  assert.equal(c.port, 2200);
  assert.equal(c.compression, true);
  assert.equal(c.pty, false);
  assert.equal(p.forHost("server").user, "fromdashl");
  assert.equal(parse(PSCP, "a", "h:b").forHost("server").user, "localme");
  // psftp doesn't guess a user name (the server session asks).
  assert.equal(parse(PSFTP, "server").forHost("server").user, undefined);
  // Each call starts afresh.
  assert.equal(p.forHost("other").host, "other");
  assert.equal(p.forHost("server").user, "fromdashl");
  assert.throws(() => parse(PLINK, "h").forHost("x"));
  // Deferred validation happens at connection time, as in PuTTY.
  const bad = parse(PSCP, "-hostkey", "nonsense", "a", "h:b");
  assert.throws(() => bad.forHost("h"), ConfigError);
});

Deno.test("psftp: one host word, -b needs a file, -bc/-be, --", () => {
  clearSessions();
  const p = parse(PSFTP, "-b", "cmds.txt", "-bc", "user@host", "-be", "-P", "23");
  assert.deepEqual(p.args, ["user@host"]);
  assert.equal(p.values.get("-b"), "cmds.txt");
  assert.deepEqual([...p.flags].sort(), ["-b", "-bc", "-be"]);
  assert.equal(p.forHost("host", "user").port, 23);
  fails(PSFTP, ["-b"], 'unknown option "-b"');
  fails(PSFTP, ["h1", "h2"], 'unexpected extra argument "h2"');
  fails(PSFTP, ["-L", "1:h:2", "h"], 'option "-L" not available in this tool');
  fails(PSFTP, ["-r", "h"], 'unknown option "-r"');
  // psftp stops at "--" and ignores the rest (as PuTTY does).
  assert.deepEqual(parse(PSFTP, "--", "h").args, []);
  // No host at all is fine for psftp ("open" later).
  assert.deepEqual(parse(PSFTP).args, []);
});

Deno.test("putty: host then port word", () => {
  clearSessions();
  const p = parse(PUTTY, "host", "2022");
  assert.equal(p.config.host, "host");
  assert.equal(p.config.port, 2022);
  fails(PUTTY, ["host", "22", "extra"], "unexpected non-option argument 'extra'");
  fails(PUTTY, ["-v", "host"], 'option "-v" not available in this tool');
  // "user@host" is split by prepare_session; a host word is never a session name for putty.
  const u = parse(PUTTY, "bob@host");
  assert.equal(u.config.user, "bob");
  assert.equal(u.config.host, "host");
  assert.equal(parse(PUTTY, "-V").stop, "--version");
  assert.equal(parse(PUTTY, "-help").stop, "--help");
});

Deno.test("precedence: defaults < Default Settings < -load < command line", () => {
  clearSessions();
  session("", { user: "defuser", port: 2000, compression: true });
  session("work", { host: "work.example", port: 2001, user: "worker", agentForward: true });
  session("style", { termType: "vt220", user: "styled" }); // no HostName: not launchable

  let c = parse(PLINK, "plainhost").config;
  assert.equal(c.user, "defuser");
  assert.equal(c.port, 2000);
  assert.equal(c.compression, true);

  c = parse(PLINK, "-load", "work").config;
  assert.equal(c.host, "work.example");
  assert.equal(c.port, 2001);
  assert.equal(c.user, "worker");
  assert.equal(c.compression, false, "a session replaces Default Settings entirely");
  assert.equal(c.sessionName, "work");

  // Options given before -load are deferred and still win.
  c = parse(PLINK, "-P", "3000", "-l", "me", "-load", "work").config;
  assert.equal(c.port, 3000);
  assert.equal(c.user, "me");
  // -ssh sets the port to 22 but runs before -P, whatever the order.
  assert.equal(parse(PLINK, "-load", "work", "-ssh").config.port, 22);
  assert.equal(parse(PLINK, "-P", "3000", "-ssh", "-load", "work").config.port, 3000);

  // A host word naming a saved session loads it; user@ overrides its UserName.
  c = parse(PLINK, "work").config;
  assert.equal(c.host, "work.example");
  assert.equal(c.sessionName, "work");
  assert.equal(parse(PLINK, "someone@work").config.user, "someone");
  assert.equal(parse(PLINK, "work").loadedSession, true);

  // After a launchable -load, the next word starts the command.
  const p = parse(PLINK, "-load", "work", "otherhost", "arg");
  assert.equal(p.config.host, "work.example");
  assert.equal(p.config.remoteCommand, "otherhost arg");
  // After a non-launchable -load, the next word is the host (and is not a session lookup).
  c = parse(PLINK, "-load", "style", "work").config;
  assert.equal(c.host, "work");
  assert.equal(c.termType, "vt220");
  assert.equal(c.user, "styled");
  // -load of a missing session gives plain defaults (not Default Settings), except that plink
  // took its default port from Default Settings.
  c = parse(PLINK, "-load", "missing", "h").config;
  assert.equal(c.port, 2000);
  assert.equal(c.user, "localme");
  assert.equal(c.compression, false);

  // pscp: the host from host:path can name a session too, unless -load was given.
  c = parse(PSCP, "a", "work:b").forHost("work");
  assert.equal(c.host, "work.example");
  assert.equal(c.port, 2001);
  c = parse(PSCP, "-load", "style", "a", "work:b").forHost("work");
  assert.equal(c.host, "work");
  assert.equal(c.termType, "vt220");
  // Forwardings are switched off for file transfer.
  session("fw", {
    host: "fw.example",
    agentForward: true,
    portForwards: [{ kind: "D", bindPort: 1080 }],
  });
  c = parse(PSFTP, "fw").forHost("fw");
  assert.equal(c.host, "fw.example");
  assert.equal(c.agentForward, false);
  assert.deepEqual(c.portForwards, []);
  // psftp -load with a HostName: the front-end connects to config.host.
  assert.equal(parse(PSFTP, "-load", "fw").config.host, "fw.example");
  clearSessions();
});

Deno.test("PLINK_PROTOCOL, protocol prefixes", () => {
  clearSessions();
  const telnet = parseCommandLine(PLINK, ["h"], {
    ...opts,
    env: (n) => (n === "PLINK_PROTOCOL" ? "telnet" : env(n)),
  });
  assert.equal(telnet.config.protocol, "telnet");
  assert.equal(telnet.config.port, 23);
  const pre = parse(PLINK, "telnet,user@h");
  assert.equal(pre.config.protocol, "telnet");
  assert.equal(pre.config.port, 23);
  assert.equal(pre.config.user, "user");
  assert.equal(pre.config.host, "h");
  const url = parse(PLINK, "telnet://h:2323");
  assert.equal(url.config.protocol, "telnet");
  assert.equal(url.config.port, 2323);
  assert.equal(url.config.host, "h");
});

Deno.test("-m reads the remote command from a file and wins over command words", () => {
  clearSessions();
  const f = `${dir}/cmd.txt`;
  Deno.writeTextFileSync(f, "echo one\necho two\n");
  let c = parse(PLINK, "-m", f, "h").config;
  assert.equal(c.remoteCommand, "echo one\necho two\n");
  assert.equal(c.pty, false);
  c = parse(PLINK, "-m", f, "h", "ignored", "words").config;
  assert.equal(c.remoteCommand, "echo one\necho two\n");
  assert.equal(parse(PLINK, "-t", "-m", f, "h").config.pty, true, "-t (priority 1) beats -m");
  const pw = `${dir}/pw.txt`;
  Deno.writeTextFileSync(pw, "s3cret\r\nsecond line\n");
  assert.equal(parse(PLINK, "-pwfile", pw, "h").config.password, "s3cret");
});

Deno.test("port forwarding specs", () => {
  clearSessions();
  const c = parse(
    PLINK,
    "-L",
    "8080:localhost:80",
    "-L",
    "127.0.0.2:8081:web:8080",
    "-L",
    "[::1]:8082:[fe80::2]:443",
    "-R",
    "2222:inside:22",
    "-R",
    "0.0.0.0:2223:inside:22",
    "-D",
    "1080",
    "-D",
    "[::1]:1081",
    "-L",
    "8083:a:http",
    "h",
  ).config;
  assert.deepEqual(c.portForwards, [
    { kind: "L", bindPort: 8080, host: "localhost", port: 80 },
    { kind: "L", bindAddress: "127.0.0.2", bindPort: 8081, host: "web", port: 8080 },
    { kind: "L", bindAddress: "::1", bindPort: 8082, host: "fe80::2", port: 443 },
    { kind: "R", bindPort: 2222, host: "inside", port: 22 },
    { kind: "R", bindAddress: "0.0.0.0", bindPort: 2223, host: "inside", port: 22 },
    { kind: "D", bindPort: 1080 },
    { kind: "D", bindAddress: "::1", bindPort: 1081 },
    { kind: "L", bindPort: 8083, host: "a", port: 80 },
  ]);
  // Same key replaces: a later -L on the port, or a -D (dynamic shares the L port space).
  const d = parse(
    PLINK,
    "-L",
    "9000:a:1",
    "-L",
    "9000:b:2",
    "-R",
    "9000:c:3",
    "-D",
    "9001",
    "-L",
    "9001:d:4",
    "h",
  );
  assert.deepEqual(d.config.portForwards, [
    { kind: "L", bindPort: 9000, host: "b", port: 2 },
    { kind: "R", bindPort: 9000, host: "c", port: 3 },
    { kind: "L", bindPort: 9001, host: "d", port: 4 },
  ]);
  // An unknown service name: PuTTY skips the forwarding with a log message.
  const w = parse(PLINK, "-L", "8080:h:no-such-service", "h");
  assert.deepEqual(w.config.portForwards, []);
  assert.match(w.warnings[0], /Service lookup failed for destination port "no-such-service"/);
  // Command-line forwardings add to a session's.
  session("fwd", { host: "x", portForwards: [{ kind: "L", bindPort: 1, host: "s", port: 2 }] });
  assert.equal(parse(PLINK, "-L", "3:t:4", "fwd").config.portForwards.length, 2);
  clearSessions();
});

Deno.test("-hostkey: repeatable, canonicalised like validate_manual_hostkey", () => {
  clearSessions();
  const sha = "SHA256:ypoSlRGI8Mmnn9Si5DsrveC51r0sM7oLQHi3Uovx8EY";
  const md5 = "45:ba:d8:7b:f2:50:c4:89:20:9d:71:7d:44:c3:f8:ae";
  // An Ed25519 public key blob: string "ssh-ed25519", string <32 bytes>.
  const raw = [0, 0, 0, 11, ..."ssh-ed25519"].map((x) =>
    typeof x === "string" ? x.charCodeAt(0) : x
  )
    .concat([0, 0, 0, 32], Array(32).fill(7));
  const blob = btoa(String.fromCharCode(...raw));
  const c = parse(
    PLINK,
    "-hostkey",
    `ssh-ed25519 255 ${sha}`,
    "-hostkey",
    `MD5:${md5.toUpperCase()}`,
    "-hostkey",
    `ssh-ed25519 ${blob} comment`,
    "-hostkey",
    sha,
    "h",
  ).config;
  assert.deepEqual(c.hostKeys, [sha, md5, blob]);
  assert.equal(canonicalManualHostKey(`ssh-rsa 2048 ${md5}`), md5);
  assert.equal(canonicalManualHostKey(sha + "="), sha);
  assert.equal(canonicalManualHostKey("SHA256:short"), undefined);
  assert.equal(canonicalManualHostKey("45:ba:d8"), undefined);
  assert.equal(
    canonicalManualHostKey("4:5ba:d8:7b:f2:50:c4:89:20:9d:71:7d:44:c3:f8:ae"),
    undefined,
  );
  // A base64 word whose algorithm-name length is implausible is not a key blob.
  assert.equal(canonicalManualHostKey("/////////////w=="), undefined);
});

Deno.test("the parser module stays light (no crypto in its import graph)", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../lib/config/command_line.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "null",
  });
  const info = JSON.parse(new TextDecoder().decode((await cmd.output()).stdout));
  const specifiers: string[] = [];
  for (const m of info.modules) {
    for (const d of m.dependencies ?? []) specifiers.push(d.specifier);
  }
  assert.ok(specifiers.length > 0);
  for (const s of specifiers) {
    assert.ok(!/crypto|hostkeys|ssh2/.test(s), `command_line.ts imports ${s}`);
  }
});

/** What the real plink says it connects to, for a command line (ports 1-9 are closed). */
async function plinkTarget(argv: string[]): Promise<string> {
  const out = await new Deno.Command("plink", {
    args: ["-v", "-batch", "-noagent", ...argv],
    env: { PUTTYDIR: vars.PUTTYDIR, HOME: dir, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  const m = /Connecting to (\S+) port (\d+)/.exec(text);
  return m ? `${m[1]}:${m[2]}` : `no connection: ${text.trim().split("\n")[0]}`;
}

Deno.test("host and port agree with the real plink", async () => {
  clearSessions();
  session("", { port: 3 });
  session("s5", { host: "127.0.0.5", port: 5, user: "s5user" });
  session("style", { termType: "vt220" });
  session("noproto-ish", { host: "127.0.0.6", port: 6 });
  const cases: string[][] = [
    ["127.0.0.1"],
    ["127.0.0.1", "-P", "4"],
    ["-P", "4", "127.0.0.1:9"],
    ["-load", "s5"],
    ["-P", "7", "-load", "s5"],
    ["-load", "s5", "-P", "7"],
    ["-load", "s5", "-ssh"],
    ["-P", "8", "-ssh", "-load", "s5"],
    ["s5"],
    ["user@s5", "-P", "9"],
    ["-load", "style", "127.0.0.7"],
    ["-load", "s5", "127.0.0.8", "cmd"],
    ["-load", "missing", "127.0.0.1"],
    ["ssh,127.0.0.1"],
    ["ssh,s5"],
  ];
  for (const argv of cases) {
    const ours = parse(PLINK, ...argv).config;
    assert.equal(`${ours.host}:${ours.port}`, await plinkTarget(argv), argv.join(" "));
  }
  clearSessions();
});
