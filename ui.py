"""What the console's frame and pages share: the platform, the signed-in principal,
error display and formatting. UI layer only (imports streamlit); all logic is in core.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from core import reports
from core.clock import SystemClock
from core.demo import DEMO_SIZE_ENV, open_demo_platform
from core.errors import LedgerError
from core.legacy import open_legacy_store_if_configured
from core.ledger.money import from_minor
from core.permissions import Principal, Role
from core.platform import Platform
from core.ledger.store import Store

PRINCIPAL_KEY = "app_principal"
CACHE_TTL_SECONDS = 30
CACHE_ENTRIES_MAX = 64
PAGE_SIZES = (25, 50, 100)


@st.cache_resource(show_spinner="Opening the ledger…")
def get_platform() -> Platform:
    """One platform per process: the configured MongoDB, or the embedded demo store.

    Runs `recover()` once at start-up (finishes any entry a crash left mid-way). On the
    embedded store it loads the demo data (`LEDGER_DEMO_SIZE`, default the committed snapshot).
    Raises: StoreError when the database cannot be reached (not cached; the next run retries).
    """
    store = Store.from_environment()
    if store.embedded:
        platform = open_demo_platform(store, os.environ.get(DEMO_SIZE_ENV, "").strip() or "snapshot")
    else:
        platform = Platform.open(store, SystemClock())
        platform.legacy = open_legacy_store_if_configured()  # LEGACY_MONGODB_URI / LEGACY_DB, read-only
    platform.ledger.recover()
    return platform


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=CACHE_ENTRIES_MAX, show_spinner=False)
def load_totals(me: Principal) -> list[dict]:
    """Per-asset platform totals (Overview, Fees & liquidity), cached briefly."""
    return [row.as_dict() for row in reports.platform_totals(get_platform(), me)]


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=CACHE_ENTRIES_MAX, show_spinner=False)
def load_fee_movements(me: Principal, since, until) -> list[reports.RevenuePoint]:
    """Fee-wallet movements in a time window (Overview, Fees & liquidity), cached briefly."""
    return reports.fee_movements(get_platform(), me, since, until)


# page file stem -> (title, icon, roles that may open it) — SPEC §11. app.py registers
# only a role's pages with st.navigation; each page checks again (see `principal`).
PAGES: dict[str, tuple[str, str, frozenset[Role]]] = {
    "overview": ("Overview", ":material/dashboard:", frozenset({Role.ADMIN})),
    "fees_liquidity": ("Fees & liquidity", ":material/account_balance:", frozenset({Role.ADMIN})),
    "user_lookup": ("User lookup", ":material/person_search:", frozenset({Role.ADMIN, Role.SUPPORT})),
    "integrity": ("Integrity", ":material/verified:", frozenset({Role.ADMIN, Role.SUPPORT})),
    "audit_trail": ("Audit trail", ":material/history:", frozenset({Role.ADMIN, Role.SUPPORT})),
    "approvals": ("Approvals", ":material/approval:", frozenset({Role.ADMIN})),
    "flow_tests": ("Flow tests", ":material/science:", frozenset({Role.ADMIN, Role.QA})),
    "proof_of_liabilities": ("Proof of liabilities", ":material/balance:", frozenset({Role.ADMIN})),
}


def principal(page: str) -> Principal:
    """The signed-in person as core sees them, if their role may open `page`; else stop.

    app.py sets it before it runs a page. The page checks again because Streamlit runs a
    file from the `pages/` folder directly (without app.py) when a session's very first
    request names it — the legacy multipage behaviour that `st.navigation` only switches
    off once app.py has run. Without this check that request would skip the login.
    """
    value = st.session_state.get(PRINCIPAL_KEY)
    if not isinstance(value, Principal):
        st.error("You are not signed in. Open the console's start page to log in.")
        st.stop()
    if value.role not in PAGES[page][2]:
        st.error("This page is not available for your role.")
        st.stop()
    return value


def money(minor: int | None, asset: str) -> str:
    """Exact text of a minor-unit amount (never via float)."""
    if minor is None:
        return "—"
    return from_minor(int(minor), asset, get_platform().registry).text()


def chart_number(minor: int, asset: str) -> float:
    """A plotting coordinate only: charts need numbers, tables show exact text via money()."""
    return float(from_minor(int(minor), asset, get_platform().registry).to_decimal())


@contextmanager
def refusals() -> Iterator[None]:
    """Show a core refusal as a clear message instead of a traceback."""
    try:
        yield
    except LedgerError as error:
        st.error(error.message)


def pager(prefix: str, has_more: bool) -> tuple[int, int]:
    """Page number and size controls kept in session state under `<prefix>_page`/`_page_size`."""
    page_key, size_key = f"{prefix}_page", f"{prefix}_page_size"
    st.session_state.setdefault(page_key, 0)
    columns = st.columns([1, 1, 2, 4])
    page_size = columns[2].selectbox("Rows per page", PAGE_SIZES, key=size_key, label_visibility="collapsed")
    if columns[0].button("◀ Previous", key=f"{prefix}_prev", disabled=st.session_state[page_key] == 0):
        st.session_state[page_key] -= 1
        st.rerun()
    if columns[1].button("Next ▶", key=f"{prefix}_next", disabled=not has_more):
        st.session_state[page_key] += 1
        st.rerun()
    columns[3].caption(f"page {st.session_state[page_key] + 1}")
    return st.session_state[page_key], page_size


def page_state(prefix: str) -> tuple[int, int]:
    """Current (page, page_size) before the table is read; `pager` draws the controls after."""
    return st.session_state.get(f"{prefix}_page", 0), st.session_state.get(f"{prefix}_page_size", PAGE_SIZES[0])
