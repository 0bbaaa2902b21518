/**
 * `deno task demo`: puttykit's main job on an embedded default. Starts a loopback SSH server
 * (npm:ssh2's Server, in this process), then runs our plink against it: once on its own, then as
 * a sharing upstream with several quick downstream commands through it, then pscp and psftp
 * through the same upstream (when the machine has an SFTP server or scp for the loopback server
 * to run), showing that the server authenticated once while every later command cost only a
 * channel.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLoopbackServer } from "./loopback_server.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const DENO = Deno.execPath();
const dec = new TextDecoder();

function tool(name: string, args: string[], env: Record<string, string>): Deno.Command {
  return new Deno.Command("bash", {
    args: ["-c", `exec -a ${name} "$0" run -A "$@"`, DENO, MOD, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

function plink(args: string[], env: Record<string, string>): Deno.Command {
  return tool("plink", args, env);
}

async function timed(args: string[], env: Record<string, string>, name = "plink") {
  const t0 = performance.now();
  const out = await tool(name, args, env).output();
  return {
    ms: performance.now() - t0,
    code: out.code,
    out: dec.decode(out.stdout),
    err: dec.decode(out.stderr),
  };
}

/** pscp up and down and a psftp batch, all as downstreams of the running upstream. */
async function fileTransfers(): Promise<void> {
  const can = await new Deno.Command("sh", {
    args: [
      "-c",
      "command -v scp || ls /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server",
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!can.success) {
    console.log("(pscp/psftp skipped: this machine has neither sftp-server nor scp to serve them)");
    return;
  }
  const local = join(puttyDir, "hello.txt");
  const remote = await Deno.makeTempDir({ prefix: "puttykit-demo-remote-" });
  try {
    await Deno.writeTextFile(local, "hello through a shared connection\n");
    const up = await timed(
      ["-share", "-batch", ...target.slice(0, 2), local, `${target[2]}:${remote}/`],
      env,
      "pscp",
    );
    console.log(
      `$ pscp -share hello.txt host:${remote}/   -> exit ${up.code} (${up.ms.toFixed(0)} ms)`,
    );
    const back = join(puttyDir, "back.txt");
    const down = await timed(
      ["-share", "-batch", ...target.slice(0, 2), `${target[2]}:${remote}/hello.txt`, back],
      env,
      "pscp",
    );
    const same = down.code === 0 &&
      (await Deno.readTextFile(back)) === (await Deno.readTextFile(local));
    console.log(
      `$ pscp -share host:.../hello.txt back.txt   -> exit ${down.code}, ${
        same ? "identical" : "DIFFERENT"
      } (${down.ms.toFixed(0)} ms)`,
    );
    const script = join(puttyDir, "batch.txt");
    await Deno.writeTextFile(
      script,
      `cd ${remote}\nmkdir sub\nput ${local} sub/copy.txt\nls sub\n`,
    );
    const ps = await timed(["-share", "-batch", "-b", script, ...target], env, "psftp");
    const listed = ps.out.split("\n").filter((l) => l.includes("copy.txt")).length > 0;
    console.log(
      `$ psftp -share -b batch.txt host   (cd, mkdir, put, ls)   -> exit ${ps.code}, ${
        listed ? "copy.txt listed" : "copy.txt missing"
      } (${ps.ms.toFixed(0)} ms)`,
    );
    if (up.code !== 0 || !same || ps.code !== 0 || !listed) {
      throw new Error(`file transfer failed: ${up.err}${down.err}${ps.err}`);
    }
  } finally {
    await Deno.remove(remote, { recursive: true }).catch(() => {});
  }
}

const server = await startLoopbackServer();
const puttyDir = await Deno.makeTempDir({ prefix: "puttykit-demo-" });
const env = { PUTTYDIR: puttyDir };
const target = ["-P", String(server.port), `${server.user}@${server.host}`];
const auth = ["-batch", "-hostkey", server.hostKeyFingerprint, "-pw", server.password];
let upstream: Deno.ChildProcess | undefined;

console.log(
  `Loopback SSH server on ${server.host}:${server.port} (host key ${server.hostKeyFingerprint})\n`,
);
try {
  const direct = await timed([
    ...auth,
    ...target,
    "echo hello from $(uname -n), exit status 3; exit 3",
  ], env);
  console.log(`$ plink ${server.user}@${server.host} 'echo hello...; exit 3'`);
  console.log(
    `${direct.out.trimEnd()}\n  -> exit status ${direct.code}, ${
      direct.ms.toFixed(0)
    } ms (own connection)\n`,
  );
  if (direct.code !== 3) throw new Error(`plink failed: ${direct.err}`);

  console.log(`$ plink -share -N ${server.user}@${server.host} &    # becomes the upstream`);
  upstream = plink(["-share", ...auth, ...target, "-N"], env).spawn();
  const authBefore = server.authCount;
  for (let i = 0; i < 100; i++) {
    const probe = await plink(["-shareexists", ...target], env).output();
    if (probe.code === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (let i = 1; i <= 5; i++) {
    const r = await timed(["-share", "-batch", ...target, `echo downstream ${i}: pid $$`], env);
    console.log(
      `$ plink -share ... 'echo downstream ${i}'   -> ${r.out.trim()}  (${
        r.ms.toFixed(0)
      } ms, exit ${r.code})`,
    );
    if (r.code !== 0) throw new Error(`downstream failed: ${r.err}`);
  }
  const realPlink = await new Deno.Command("sh", {
    args: ["-c", "command -v plink"],
    stdout: "piped",
  })
    .output();
  if (realPlink.code === 0) {
    const t0 = performance.now();
    const r = await new Deno.Command("plink", {
      args: ["-share", "-batch", ...target, "echo real PuTTY plink as a downstream of ours"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    console.log(
      `$ /usr/bin/plink -share ...   -> ${dec.decode(r.stdout).trim()}  (${
        (performance.now() - t0).toFixed(0)
      } ms)`,
    );
  }
  await fileTransfers();
  console.log(
    `\nThe server authenticated ${
      server.authCount - authBefore
    } time(s) for the upstream and all ` +
      `downstreams (${server.authCount} in total, including the first direct connection).`,
  );
} finally {
  upstream?.kill("SIGTERM");
  await upstream?.output();
  await server.close();
  await Deno.remove(puttyDir, { recursive: true });
}
Deno.exit(0);
