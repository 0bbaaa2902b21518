/**
 * PuTTY Unix saved sessions: file naming, the Key=Value format, list encodings, directory rules,
 * and interop with the real plink (which must load the files we write).
 */

import assert from "node:assert/strict";
import { userInfo } from "node:os";
import {
  configToSettings,
  decodeSettingsMap,
  deleteSession,
  encodeSettingsMap,
  loadSession,
  parseSettings,
  readSessionSettings,
  saveSession,
  settingsToConfig,
} from "../lib/config/settings_file.ts";
import {
  escapeSessionName,
  listSessions,
  puttyDir,
  sessionPath,
  sessionsDir,
  unescapeSessionName,
} from "../lib/config/putty_dir.ts";
import { defaultPuttyConfig } from "../lib/config/types.ts";
import { parseCommandLine } from "../lib/config/command_line.ts";
import { PLINK } from "../lib/config/tool_specs.ts";

function envOf(vars: Record<string, string>) {
  return (name: string) => vars[name];
}

async function withTempDir(fn: (dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "puttykit-sessions-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("session names are escaped as unix/storage.c does", () => {
  assert.equal(escapeSessionName("plain-name_1.2+x@y"), "plain-name_1.2+x@y");
  assert.equal(escapeSessionName("my server"), "my%20server");
  assert.equal(escapeSessionName(""), "Default%20Settings");
  assert.equal(escapeSessionName("Default Settings"), "Default%20Settings");
  assert.equal(escapeSessionName("a/b"), "a%2Fb");
  assert.equal(escapeSessionName("100%"), "100%25");
  assert.equal(escapeSessionName("é"), "%C3%A9");
  assert.equal(escapeSessionName("x:y=z,~"), "x%3Ay%3Dz%2C%7E");
  assert.equal(escapeSessionName(".."), ".."); // dots are "safe" to PuTTY, even ".."
});

Deno.test("escaping round-trips for odd names", () => {
  const names = [
    "simple",
    "with space",
    "slash/and\\back",
    "percent %41 literal",
    "unicode ünïcødé 日本 🚀",
    "tab\tand\nnewline",
    "%%%",
    "trailing %",
    "quote\"'`$(x)",
  ];
  for (const name of names) {
    const escaped = escapeSessionName(name);
    assert.match(escaped, /^[A-Za-z0-9+\-.@_%]*$/, `escaped form of ${JSON.stringify(name)}`);
    assert.equal(unescapeSessionName(escaped), name);
  }
});

Deno.test("decoding follows decode_session_filename quirks", () => {
  assert.equal(unescapeSessionName("a%2Fb"), "a/b");
  // A trailing "%" or "%X" without two characters after it is kept literally.
  assert.equal(unescapeSessionName("x%"), "x%");
  assert.equal(unescapeSessionName("x%4"), "x%4");
  // PuTTY's decoder only understands upper-case hex: "%2f" decodes to a different byte.
  assert.notEqual(unescapeSessionName("a%2fb"), "a/b");
});

Deno.test("gppmap/wmap list encoding", () => {
  assert.deepEqual(decodeSettingsMap(""), []);
  assert.deepEqual(decodeSettingsMap("A=1,B=2"), [["A", "1"], ["B", "2"]]);
  assert.deepEqual(decodeSettingsMap("K\\=x=v\\,w,J=a\\\\b"), [["K=x", "v,w"], ["J", "a\\b"]]);
  assert.deepEqual(decodeSettingsMap("NAME,OTHER"), [["NAME", ""], ["OTHER", ""]]);
  const pairs: [string, string][] = [["a=b", "c,d"], ["back\\slash", "="], ["plain", ""]];
  assert.equal(encodeSettingsMap(pairs), "a\\=b=c\\,d,back\\\\slash=\\=,plain=");
  assert.deepEqual(decodeSettingsMap(encodeSettingsMap(pairs)), pairs);
  assert.equal(encodeSettingsMap([["k1", ""], ["k2", ""]], false), "k1,k2");
});

