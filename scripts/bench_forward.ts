/**
 * `deno task bench:forward`: throughput of a local port forwarding (-L) in one run against one
 * loopback OpenSSH sshd, for our plink, PuTTY's plink 0.78 and OpenSSH's ssh:
 *
 *   upload     one connection sends N MB through the forwarding to a counting sink
 *   download   one connection receives N MB from a source through the forwarding
 *   20 x down  twenty such downloads at once (aggregate), plus our plink's peak RSS
 *
 * Prints MB/s per tool and ours as a ratio of each. Usage: deno task bench:forward [MB=200]
 */

import { freePort, startSshd } from "../tests/fixtures/sshd.ts";
import { DENO, MOD } from "../tests/fixtures/tools.ts";

const MB = Number(Deno.args[0] ?? 200);
const BYTES = MB * 1024 * 1024;
const chunk = new Uint8Array(65536);

/** Counts what each connection sends, then answers with the count and closes. */
function sink(): Deno.TcpListener {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) {
      (async () => {
        const b = new Uint8Array(65536);
        let n = 0;
        for (let r; (r = await c.read(b)) !== null;) n += r;
        await c.write(new TextEncoder().encode(String(n)));
        c.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return l;
}

/** Sends BYTES to each connection, then closes it. */
function source(): Deno.TcpListener {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) {
      (async () => {
        for (let sent = 0; sent < BYTES;) sent += await c.write(chunk.subarray(0, BYTES - sent));
        c.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return l;
}

async function upload(port: number): Promise<number> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const t0 = performance.now();
  for (let sent = 0; sent < BYTES;) sent += await c.write(chunk.subarray(0, BYTES - sent));
  await c.closeWrite();
  const reply = new Uint8Array(32);
  const n = await c.read(reply);
  c.close();
  if (Number(new TextDecoder().decode(reply.subarray(0, n ?? 0))) !== BYTES) {
    throw new Error(
      `upload: the sink got ${new TextDecoder().decode(reply.subarray(0, n ?? 0))} of ${BYTES}`,
    );
  }
  return MB / ((performance.now() - t0) / 1000);
}

async function download(port: number, copies = 1): Promise<number> {
  const t0 = performance.now();
  const one = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    const b = new Uint8Array(65536);
    let n = 0;
    for (let r; (r = await c.read(b)) !== null;) n += r;
    if (n !== BYTES) throw new Error(`download: got ${n} of ${BYTES} bytes`);
  };
  await Promise.all(Array.from({ length: copies }, one));
  return (MB * copies) / ((performance.now() - t0) / 1000);
}

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) / 1024 : NaN;
}

const s = await startSshd();
const sinkListener = sink();
const sourceListener = source();
const sinkPort = (sinkListener.addr as Deno.NetAddr).port;
const sourcePort = (sourceListener.addr as Deno.NetAddr).port;
const results: Record<string, { up: number; down: number; many: number; rss?: number }> = {};
try {
  const tools: [string, (fwd: string) => [string, string[]]][] = [
    ["ours", (fwd) => [DENO, ["run", "-A", MOD, "plink", "-batch", "-i", s.userKeyPpk, "-L", fwd]]],
    ["PuTTY plink", (fwd) => ["plink", ["-batch", "-i", s.userKeyPpk, "-L", fwd]]],
    ["OpenSSH ssh", (fwd) => ["ssh", [
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      "-i",
      s.userKey,
      "-L",
      fwd,
    ]]],
  ];
  for (const [name, argv] of tools) {
    const [up, down] = [freePort(), freePort()];
    const [cmd, args] = argv(`${up}:127.0.0.1:${sinkPort}`);
    const child = new Deno.Command(cmd, {
      args: [
        ...args,
        "-L",
        `${down}:127.0.0.1:${sourcePort}`,
        ...(name === "OpenSSH ssh" ? ["-p"] : ["-hostkey", s.hostKeyFingerprint, "-P"]),
        String(s.port),
        "-N",
        `${s.user}@${s.host}`,
      ],
      env: s.env,
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    try {
      await waitListening(up);
      await waitListening(down);
      results[name] = {
        up: Math.max(await upload(up), await upload(up)),
        down: Math.max(await download(down), await download(down)),
        many: await download(down, 20),
        rss: name === "ours" ? peakRss(child.pid) : undefined,
      };
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  }
} finally {
  sinkListener.close();
  sourceListener.close();
  await s.stop();
}

const ours = results["ours"];
console.log(`-L throughput, ${MB} MB per connection (best of 2; 20 x down is aggregate):`);
for (const [name, r] of Object.entries(results)) {
  const ratio = (a: number, b: number) => name === "ours" ? "" : ` (ours ${(a / b).toFixed(2)}x)`;
  console.log(
    `  ${name.padEnd(12)} up ${r.up.toFixed(0).padStart(4)} MB/s${ratio(ours.up, r.up)}  ` +
      `down ${r.down.toFixed(0).padStart(4)} MB/s${ratio(ours.down, r.down)}  ` +
      `20 x down ${r.many.toFixed(0).padStart(4)} MB/s${ratio(ours.many, r.many)}` +
      (r.rss ? `  peak RSS ${r.rss.toFixed(0)} MB` : ""),
  );
}
