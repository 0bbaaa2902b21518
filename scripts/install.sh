#!/usr/bin/env bash
# Installs wrapper commands plink, pscp, psftp and putty into a directory (default ~/.local/bin)
# that run puttykit with `deno run`, passing the tool name as argv[0] as a compiled binary's
# symlinks would. For machines where `deno compile` cannot fetch Deno's runtime.
set -euo pipefail
dest="${1:-$HOME/.local/bin}"
here="$(cd "$(dirname "$0")/.." && pwd)"
deno_bin="$(command -v deno || true)"
if [ -z "$deno_bin" ]; then
  echo "install.sh: deno not found on PATH (npx -y deno@2.9.6 can run it; or install it)" >&2
  exit 1
fi
# The flags of scripts/deno_flags.ts (keep in step).
flags="--v8-flags=--max-semi-space-size=1"
mkdir -p "$dest"
for tool in plink pscp psftp putty; do
  cat > "$dest/$tool" <<WRAP
#!/usr/bin/env bash
exec -a $tool "$deno_bin" run -A --quiet $flags "$here/mod.ts" "\$@"
WRAP
  chmod 755 "$dest/$tool"
done
echo "installed plink, pscp, psftp, putty into $dest"
