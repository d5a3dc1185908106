#!/usr/bin/env bash
# Create .venv and install what the project needs (idempotent). Sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import streamlit, pymongo, mongomock, pydantic, hypothesis, playwright" # fail loudly if the install failed
  touch "$stamp"
fi
