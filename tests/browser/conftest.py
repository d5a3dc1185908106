"""One console server for every test in tests/browser/ that uses `console_url` (the tests
that need a fresh server start their own: `chromium.fresh_console`). Under pytest-xdist
those tests all run in one process, in file order (tests/conftest.py groups them)."""

from __future__ import annotations

import os

import pytest

from tests.browser.chromium import require_chromium, serve_console, stop


@pytest.fixture(scope="session")
def console_url(tmp_path_factory):
    require_chromium()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    # LEDGER_BROWSER_DEMO_SIZE=snapshot with LEDGER_UPDATE_DOCS_SCREENSHOTS=1 refreshes the README's screenshots
    server, url, _ = serve_console(log, os.environ.get("LEDGER_BROWSER_DEMO_SIZE", "small"))
    try:
        yield url
    finally:
        stop(server)
