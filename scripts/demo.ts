/**
 * `deno task demo`: puttykit's main job on an embedded default. Starts a loopback SSH server
 * (npm:ssh2's Server, in this process, with its own SFTP server: nothing but Deno is needed),
 * then runs our plink against it: once on its own, then as a sharing upstream with several quick
 * downstream commands through it, then pscp up and down and a psftp batch through the same
 * upstream, showing that the server authenticated once while every later command cost only a
 * channel. Every step is checked (file contents byte for byte); the first that fails ends the
 * demo with a line naming it and exit status 1, and a run that gets to the end says that each
 * step ran and succeeded.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLoopbackServer } from "./loopback_server.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const DENO = Deno.execPath();
const dec = new TextDecoder();

/** The steps every run must get through, in order. */
const STEPS = ["plink", "sharing", "pscp upload", "pscp download", "psftp"] as const;
type Step = typeof STEPS[number];
const passed: Step[] = [];

class StepFailed extends Error {
  constructor(readonly step: Step, message: string) {
    super(message);
  }
}

function check(step: Step, ok: boolean, why: string): void {
  if (!ok) throw new StepFailed(step, why);
}

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

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]).catch(() => [null, null]);
  return x !== null && y !== null && x.length === y.length && x.every((v, i) => v === y[i]);
}

/** A tool's stderr for a failure message: its last line, or that it said nothing. */
function said(err: string): string {
  return err.trim().split("\n").pop() || "(nothing on stderr)";
}

/** pscp up and down and a psftp batch, all as downstreams of the running upstream. */
async function fileTransfers(): Promise<void> {
  const text = join(puttyDir, "hello.txt");
  const binary = join(puttyDir, "data.bin");
  const remote = await Deno.makeTempDir({ prefix: "puttykit-demo-remote-" });
  try {
    await Deno.writeTextFile(text, "hello through a shared connection\n");
    // Random bytes, larger than one SFTP request and the channel window: every byte is checked.
    const data = new Uint8Array(3 * 1024 * 1024 + 12345);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, i + 65536));
    }
    await Deno.writeFile(binary, data);

    const up = await timed(
      ["-share", "-batch", ...port, text, binary, `${userHost}:${remote}/`],
      env,
      "pscp",
    );
    const upSame = up.code === 0 && await sameBytes(text, join(remote, "hello.txt")) &&
      await sameBytes(binary, join(remote, "data.bin"));
    console.log(
      `$ pscp -share hello.txt data.bin host:${remote}/   -> exit ${up.code}, ${
        upSame ? "both identical on the server" : "NOT IDENTICAL"
      } (${up.ms.toFixed(0)} ms)`,
    );
    check("pscp upload", up.code === 0, `pscp exited ${up.code}: ${said(up.err)}`);
    check("pscp upload", upSame, "the uploaded files differ from the originals");
    passed.push("pscp upload");

    const back = join(puttyDir, "back.bin");
    const down = await timed(
      ["-share", "-batch", ...port, `${userHost}:${remote}/data.bin`, back],
      env,
      "pscp",
    );
    const downSame = down.code === 0 && await sameBytes(binary, back);
    console.log(
      `$ pscp -share host:.../data.bin back.bin   -> exit ${down.code}, ${
        downSame ? "identical" : "DIFFERENT"
      } (${down.ms.toFixed(0)} ms)`,
    );
    check("pscp download", down.code === 0, `pscp exited ${down.code}: ${said(down.err)}`);
    check("pscp download", downSame, "the downloaded file differs from the original");
    passed.push("pscp download");

    const script = join(puttyDir, "batch.txt");
    const got = join(puttyDir, "got.bin");
    await Deno.writeTextFile(
      script,
      `cd ${remote}\nmkdir sub\nput ${binary} sub/copy.bin\nls sub\nget sub/copy.bin ${got}\n`,
    );
    const ps = await timed(["-share", "-batch", "-b", script, ...port, userHost], env, "psftp");
    const listed = /copy\.bin$/m.test(ps.out);
    const psSame = ps.code === 0 && await sameBytes(binary, join(remote, "sub", "copy.bin")) &&
      await sameBytes(binary, got);
    console.log(
      `$ psftp -share -b batch.txt host   (cd, mkdir, put, ls, get)   -> exit ${ps.code}, ${
        listed ? "copy.bin listed" : "copy.bin NOT LISTED"
      }, ${psSame ? "put and got back identical" : "NOT IDENTICAL"} (${ps.ms.toFixed(0)} ms)`,
    );
    check("psftp", ps.code === 0, `psftp exited ${ps.code}: ${said(ps.err)}`);
    check("psftp", listed, "ls did not list sub/copy.bin");
    check("psftp", psSame, "the file put and got back differs from the original");
    passed.push("psftp");
  } finally {
    await Deno.remove(remote, { recursive: true }).catch(() => {});
  }
}

