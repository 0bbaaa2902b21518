import assert from "node:assert/strict";
import { after, delay } from "../lib/util/timer.ts";

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

Deno.test("a cancelled timer does not keep the process alive", async () => {
  const code = `import { after } from ${
    JSON.stringify(new URL("../lib/util/timer.ts", import.meta.url))
  };
after(30000, () => console.log("fired"))();`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  assert.equal(new TextDecoder().decode(out.stdout), "");
  assert.ok(performance.now() - t0 < 10000, "exited without waiting for the 30 s timer");
});