/** A session file as PuTTY 0.78 on Unix writes it (abridged: PuTTY writes ~200 keys). */
const PUTTY_WRITTEN = [
  "Present=1",
  "HostName=server.example.org",
  "LogType=0",
  "LogFileName=putty.log",
  "SSHLogOmitPasswords=1",
  "Protocol=ssh",
  "PortNumber=2222",
  "CloseOnExit=1",
  "WarnOnClose=1",
  "PingInterval=0",
  "PingIntervalSecs=0",
  "TCPNoDelay=1",
  "TCPKeepalives=0",
  "TerminalType=xterm-256color",
  "TerminalSpeed=38400,38400",
  "TerminalModes=CS7=A,CS8=A,DISCARD=A",
  "AddressFamily=1",
  "ProxyExcludeList=",
  "ProxyDNS=1",
  "ProxyLocalhost=0",
  "ProxyMethod=0",
  "ProxyHost=proxy",
  "ProxyPort=80",
  "ProxyUsername=",
  "ProxyPassword=",
  "ProxyTelnetCommand=connect %host %port\\n",
  "Environment=LANG=C.UTF-8,WEIRD\\=NAME=a\\,b",
  "UserName=alice",
  "UserNameFromEnvironment=0",
  "LocalUserName=",
  "NoPTY=1",
  "Compression=1",
  "TryAgent=0",
  "AgentFwd=1",
  "GssapiFwd=0",
  "ChangeUsername=0",
  "Cipher=aes,chacha20,aesgcm,3des,WARN,des,blowfish,arcfour",
  "KEX=ecdh,dh-gex-sha1,dh-group14-sha1,rsa,WARN,dh-group1-sha1",
  "HostKey=ed25519,ecdsa,rsa,dsa,WARN",
  "PreferKnownHostKeys=1",
  "RekeyTime=60",
  "RekeyBytes=1G",
  "SshNoAuth=0",
  "SshNoTrivialAuth=0",
  "SshBanner=1",
  "AuthTIS=0",
  "AuthKI=1",
  "AuthGSSAPI=1",
  "SshNoShell=1",
  "SshProt=3",
  "LogHost=",
  "SSH2DES=0",
  "PublicKeyFile=/home/alice/.ssh/id.ppk",
  "DetachedCertificate=",
  "RemoteCommand=uptime; who",
  "X11Forward=1",
  "X11Display=",
  "LocalPortAcceptAll=0",
  "RemotePortAcceptAll=0",
  "PortForwardings=L8080=localhost:80,L127.0.0.1:8443=[::1]:443,R2222=inside:22," +
  "D1080=,4L3000=db:5432,6D1081=",
  "BugIgnore1=0",
  "ConnectionSharing=1",
  "ConnectionSharingUpstream=0",
  "ConnectionSharingDownstream=1",
  "SSHManualHostKeys=SHA256:ypoSlRGI8Mmnn9Si5DsrveC51r0sM7oLQHi3Uovx8EY," +
  "45:ba:d8:7b:f2:50:c4:89:20:9d:71:7d:44:c3:f8:ae",
  "FontName=server:fixed",
  "Colour0=187,187,187",
  "",
].join("\n");

Deno.test("a session written by PuTTY loads into the config", () => {
  const settings = parseSettings(PUTTY_WRITTEN);
  assert.equal(settings.get("ProxyTelnetCommand"), "connect %host %port\\n");
  const { config: c, exists, warnings } = settingsToConfig(settings);
  assert.equal(exists, true);
  assert.deepEqual(warnings, []);
  assert.equal(c.host, "server.example.org");
  assert.equal(c.port, 2222);
  assert.equal(c.protocol, "ssh");
  assert.equal(c.user, "alice");
  assert.equal(c.keyFile, "/home/alice/.ssh/id.ppk");
  assert.equal(c.certFile, undefined);
  assert.equal(c.termType, "xterm-256color");
  assert.equal(c.addressFamily, "ipv4");
  assert.equal(c.compression, true);
  assert.equal(c.tryAgent, false);
  assert.equal(c.agentForward, true);
  assert.equal(c.x11Forward, true);
  assert.equal(c.pty, false);
  assert.equal(c.noShell, true);
  assert.equal(c.remoteCommand, "uptime; who");
  assert.equal(c.share, true);
  assert.equal(c.shareUpstream, false);
  assert.equal(c.shareDownstream, true);
  assert.equal(c.proxyType, "none");
  assert.deepEqual(c.env, [["LANG", "C.UTF-8"], ["WEIRD=NAME", "a,b"]]);
  assert.deepEqual(c.portForwards, [
    { kind: "L", bindPort: 8080, host: "localhost", port: 80 },
    { kind: "L", bindAddress: "127.0.0.1", bindPort: 8443, host: "::1", port: 443 },
    { kind: "R", bindPort: 2222, host: "inside", port: 22 },
    { kind: "D", bindPort: 1080 },
    { kind: "L", addressFamily: "ipv4", bindPort: 3000, host: "db", port: 5432 },
    { kind: "D", addressFamily: "ipv6", bindPort: 1081 },
  ]);
  assert.deepEqual(c.hostKeys, [
    "SHA256:ypoSlRGI8Mmnn9Si5DsrveC51r0sM7oLQHi3Uovx8EY",
    "45:ba:d8:7b:f2:50:c4:89:20:9d:71:7d:44:c3:f8:ae",
  ]);
});

