"""AppTest fixtures: a small live-generated demo store, no login delay, caches cleared."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from core.base.permissions import Principal, Role

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT_SECONDS = 120
NAMES = {"admin": "Ada Admin", "admin2": "Alan Checker", "support": "Sam Support", "qa": "Quinn QA"}
ROLE_PAGES = {
    "admin": ["overview", "fees_liquidity", "user_lookup", "integrity", "audit_trail", "approvals", "flow_tests", "proof_of_liabilities"],
    "support": ["user_lookup", "integrity", "audit_trail"],
    "qa": ["flow_tests"],
}


class _NavigationOnlyPagesManager(PagesManager):
    """AppTest resets Streamlit's process-wide "legacy pages/ folder" flag before every
    run, so every run would take the legacy path, which runs a page file directly without
    app.py once a page is selected. A real server clears that flag for good on the first
    run of app.py (st.navigation), so the frame runs on every later request. Pinning the
    flag to False here makes AppTest run the app the way the server does; the pages' own
    role check (console.frame.principal) covers the server's first request, and is tested apart."""

    uses_pages_directory = False


@pytest.fixture(autouse=True)
def console_environment(monkeypatch):
    monkeypatch.setattr(script_runner, "PagesManager", _NavigationOnlyPagesManager)
    for name in ("MONGODB_URI", "LEDGER_CREDENTIALS", "LEDGER_COOKIE_KEY", "LEDGER_COOKIE_EXPIRY_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEDGER_DEMO_SIZE", "small")
    monkeypatch.setenv("LEDGER_LOGIN_SLEEP_TIME", "0")
    monkeypatch.setenv("LEDGER_FAILED_LOGIN_DELAY", "0")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def signed_in(username: str) -> AppTest:
    """An AppTest whose session is already signed in as a demo user (skips the form)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state["name"] = NAMES[username]
    at.session_state["roles"] = [username.rstrip("2")]
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def platform_of():
    """The platform the app built (cached resource shared in this process)."""
    from console.loading import get_platform

    return get_platform()


def principal_of(username: str) -> Principal:
    return Principal(name=username, role=Role(username.rstrip("2")))


def frame_with(at: AppTest, column: str):
    """The first table on the page that has `column` (AppTest does not expose table keys)."""
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no table with a {column!r} column")
