"""Store round trips of each console page, rendered by Streamlit's AppTest against a
platform the benchmark prepared.

The console's frame (`app.py`) gets its platform from `loading.get_platform()`; for the
measurement that function is replaced by one returning the benchmark's platform, the
session is preset to a signed-in admin (ENVIRONMENT.md: presetting
`authentication_status`, `name`, `username`, `roles` skips the login form), and each
page is rendered once with every `st.cache_data` cleared first — a cold render, the
worst case a page costs. Everything is restored afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.platform import Platform

REPOSITORY = Path(__file__).resolve().parent.parent
APP = REPOSITORY / "app.py"
RENDER_TIMEOUT_SECONDS = 180
ADMIN = {"username": "admin", "name": "Benchmark Admin", "roles": ["admin"]}
CLEARED_ENVIRONMENT = ("MONGODB_URI", "LEDGER_CREDENTIALS", "LEDGER_COOKIE_KEY", "LEDGER_COOKIE_EXPIRY_DAYS")
PAGE_PRESETS = {"user_lookup": "lookup_search"}  # page -> session key that selects the probe user


@contextmanager
def console_for(platform: Platform) -> Iterator[None]:
    """Run the console against `platform` (demo credentials, no login delay), then restore."""
    if str(REPOSITORY) not in sys.path:
        sys.path.insert(0, str(REPOSITORY))
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    from console import loading

    class NavigationOnlyPagesManager(PagesManager):
        """As tests/pages/conftest.py: AppTest would otherwise take the legacy `pages/`
        path and run a page file without app.py; a real server runs app.py every time."""

        uses_pages_directory = False

    saved_environment = {name: os.environ.get(name) for name in (*CLEARED_ENVIRONMENT, "LEDGER_LOGIN_SLEEP_TIME")}
    saved_manager, saved_get_platform, saved_load = script_runner.PagesManager, loading.get_platform, loading.platform_load
    for name in CLEARED_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ["LEDGER_LOGIN_SLEEP_TIME"] = "0"
    script_runner.PagesManager = NavigationOnlyPagesManager
    loading.get_platform = lambda: platform
    loaded = loading.PlatformLoad(platform.store)  # the frame's background load, already done (never started: no demo load)
    loaded.platform, loaded.phase, loaded.finished = platform, "ready", loaded.started
    loaded.done.set()
    loading.platform_load = lambda: loaded
    loading.index_directory(platform)  # what the real `get_platform` does at start-up (it is replaced above)
    clear_page_caches()
    try:
        yield
    finally:
        loading.get_platform, loading.platform_load = saved_get_platform, saved_load
        script_runner.PagesManager = saved_manager
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        clear_page_caches()


def clear_page_caches() -> None:
    """Empty every `st.cache_data` (quietly: outside a script run Streamlit logs notes, and
    AppTest's config load resets the log level on every run)."""
    import streamlit as st
    from streamlit import logger as streamlit_logger

    streamlit_logger.set_log_level(logging.ERROR)
    st.cache_data.clear()


def admin_pages() -> list[str]:
    """The page stems an admin may open (every page of the console)."""
    from core.base.permissions import Role
    from console.frame import PAGES

    return [stem for stem, (_, _, roles) in PAGES.items() if Role.ADMIN in roles]


def _signed_in(store) -> tuple[object, list]:
    """A fresh AppTest session signed in as an admin, after its first (default page) run.
    Returns (the AppTest, the records of that first run)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT_SECONDS)
    for key in ("username", "name", "roles"):
        at.session_state[key] = ADMIN[key]
    at.session_state["authentication_status"] = True
    store.log.reset()
    at.run()
    return at, list(store.log.records)


def shape_of(record) -> str:
    """A record's query shape in a line (where examined keys and documents go)."""
    branches = " | ".join(",".join(f"{name}:{how}" for name, how in branch) for branch in record.branches) or "{}"
    order = ",".join(f"{name}{'' if direction > 0 else '↓'}" for name, direction in record.sort)
    return f"{record.collection}.{record.operation} {{{branches}}}" + (f" sort {order}" if order else "")


def examined(records: list) -> dict:
    """Index keys and documents a real server would examine for `records` (planner model,
    core.ledger.planner), in all and per query shape."""
    by_shape: Counter = Counter()
    for record in records:
        by_shape[shape_of(record)] += (record.keys_examined or 0) + (record.documents_examined or 0)
    return {"keys_examined": sum(r.keys_examined or 0 for r in records),
            "documents_examined": sum(r.documents_examined or 0 for r in records),
            "examined_by_shape": dict(by_shape)}


def _documents_by(records: list) -> dict[str, int]:
    """Documents read per collection.operation (where a page's reads go)."""
    found: Counter = Counter()
    for record in records:
        found[f"{record.collection}.{record.operation}"] += record.documents
    return dict(found)


@dataclass(frozen=True)
class Render:
    """One measured page run: `preset` session values first; with `click`, the page is
    rendered once (not counted) and the run after clicking that button is measured."""

    name: str
    stem: str
    preset: dict = field(default_factory=dict)
    click: str | None = None


def renders_for(probe_user: str, more_users: dict[str, str]) -> list[Render]:
    """Every admin page's first render; the user lookup of `probe_user` and of each of
    `more_users` (variant -> user id); the per-user check run from the integrity page."""
    renders = [Render(stem, stem, {PAGE_PRESETS[stem]: probe_user} if stem in PAGE_PRESETS else {})
               for stem in admin_pages()]
    renders += [Render(f"{stem} ({variant})", stem, {PAGE_PRESETS[stem]: user})
                for stem in PAGE_PRESETS for variant, user in more_users.items()]
    renders.append(Render("integrity (check this user)", "integrity", {"integrity_user": probe_user},
                          click="integrity_run_user"))
    return renders


def measure_pages(platform: Platform, probe_user: str,
                  more_users: dict[str, str] | None = None) -> tuple[dict[str, dict], list]:
    """Run every `renders_for` render in a fresh signed-in session, caches cleared first.

    Returns: (per render: ops, documents read, index keys and documents a real server would
    examine, seconds, the operation breakdown, the records for the index-coverage check and
    any exception; the records of the unmeasured runs)."""
    store = platform.store
    results: dict[str, dict] = {}
    unmeasured: list = []
    with console_for(platform):
        for render in renders_for(probe_user, more_users or {}):
            at, first = _signed_in(store)
            at.switch_page(f"pages/{render.stem}.py")
            for key, value in render.preset.items():
                at.session_state[key] = value
            if render.click:
                at.run()
                at.button(key=render.click).click()
            unmeasured += first + list(store.log.records)
            clear_page_caches()
            store.log.reset()
            store.log.examine = True
            started = time.perf_counter()
            try:
                at.run()
            finally:
                store.log.examine = False
            seconds = time.perf_counter() - started
            records = list(store.log.records)
            errors = [str(getattr(e, "value", e))[:300] for e in at.exception] + [str(e.value)[:300] for e in at.error]
            results[render.name] = {"ops": len(records), "seconds": round(seconds, 3), "records": records,
                                    "documents": sum(r.documents for r in records if r.operation != "count_documents"),
                                    "keys_counted": sum(r.documents for r in records if r.operation == "count_documents"),
                                    "documents_breakdown": _documents_by(records), **examined(records),
                                    "breakdown": dict(Counter(f"{r.collection}.{r.operation}" for r in records)),
                                    "errors": errors}
    return results, unmeasured
