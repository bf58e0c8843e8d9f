#!/usr/bin/env bash
# promtool, which checks the /metrics scrape in the tests: taken from Debian's prometheus
# package, unpacked under target/ (nothing is installed, no Prometheus server is started).
# Prints promtool's path.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
dir="$target_dir/test-promtool"
promtool="$dir/promtool"
if ! "$promtool" --version >/dev/null 2>&1; then
  if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
  fi
  rm -rf "$dir" && mkdir -p "$dir/deb"
  fetch() {
    # (apt warns that root downloads unsandboxed: true, and harmless here.)
    (cd "$dir/deb" && apt-get download -qq prometheus 2>&1 | grep -v unsandboxed >&2 || true)
    compgen -G "$dir/deb/prometheus_*.deb" >/dev/null
  }
  if ! fetch; then
    # No package lists yet (a fresh machine): refresh them once, where allowed.
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2; elif sudo -n true 2>/dev/null; then sudo apt-get update -qq >&2; fi
    fetch || { echo "ERROR: cannot download Debian's prometheus package for promtool" >&2; exit 1; }
  fi
  dpkg-deb -x "$dir"/deb/prometheus_*.deb "$dir/deb/unpacked"
  mv "$dir/deb/unpacked/usr/bin/promtool" "$promtool"
  rm -rf "$dir/deb"
fi
echo "$(cd "$dir" && pwd)/promtool"