const server = await startLoopbackServer();
const puttyDir = await Deno.makeTempDir({ prefix: "puttykit-demo-" });
const env = { PUTTYDIR: puttyDir };
const port = ["-P", String(server.port)];
const userHost = `${server.user}@${server.host}`;
const target = [...port, userHost];
const auth = ["-batch", "-hostkey", server.hostKeyFingerprint, "-pw", server.password];
let upstream: Deno.ChildProcess | undefined;
let failure: StepFailed | undefined;

console.log(
  `Loopback SSH server on ${server.host}:${server.port} (host key ${server.hostKeyFingerprint})\n`,
);
try {
  const direct = await timed([
    ...auth,
    ...target,
    "echo hello from $(uname -n), exit status 3; exit 3",
  ], env);
  console.log(`$ plink ${userHost} 'echo hello...; exit 3'`);
  console.log(
    `${direct.out.trimEnd()}\n  -> exit status ${direct.code}, ${
      direct.ms.toFixed(0)
    } ms (own connection)\n`,
  );
  check("plink", direct.code === 3, `plink exited ${direct.code}: ${said(direct.err)}`);
  check("plink", direct.out.includes("hello from"), "plink's command printed nothing");
  passed.push("plink");

  console.log(`$ plink -share -N ${userHost} &    # becomes the upstream`);
  upstream = plink(["-share", ...auth, ...target, "-N"], env).spawn();
  const authBefore = server.authCount;
  let live = false;
  for (let i = 0; i < 100 && !live; i++) {
    live = (await plink(["-shareexists", ...target], env).output()).code === 0;
    if (!live) await new Promise((r) => setTimeout(r, 50));
  }
  check("sharing", live, "the upstream's sharing socket did not appear within 5 s");
  for (let i = 1; i <= 5; i++) {
    const r = await timed(["-share", "-batch", ...target, `echo downstream ${i}: pid $$`], env);
    console.log(
      `$ plink -share ... 'echo downstream ${i}'   -> ${r.out.trim()}  (${
        r.ms.toFixed(0)
      } ms, exit ${r.code})`,
    );
    check("sharing", r.code === 0, `downstream ${i} exited ${r.code}: ${said(r.err)}`);
    check("sharing", r.out.includes(`downstream ${i}:`), `downstream ${i} printed nothing`);
  }
  const realPlink = await new Deno.Command("sh", {
    args: ["-c", "command -v plink"],
    stdout: "piped",
  }).output();
  if (realPlink.code === 0) {
    const t0 = performance.now();
    const r = await new Deno.Command("plink", {
      args: ["-share", "-batch", ...target, "echo real PuTTY plink as a downstream of ours"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    console.log(
      `$ ${dec.decode(realPlink.stdout).trim()} -share ...   -> ${dec.decode(r.stdout).trim()}  (${
        (performance.now() - t0).toFixed(0)
      } ms, exit ${r.code})`,
    );
    check("sharing", r.code === 0, `PuTTY's plink exited ${r.code}: ${said(dec.decode(r.stderr))}`);
  } else {
    console.log("(PuTTY's own plink is not installed: it is not tried as a downstream of ours)");
  }
  passed.push("sharing");
  await fileTransfers();
  const upstreamAuths = server.authCount - authBefore;
  console.log(
    `\nThe server authenticated ${upstreamAuths} time(s) for the upstream and all ` +
      `downstreams (${server.authCount} in total, including the first direct connection).`,
  );
  check("sharing", upstreamAuths === 1, "the downstreams did not all use the upstream's login");
} catch (e) {
  // Anything unforeseen is that step's failure too, in the same one line.
  const step = STEPS.find((s) => !passed.includes(s)) ?? "sharing";
  failure = e instanceof StepFailed
    ? e
    : new StepFailed(step, e instanceof Error ? e.message : String(e));
} finally {
  upstream?.kill("SIGTERM");
  await upstream?.output();
  await server.close();
  await Deno.remove(puttyDir, { recursive: true });
}
if (failure) {
  console.error(`\ndemo FAILED at step "${failure.step}": ${failure.message}`);
  Deno.exit(1);
}
const missing = STEPS.filter((s) => !passed.includes(s));
if (missing.length > 0) {
  console.error(`\ndemo FAILED: step(s) not run: ${missing.join(", ")}`);
  Deno.exit(1);
}
console.log(`\nAll ${STEPS.length} steps ran and succeeded: ${STEPS.join(", ")}.`);
Deno.exit(0);
