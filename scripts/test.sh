#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, unit and integration tests on SQLite,
# then the same integration tests on PostgreSQL.
#
# PostgreSQL: TEST_DATABASE_URL if set, else postgres://postgres@127.0.0.1:5432/postgres.
# If it is not running, a local cluster is started when possible. With CI=true a missing
# PostgreSQL fails the run; otherwise the run says loudly that the PostgreSQL half was
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
scripts/ensure-deps.sh

step "test tools: aiosmtpd (the SMTP server email alerts are tested against), promtool (checks /metrics)"
FLEETDECK_TEST_PYTHON="$(scripts/test-python.sh)"
FLEETDECK_PROMTOOL="$(scripts/test-promtool.sh)"
export FLEETDECK_TEST_PYTHON FLEETDECK_PROMTOOL

# The UI first: the binary the Rust tests and the end-to-end tests run embeds frontend/dist.
step "web UI: install, formatting, lint, type check, unit tests, build"
scripts/build-ui.sh --require
# Built once, it is not built again while nothing changed (else `make run` would rebuild the
# binary every time).
built="$(stat -c %y frontend/dist/index.html)"
scripts/build-ui.sh --require
if [ "$(stat -c %y frontend/dist/index.html)" != "$built" ]; then
  echo "ERROR: scripts/build-ui.sh rebuilt the web UI although nothing changed" >&2
  exit 1
fi
(cd frontend && npm run --silent format:check && npm run --silent lint && npm run --silent typecheck && npm run --silent test && npm run --silent size)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests on SQLite"
TEST_DATABASE_URL= cargo test --workspace --locked

step "end-to-end tests: the real binary, a real secondary, Debian's Chromium"
scripts/ensure-chromium.sh
cargo build --locked -p fleetdeck
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
(cd frontend && FLEETDECK_BIN="$target_dir/debug/fleetdeck" npm run --silent e2e)

pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_host_port() { python3 - "$1" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or 5432)
PY
}
read -r pg_host pg_port < <(pg_host_port "$pg_url")

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$pg_host" -p "$pg_port"
  else
    (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null
  fi
}

if ! pg_up && [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  step "starting the local PostgreSQL cluster"
  for version in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
  done
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi

if pg_up; then
  step "tests on PostgreSQL ($pg_host:$pg_port)"
  TEST_DATABASE_URL="$pg_url" cargo test --workspace --locked --test api
else
  msg="PostgreSQL is not reachable at $pg_host:$pg_port: the PostgreSQL half of the tests did NOT run"
  if [ "${CI:-}" = "true" ]; then
    echo "ERROR: $msg" >&2
    exit 1
  fi
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf '!!! WARNING: %s.\n!!! Start PostgreSQL (or set TEST_DATABASE_URL) and run `make test` again.\n' "$msg" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
fi

step "all checks passed"