Deno.test("missing keys take PuTTY's defaults; values are read with atoi", () => {
  const { config: c } = settingsToConfig(
    parseSettings("HostName=h\nProtocol=ssh\nPortNumber= 2200x\nAgentFwd=7\n"),
  );
  assert.equal(c.port, 2200);
  assert.equal(c.agentForward, true);
  assert.equal(c.tryAgent, true);
  assert.equal(c.termType, "xterm");
  assert.equal(c.pty, undefined);
  assert.equal(c.shareUpstream, true);
  assert.equal(c.protocol, "ssh");
  // No (or an unknown) Protocol: the tool's default protocol and port, PortNumber ignored.
  assert.equal(settingsToConfig(parseSettings("PortNumber=99\n")).config.port, 22);
  // TerminalType's platform default is $TERM (Unix plink), when an environment is given.
  const env = (name: string) => (name === "TERM" ? "screen-256color" : undefined);
  assert.equal(settingsToConfig(parseSettings(""), { env }).config.termType, "screen-256color");
  assert.equal(
    settingsToConfig(parseSettings("TerminalType=vt100\n"), { env }).config.termType,
    "vt100",
  );
  const odd = settingsToConfig(parseSettings("Protocol=bogus\nPortNumber=99\n"), {
    defaultPort: 22,
  }).config;
  assert.equal(odd.port, 22);
  const telnet = settingsToConfig(parseSettings("Protocol=telnet\nPortNumber=2323\n")).config;
  assert.equal(telnet.protocol, "telnet");
  assert.equal(telnet.port, 2323);
  // pscp has only the SSH back ends: a telnet session falls back to the default.
  const forPscp = settingsToConfig(parseSettings("Protocol=telnet\nPortNumber=2323\n"), {
    protocols: ["ssh", "ssh-connection"],
  }).config;
  assert.equal(forPscp.protocol, "ssh");
  assert.equal(forPscp.port, 22);
  // Lines without "=" are ignored; the value is everything after the first "=".
  const s = parseSettings("junk line\nRemoteCommand=a=b\r\n");
  assert.equal(s.get("RemoteCommand"), "a=b");
  assert.equal(s.has("junk line"), false);
});

Deno.test("proxy settings: ProxyMethod, legacy ProxyType", () => {
  const cmd = settingsToConfig(parseSettings("ProxyMethod=5\nProxyTelnetCommand=nc %host %port\n"))
    .config;
  assert.equal(cmd.proxyType, "cmd");
  assert.equal(cmd.proxyCommand, "nc %host %port");
  assert.equal(
    settingsToConfig(parseSettings("ProxyType=2\nProxySOCKSVersion=4\n")).config.proxyType,
    "socks4",
  );
  assert.equal(settingsToConfig(parseSettings("ProxyType=1\n")).config.proxyType, "http");
});

Deno.test("logging settings: LogType, LogFileName, LogFileClash", () => {
  const none = settingsToConfig(parseSettings("LogType=0\nLogFileName=x.log\n")).config;
  assert.equal(none.logFile, undefined);
  const types = ["printable", "session", "packets", "raw"];
  for (const [i, type] of types.entries()) {
    const c = settingsToConfig(parseSettings(`LogType=${i + 1}\nLogFileName=&H.log\n`)).config;
    assert.equal(c.logType, type);
    assert.equal(c.logFile, "&H.log");
    assert.equal(configToSettings(c).get("LogType"), String(i + 1));
  }
  assert.equal(settingsToConfig(parseSettings("LogType=2\n")).config.logFile, "putty.log");
  assert.equal(settingsToConfig(parseSettings("LogFileClash=0\n")).config.logClash, "append");
  assert.equal(settingsToConfig(parseSettings("LogFileClash=1\n")).config.logClash, "overwrite");
  assert.equal(settingsToConfig(parseSettings("LogFileClash=-1\n")).config.logClash, undefined);
});

