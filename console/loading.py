"""The console's ledger: the store, the platform loaded behind the login form (the demo
store and its recovery run in a background thread), and the briefly cached reads pages share.
"""

from __future__ import annotations

import sys
import threading
import time

import streamlit as st

import core.flows  # noqa: F401  (the flows, the projection repair and the legacy rebuild register their approval
import core.integrity.repairs  # noqa: F401  executors when imported: the Approvals page may execute any kind)
import core.legacy.rebuild  # noqa: F401
from core import reports
from core.platform import directory
from core.base.clock import SystemClock
from core.demo import open_demo_platform
from core.legacy import open_legacy_store_if_configured
from core.ledger import Store
from core.base.permissions import SYSTEM, Principal
from core.platform import Platform
from core.platform.settings import demo_settings


CACHE_TTL_SECONDS = 30


CACHE_ENTRIES_MAX = 64


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
        size = demo_settings().size
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
    added since (core.platform.directory.sync_search_keys), and fold the whole audit trail into the
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
