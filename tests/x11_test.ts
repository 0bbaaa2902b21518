/**
 * X11 forwarding (-X) end to end: a real X server (Xvfb, cookie required) on this side, OpenSSH
 * sshd with X11Forwarding on the other, and real X clients (xdpyinfo, xauth) run remotely; also
 * through shared connections, ours and PuTTY 0.78's. Plus the display-name, .Xauthority and
 * set-up message handling on their own.
 */

import assert from "node:assert/strict";
import { loginArgs, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { startUpstream, stopUpstream, upstreamId } from "./fixtures/upstream.ts";
import { RawDownstream } from "./fixtures/raw_downstream.ts";
import { sharePaths } from "../lib/share/socket_path.ts";
import { message, MSG, readUint32 } from "../lib/ssh/wire.ts";
import { startXvfb, type Xvfb } from "./fixtures/xvfb.ts";
import { runOurs, runReal, waitFor } from "./fixtures/tools.ts";
import {
  findAuth,
  parseDisplayName,
  parseXauthority,
  setupDisplay,
  X11DisplayError,
} from "../lib/forward/x11_display.ts";
import { failureReply, makeGreeting, parseSetup, verifyAuth } from "../lib/forward/x11_protocol.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const args = loginArgs;

function envFor(s: Sshd, x: Xvfb, display = x.display): Record<string, string> {
  return { ...s.env, DISPLAY: display, XAUTHORITY: x.authFile };
}

/** Prints the display, the cookie the remote side was given, and what xdpyinfo says. */
const PROBE =
  'echo "display=$DISPLAY"; xauth list "$DISPLAY"; xdpyinfo | grep -E "^(name of display|vendor string):|dimensions:"';

/** An sshd that forwards X11 and an X server, for the length of `body`. */
async function withX11(body: (s: Sshd, x: Xvfb) => Promise<void>): Promise<void> {
  const s = await startSshd({ config: ["X11Forwarding yes", "X11UseLocalhost yes"] });
  try {
    const x = await startXvfb(s.dir);
    try {
      await body(s, x);
    } finally {
      await x.stop();
    }
  } finally {
    await s.stop();
  }
}

Deno.test(
  "X11 forwarding against OpenSSH and a real X server",
  opts,
  (t) =>
    withX11(async (s, x) => {
      await t.step(
        "remote X clients reach the local display; the real cookie stays here",
        async () => {
          const r = await runOurs("plink", [...args(s, "-X", "-v"), PROBE], { env: envFor(s, x) });
          assert.equal(r.code, 0, r.stdout + r.stderr);
          const display = /^display=(localhost:\d+\.0)$/m.exec(r.stdout)?.[1];
          assert.ok(display, r.stdout);
          assert.match(r.stdout, new RegExp(`^name of display:\\s+${display}$`, "m"));
          assert.match(r.stdout, /^vendor string:\s+The X\.Org Foundation$/m);
          assert.match(r.stdout, /^\s*dimensions:\s+640x480 pixels/m);
          const remoteCookie = /MIT-MAGIC-COOKIE-1\s+([0-9a-f]{32})$/m.exec(r.stdout)?.[1];
          assert.ok(remoteCookie, r.stdout);
          assert.notEqual(remoteCookie, x.cookieHex);
          assert.match(r.stderr, /^X11 forwarding enabled$/m);
          assert.match(r.stderr, /^Received X11 connect request from 127\.0\.0\.1:\d+$/m);
        },
      );

      await t.step("clients without our cookie get an X error naming the problem", async () => {
        const cmd = [
          "XAUTHORITY=/dev/null xdpyinfo; echo status=$?",
          `f=$(mktemp); xauth -f "$f" add "$DISPLAY" . ${"00".repeat(16)}`,
          'XAUTHORITY="$f" xdpyinfo; echo status=$?; rm -f "$f"',
        ].join("; ");
        const r = await runOurs("plink", [...args(s, "-X"), cmd], { env: envFor(s, x) });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stderr, /Plink X11 proxy: No authorisation provided/);
        assert.match(r.stderr, /Plink X11 proxy: Authorisation not recognised/);
        assert.deepEqual(r.stdout.match(/status=\d+/g), ["status=1", "status=1"]);
      });

      await t.step(
        "no X server behind the display: the client is told, the session carries on",
        async () => {
          const r = await runOurs(
            "plink",
            [...args(s, "-X"), "xdpyinfo >/dev/null; echo status=$?"],
            { env: envFor(s, x, ":9") },
          );
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /^status=1$/m);
          assert.match(r.stderr, /Plink X11 proxy: unable to connect to forwarded X server: /);
        },
      );

      await t.step(
        "an unusable display name: logged, no forwarding, the command runs",
        async () => {
          const r = await runOurs(
            "plink",
            [...args(s, "-X", "-v"), 'echo "display=$DISPLAY"'],
            { env: envFor(s, x, "nocolon") },
          );
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /^display=$/m);
          assert.match(
            r.stderr,
            /^X11 forwarding not enabled: unable to initialise X display: display name 'nocolon' has no ':number' suffix$/m,
          );
        },
      );

      await t.step("without -X the remote side has no display", async () => {
        const r = await runOurs("plink", [...args(s), 'echo "display=$DISPLAY"'], {
          env: envFor(s, x),
        });
        assert.match(r.stdout, /^display=$/m);
      });

      await t.step(
        "as the upstream of a shared connection, its own session forwards X11",
        async () => {
          const r = await runOurs("plink", [...args(s, "-share", "-X"), PROBE], {
            env: envFor(s, x),
          });
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.match(r.stdout, /^vendor string:\s+The X\.Org Foundation$/m);
        },
      );
    }),
);