Deno.test("configToSettings round-trips through settingsToConfig", () => {
  const c = defaultPuttyConfig();
  c.host = "h.example";
  c.port = 2022;
  c.user = "bob";
  c.keyFile = "/k.ppk";
  c.share = true;
  c.agentForward = true;
  c.compression = true;
  c.addressFamily = "ipv6";
  c.termType = "vt100";
  c.remoteCommand = "ls -l";
  c.pty = false;
  c.env = [["Z", "last"], ["A,=\\", "v=,\\"]];
  c.portForwards = [
    { kind: "R", bindPort: 9000, host: "fe80::1", port: 22, bindAddress: "0.0.0.0" },
    { kind: "D", bindPort: 1080, bindAddress: "::1" },
    { kind: "L", bindPort: 80, host: "web", port: 8080 },
  ];
  c.hostKeys = ["SHA256:ypoSlRGI8Mmnn9Si5DsrveC51r0sM7oLQHi3Uovx8EY"];
  const settings = configToSettings(c);
  // Maps are written sorted by (internal) key, dynamic forwardings under a D key.
  assert.equal(
    settings.get("PortForwardings"),
    "L80=web:8080,D[::1]:1080=,R0.0.0.0:9000=[fe80::1]:22",
  );
  assert.equal(settings.get("Environment"), "A\\,\\=\\\\=v\\=\\,\\\\,Z=last");
  assert.equal(settings.get("NoPTY"), "1");
  assert.equal(settings.get("AddressFamily"), "2");
  const back = settingsToConfig(settings).config;
  assert.deepEqual(
    { ...back, portForwards: new Set(back.portForwards), env: new Set(back.env) },
    { ...c, portForwards: new Set(c.portForwards), env: new Set(c.env) },
  );
});

Deno.test("configuration directory rules (make_filename)", async () => {
  await withTempDir(async (dir) => {
    assert.equal(puttyDir(envOf({ PUTTYDIR: `${dir}/explicit`, HOME: dir })), `${dir}/explicit`);
    const home = `${dir}/home`;
    await Deno.mkdir(home);
    // Nothing under $HOME: the passwd entry's ~/.putty if that exists, else $HOME/.putty.
    const pwHome = userInfo().homedir;
    const pwDirExists = await Deno.stat(`${pwHome}/.putty`).then(() => true, () => false);
    assert.equal(
      puttyDir(envOf({ HOME: home })),
      pwDirExists ? `${pwHome}/.putty` : `${home}/.putty`,
    );
    // $HOME/.putty exists.
    await Deno.mkdir(`${home}/.putty`);
    assert.equal(puttyDir(envOf({ HOME: home })), `${home}/.putty`);
    // An existing XDG directory wins over ~/.putty.
    await Deno.mkdir(`${home}/.config/putty`, { recursive: true });
    assert.equal(puttyDir(envOf({ HOME: home })), `${home}/.config/putty`);
    await Deno.mkdir(`${dir}/xdg/putty`, { recursive: true });
    assert.equal(
      puttyDir(envOf({ HOME: home, XDG_CONFIG_HOME: `${dir}/xdg` })),
      `${dir}/xdg/putty`,
    );
    // $PUTTYSESSIONS overrides the sessions directory only.
    assert.equal(sessionsDir(envOf({ HOME: home, PUTTYSESSIONS: "/s" })), "/s");
    assert.equal(sessionsDir(envOf({ PUTTYDIR: "/p" })), "/p/sessions");
    assert.equal(sessionPath("a b", envOf({ PUTTYDIR: "/p" })), "/p/sessions/a%20b");
  });
});

