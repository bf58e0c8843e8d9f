#!/usr/bin/env bash
# Makes sure the few system packages the build links against are present (Debian/Ubuntu):
# libpq for the PostgreSQL driver and pkg-config (SQLite is bundled), and python3-venv
# for the tests' Python tools. Installs them when
# run as root (or with sudo), otherwise says exactly what to install.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! { pkg-config --exists libpq 2>/dev/null || ls /usr/lib/*/libpq.so /usr/lib/libpq.so >/dev/null 2>&1; }; then
  missing+=(libpq-dev)
fi
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
# The tests' Python tools (scripts/test-python.sh) live in a virtualenv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "fleetdeck: installing system packages: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "fleetdeck: please install these packages first: ${missing[*]}" >&2
  exit 1
fi