Deno.test("X11 forwarding through shared connections", opts, (t) =>
  withX11(async (s, x) => {
    await t.step(
      "our downstream through PuTTY's upstream, which routes X11 by cookie",
      async () => {
        const up = await startUpstream(s, "real");
        try {
          const r = await runOurs("plink", [...args(s, "-share", "-X", "-v"), PROBE], {
            env: envFor(s, x),
          });
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.match(r.stderr, /Reusing a shared connection/);
          assert.match(r.stdout, /^vendor string:\s+The X\.Org Foundation$/m);
          assert.match(r.stderr, /^X11 forwarding enabled$/m);
        } finally {
          await stopUpstream(up);
        }
      },
    );

    await t.step(
      "our upstream gives each downstream's X clients to that downstream (ours and PuTTY's)",
      async () => {
        // A second X server with another screen size: whose clients land where shows.
        const x2 = await startXvfb(s.dir, "800x600");
        const up = await startUpstream(s, "ours");
        try {
          const [ours, real] = await Promise.all([
            runOurs("plink", [...args(s, "-share", "-X", "-v"), `sleep 0.5; ${PROBE}`], {
              env: envFor(s, x),
            }),
            runReal("plink", [...args(s, "-share", "-X", "-v"), `sleep 0.5; ${PROBE}`], {
              env: envFor(s, x2),
            }),
          ]);
          assert.equal(ours.code, 0, ours.stdout + ours.stderr);
          assert.equal(real.code, 0, real.stdout + real.stderr);
          assert.match(ours.stderr, /Reusing a shared connection/);
          assert.match(real.stderr, /Reusing a shared connection/);
          assert.match(ours.stderr, /^X11 forwarding enabled$/m);
          assert.match(real.stderr, /X11 forwarding enabled/);
          assert.match(ours.stdout, /^\s*dimensions:\s+640x480 pixels/m);
          assert.match(real.stdout, /^\s*dimensions:\s+800x600 pixels/m);
          const display = (out: string) => /^display=(.*)$/m.exec(out)?.[1];
          assert.notEqual(display(ours.stdout), display(real.stdout));

          // A client with a cookie no session gave out is refused by the upstream itself.
          const cmd = `f=$(mktemp); xauth -f "$f" add "$DISPLAY" . ${"00".repeat(16)}; ` +
            'XAUTHORITY="$f" xdpyinfo; echo status=$?; rm -f "$f"';
          const bad = await runOurs("plink", [...args(s, "-share", "-X"), cmd], {
            env: envFor(s, x),
          });
          assert.match(bad.stdout, /^status=1$/m);
          assert.match(bad.stderr, /Plink X11 proxy: Authorisation not recognised/);
        } finally {
          await stopUpstream(up);
          await x2.stop();
        }
      },
    );
  }));

