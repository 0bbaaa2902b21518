/**
 * Preloaded (`deno run --preload`) into a benchmarked run: as the program ends, prints to stderr
 * how its resident memory splits into anonymous memory (heap, stacks: the process's own) and
 * file-backed pages (mostly Deno's executable, shared by every Deno process on the machine).
 */

globalThis.addEventListener("unload", () => {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  const line = `RSS_SPLIT anon=${kib("RssAnon")} file=${kib("RssFile")} shmem=${kib("RssShmem")}\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
});
