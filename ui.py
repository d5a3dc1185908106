"""What the console's frame and pages share: the platform, the signed-in principal,
error display and formatting. UI layer only (imports streamlit); all logic is in core.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator
from urllib.parse import quote

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from core import approvals_view, directory, reports
from core.clock import SystemClock
from core.demo import DEMO_SIZE_ENV, open_demo_platform
from core.errors import (
    AmountOverflowError,
    ExcessPrecisionError,
    FloatAmountError,
    LedgerError,
    NonFiniteAmountError,
    StoreError,
)
from core.legacy import open_legacy_store_if_configured
from core.ledger import Store, from_minor
from core.permissions import SYSTEM, Principal, Role
from core.platform import COUNT_SHOWN_MAX, Platform

PRINCIPAL_KEY = "app_principal"
PEOPLE_KEY = "app_people"
NEXT_PAGE_KEY = "app_next_page"  # the page a signed-out visitor asked for (opened after login)
USER_PARAM = "user"  # ?user=<id> opens User lookup on that person
RUN_PARAM = "run"  # ?run=<id> opens Integrity on that stored run
USER_CHOICES_MAX = 10  # people offered when a user field's text is not an id
CACHE_TTL_SECONDS = 30
CACHE_ENTRIES_MAX = 64
PAGE_SIZES = (25, 50, 100)
PAGE_SIZE_BOX_PX = 90


PROGRESS_POLL_SECONDS = 0.5  # how often a page waiting for the ledger updates its progress message


@st.cache_resource(show_spinner=False)
def get_store() -> Store:
    """The process's store: the configured MongoDB (connected, indexes ensured), or a fresh
    embedded one. Fast: the frame needs it before the login form (banner, which credentials
    are allowed). Raises: StoreError when the database cannot be reached (not cached)."""
    return Store.from_environment()


class PlatformLoad:
    """The platform being opened in a background thread, so the login form never waits for
    it (issue 22): the demo data (or `recover()` and the directory refresh on a real
    database) loads behind the form, and only a page that needs data waits, with progress.

    `phase` and the timestamps are written by the loading thread and read by the pages
    (plain attribute reads); `done` is set once, with `platform` or `error`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.phase = "starting"
        self.started = time.monotonic()
        self.finished: float | None = None
        self.platform: Platform | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ledger-platform-load", daemon=True)

    def _run(self) -> None:
        try:
            self.platform = open_platform(self.store, self)
        except BaseException as error:  # noqa: BLE001 — handed to the page that waits, shown there
            self.error = error
        finally:
            self.finished = time.monotonic()
            self.done.set()
            state = "failed" if self.error is not None else "ready"
            print(f"ledger console: the ledger is {state} after {self.finished - self.started:.1f} s", file=sys.stderr, flush=True)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def open_platform(store: Store, load: PlatformLoad) -> Platform:
    """One platform per process: the configured MongoDB, or the embedded demo store.

    Runs `recover()` once at start-up (finishes any entry a crash left mid-way). On the
    embedded store it loads the demo data (`LEDGER_DEMO_SIZE`, default the committed snapshot).
    Raises: StoreError, ConfigurationError.
    """
    if store.embedded:
        size = os.environ.get(DEMO_SIZE_ENV, "").strip() or "snapshot"
        load.phase = f"loading the demo data ({size})"
        platform = open_demo_platform(store, size)
    else:
        load.phase = "opening the database"
        platform = Platform.open(store, SystemClock())
        platform.legacy = open_legacy_store_if_configured()  # LEGACY_MONGODB_URI / LEGACY_DB, read-only
    load.phase = "finishing entries a crash left mid-way (recover)"
    platform.ledger.recover()
    load.phase = "indexing the user directory"
    index_directory(platform)
    return platform


@st.cache_resource(show_spinner=False)
def platform_load() -> PlatformLoad:
    """Start opening the platform in the background (once per process: the first run of any
    session starts it, and the login form is drawn in that same run)."""
    load = PlatformLoad(get_store())
    load.thread.start()
    return load


def platform_ready() -> bool:
    """Whether the ledger has finished loading (successfully or not): no wait."""
    return platform_load().done.is_set()


def get_platform() -> Platform:
    """The process's platform, waiting for the background load if it is still running.
    A failed load is not kept: the next call starts again on a fresh store.
    Raises: StoreError, ConfigurationError (from the load)."""
    load = platform_load()
    load.done.wait()
    if load.error is not None:
        platform_load.clear()
        get_store.clear()
        raise load.error
    assert load.platform is not None
    return load.platform