Deno.test("our upstream: no session can take another's X11 cookie", opts, async () => {
  const s = await startSshd({ config: ["X11Forwarding yes"] });
  const up = await startUpstream(s, "ours");
  try {
    const { socket } = await sharePaths(upstreamId(s));
    /** A raw downstream with a session channel open; returns it and the server's channel id. */
    const session = async () => {
      const d = await RawDownstream.open(socket);
      await d.sendPacket(message(MSG.CHANNEL_OPEN, (w) => {
        w.string("session").uint32(7).uint32(65536).uint32(16384);
      }));
      const ok = await d.next((p) => p[0] === MSG.CHANNEL_OPEN_CONFIRMATION);
      assert.ok(ok);
      return { d, id: readUint32(ok, 5) };
    };
    /** Sends an x11-req; resolves to whether it was granted. */
    const ask = async (x: { d: RawDownstream; id: number }, proto: string, cookie: string) => {
      await x.d.sendPacket(message(MSG.CHANNEL_REQUEST, (w) => {
        w.uint32(x.id).string("x11-req").bool(true).bool(false).string(proto).string(cookie)
          .uint32(0);
      }));
      const reply = await x.d.next((p) =>
        p[0] === MSG.CHANNEL_SUCCESS || p[0] === MSG.CHANNEL_FAILURE
      );
      return reply?.[0] === MSG.CHANNEL_SUCCESS;
    };
    const a = await session();
    const b = await session();
    const cookie = "0123456789abcdef".repeat(2);
    assert.equal(await ask(a, "MIT-MAGIC-COOKIE-1", cookie), true, "the first comer gets it");
    assert.equal(await ask(b, "MIT-MAGIC-COOKIE-1", cookie), false, "not a second session");
    assert.equal(await ask(b, "MIT-MAGIC-COOKIE-1", cookie.toUpperCase()), false, "in any case");
    assert.equal(await ask(b, "MIT-MAGIC-COOKIE-1", "abcd"), false, "not a short cookie");
    assert.equal(await ask(b, "XDM-AUTHORIZATION-1", cookie), false, "no other protocol");
    assert.equal(await ask(b, "MIT-MAGIC-COOKIE-1", "fedcba9876543210".repeat(2)), true);
    // Once the first session has gone, its cookie is free again.
    a.d.close();
    await a.d.done;
    const c = await session();
    await waitFor(() => ask(c, "MIT-MAGIC-COOKIE-1", cookie), 5000, "the cookie to be free");
    b.d.close();
    c.d.close();
  } finally {
    await stopUpstream(up);
    await s.stop();
  }
});

Deno.test("display names as PuTTY parses them", () => {
  assert.deepEqual(parseDisplayName(":0"), { number: 0, screen: 0, unix: true, host: undefined });
  assert.deepEqual(parseDisplayName("unix:3.1"), {
    number: 3,
    screen: 1,
    unix: true,
    host: undefined,
  });
  assert.deepEqual(parseDisplayName("localhost:10.0"), {
    number: 10,
    screen: 0,
    unix: false,
    host: "localhost",
  });
  assert.deepEqual(parseDisplayName("tcp/example.org:2"), {
    number: 2,
    screen: 0,
    unix: false,
    host: "example.org",
  });
  assert.deepEqual(parseDisplayName("local/anything:4"), {
    number: 4,
    screen: 0,
    unix: true,
    host: undefined,
  });
  assert.equal(parseDisplayName("[::1]:5").host, "[::1]");
  assert.equal(
    parseDisplayName("/private/tmp/launch-x/org.xquartz:0").socketPath,
    "/private/tmp/launch-x/org.xquartz:0",
  );
  assert.throws(() => parseDisplayName("nocolon"), X11DisplayError);
});

/** An .Xauthority record, as xauth writes it. */
function record(
  family: number,
  address: Uint8Array | string,
  num: string,
  proto: string,
  data: Uint8Array,
) {
  const enc = new TextEncoder();
  const parts = [
    typeof address === "string" ? enc.encode(address) : address,
    enc.encode(num),
    enc.encode(proto),
    data,
  ];
  const out: number[] = [family >> 8, family & 0xff];
  for (const p of parts) out.push(p.length >> 8, p.length & 0xff, ...p);
  return out;
}

