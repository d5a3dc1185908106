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
