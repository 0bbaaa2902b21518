/** Local file-system questions with no better home. */

/** Whether anything (file, directory, ...) is at `path`, following symbolic links. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
