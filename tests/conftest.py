"""Shared fixtures: every test gets a fresh store — embedded by default, or a throw-away
database on the real server named by MONGODB_TEST_URI."""

from __future__ import annotations

import os
import uuid

import pytest

import core.flows  # noqa: F401  (the flows, the projection repair and the legacy rebuild register their approval
import core.integrity.repairs  # noqa: F401  executors when imported: any test may approve any kind)
import core.legacy.rebuild  # noqa: F401
from core.base.clock import ManualClock
from core.ledger.engine import Ledger
from core.platform import Platform
from core.ledger.store import Store


def make_test_store() -> Store:
    uri = os.environ.get("MONGODB_TEST_URI", "").strip()
    if uri:
        return Store.from_uri(uri, f"test_{uuid.uuid4().hex[:16]}")
    return Store.embedded_store("test")


@pytest.fixture
def store():
    store = make_test_store()
    yield store
    store.fault_hook = None
    if not store.embedded:
        store.drop()


@pytest.fixture
def legacy():
    """The legacy database: embedded, or a throw-away database on MONGODB_TEST_URI's server."""
    store = make_test_store()
    yield store
    store.fault_hook = None
    if not store.embedded:
        store.drop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(store: Store, clock: ManualClock) -> Ledger:
    return Ledger(store, clock)


@pytest.fixture
def platform(store: Store, clock: ManualClock) -> Platform:
    return Platform.open(store, clock)
