#!/bin/sh
# The image's build steps as a plain script (the Dockerfile runs exactly this): build puttykit
# into ROOTFS/usr/local/bin as one binary with the tool links beside it.
#
#   sh scripts/build_image.sh ROOTFS
#
# `deno compile` needs Deno's runtime download, and a failed compile fails the build. Only with
# PUTTYKIT_NO_COMPILE=1 (the tests, on machines that can't download it) is the "binary" a launcher
# script running the same code with deno run, so the layout and the dispatch can still be tested;
# such a tree needs this checkout and Deno beside it, so it is no image.
set -eu
rootfs="${1:?usage: build_image.sh ROOTFS}"
here="$(cd "$(dirname "$0")/.." && pwd)"
deno_bin="${DENO:-$(command -v deno)}"
bin="$rootfs/usr/local/bin"
mkdir -p "$bin"

# Fetch and lock the npm dependencies (ssh2) first, so a bad lock fails early.
"$deno_bin" install --quiet --frozen --entrypoint "$here/mod.ts"
flags="$("$deno_bin" run --quiet "$here/scripts/deno_flags.ts")"

if [ "${PUTTYKIT_NO_COMPILE:-0}" != 1 ]; then
  if ! "$deno_bin" compile --quiet -A $flags --output "$bin/puttykit" "$here/mod.ts"; then
    echo "build_image: deno compile failed (it downloads Deno's runtime once)" >&2
    exit 1
  fi
  built=compiled
else
  cat > "$bin/puttykit" <<WRAP
#!/bin/bash
# launcher (PUTTYKIT_NO_COMPILE=1): mod.ts under deno run, argv[0] the name it was run as, so it
# dispatches as the compiled binary does
exec -a "\$(basename "\$0")" "$deno_bin" run -A --quiet $flags "$here/mod.ts" "\$@"
WRAP
  chmod 755 "$bin/puttykit"
  built=launcher
fi
for tool in plink pscp psftp putty; do
  ln -sf puttykit "$bin/$tool"
done
echo "build_image: $built puttykit with links plink, pscp, psftp, putty in $bin"
