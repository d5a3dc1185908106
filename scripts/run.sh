#!/usr/bin/env bash
# Start the console. With no MONGODB_URI it runs on the embedded demo store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run app.py --browser.gatherUsageStats false "$@"
