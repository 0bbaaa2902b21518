/**
 * -sshlog (PuTTY's SSH packet log) beside PuTTY 0.78's plink: the file's header and line format,
 * the questions about an existing file, -logappend / -logoverwrite, &H/&P in the name, and a
 * downstream's own log.
 */

import assert from "node:assert/strict";
import { loginArgs, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startUpstream, stopUpstream } from "./fixtures/upstream.ts";
import { collect, runOurs, runReal, spawn, spawnOurs } from "./fixtures/tools.ts";
import { hexDump, logFileName, logHeader } from "../lib/log/log_files.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const HEADER =
  /^=~=~=~=~=~=~=~=~=~=~=~= PuTTY log \d{4}\.\d\d\.\d\d \d\d:\d\d:\d\d =~=~=~=~=~=~=~=~=~=~=~=\r\n/;
const PACKET =
  /^(Incoming|Outgoing) packet #0x[0-9a-f]+, type (\d+) \/ 0x([0-9a-f]{2}) \((SSH2_MSG_\w+)\)$/;

/** The packet types logged, in order, with their direction. */
function packets(log: string): string[] {
  return log.split("\r\n").map((l) => PACKET.exec(l)).filter((m) => m !== null).map((m) =>
    `${m![1]} ${m![4]}`
  );
}

/** The session channel's packets (not the transport's or window adjusts), sorted. */
function sessionPackets(log: string): string[] {
  return packets(log).filter((p) => /CHANNEL_(OPEN|DATA|EOF|CLOSE)/.test(p)).sort();
}

function plink(which: "ours" | "real", s: Sshd, args: string[], command = "echo hello-log") {
  return (which === "ours" ? runOurs : runReal)("plink", [...loginArgs(s, ...args), command], {
    env: s.env,
  });
}

