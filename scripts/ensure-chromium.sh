#!/usr/bin/env bash
# The end-to-end tests drive Debian's Chromium (/usr/bin/chromium) with playwright-core;
# no browser is ever downloaded. Installs it with apt-get when missing (as root or with
# sudo), otherwise says exactly what to install.
set -euo pipefail

[ -x /usr/bin/chromium ] && exit 0
echo "fleetdeck: installing Debian's chromium for the end-to-end tests" >&2
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
else
  echo "ERROR: /usr/bin/chromium is missing and this user cannot install it (not root, no sudo)." >&2
  echo "       Install it with: sudo apt-get install chromium   (then run make test again)" >&2
  exit 1
fi
