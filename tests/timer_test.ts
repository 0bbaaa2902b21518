import assert from "node:assert/strict";
import { after, delay, watchdog } from "../lib/util/timer.ts";

Deno.test("after() fires once, not before its time; a cancelled one never fires", async () => {
  const t0 = performance.now();
  const fired: string[] = [];
  after(20, () => fired.push("kept"));
  const cancel = after(10, () => fired.push("cancelled"));
  cancel();
  await delay(40);
  assert.deepEqual(fired, ["kept"]);
  assert.ok(performance.now() - t0 >= 38, "delay(40) waited");
});

/** Runs `statement` in a process of its own that imports timer.ts; it must end at once, silent. */
async function exitsAtOnce(statement: string): Promise<void> {
  const code = `import { after, watchdog } from ${
    JSON.stringify(new URL("../lib/util/timer.ts", import.meta.url))
  };
${statement}`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  assert.equal(new TextDecoder().decode(out.stdout), "");
  assert.ok(performance.now() - t0 < 10000, "exited without waiting for the 30 s timer");
}

Deno.test("a cancelled timer does not keep the process alive", async () => {
  await exitsAtOnce(`after(30000, () => console.log("fired"))();`);
});

Deno.test("watchdog() fires during a read that never ends; a cancelled one never fires", async () => {
  const path = `${await Deno.makeTempDir({ prefix: "pk-timer-" })}/s`;
  const listener = Deno.listen({ transport: "unix", path });
  const accepted = listener.accept();
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    const fired: string[] = [];
    watchdog(10, () => fired.push("cancelled"))();
    const t0 = performance.now();
    // after() is only this test's own time limit, should the watchdog never fire.
    await new Promise<void>((resolve) => {
      const end = (what: string) => {
        fired.push(what);
        conn.close();
        resolve();
      };
      watchdog(30, () => end("kept"));
      const cancelFallback = after(5000, () => end("no watchdog in 5 s"));
      conn.read(new Uint8Array(1)).catch(() => {}).finally(cancelFallback);
    });
    assert.deepEqual(fired, ["kept"]);
    assert.ok(performance.now() - t0 >= 28, "fired no sooner than asked");
  } finally {
    (await accepted).close();
    listener.close();
    await Deno.remove(path.slice(0, -2), { recursive: true });
  }
});

Deno.test("a pending watchdog does not keep the process alive", async () => {
  await exitsAtOnce(`watchdog(30000, () => console.log("fired"));`);
});
