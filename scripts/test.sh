#!/usr/bin/env bash
# The whole test suite on a fresh machine: creates .venv, installs dependencies and
# Debian's chromium (for the one real-browser test), then runs pytest.
# Set MONGODB_TEST_URI to run the same suite against a real MongoDB server.
# Runs in two worker processes (pytest-xdist: a test file runs whole in one, tests/browser/
# as one unit, see tests/conftest.py); `bash scripts/test.sh -n 0` runs in one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"
fi
set +e
.venv/bin/python -m pytest -n 2 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests were collected: failing" >&2
  exit 1
fi
exit "$status"