def wait_for_platform() -> Platform:
    """`get_platform`, showing a progress message while the ledger is still loading (the
    page opens by itself when it is ready). Raises: as `get_platform`."""
    load = platform_load()
    if not load.done.is_set():
        message = st.empty()
        while not load.done.wait(PROGRESS_POLL_SECONDS):
            message.info(f"Opening the ledger: {load.phase} — {load.seconds:,.0f} s so far. "
                         "This page opens by itself when the data is ready.", icon=":material/hourglass_top:")
        message.empty()
    return get_platform()


def index_directory(platform: Platform) -> None:
    """Start-up: reconcile the user search keys with `users` once per process (edits and
    people who left included; O(people)), so a search on User lookup only indexes the people
    added since (core.directory.sync_search_keys), and fold the whole audit trail into the
    pick lists' vocabulary, so an Audit trail render folds only the events since
    (core.reports.sync_audit_vocabulary): a render costs the same at any size."""
    directory.refresh_search_keys(platform.store, SYSTEM)
    reports.sync_audit_vocabulary(platform, steps_max=reports.VOCABULARY_START_UP_STEPS_MAX)


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
        st.session_state[NEXT_PAGE_KEY] = page  # the frame opens it after the login
        try:  # served without app.py (legacy pages/ mode): hand over to the frame's login
            st.switch_page("app.py")
        except StreamlitAPIException:
            pass  # no frame to hand over to (the page file was run on its own)
        st.error("You are not signed in. Open the console's start page to log in.")
        st.stop()
    if value.role not in PAGES[page][2]:
        st.error("This page is not available for your role.")
        st.stop()
    return value


def money(minor: int | None, asset: str) -> str:
    """Exact text of a minor-unit amount with thousands separators (never via float)."""
    if minor is None:
        return "—"
    return approvals_view.group_thousands(from_minor(int(minor), asset, get_platform().registry).text())


def amount(minor: int | None, asset: str | None) -> str:
    """Exact amount with its asset: "1,234.56789012 BTC" ("" when there is none)."""
    if minor is None or not asset:
        return ""
    return approvals_view.amount_text(minor, asset, get_platform().registry)


