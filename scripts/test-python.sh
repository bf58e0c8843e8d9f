#!/usr/bin/env bash
# The Python tools the tests use, in a virtualenv of their own under target/: aiosmtpd, the
# SMTP server that stands in for a mail server in the email alert tests; schemathesis, which
# fuzzes the API against its OpenAPI document; openapi-spec-validator, which checks that
# document. Prints the virtualenv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/test-python"
if ! "$venv/bin/python" -c 'import aiosmtpd, schemathesis, openapi_spec_validator' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'aiosmtpd==1.4.6' 'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0' >&2
fi
echo "$(cd "$venv" && pwd)/bin/python"
