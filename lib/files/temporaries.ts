/**
 * Temporary files of pscp's and psftp's transfers: the name a file is written under beside its
 * target until it is complete, and the set of those still being written, for removal when we are
 * stopped (a signal, a fatal error) so that nothing half-written is left behind.
 */

import { after } from "../util/timer.ts";

/** Characters of the target's name kept in a temporary name (well within NAME_MAX). */
const NAME_KEPT = 100;

/**
 * The temporary file beside `path` (a local or remote POSIX path): ".<name>.<random>.<tool>" in
 * the same directory, e.g. "dir/.notes.txt.3f9a01c2.pscp".
 */
export function temporaryPath(path: string, tool: string): string {
  // Split by hand: node:path would load Deno's Node layer (~50 modules) into every pscp and
  // psftp. Trailing slashes are ignored, as by POSIX basename/dirname.
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  const slash = path.lastIndexOf("/", end - 1);
  const prefix = path.slice(0, slash + 1);
  const tag = Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
  const name = [...path.slice(slash + 1, end)].slice(0, NAME_KEPT).join("");
  return `${prefix}.${name}.${tag}.${tool}`;
}

/** How a file writer names and registers its temporary file. */
export interface TemporaryOptions {
  /** Ends the temporary file's name (".<name>.<random>.<tool>"). */
  tool: string;
  /** Where the temporary file is registered while it exists (removed if we are stopped). */
  temporaries?: Temporaries;
}

/**
 * What a file writer finds at its target (local or remote): nothing, a dangling link, a regular
 * file (`real` with links resolved, and its permission bits), or something else.
 */
export type ExistingTarget =
  | { kind: "none" | "dangling" | "other" }
  | { kind: "file"; real: string; mode: number };

/** A file being written under a temporary name. */
export interface Temporary {
  /** Stops writing it and removes it (best effort: never throws). */
  remove(): Promise<void>;
}

/** How long a server that has stopped answering gets to remove an upload's temporary file. */
const REMOVAL_GRACE_MS = 2000;

/** The temporary files being written, local and remote, for removal when we are stopped. */
export class Temporaries {
  private readonly live = new Set<Temporary>();

  add(t: Temporary): void {
    this.live.add(t);
  }

  delete(t: Temporary): void {
    this.live.delete(t);
  }

  /**
   * Removes every temporary file still being written. Remote removals queue behind the
   * upload's writes; a server that no longer answers is given REMOVAL_GRACE_MS.
   */
  async removeAll(): Promise<void> {
    const all = [...this.live];
    this.live.clear();
    if (all.length === 0) return;
    let cancel = () => {};
    await Promise.race([
      Promise.all(all.map((t) => t.remove())),
      new Promise<void>((r) => (cancel = after(REMOVAL_GRACE_MS, r))),
    ]);
    cancel();
  }
}
