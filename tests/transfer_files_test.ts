/**
 * The file writers pscp and psftp share (lib/files/local_file.ts, lib/files/remote_file.ts):
 * what they write to, what they keep, and what they leave behind. Local ones on this machine,
 * remote ones through our SFTP client against OpenSSH's internal-sftp.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalFileWriter } from "../lib/files/local_file.ts";
import { RemoteFileWriter } from "../lib/files/remote_file.ts";
import { Temporaries, temporaryPath } from "../lib/files/temporaries.ts";
import { SftpClient } from "../lib/sftp/client.ts";
import { SftpError } from "../lib/sftp/protocol.ts";
import { upload } from "../lib/files/sftp_pipeline.ts";
import { passwdIds, startSshd } from "./fixtures/sshd.ts";
import { connectTo } from "./fixtures/connect.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const enc = new TextEncoder();

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

async function* once(data: Uint8Array): AsyncIterable<Uint8Array> {
  yield data;
}

Deno.test("temporary names: hidden, beside the target, the tool's suffix, no doubled slash", () => {
  assert.match(temporaryPath("dir/notes.txt", "pscp"), /^dir\/\.notes\.txt\.[0-9a-f]{8}\.pscp$/);
  assert.match(temporaryPath("notes.txt", "psftp"), /^\.notes\.txt\.[0-9a-f]{8}\.psftp$/);
  assert.match(temporaryPath("./x", "psftp"), /^\.\/\.x\.[0-9a-f]{8}\.psftp$/);
  assert.match(temporaryPath("/x", "pscp"), /^\/\.x\.[0-9a-f]{8}\.pscp$/);
  const long = temporaryPath("d/" + "ü".repeat(200), "pscp");
  assert.equal(long, `d/.${"ü".repeat(100)}${long.slice(-14)}`);
  assert.notEqual(temporaryPath("a", "pscp"), temporaryPath("a", "pscp"));
});

Deno.test("local writer: links, devices, resumes, directories, set-id bits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pk-writer-" });
  try {
    // A link is written through: the file it names gets the data, the link stays.
    await Deno.writeTextFile(join(dir, "real"), "old");
    await Deno.symlink("real", join(dir, "link"));
    let w = await LocalFileWriter.open(join(dir, "link"), { mode: 0o644, tool: "pscp" });
    assert.equal(w.target, await Deno.realPath(join(dir, "real")));
    await w.write(enc.encode("new"));
    await w.commit();
    assert.ok((await Deno.lstat(join(dir, "link"))).isSymlink);
    assert.equal(await Deno.readTextFile(join(dir, "real")), "new");
    assert.deepEqual(names(dir), ["link", "real"]);

    // A dangling link is written through too (as opening it would).
    await Deno.symlink("made", join(dir, "dangling"));
    w = await LocalFileWriter.open(join(dir, "dangling"), { mode: 0o644, tool: "psftp" });
    assert.equal(w.tempPath, undefined);
    await w.write(enc.encode("via link"));
    await w.commit();
    assert.equal(await Deno.readTextFile(join(dir, "made")), "via link");

    // A device is written in place, never replaced by a file.
    w = await LocalFileWriter.open("/dev/null", { mode: 0o644, tool: "pscp" });
    assert.equal(w.tempPath, undefined);
    await w.write(enc.encode("discarded"));
    await w.commit();
    assert.ok((await Deno.stat("/dev/null")).isCharDevice);
    assert.ok(!names("/dev").some((n) => n.startsWith(".null.")));

    // Resuming appends from the end, with no temporary file.
    await Deno.writeTextFile(join(dir, "partial"), "12345");
    w = await LocalFileWriter.open(join(dir, "partial"), {
      mode: 0o644,
      tool: "psftp",
      resume: true,
    });
    assert.equal(w.offset, 5);
    assert.equal(w.tempPath, undefined);
    await w.write(enc.encode("678"));
    await w.commit();
    assert.equal(await Deno.readTextFile(join(dir, "partial")), "12345678");

    // A directory is refused.
    await Deno.mkdir(join(dir, "sub"));
    await assert.rejects(LocalFileWriter.open(join(dir, "sub"), { mode: 0o644, tool: "pscp" }));

    // A new file keeps set-id bits (open() alone would drop them).
    w = await LocalFileWriter.open(join(dir, "setuid"), { mode: 0o4755, tool: "pscp" });
    await w.commit();
    assert.equal((await Deno.stat(join(dir, "setuid"))).mode! & 0o4000, 0o4000);

    // A stop removes what is being written; the target is untouched.
    const temporaries = new Temporaries();
    w = await LocalFileWriter.open(join(dir, "real"), { mode: 0o644, tool: "pscp", temporaries });
    await w.write(enc.encode("half"));
    assert.ok(names(dir).some((n) => n.endsWith(".pscp")));
    await temporaries.removeAll();
    assert.ok(!names(dir).some((n) => n.endsWith(".pscp")));
    assert.equal(await Deno.readTextFile(join(dir, "real")), "new");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("remote writer against OpenSSH: modes, links, failures, stops", opts, async () => {
  const s = await startSshd();
  const dir = await s.userDir("writer");
  const c = await connectTo(s, false);
  const sftp = await SftpClient.start(c.conn);
  try {
    // An existing file is replaced whole, keeping its exact mode (not the server's umask of it).
    await Deno.writeTextFile(join(dir, "kept"), "old");
    await Deno.chmod(join(dir, "kept"), 0o664);
    let w = await RemoteFileWriter.open(sftp, `${dir}/kept`, { mode: 0o600, tool: "psftp" });
    assert.match(w.tempPath!, /\/\.kept\.[0-9a-f]{8}\.psftp$/);
    await upload(w.handle, once(enc.encode("new contents")));
    assert.equal(await Deno.readTextFile(join(dir, "kept")), "old", "untouched until commit");
    await w.commit();
    assert.equal(await Deno.readTextFile(join(dir, "kept")), "new contents");
    assert.equal((await Deno.stat(join(dir, "kept"))).mode! & 0o7777, 0o664);
    assert.deepEqual(names(dir), ["kept"]);

    // A link is written through, not replaced by a file.
    await Deno.symlink("kept", join(dir, "link"));
    w = await RemoteFileWriter.open(sftp, `${dir}/link`, { mode: 0o644, tool: "pscp" });
    assert.equal(w.target, `${dir}/kept`);
    await upload(w.handle, once(enc.encode("through the link")));
    await w.commit();
    assert.ok((await Deno.lstat(join(dir, "link"))).isSymlink);
    assert.equal(await Deno.readTextFile(join(dir, "kept")), "through the link");

    // Discarded: the temporary file goes, the target stays as it was.
    w = await RemoteFileWriter.open(sftp, `${dir}/kept`, { mode: 0o644, tool: "pscp" });
    await upload(w.handle, once(enc.encode("abandoned")));
    await w.discard();
    assert.deepEqual(names(dir), ["kept", "link"]);
    assert.equal(await Deno.readTextFile(join(dir, "kept")), "through the link");

    // A stop removes an upload's temporary file.
    const temporaries = new Temporaries();
    w = await RemoteFileWriter.open(sftp, `${dir}/fresh`, {
      mode: 0o644,
      tool: "psftp",
      temporaries,
    });
    await upload(w.handle, once(enc.encode("half")));
    assert.equal(names(dir).length, 3);
    await temporaries.removeAll();
    assert.deepEqual(names(dir), ["kept", "link"]);

    // A directory that refuses new files: an existing file there is written in place.
    await Deno.mkdir(join(dir, "locked"));
    await Deno.writeTextFile(join(dir, "locked", "f"), "old");
    await Deno.chmod(join(dir, "locked", "f"), 0o666);
    const [uid, gid] = passwdIds(s.user);
    await Deno.chown(join(dir, "locked"), uid, gid);
    await Deno.chmod(join(dir, "locked"), 0o555);
    try {
      w = await RemoteFileWriter.open(sftp, `${dir}/locked/f`, { mode: 0o644, tool: "pscp" });
      assert.equal(w.tempPath, undefined);
      await upload(w.handle, once(enc.encode("in place")));
      await w.commit();
      assert.equal(await Deno.readTextFile(join(dir, "locked", "f")), "in place");
      assert.deepEqual(names(join(dir, "locked")), ["f"]);
    } finally {
      await Deno.chmod(join(dir, "locked"), 0o755);
    }

    // A directory can't be written: the server refuses it.
    await Deno.mkdir(join(dir, "sub"));
    await assert.rejects(
      RemoteFileWriter.open(sftp, `${dir}/sub`, { mode: 0o644, tool: "pscp" }),
      SftpError,
    );
  } finally {
    await sftp.close();
    await c.finish();
    await s.stop();
  }
});

Deno.test(
  "remote writer where posix-rename is denied: the old file moved aside, the new one renamed in",
  opts,
  async () => {
    const s = await startSshd({
      sftp: false,
      config: ["Subsystem sftp internal-sftp -P posix-rename"],
    });
    const dir = await s.userDir("writer-plain-rename");
    const c = await connectTo(s, false);
    const sftp = await SftpClient.start(c.conn);
    try {
      // Depending on its version, OpenSSH stops offering the request it denies, or still does.
      if (sftp.hasPosixRename) {
        await assert.rejects(sftp.posixRename(`${dir}/a`, `${dir}/b`), /permission denied/i);
      }
      await Deno.writeTextFile(join(dir, "kept"), "old");
      await Deno.chmod(join(dir, "kept"), 0o640);
      const w = await RemoteFileWriter.open(sftp, `${dir}/kept`, { mode: 0o600, tool: "pscp" });
      await upload(w.handle, once(enc.encode("replaced")));
      assert.equal(await Deno.readTextFile(join(dir, "kept")), "old", "untouched until commit");
      await w.commit();
      assert.equal(await Deno.readTextFile(join(dir, "kept")), "replaced");
      assert.equal((await Deno.stat(join(dir, "kept"))).mode! & 0o7777, 0o640);
      assert.deepEqual(names(dir), ["kept"]);
      // A new file needs no removal.
      const n = await RemoteFileWriter.open(sftp, `${dir}/new`, { mode: 0o600, tool: "psftp" });
      await upload(n.handle, once(enc.encode("fresh")));
      await n.commit();
      assert.equal(await Deno.readTextFile(join(dir, "new")), "fresh");
      assert.deepEqual(names(dir), ["kept", "new"]);
    } finally {
      await sftp.close();
      await c.finish();
      await s.stop();
    }
  },
);
