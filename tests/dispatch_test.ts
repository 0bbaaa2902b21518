/** argv[0] dispatch (mod.ts), tested without a compiled binary. */

import assert from "node:assert/strict";
import { toolFromArgv, toolFromName } from "../lib/dispatch.ts";
import { DENO, MOD, runOurs } from "./fixtures/tools.ts";

Deno.test("tool names: plain, with path, with .exe, case-insensitive", () => {
  assert.equal(toolFromName("plink"), "plink");
  assert.equal(toolFromName("/usr/local/bin/pscp"), "pscp");
  assert.equal(toolFromName("C:\\Tools\\PSFTP.EXE"), "psftp");
  assert.equal(toolFromName("putty.exe"), "putty");
  assert.equal(toolFromName("deno"), undefined);
  assert.equal(toolFromName("plinky"), undefined);
});

Deno.test("argv[0] wins, else the first argument names the tool", () => {
  assert.deepEqual(toolFromArgv("pscp", ["-V"]), { tool: "pscp", args: ["-V"] });
  assert.deepEqual(toolFromArgv("/opt/bin/psftp.exe", ["-b", "f"]), {
    tool: "psftp",
    args: ["-b", "f"],
  });
  assert.deepEqual(toolFromArgv("deno", ["plink", "-V"]), { tool: "plink", args: ["-V"] });
  assert.deepEqual(toolFromArgv("puttykit", ["putty", "host"]), { tool: "putty", args: ["host"] });
  assert.equal(toolFromArgv("deno", ["frob"]), undefined);
  assert.equal(toolFromArgv("/usr/bin/puttykit", []), undefined);
  assert.equal(toolFromArgv("deno", ["./plink"]), undefined);
});

Deno.test("running as `plink` (argv[0]) and as `puttykit plink` both reach plink", async () => {
  const byArgv0 = await runOurs("plink", ["-V"]);
  assert.equal(byArgv0.code, 0);
  assert.match(byArgv0.stdout, /^plink: puttykit \d/);
  const sub = new Deno.Command(DENO, { args: ["run", "-A", MOD, "plink", "-V"] }).outputSync();
  assert.equal(sub.code, 0);
  assert.match(new TextDecoder().decode(sub.stdout), /^plink: puttykit \d/);
});

Deno.test("unknown tool names print usage and fail", () => {
  const out = new Deno.Command(DENO, { args: ["run", "-A", MOD, "frobnicate"] }).outputSync();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stderr), /Usage: puttykit <tool>/);
});

Deno.test("scripts/install.sh: wrappers named after the tools reach them by argv[0]", async () => {
  const dest = await Deno.makeTempDir({ prefix: "pk-install-" });
  try {
    const root = new URL("..", import.meta.url).pathname;
    const path = `${DENO.slice(0, DENO.lastIndexOf("/"))}:${Deno.env.get("PATH") ?? ""}`;
    const install = new Deno.Command("bash", {
      args: [`${root}scripts/install.sh`, dest],
      env: { PATH: path },
    }).outputSync();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    for (const tool of ["plink", "pscp", "psftp", "putty"]) {
      const out = new Deno.Command(`${dest}/${tool}`, { args: ["-V"] }).outputSync();
      assert.equal(out.code, 0, tool);
      assert.match(new TextDecoder().decode(out.stdout), new RegExp(`^${tool}: puttykit \\d`));
    }
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
});
