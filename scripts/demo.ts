/**
 * `deno task demo`: puttykit's main job on an embedded default. Starts a loopback SSH server
 * (npm:ssh2's Server, in this process), then runs our plink against it: once on its own, then as
 * a sharing upstream with several quick downstream commands through it, showing that the server
 * authenticated once while every later command cost only a channel.
 */

import { fileURLToPath } from "node:url";
import { startLoopbackServer } from "./loopback_server.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const DENO = Deno.execPath();
const dec = new TextDecoder();

function plink(args: string[], env: Record<string, string>): Deno.Command {
  return new Deno.Command("bash", {
    args: ["-c", 'exec -a plink "$0" run -A "$@"', DENO, MOD, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function timed(args: string[], env: Record<string, string>) {
  const t0 = performance.now();
  const out = await plink(args, env).output();
  return {
    ms: performance.now() - t0,
    code: out.code,
    out: dec.decode(out.stdout),
    err: dec.decode(out.stderr),
  };
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
