"""Small helpers shared by the core tests."""

from __future__ import annotations

from pathlib import Path

from core.ledger import accounts as acct
from core.ledger.entries import make_request
from core.ledger.engine import Ledger
from core.ledger.money import amount
from core.ledger.store import Store

REPO = Path(__file__).resolve().parents[1]  # the repository's root, wherever a test file sits below tests/
COLLECTIONS_WATCHED = ("entries", "balances", "audit")


def snapshot(store: Store, collections: tuple[str, ...] = COLLECTIONS_WATCHED) -> dict:
    """Every document of the watched collections, for 'changes nothing' comparisons."""
    return {name: sorted(store.raw(name).find(), key=lambda d: str(d["_id"])) for name in collections}


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


def count_operations(store: Store, action) -> int:
    """How many store operations `action()` performs."""
    counter = CrashAt(-1, "before")
    store.fault_hook = counter
    try:
        action()
    finally:
        store.fault_hook = None
    return counter.seen
