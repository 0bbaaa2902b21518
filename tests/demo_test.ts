/**
 * The README's first command, `deno task demo`: the main job on the embedded loopback server.
 * It must finish by itself, show every step working and one authentication for the upstream and
 * all its downstreams, also on a machine without OpenSSH's server parts; and the loopback
 * server's own SFTP server must answer psftp as OpenSSH's does.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="npm:@types/ssh2@1.15.5"
import ssh2 from "npm:ssh2@1.17.0";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLoopbackServer } from "../scripts/loopback_server.ts";
import { loginArgs, passwdIds, startSshd } from "./fixtures/sshd.ts";
import { collect, DENO, runOurs, spawn } from "./fixtures/tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const opts = { sanitizeOps: false, sanitizeResources: false };

/** What a demo run that got through every step prints. */
function assertEveryStep(r: { code: number; stdout: string; stderr: string }): void {
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /-> exit status 3, \d+ ms \(own connection\)/);
  for (let i = 1; i <= 5; i++) {
    assert.match(r.stdout, new RegExp(`downstream ${i}: pid \\d+ +\\(\\d+ ms, exit 0\\)`));
  }
  assert.match(r.stdout, /pscp -share hello\.txt data\.bin .* -> exit 0, both identical/);
  assert.match(r.stdout, /pscp -share host:\.\.\.\/data\.bin back\.bin +-> exit 0, identical/);
  assert.match(r.stdout, /psftp .* -> exit 0, copy\.bin listed, put and got back identical/);
  assert.match(r.stdout, /authenticated 1 time\(s\) for the upstream and all downstreams/);
  assert.match(
    r.stdout,
    /All 5 steps ran and succeeded: plink, sharing, pscp upload, pscp download, psftp\.\n$/,
  );
  assert.doesNotMatch(r.stdout + r.stderr, /skipped|FAILED/);
}

Deno.test(
  "deno task demo runs plink, pscp and psftp through one shared connection",
  opts,
  async () => {
    const r = await collect(spawn(DENO, ["task", "--cwd", ROOT, "demo"]), { timeoutMs: 120000 });
    assertEveryStep(r);
  },
);

/** OpenSSH's server-side programs, as Debian and others install them. */
const OPENSSH_SERVER_PARTS = [
  "/usr/lib/openssh",
  "/usr/libexec/openssh",
  "/usr/lib/sftp-server",
  "/usr/sbin/sshd",
  "/usr/bin/scp",
  "/usr/bin/sftp",
];

const canUnshare = Deno.uid() === 0 &&
  new Deno.Command("unshare", { args: ["-m", "true"], stdout: "null", stderr: "null" })
    .outputSync().success;

