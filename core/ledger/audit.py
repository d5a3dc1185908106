"""The tamper-evident audit trail of console and admin actions: an append-only hash chain.

Each event has a sequence number (unique index) and the hash of its predecessor. An
append reads the head and inserts `seq = head + 1`; a concurrent append that loses the
race hits the unique index and retries on the new head, so the chain can never fork and
a crash mid-append leaves either the whole event or nothing (no gap).

Events may carry an `event_key` (unique too), so an action keyed deterministically is
recorded exactly once, whoever records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.errors import BrokenInvariantError, StoreError
from core.ledger.hashing import digest
from core.ledger.ids import random_hex
from core.ledger.store import DuplicateKeyStoreError, Store

GENESIS_HASH = "0" * 64
VERIFY_BATCH_SIZE = 5_000
APPEND_ATTEMPTS_MAX = 200
HASHED_FIELDS = ("seq", "event_key", "type", "actor", "role", "at", "target", "user", "before", "after", "data")


def event_hash(event: dict, prev_hash: str) -> str:
    return digest({field: event.get(field) for field in HASHED_FIELDS}, prefix=prev_hash)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    problem: str = ""


class AuditLog:
    """Append and verify the chain (`audit` collection)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._events = store.collection("audit")
        self._clock = clock
        self._store = store

    def append(
        self,
        *,
        type: str,
        actor: str,
        role: str = "system",
        target: str = "",
        user: str | None = None,
        before: Any = None,
        after: Any = None,
        data: Any = None,
        event_key: str | None = None,
    ) -> tuple[dict, bool]:
        """Append one event. Returns (event, created); created is False when an event with
        the same `event_key` already existed (that event is returned instead).

        Raises: StoreError if the chain stays contended for APPEND_ATTEMPTS_MAX tries.
        """
        event = {
            "event_key": event_key or f"evt:{random_hex(32)}",
            "type": type,
            "actor": actor,
            "role": role,
            "at": self._clock.now(),
            "target": target,
            "user": user,
            "before": before,
            "after": after,
            "data": data,
        }
        for _ in range(APPEND_ATTEMPTS_MAX):
            head = self._events.find_one({}, sort=[("seq", -1)])
            prev_hash = head["hash"] if head else GENESIS_HASH
            candidate = dict(event, seq=(head["seq"] + 1) if head else 1, prev_hash=prev_hash)
            candidate["hash"] = event_hash(candidate, prev_hash)
            try:
                self._events.insert_one(candidate)
            except DuplicateKeyStoreError:
                if event_key is not None:
                    existing = self.by_key(event_key)
                    if existing is not None:
                        return existing, False
                continue
            if self._store.witness is not None:
                self._store.witness.record(candidate["seq"], candidate["hash"])
            return candidate, True
        raise StoreError("audit chain contended: append gave up", attempts=APPEND_ATTEMPTS_MAX)

    def by_key(self, event_key: str) -> dict | None:
        return self._events.find_one({"event_key": event_key})

    def verify(self) -> VerifyResult:
        """Walk the chain in sequence order; report the first edited, deleted, inserted or
        reordered event by its sequence number — and, with a witness, the first witnessed
        event that is missing or different, so deleting the newest events is caught too."""
        witnessed, problems = self._store.witness.lines() if self._store.witness is not None else ({}, [])
        if problems:
            return VerifyResult(False, 0, None, f"witness: {problems[0]}")
        expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
        while True:
            batch = self._events.find({"seq": {"$gte": expected_seq}}, sort=[("seq", 1)], limit=VERIFY_BATCH_SIZE)
            if not batch:
                break
            for event in batch:
                seq = event.get("seq")
                if seq != expected_seq:
                    return VerifyResult(False, checked, expected_seq, f"event {expected_seq} is missing (next is {seq})")
                if event.get("prev_hash") != prev_hash:
                    return VerifyResult(False, checked, seq, f"event {seq} does not follow event {seq - 1} (prev_hash differs)")
                if _hash_or_none(event, prev_hash) != event.get("hash"):
                    return VerifyResult(False, checked, seq, f"event {seq} was edited (hash differs)")
                if witnessed.get(seq, event["hash"]) != event["hash"]:
                    return VerifyResult(False, checked, seq, f"event {seq} differs from the one the witness recorded")
                prev_hash, expected_seq, checked = event["hash"], expected_seq + 1, checked + 1
        missing = sorted(seq for seq in witnessed if seq >= expected_seq)
        if missing:
            return VerifyResult(False, checked, missing[0],
                                f"events {missing[0]}..{missing[-1]} were recorded by the witness but are gone (the newest events were deleted)")
        return VerifyResult(True, checked)

    def check_witness_tail(self) -> VerifyResult:
        """The cheap check an incremental integrity run makes: the newest event the witness
        recorded is still in the chain, unchanged (two reads, whatever the chain's length)."""
        last = self._store.witness.last() if self._store.witness is not None else None
        if last is None:
            return VerifyResult(True, 0)
        event = self._events.find_one({"seq": last.seq}, projection={"hash": 1})
        if event is None:
            return VerifyResult(False, 0, last.seq, f"event {last.seq} was recorded by the witness but is gone (the newest events were deleted)")
        if event.get("hash") != last.hash:
            return VerifyResult(False, 0, last.seq, f"event {last.seq} differs from the one the witness recorded")
        return VerifyResult(True, 1)

    def head(self) -> dict | None:
        return self._events.find_one({}, sort=[("seq", -1)])


def _hash_or_none(event: dict, prev_hash: str) -> str | None:
    """The event's hash, or None when a forged event holds values that cannot be hashed
    (a float, an unknown type): verification must report it, not crash on it."""
    try:
        return event_hash(event, prev_hash)
    except (BrokenInvariantError, TypeError, ValueError):
        return None
