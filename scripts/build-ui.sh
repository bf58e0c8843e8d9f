#!/usr/bin/env bash
# Builds the web UI (frontend/ → frontend/dist), which `cargo build` then embeds in the
# binary. `npm ci` runs only when the installed packages are older than package-lock.json,
# and the build only when the UI's inputs changed since the last one (a stamp of their
# SHA-256 sums): a rebuild rewrites every file of dist/, which makes cargo rebuild the binary
# that embeds them, so an unchanged UI is left alone.
#
#   scripts/build-ui.sh            build if Node is available; otherwise say that the binary
#                                  will carry a placeholder page, and succeed
#   scripts/build-ui.sh --require  fail without Node (what the tests use)
set -euo pipefail
cd "$(dirname "$0")/../frontend"

node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    [ "$(node -p 'Number(process.versions.node.split(".")[0])')" -ge 20 ]
}

if ! node_ok; then
  msg="Node.js 20+ and npm are needed to build the web UI (Debian: apt-get install nodejs npm)"
  if [ "${1:-}" = "--require" ]; then
    echo "ERROR: $msg" >&2
    exit 1
  fi
  echo "fleetdeck: $msg; the binary will serve a placeholder page instead of the UI" >&2
  exit 0
fi

inputs_stamp() {
  find src public index.html package.json package-lock.json vite.config.ts tsconfig.json -type f -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
stamp_file=node_modules/.fleetdeck-ui-stamp
stamp="$(inputs_stamp)"
if [ -f dist/index.html ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  echo "fleetdeck: the web UI is up to date (frontend/dist)" >&2
  exit 0
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
echo "$stamp" >"$stamp_file"
