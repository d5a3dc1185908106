"""Small helpers shared by the core tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from core.ledger import accounts as acct
from core.ledger.entries import make_request
from core.ledger.engine import Ledger
from core.ledger.money import amount
from core.ledger.selfcheck import scan
from core.ledger.store import Store

REPO = Path(__file__).resolve().parents[1]  # the repository's root, wherever a test file sits below tests/
COLLECTIONS_WATCHED = ("entries", "balances", "audit")
FLOW_COLLECTIONS = ("balances", "entries", "approvals", "quotes", "p2p_trades", "withdrawals", "deposits")


def make_test_store() -> Store:
    """An empty store: embedded, or a throw-away database on MONGODB_TEST_URI's server."""
    uri = os.environ.get("MONGODB_TEST_URI", "").strip()
    if uri:
        return Store.from_uri(uri, f"test_{uuid.uuid4().hex[:16]}")
    return Store.embedded_store("test")


def snapshot(store: Store, collections: tuple[str, ...] = COLLECTIONS_WATCHED) -> dict:
    """Every document of the watched collections, for 'changes nothing' comparisons."""
    return {name: sorted(store.raw(name).find(), key=lambda d: str(d["_id"])) for name in collections}


def world_state(store: Store) -> dict[str, list[dict]]:
    """Every document of the ledger and flow collections, in `_id` order: compare two of
    these to show that a refusal changed nothing."""
    return {name: list(scan(store.collection(name))) for name in FLOW_COLLECTIONS}


def transfer_request(key: str, source: acct.Account, destination: acct.Account, value: str, entry_type: str = "test.transfer", **extra):
    return make_request(
        idempotency_key=key, type=entry_type, actor="system",
        postings=({"account": source, "amount": -amount(value, source.asset)}, {"account": destination, "amount": amount(value, destination.asset)}),
        **extra,
    )


def deposit(ledger: Ledger, user: str, value: str, asset: str = "BTC", key: str | None = None):
    """Credit a user from the outside world."""
    key = key or f"deposit:{user}:{asset}:{value}"
    return ledger.post(transfer_request(key, acct.external(asset), acct.user_available(user, asset), value, "deposit"))


class Crash(Exception):
    """Stands for the process dying: not a LedgerError, nothing catches it."""


class CrashAt:
    """A store fault hook that 'kills the process' at one operation boundary.

    `index` counts store operations from 0; phase "before" crashes before that operation
    reaches the store, "after" once it has been carried out (its result is lost).
    """

    def __init__(self, index: int, phase: str) -> None:
        self.index, self.phase, self.seen, self.fired = index, phase, 0, False

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if phase == "before":
            self.seen += 1
        if not self.fired and phase == self.phase and self.seen - 1 == self.index:
            self.fired = True
            raise Crash(f"crash {phase} operation {self.index} ({collection}.{operation})")


def stuck_in_flight(store: Store, action) -> None:
    """Run `action` (one posting) with the process dying right after the journal insert, its
    commit point: the entry is journaled, its projections not yet written."""

    def die(phase: str, collection: str, operation: str) -> None:
        if phase == "after" and collection == "entries" and operation == "insert_one":
            raise Crash("the writer died after its commit point")

    store.fault_hook = die
    try:
        action()
    except Crash:
        return
    finally:
        store.fault_hook = None
    raise AssertionError("the action posted nothing: no crash at the commit point")


def count_operations(store: Store, action) -> int:
    """How many store operations `action()` performs."""
    counter = CrashAt(-1, "before")
    store.fault_hook = counter
    try:
        action()
    finally:
        store.fault_hook = None
    return counter.seen


# the account holders of the proof-of-liabilities tests: several assets, a sub-cent balance
HOLDERS = {"alice": {"BTC": "1.5"}, "bob": {"BTC": "2", "USDT": "100"}, "carol": {"USDT": "0.000001"}, "dave": {"ETH": "3.25"}}


def fund_holders(platform, users: dict[str, dict[str, str]] = HOLDERS) -> None:
    """Deposits, plus a hold so locked funds are part of the picture."""
    for user, assets in users.items():
        for asset, value in assets.items():
            deposit(platform.ledger, user, value, asset)
    if "alice" in users:
        platform.ledger.place_user_hold(hold_id="alice-withdrawal", user_id="alice", asset="BTC", amount="0.5", actor="system")
