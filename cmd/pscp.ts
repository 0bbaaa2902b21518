/** pscp: not part of this build yet. */

import { writeErr } from "./console.ts";

export function main(_args: string[]): Promise<number> {
  writeErr("pscp: not available in this build of puttykit yet\n");
  return Promise.resolve(1);
}
