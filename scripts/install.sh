#!/usr/bin/env bash
# Installs wrapper commands plink, pscp, psftp and putty into BINDIR (default ~/.local/bin) that
# run puttykit with `deno run`, passing the tool name as argv[0] as a compiled binary's symlinks
# would. For machines where `deno compile` cannot fetch Deno's runtime.
#
#   scripts/install.sh [BINDIR [LIBDIR]]
#
# The wrappers run the bundle scripts/bundle.ts builds into LIBDIR (default
# ${XDG_DATA_HOME:-~/.local/share}/puttykit): a copy of this checkout as it is now, quicker to
# start than the sources. Run install.sh again after updating the checkout.
set -euo pipefail
dest="${1:-$HOME/.local/bin}"
lib="${2:-${XDG_DATA_HOME:-$HOME/.local/share}/puttykit}"
here="$(cd "$(dirname "$0")/.." && pwd)"
deno_bin="$(command -v deno || true)"
if [ -z "$deno_bin" ]; then
  echo "install.sh: deno not found on PATH (npx -y deno@2.9.6 can run it; or install it)" >&2
  exit 1
fi
mkdir -p "$dest" "$(dirname "$lib")"
lib="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
# Fetch the npm dependencies (ssh2) into Deno's cache as the lock file pins them.
"$deno_bin" install --quiet --frozen --entrypoint "$here/mod.ts"
# deno bundle fetches esbuild from the npm registry the first time; without it the wrappers run
# the sources, which work the same but start slower.
entry="$lib/mod.js"
flags="$("$deno_bin" run --quiet "$here/scripts/deno_flags.ts" --bundle)"
if ! "$deno_bin" run -A --quiet "$here/scripts/bundle.ts" "$lib" >/dev/null; then
  echo "install.sh: could not build the bundle; the wrappers run $here/mod.ts instead" >&2
  entry="$here/mod.ts"
  flags="$("$deno_bin" run --quiet "$here/scripts/deno_flags.ts")"
fi
for tool in plink pscp psftp putty; do
  cat > "$dest/$tool" <<WRAP
#!/usr/bin/env bash
exec -a $tool "$deno_bin" run -A --quiet $flags "$entry" "\$@"
WRAP
  chmod 755 "$dest/$tool"
done
echo "installed plink, pscp, psftp, putty into $dest (running $entry)"