Deno.test("save keeps unknown keys and their order; load, list, delete", async () => {
  await withTempDir(async (dir) => {
    const env = envOf({ PUTTYDIR: `${dir}/putty` });
    const name = "odd/name 100% é";
    // Pretend PuTTY wrote it first.
    await Deno.mkdir(`${dir}/putty/sessions`, { recursive: true });
    await Deno.writeTextFile(sessionPath(name, env), PUTTY_WRITTEN);
    const loaded = loadSession(name, { env });
    assert.equal(loaded.exists, true);
    assert.equal(loaded.config.sessionName, name);
    assert.equal(loaded.config.host, "server.example.org");

    const c = loaded.config;
    c.port = 2022;
    c.user = "carol";
    c.portForwards = [];
    saveSession(name, c, env);

    const text = await Deno.readTextFile(sessionPath(name, env));
    const keys = text.trimEnd().split("\n").map((l) => l.split("=")[0]);
    const origKeys = PUTTY_WRITTEN.trimEnd().split("\n").map((l) => l.split("=")[0]);
    // Every original key is still there, in the same order, nothing duplicated.
    assert.deepEqual(keys.slice(0, origKeys.length), origKeys);
    assert.equal(new Set(keys).size, keys.length);
    const settings = readSessionSettings(name, env)!;
    assert.equal(settings.get("FontName"), "server:fixed");
    assert.equal(settings.get("Cipher"), "aes,chacha20,aesgcm,3des,WARN,des,blowfish,arcfour");
    assert.equal(settings.get("PortNumber"), "2022");
    assert.equal(settings.get("UserName"), "carol");
    assert.equal(settings.get("PortForwardings"), "");
    assert.equal(loadSession(name, { env }).config.user, "carol");

    saveSession("", defaultPuttyConfig(), env);
    assert.deepEqual(listSessions(env), ["Default Settings", name]);
    // A missing session: every default, not Default Settings.
    const missing = loadSession("nope", { env });
    assert.equal(missing.exists, false);
    assert.equal(missing.config.host, "");
    deleteSession(name, env);
    deleteSession("never existed", env);
    assert.deepEqual(listSessions(env), ["Default Settings"]);
    // No temporary files left behind.
    assert.deepEqual([...Deno.readDirSync(`${dir}/putty/sessions`)].map((e) => e.name), [
      "Default%20Settings",
    ]);
  });
});

async function realPlink(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command("plink", {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  return new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
}

Deno.test("real plink loads sessions we save (odd names, Default Settings)", async () => {
  await withTempDir(async (dir) => {
    const env = envOf({ PUTTYDIR: dir });
    const plinkEnv = { PUTTYDIR: dir, HOME: dir, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
    // Ports 1..3 on loopback are closed: plink reports where it connects, then fails at once.
    const odd = "odd/name 100% é";
    const c = defaultPuttyConfig();
    c.host = "127.0.0.1";
    c.port = 2;
    saveSession(odd, c, env);
    let out = await realPlink(["-v", "-batch", "-load", odd], plinkEnv);
    assert.match(out, /Connecting to 127\.0\.0\.1 port 2\b/, out);
    // A bare session name as the host argument.
    out = await realPlink(["-v", "-batch", odd], plinkEnv);
    assert.match(out, /Connecting to 127\.0\.0\.1 port 2\b/, out);
    // Without a Protocol key PuTTY ignores PortNumber (settings.c) and uses the default port.
    await Deno.writeTextFile(sessionPath("noproto", env), "HostName=127.0.0.1\nPortNumber=2\n");
    assert.equal(loadSession("noproto", { env }).config.port, 22);
    out = await realPlink(["-v", "-batch", "-load", "noproto"], plinkEnv);
    assert.match(out, /Connecting to 127\.0\.0\.1 port 22\b/, out);

    const d = defaultPuttyConfig();
    d.port = 3;
    saveSession("", d, env);
    // A plain host takes the port from our Default Settings.
    out = await realPlink(["-v", "-batch", "127.0.0.1"], plinkEnv);
    assert.match(out, /Connecting to 127\.0\.0\.1 port 3\b/, out);
    // ... and in plink, Default Settings' port also becomes the default for loaded sessions.
    out = await realPlink(["-v", "-batch", "-load", "noproto"], plinkEnv);
    assert.match(out, /Connecting to 127\.0\.0\.1 port 3\b/, out);
    assert.equal(parseCommandLine(PLINK, ["-load", "noproto"], { env }).config.port, 3);
  });
});

Deno.test("a saved session is found however $PUTTYSESSIONS is spelled; none where there is none", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/s`);
    await Deno.writeTextFile(`${dir}/s/${escapeSessionName("my host")}`, "HostName=example\n");
    const original = Deno.cwd();
    Deno.chdir(dir);
    try {
      for (const spelled of [`${dir}/s`, `${dir}/s/`, `${dir}/s//`, "s", "./s/"]) {
        const env = envOf({ PUTTYSESSIONS: spelled });
        assert.equal(readSessionSettings("my host", env)?.get("HostName"), "example", spelled);
        assert.equal(readSessionSettings("nobody saved this", env), undefined, spelled);
      }
      const absent = envOf({ PUTTYSESSIONS: `${dir}/missing/s` });
      assert.equal(readSessionSettings("my host", absent), undefined);
    } finally {
      Deno.chdir(original);
    }
  });
});