Deno.test({
  name: "deno task demo passes with OpenSSH's sftp-server, scp and sshd hidden (mount namespace)",
  ignore: !canUnshare,
  ...opts,
}, async () => {
  const empty = await Deno.makeTempDir({ prefix: "puttykit-no-openssh-" });
  try {
    // In a private mount namespace, an empty directory over each directory and /dev/null (not
    // executable) over each program: for the demo and everything it starts they are gone.
    // Links resolved (/usr/lib/sftp-server points into /usr/lib/openssh), each hidden once.
    const real = new Set<string>();
    for (const p of OPENSSH_SERVER_PARTS) {
      try {
        real.add(Deno.realPathSync(p));
      } catch { /* not installed here */ }
    }
    const dirs = [...real].filter((p) => Deno.statSync(p).isDirectory);
    const hide = [...real].filter((p) => !dirs.some((d) => p.startsWith(d + "/"))).map((p) =>
      dirs.includes(p) ? `mount --bind '${empty}' '${p}'` : `mount --bind /dev/null '${p}'`
    );
    const script = [
      "set -e",
      ...hide,
      "! test -e /usr/lib/openssh/sftp-server",
      "! command -v scp",
      "! command -v sftp-server",
      'exec "$0" task --cwd "$1" demo',
    ].join("\n");
    const r = await collect(spawn("unshare", ["-m", "sh", "-c", script, DENO, ROOT]), {
      timeoutMs: 120000,
    });
    assertEveryStep(r);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

/**
 * A psftp batch exercising each request psftp and pscp send, with the replies' wording in the
 * output: errors included (-be carries on), listings as names only (owner columns differ).
 */
const SFTP_SCRIPT = (dir: string, local: string) =>
  `cd ${dir}
pwd
mkdir sub
mkdir sub
put ${local}/data.bin sub/data.bin
put ${local}/data.bin sub/data.bin
reput ${local}/data.bin sub/data.bin
get sub/data.bin ${local}/got.bin
get nosuch ${local}/nosuch
reget sub/data.bin ${local}/got.bin
chmod 600 sub/data.bin
chmod 644 nosuch
ls sub/nosuch
mv sub/data.bin moved.bin
put ${local}/data.bin sub/other.bin
mv moved.bin sub/other.bin
mv moved.bin sub
rm sub
rmdir moved.bin
rmdir sub
rm nosuch
cd nosuch
cd moved.bin
dir sub
rm sub/data.bin
rmdir nosuch
mkdir nosuch/deeper
rm sub/moved.bin sub/other.bin
rmdir sub
`;

Deno.test(
  "the loopback server's SFTP answers psftp as OpenSSH's sftp-server does",
  opts,
  async () => {
    const sshd = await startSshd();
    const server = await startLoopbackServer();
    const puttyDir = await Deno.makeTempDir({ prefix: "puttykit-sftp-" });
    try {
      const local = join(sshd.dir, "sftp-local");
      await Deno.mkdir(local);
      const data = new Uint8Array(700 * 1024);
      crypto.getRandomValues(data.subarray(0, 65536));
      data.copyWithin(65536, 0);
      await Deno.writeFile(join(local, "data.bin"), data);
      if (Deno.uid() === 0) await Deno.chown(local, ...passwdIds(sshd.user));

      const run = async (dir: string, login: string[], env: Record<string, string>) => {
        const file = join(local, `script-${login.length}.psftp`);
        await Deno.writeTextFile(file, SFTP_SCRIPT(dir, local));
        const r = await runOurs("psftp", ["-be", "-bc", "-b", file, ...login], {
          env,
          timeoutMs: 60000,
        });
        await Deno.remove(join(local, "got.bin")).catch(() => {});
        // Long listings name owners as each server does; the file names and order are compared.
        // Each server starts in its own directory.
        const out = r.stdout.replace(/^Remote working directory is .*\n/, "").replaceAll(dir, "DIR")
          .replace(
            /^[-dlcbps][-rwxsStT]{9}\s.*?(\S+)$/gm,
            "<entry> $1",
          );
        return { code: r.code, out, err: r.stderr };
      };
      const theirs = await run(await sshd.userDir("sftp-compare"), loginArgs(sshd), sshd.env);
      const oursDir = await Deno.makeTempDir({ prefix: "puttykit-sftp-remote-" });
      const ours = await run(oursDir, [
        "-batch",
        "-hostkey",
        server.hostKeyFingerprint,
        "-pw",
        server.password,
        "-P",
        String(server.port),
        `${server.user}@${server.host}`,
      ], { PUTTYDIR: puttyDir });
      await Deno.remove(oursDir, { recursive: true });
      assert.equal(ours.out, theirs.out);
      assert.equal(ours.code, theirs.code);
      // Failures were there to compare: psftp reported them and carried on.
      assert.match(ours.out, /no such file or directory/);
      assert.match(ours.out, /failure/);
    } finally {
      await server.close();
      await sshd.stop();
      await Deno.remove(puttyDir, { recursive: true });
    }
  },
);

/** One SFTP packet: length, type, body. */
function sftpPacket(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1);
  head[4] = type;
  return Buffer.concat([head, body]);
}

function sftpString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s) : s;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

Deno.test(
  "the loopback SFTP server cuts off a client that floods it with requests and reads no replies",
  opts,
  async () => {
    const server = await startLoopbackServer();
    const dir = await Deno.makeTempDir({ prefix: "puttykit-sftp-flood-" });
    const conn = new ssh2.Client();
    try {
      const file = join(dir, "data");
      await Deno.writeFile(file, new Uint8Array(1024 * 1024));
      await new Promise<void>((resolve, reject) => {
        conn.on("ready", resolve).on("error", reject).connect({
          host: server.host,
          port: server.port,
          username: server.user,
          password: server.password,
        });
      });
      const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        conn.subsys("sftp", (err, stream) => err ? reject(err) : resolve(stream))
      );
      const version = Buffer.alloc(4);
      version.writeUInt32BE(3);
      ch.write(sftpPacket(1, version));
      const id = Buffer.alloc(4);
      id.writeUInt32BE(1);
      const flags = Buffer.alloc(8);
      flags.writeUInt32BE(1); // SSH_FXF_READ, then no attributes
      ch.write(sftpPacket(3, Buffer.concat([id, sftpString(file), flags])));
      // VERSION, then HANDLE (type 102): id, string handle.
      const handle = await new Promise<Buffer>((resolve) => {
        let got = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          got = Buffer.concat([got, d]);
          while (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
            const p = got.subarray(4, 4 + got.readUInt32BE(0));
            got = got.subarray(4 + p.length);
            if (p[0] === 102) {
              ch.off("data", onData);
              ch.pause();
              resolve(Buffer.from(p.subarray(9, 9 + p.readUInt32BE(5))));
            }
          }
        };
        ch.on("data", onData);
      });
      // Far more 32 KiB reads than the server will queue, none of their replies read for now.
      const requests = 6000;
      for (let i = 0; i < requests; i++) {
        const body = Buffer.alloc(4 + 4 + handle.length + 8 + 4);
        body.writeUInt32BE(i + 2, 0);
        sftpString(handle).copy(body, 4);
        body.writeUInt32BE((i % 32) * 32768, 4 + 4 + handle.length + 4);
        body.writeUInt32BE(32768, 4 + 4 + handle.length + 8);
        ch.write(sftpPacket(5, body));
      }
      await new Promise((r) => setTimeout(r, 2000));
      let replies = 0;
      let partial = Buffer.alloc(0);
      const ended = new Promise<void>((resolve) => {
        ch.on("close", () => resolve());
        ch.on("data", (d: Buffer) => {
          partial = Buffer.concat([partial, d]);
          while (partial.length >= 4 && partial.length >= 4 + partial.readUInt32BE(0)) {
            partial = partial.subarray(4 + partial.readUInt32BE(0));
            replies++;
          }
        });
        ch.resume();
      });
      const timer = new Promise<string>((r) => setTimeout(() => r("still open"), 15000));
      assert.equal(await Promise.race([ended.then(() => "closed"), timer]), "closed");
      assert.ok(replies < requests, `${replies} replies: the server answered every request`);
      // The server itself carries on.
      const alive = await new Promise<string>((resolve, reject) =>
        conn.exec("echo alive", (err, stream) => {
          if (err) return reject(err);
          let out = "";
          stream.on("data", (d: Buffer) => out += d).on("close", () => resolve(out));
        })
      );
      assert.equal(alive, "alive\n");
    } finally {
      conn.end();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