Deno.test("-sshlog writes PuTTY's packet log", opts, async (t) => {
  const s = await startSshd();
  try {
    await t.step(
      "header, event log lines and connection-layer packets, as PuTTY writes them",
      async () => {
        const logs: Record<string, string> = {};
        for (const which of ["ours", "real"] as const) {
          const file = `${s.dir}/${which}.log`;
          const r = await plink(which, s, ["-sshlog", file]);
          assert.equal(r.stdout, "hello-log\n", r.stderr);
          logs[which] = await Deno.readTextFile(file);
        }
        const ours = logs.ours;
        assert.match(ours, HEADER);
        assert.ok(ours.endsWith("\r\n"));
        assert.doesNotMatch(ours.replace(/\r\n/g, ""), /\n/, "every line ends in \\r\\n");
        assert.match(ours, /^Event Log: Access granted\r$/m);
        // Every packet line and hex dump line has PuTTY's form.
        for (const line of ours.split("\r\n").slice(1, -1)) {
          assert.match(
            line,
            /^(Event Log: .*|(Incoming|Outgoing) packet .*| {2}[0-9a-f]{8} {2}.*)$/,
            line,
          );
          const m = PACKET.exec(line);
          if (m) assert.equal(parseInt(m[3], 16), Number(m[2]));
        }
        // The session's packets are PuTTY's (which also logs the transport and a request of its
        // own); whether the EOF for the empty stdin goes out before or after the server's
        // packets varies, so they are compared as a set.
        assert.deepEqual(sessionPackets(ours), sessionPackets(logs.real));
        assert.match(ours, /^ {2}00000000 {2}[0-9a-f ]{48} \.{8}hello-lo\r$/m, "the data, dumped");
      },
    );

    await t.step("stdin still open when the command ends: EOF then CLOSE, as PuTTY", async () => {
      const logs: Record<string, string> = {};
      for (const which of ["ours", "real"] as const) {
        const file = `${s.dir}/open-stdin-${which}.log`;
        const args = [...loginArgs(s, "-sshlog", file), "echo hello-log"];
        // A pipe that is never written to or closed: the server's CLOSE comes first.
        const piped = { env: s.env, stdin: "" };
        const child = which === "ours"
          ? spawnOurs("plink", args, piped)
          : spawn("plink", args, piped);
        const r = await collect(child);
        await child.stdin.close().catch(() => {});
        assert.equal(r.stdout, "hello-log\n", r.stderr);
        logs[which] = await Deno.readTextFile(file);
      }
      assert.deepEqual(sessionPackets(logs.ours), sessionPackets(logs.real));
      const ending = (log: string) => packets(log).filter((p) => /CHANNEL_(EOF|CLOSE)/.test(p));
      assert.deepEqual(ending(logs.ours), ending(logs.real));
      assert.deepEqual(ending(logs.ours).slice(-2), [
        "Outgoing SSH2_MSG_CHANNEL_EOF",
        "Outgoing SSH2_MSG_CHANNEL_CLOSE",
      ]);
    });

    await t.step("an existing file: -batch leaves it alone with PuTTY's message", async () => {
      const out: Record<string, { stderr: string; file: string }> = {};
      for (const which of ["ours", "real"] as const) {
        const file = `${s.dir}/existing-${which}.log`;
        await Deno.writeTextFile(file, "precious\n");
        const r = await plink(which, s, ["-sshlog", file]);
        assert.equal(r.code, 0);
        out[which] = {
          stderr: r.stderr.replaceAll(which, "W"),
          file: await Deno.readTextFile(file),
        };
      }
      assert.deepEqual(out.ours, out.real);
      assert.match(out.ours.stderr, /already exists\.\nLogging will not be enabled\.\n$/);
      assert.equal(out.ours.file, "precious\n");
    });

    await t.step("-logappend adds to it, -logoverwrite replaces it", async () => {
      const file = `${s.dir}/clash.log`;
      await Deno.writeTextFile(file, "precious\n");
      await plink("ours", s, ["-sshlog", file, "-logappend"]);
      const appended = await Deno.readTextFile(file);
      assert.ok(appended.startsWith("precious\n=~=~="), appended.slice(0, 40));
      await plink("ours", s, ["-sshlog", file, "-logoverwrite"]);
      assert.match(await Deno.readTextFile(file), HEADER);
    });

    await t.step("&H and &P in the name; a downstream logs its own packets", async () => {
      const up = await startUpstream(s, "ours");
      try {
        const r = await plink("ours", s, ["-share", "-v", "-sshlog", `${s.dir}/&H-&P.log`]);
        assert.match(r.stderr, /Reusing a shared connection/);
        const log = await Deno.readTextFile(`${s.dir}/${s.host}-${s.port}.log`);
        assert.match(log, /^Event Log: Using existing shared connection at /m);
        assert.deepEqual(packets(log).slice(0, 2), [
          "Outgoing SSH2_MSG_CHANNEL_OPEN",
          "Incoming SSH2_MSG_CHANNEL_OPEN_CONFIRMATION",
        ]);
      } finally {
        await stopUpstream(up);
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("packet log pieces: hex dump, header, file name", () => {
  const bytes = new Uint8Array([
    0x00,
    0x00,
    0x00,
    0x07,
    0x73,
    0x65,
    0x73,
    0x73,
    0x69,
    0x6f,
    0x6e,
    0x00,
    0x00,
    0x01,
    0x00,
    0x7f,
    0xff,
    0xff,
    0xff,
    0x00,
    0x00,
    0x40,
    0x00,
  ]);
  // Lines copied from a PuTTY 0.78 log.
  assert.equal(
    hexDump(bytes),
    "  00000000  00 00 00 07 73 65 73 73 69 6f 6e 00 00 01 00 7f  ....session.....\r\n" +
      "  00000010  ff ff ff 00 00 40 00                             .....@.\r\n",
  );
  const when = new Date(2026, 10, 5, 6, 7, 8);
  assert.equal(
    logHeader(when),
    "=~=~=~=~=~=~=~=~=~=~=~= PuTTY log 2026.11.05 06:07:08 =~=~=~=~=~=~=~=~=~=~=~=\r\n",
  );
  assert.equal(
    logFileName("&H_&P_&Y&M&D_&T&&&x.log", "h", 22, when),
    "h_22_20261105_060708&&x.log",
  );
});