def when(value: object) -> str:
    """A stored time (naive UTC) as "2026-11-02 00:10:16 UTC"; "—" when missing."""
    if not isinstance(value, datetime):
        return "—" if value in (None, "") else str(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def chart_number(minor: int, asset: str) -> float:
    """A plotting coordinate only: charts need numbers, tables show exact text via money()."""
    return float(from_minor(int(minor), asset, get_platform().registry).to_decimal())


# Core refusals whose own wording is for engineers: the console says it in plain words.
PLAIN_MESSAGES: dict[type, str] = {
    AmountOverflowError: "That amount is too large for the ledger to record. Check the number and the asset.",
    FloatAmountError: "Give the amount as plain decimal text, e.g. 0.015.",
    NonFiniteAmountError: "That is not a number. Give the amount as decimal text, e.g. 0.015.",
    StoreError: "The database did not answer. Nothing was changed; try again in a moment.",
}
JARGON = {"minor units": "smallest units", "int64": "the ledger's number range", "projection": "stored balance"}


def plain(error: LedgerError) -> str:
    """What to tell an operator about a core refusal: its own message when it is already
    plain, a rewording when it is engineering talk (named error types and a few words)."""
    for error_type, text in PLAIN_MESSAGES.items():
        if isinstance(error, error_type):
            return text
    if isinstance(error, ExcessPrecisionError) and error.details.get("asset"):
        asset = error.details["asset"]
        return f"{asset} amounts have at most {get_platform().registry.get(asset).scale} decimals: {error.message}."
    message = error.message
    for word, replacement in JARGON.items():
        message = message.replace(word, replacement)
    return message[0].upper() + message[1:] if message else "The request was refused."


@contextmanager
def refusals() -> Iterator[None]:
    """Show a core refusal as a clear message instead of a traceback."""
    try:
        yield
    except LedgerError as error:
        st.error(plain(error))


def pager(prefix: str, has_more: bool, shown: int = 0, total: int | None = None) -> tuple[int, int]:
    """Page number and size controls kept in session state under `<prefix>_page`/`_page_size`.
    The caption says which rows are shown and, when known, of how many."""
    page_key, size_key = f"{prefix}_page", f"{prefix}_page_size"
    st.session_state.setdefault(page_key, 0)
    # one row of controls sized to their text, wrapping onto a second line in a narrow window
    # (equal columns squeezed "◀ Previous" to "◀.." at 900 px)
    row = st.container(horizontal=True, vertical_alignment="center", gap="small")
    if row.button("◀ Previous", key=f"{prefix}_prev", disabled=st.session_state[page_key] == 0):
        st.session_state[page_key] -= 1
        st.rerun()
    if row.button("Next ▶", key=f"{prefix}_next", disabled=not has_more):
        st.session_state[page_key] += 1
        st.rerun()
    page_size = row.selectbox("Rows per page", PAGE_SIZES, key=size_key, label_visibility="collapsed", width=PAGE_SIZE_BOX_PX)
    row.caption(page_caption(st.session_state[page_key], page_size, shown, has_more, total), width="content")
    return st.session_state[page_key], page_size


def page_caption(page: int, page_size: int, shown: int, has_more: bool, total: int | None) -> str:
    """"rows 26–50 of 57 · page 2 of 3" (or "… of more than 50" when only has_more is known)."""
    first, last = page * page_size + 1, page * page_size + shown
    if total is not None and total > COUNT_SHOWN_MAX:  # counted only up to the cap: the history may be long
        pages = -(-COUNT_SHOWN_MAX // page_size)
        rows = f"rows {first:,}–{last:,} of more than {COUNT_SHOWN_MAX:,}" if shown else "no rows"
        return f"{rows} · page {page + 1:,} of more than {pages:,}"
    if total is not None:
        pages = max(1, -(-total // page_size))
        rows = f"rows {first:,}–{last:,} of {total:,}" if shown else f"no rows of {total:,}"
        return f"{rows} · page {page + 1:,} of {pages:,}"
    if not shown:
        return f"page {page + 1:,} · no rows"
    return f"rows {first:,}–{last:,}" + (f" of more than {last:,}" if has_more else f" of {last:,}") + f" · page {page + 1:,}"


def page_state(prefix: str) -> tuple[int, int]:
    """Current (page, page_size) before the table is read; `pager` draws the controls after."""
    return st.session_state.get(f"{prefix}_page", 0), st.session_state.get(f"{prefix}_page_size", PAGE_SIZES[0])


def console_people() -> dict:
    """The console's accounts without secrets ({"usernames": {u: {name, roles, disabled}}}),
    set by app.py from the credentials file: who may approve, and names beside usernames."""
    return st.session_state.get(PEOPLE_KEY) or {"usernames": {}}


def user_url(user_id: str) -> str:
    """The User lookup page opened on one user (a link in tables: LinkColumn)."""
    return f"/user_lookup?{USER_PARAM}={quote(user_id, safe='')}"


USER_LINK_COLUMN = "Open user"


def user_link_column(label: str = USER_LINK_COLUMN) -> dict:
    """column_config for a column of `user_url` values: shows the id, opens User lookup."""
    return {label: st.column_config.LinkColumn(label, display_text=r"user=(.*)$", help="Opens this user in User lookup")}


def user_field(key: str, label: str, help: str, *, prefix_allowed: bool = False) -> str | None:
    """A user text field that accepts what User lookup accepts: the id with surrounding spaces
    or in another case (" U0001 " → u0001, an upper-case UUID → the stored one); for other
    text (part of an email or name) it offers the matching people to pick from. Text that
    matches nobody is returned as typed (trimmed): the caller's own refusal names it. With
    `prefix_allowed`, "text*" (a prefix filter) is returned unchanged. Returns None when empty."""
    text = st.text_input(label, key=key, max_chars=directory.SEARCH_TEXT_LENGTH_MAX, help=help)
    wanted = text.strip()
    me = st.session_state.get(PRINCIPAL_KEY)
    if not wanted or (prefix_allowed and wanted.endswith("*")) or not isinstance(me, Principal):
        return wanted or None
    try:
        found = directory.find_users(get_platform().store, me, wanted, page_size=USER_CHOICES_MAX)
    except LedgerError:
        return wanted  # not searchable text, or the role may not read the directory: the id as typed
    exact = [person for person in found.items if person.user_id.casefold() == wanted.casefold()]
    if exact:
        if exact[0].user_id != wanted:
            st.caption(f"{exact[0].name} ({exact[0].user_id})")
        return exact[0].user_id
    if not found.items:
        return wanted
    people = {person.user_id: f"{person.name} · {person.user_id} · {person.email}" for person in found.items}
    more = f" (first {len(people)} of {found.total:,})" if found.total > len(people) else ""
    return st.selectbox(f"“{wanted}” is not a user id — people matching it{more}", list(people), key=f"{key}_choice",
                        format_func=people.get)


def link_to_user(user_id: str, name: str = "", key: str | None = None) -> None:
    """A link (same tab) to User lookup showing `user_id`."""
    label = f"Open {name} ({user_id}) in User lookup" if name else f"Open {user_id} in User lookup"
    st.page_link("pages/user_lookup.py", label=label, icon=":material/person_search:", query_params={USER_PARAM: user_id})


FINDINGS_SHOWN_MAX = 500  # rows of one findings table (the run's counts stay exact)
FULL_MESSAGES_OPEN_MAX = 5  # up to this many findings, their full messages are shown open


def readable_account(account_id: str | None, names: dict[str, str]) -> str:
    """"Ada Walker (u0044) · available BTC" for a user account, "fees BTC" for the platform's."""
    if not account_id:
        return ""
    text = approvals_view.account_text(account_id)
    owner = text.split(" · ", 1)[0]
    return f"{names[owner]} ({owner}) · {text.split(' · ', 1)[1]}" if owner in names and " · " in text else text


def finding_message(finding: dict, names: dict[str, str]) -> str:
    """The finding's full message with its account named and, where a number is one of the
    finding's own amounts, that amount in decimals with the asset."""
    message = str(finding.get("message") or "")
    asset = finding.get("asset")
    if finding.get("account"):
        message = message.replace(finding["account"], readable_account(finding["account"], names))
    if asset:  # the stored and expected balances only: a small difference could equal a version number
        for name in ("expected", "actual"):
            value = finding.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                message = re.sub(rf"(?<![\w.])(?<!version ){re.escape(str(value))}(?![\w.])", amount(value, asset), message)
    return message


def findings_frame(findings: list[dict], names: dict[str, str]) -> pd.DataFrame:
    """Findings as operators read them: who (name and id), which balance, decimal amounts
    with the asset, the full message, and a link to the user."""
    rows = []
    for finding in findings[:FINDINGS_SHOWN_MAX]:
        asset = finding.get("asset")

        def value(name: str) -> str:
            number = finding.get(name)
            if isinstance(number, int) and not isinstance(number, bool) and asset:
                return amount(number, asset)
            return "" if number is None else str(number)

        user_id = finding.get("user")
        rows.append({
            "Severity": finding.get("severity"), "Kind": str(finding.get("kind") or "").replace("_", " "),
            "Account": readable_account(finding.get("account"), names) or str(finding.get("subject") or ""),
            "Collection": finding.get("collection") or "", "Field": finding.get("field") or "",
            "Expected": value("expected"), "Actual": value("actual"), "Difference": value("difference"),
            "Message": finding_message(finding, names),
            USER_LINK_COLUMN: user_url(user_id) if user_id else "",  # never a grey "None"
        })
    return pd.DataFrame(rows)


def show_findings(findings: list[dict], names: dict[str, str], key: str) -> None:
    """The findings table (full messages, links to users) or a plain "no findings"."""
    if not findings:
        st.success("No findings.")
        return
    frame = findings_frame(findings, names)
    frame = frame.drop(columns=[c for c in ("Collection", "Field", USER_LINK_COLUMN)  # ledger-only, or no user to open
                                if not frame[c].astype(bool).any()])
    st.dataframe(frame, hide_index=True, key=key,
                 column_config={"Message": st.column_config.TextColumn("Message", width="large"), **user_link_column()})
    if len(findings) > FINDINGS_SHOWN_MAX:
        st.caption(f"First {FINDINGS_SHOWN_MAX:,} of {len(findings):,} findings.")
    with st.expander("Full messages", expanded=len(findings) <= FULL_MESSAGES_OPEN_MAX):
        for finding in findings[:FINDINGS_SHOWN_MAX]:
            st.markdown(f"- **{finding.get('severity')}** · {finding_message(finding, names)}")
