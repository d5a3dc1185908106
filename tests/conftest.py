"""Shared fixtures: every test gets a fresh store — embedded by default, or a throw-away
database on the real server named by MONGODB_TEST_URI."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import core.flows  # noqa: F401  (the flows, the projection repair and the legacy rebuild register their approval
import core.integrity.repairs  # noqa: F401  executors when imported: any test may approve any kind)
import core.legacy.rebuild  # noqa: F401
from core.base.clock import ManualClock
from core.ledger.engine import Ledger
from core.platform import Platform
from core.ledger.store import Store
from tests.helpers import make_test_store


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """The suite runs in two processes (pytest-xdist, `--dist loadfile` in pyproject.toml):
    a test file goes to one process whole, in file order, so its module-wide fixtures (the
    benchmark, the load runs) are built once as in a serial run. tests/browser/ is one unit
    too: its files share one console server (a session fixture), and its first test must be
    that server's first request. (Not `--dist loadgroup`: xdist 3.8 marks groups by
    rewriting node ids, which pytest 9.2 no longer lets it do: pytest-xdist issue #1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileOrBrowserScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return BROWSER_TESTS if path.startswith(BROWSER_TESTS) else path

    return FileOrBrowserScheduling(config, log)


BROWSER_TESTS = "tests/browser/"


def throwaway_store() -> Iterator[Store]:
    """A fresh store for one test, its fault hook cleared and a real database dropped after."""
    store = make_test_store()
    yield store
    store.fault_hook = None
    if not store.embedded:
        store.drop()


@pytest.fixture
def store() -> Iterator[Store]:
    yield from throwaway_store()


@pytest.fixture
def legacy() -> Iterator[Store]:
    """The legacy database: embedded, or a throw-away database on MONGODB_TEST_URI's server."""
    yield from throwaway_store()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(store: Store, clock: ManualClock) -> Ledger:
    return Ledger(store, clock)


@pytest.fixture
def platform(store: Store, clock: ManualClock) -> Platform:
    return Platform.open(store, clock)


@pytest.fixture
def pol_keys(monkeypatch):
    """Throw-away proof-of-liabilities keys: the embedded store makes its own; a real test
    server (MONGODB_TEST_URI) needs them configured, as production does."""
    if not os.environ.get("LEDGER_POL_SIGNING_KEY") and os.environ.get("MONGODB_TEST_URI"):
        monkeypatch.setenv("LEDGER_POL_SIGNING_KEY", os.urandom(32).hex())
        monkeypatch.setenv("LEDGER_POL_SECRET_KEY", os.urandom(32).hex())
