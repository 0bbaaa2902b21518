#!/bin/sh
# The image's build steps as a plain script (the Dockerfile runs exactly this): build puttykit
# into ROOTFS/usr/local/bin as one binary with the tool links beside it.
#
#   sh scripts/build_image.sh ROOTFS
#
# `deno compile` needs Deno's runtime download; where that is unreachable (PUTTYKIT_NO_COMPILE=1,
# or the download fails) the "binary" is a launcher script running the same code with deno run,
# so the layout and the dispatch can still be built and tested.
set -eu
rootfs="${1:?usage: build_image.sh ROOTFS}"
here="$(cd "$(dirname "$0")/.." && pwd)"
deno_bin="${DENO:-$(command -v deno)}"
bin="$rootfs/usr/local/bin"
mkdir -p "$bin"

# Fetch and lock the npm dependencies (ssh2) first, so a bad lock fails early.
"$deno_bin" install --quiet --frozen --entrypoint "$here/mod.ts"

built=no
if [ "${PUTTYKIT_NO_COMPILE:-0}" != 1 ]; then
  if "$deno_bin" compile --quiet -A --output "$bin/puttykit" "$here/mod.ts"; then
    built=compiled
  fi
fi
if [ "$built" = no ]; then
  cat > "$bin/puttykit" <<WRAP
#!/bin/sh
# launcher: no compiled binary could be built here (deno compile needs Deno's runtime download)
name=\$(basename "\$0")
case "\$name" in plink|pscp|psftp|putty) set -- "\$name" "\$@" ;; esac
exec "$deno_bin" run -A --quiet "$here/mod.ts" "\$@"
WRAP
  chmod 755 "$bin/puttykit"
  built=launcher
fi
for tool in plink pscp psftp putty; do
  ln -sf puttykit "$bin/$tool"
done
echo "build_image: $built puttykit with links plink, pscp, psftp, putty in $bin"