Deno.test(".Xauthority records are matched as PuTTY matches them", () => {
  const a = new Uint8Array(16).fill(0xaa);
  const b = new Uint8Array(16).fill(0xbb);
  const c = new Uint8Array(16).fill(0xcc);
  const file = new Uint8Array([
    ...record(256, "otherhost", "0", "MIT-MAGIC-COOKIE-1", c),
    ...record(0, new Uint8Array([127, 0, 0, 1]), "0", "MIT-MAGIC-COOKIE-1", b),
    ...record(256, "here", "0", "XDM-AUTHORIZATION-1", c),
    ...record(256, "here", "0", "MIT-MAGIC-COOKIE-1", a),
    ...record(256, "here", "", "MIT-MAGIC-COOKIE-1", c),
    0x01, // a truncated record at the end is ignored
  ]);
  const records = parseXauthority(file);
  assert.equal(records.length, 5);
  assert.equal(records[4].number, -1);
  const unix0 = { number: 0, unix: true, localhost: false };
  assert.deepEqual(findAuth(records, unix0, "here")?.data, a);
  // A display without its own record takes the wildcard one.
  assert.deepEqual(findAuth(records, { ...unix0, number: 7 }, "here")?.data, c);
  // localhost:0 prefers the Unix-domain record of this host over the 127.0.0.1 one.
  const tcpLocal = {
    number: 0,
    unix: false,
    localhost: true,
    ipv4: new Uint8Array([127, 0, 0, 1]),
  };
  assert.deepEqual(findAuth(records, tcpLocal, "here")?.data, a);
  assert.deepEqual(findAuth(records, tcpLocal, "elsewhere")?.data, b);
  assert.equal(findAuth(records, { ...unix0, number: -1 }, "here"), undefined);

  const env: Record<string, string> = { DISPLAY: "localhost:0", XAUTHORITY: "/x" };
  const disp = setupDisplay("", {
    env: (n) => env[n],
    hostname: () => "here",
    readFile: (p) => (p === "/x" ? file : undefined),
    hasSocket: () => false,
  });
  assert.deepEqual(disp.address, { transport: "tcp", hostname: "localhost", port: 6000 });
  assert.deepEqual(disp.auth?.data, a);
  const upgraded = setupDisplay("localhost:0.2", {
    env: () => undefined,
    hostname: () => "here",
    readFile: () => undefined,
    hasSocket: (p) => p === "/tmp/.X11-unix/X0",
  });
  assert.deepEqual(upgraded.address, { transport: "unix", path: "/tmp/.X11-unix/X0" });
  assert.equal(upgraded.screen, 2);
  assert.equal(upgraded.description, "unix:0");
  assert.equal(upgraded.auth, undefined);
});

Deno.test("X11 set-up messages: parsed in either byte order, checked, rewritten", () => {
  const cookie = new Uint8Array(16).fill(7);
  for (const order of [0x42, 0x6c]) {
    const greeting = makeGreeting(order, 11, 0, "MIT-MAGIC-COOKIE-1", cookie);
    assert.equal(greeting.length, 12 + 20 + 16);
    const withMore = new Uint8Array([...greeting, 1, 2, 3]);
    assert.equal(parseSetup(withMore.subarray(0, greeting.length - 1)), undefined);
    const setup = parseSetup(withMore)!;
    assert.equal(setup.major, 11);
    assert.equal(setup.protocol, "MIT-MAGIC-COOKIE-1");
    assert.deepEqual(setup.data, cookie);
    assert.deepEqual(setup.rest, new Uint8Array([1, 2, 3]));
    assert.equal(verifyAuth(setup, cookie), undefined);
    assert.equal(verifyAuth(setup, new Uint8Array(16)), "Authorisation not recognised");
    const none = parseSetup(makeGreeting(order, 11, 0, "", new Uint8Array(0)))!;
    assert.equal(verifyAuth(none, cookie), "No authorisation provided");
    const other = parseSetup(makeGreeting(order, 11, 0, "XDM-AUTHORIZATION-1", cookie))!;
    assert.equal(
      verifyAuth(other, cookie),
      "Unsupported authorisation protocol 'XDM-AUTHORIZATION-1'",
    );
    const reply = failureReply(greeting, "Plink X11 proxy: no\n");
    assert.equal(reply[0], 0);
    assert.equal(reply[1], 20);
    assert.equal(reply.length, 8 + 20);
    const words = order === 0x42 ? (reply[6] << 8) | reply[7] : reply[6] | (reply[7] << 8);
    assert.equal(words, 5);
  }
});
