"""The tamper-evident audit trail of console and admin actions: append-only hash chains.

The trail is `streams` independent chains (HOT_ACCOUNTS.md: no single head may serialise
the exchange). Each event carries its stream, its sequence number within the stream (a
unique index on `(stream, seq)`) and the hash of its predecessor in the stream. An append
reads its stream's head and inserts `seq = head + 1`; a concurrent append that loses the
race hits the unique index, moves to another stream at random and retries — a writer
keeps the stream it last won (affinity), so writers spread over the streams and stop
colliding. No chain can fork, and a crash mid-append leaves the whole event or nothing.

Events may carry an `event_key` (unique too), so an action keyed deterministically is
recorded exactly once, whoever records it. The trail's display order is time, then
stream, then sequence: `order`, one sortable key derived from the three; `family` is the
type's family (before its first dot), for family filters. Both derived keys are checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.base.clock import Clock
from core.base.errors import BrokenInvariantError, ConfigurationError, StoreError
from core.ledger.hashing import digest
from core.ledger.ids import first_slot, other_than, random_hex
from core.ledger.store import DuplicateKeyStoreError, Store

GENESIS_HASH = "0" * 64
VERIFY_BATCH_SIZE = 5_000
APPEND_ATTEMPTS_MAX = 200
AUDIT_STREAMS_DEFAULT = 64  # comfortably above the writers one replica set serves at once
AUDIT_STREAMS_MAX = 256
HASHED_FIELDS = ("stream", "seq", "event_key", "type", "actor", "role", "at", "target", "user", "before", "after", "data")


def event_hash(event: dict, prev_hash: str) -> str:
    return digest({field: event.get(field) for field in HASHED_FIELDS}, prefix=prev_hash)


def order_key(at: datetime, stream: int = 0, seq: int = 0) -> str:
    """The trail's display order as one sortable text: time, then stream, then sequence."""
    return f"{at:%Y%m%d%H%M%S}{at.microsecond // 1000:03d}:{stream:03d}:{seq:012d}"


def family_of(event_type: object) -> str | None:
    """An event type's family — the part before its first dot ("approval" for
    "approval.approved"; None without a dot) — stored beside it so a family filter
    ("approval.*") is an index equality."""
    family, dot, _ = str(event_type).partition(".")
    return family if dot else None


def where(stream: int | None, seq: int | None) -> str:
    """How findings and messages name one event."""
    return f"stream {stream} seq {seq}"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    first_bad_stream: int | None = None

    @property
    def first_bad(self) -> str:
        """The first bad event, as findings name it ("stream 3 seq 17"), or ""."""
        return where(self.first_bad_stream, self.first_bad_seq) if self.first_bad_seq is not None else ""


Heads = dict[int, tuple[int, str]]  # stream → (seq, hash) of its newest event


class AuditLog:
    """Append to and verify the chains (`audit` collection)."""

    def __init__(self, store: Store, clock: Clock, streams: int = AUDIT_STREAMS_DEFAULT) -> None:
        if isinstance(streams, bool) or not isinstance(streams, int) or not 1 <= streams <= AUDIT_STREAMS_MAX:
            raise ConfigurationError(f"audit streams must be 1..{AUDIT_STREAMS_MAX}", streams=repr(streams)[:20])
        self._events = store.collection("audit")
        self._clock = clock
        self._store = store
        self.streams = streams
        self._affinity = threading.local()

    def _stream(self) -> int:
        stream = getattr(self._affinity, "stream", None)
        if stream is None or stream >= self.streams:
            stream = self._affinity.stream = first_slot(self.streams)
        return stream

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

        Cost: 2 store operations (the stream's head, the insert) when uncontended.
        Raises: StoreError if the streams stay contended for APPEND_ATTEMPTS_MAX tries.
        """
        event = {"event_key": event_key or f"evt:{random_hex(32)}", "type": type, "actor": actor, "role": role,
                 "at": self._clock.now(), "target": target, "user": user, "before": before, "after": after, "data": data}
        for _ in range(APPEND_ATTEMPTS_MAX):
            stream = self._stream()
            head = self._events.find_one({"stream": stream}, sort=[("stream", -1), ("seq", -1)], projection={"seq": 1, "hash": 1})
            seq, prev_hash = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS_HASH)
            candidate = dict(event, stream=stream, seq=seq, prev_hash=prev_hash, order=order_key(event["at"], stream, seq),
                             family=family_of(type))
            candidate["hash"] = event_hash(candidate, prev_hash)
            try:
                self._events.insert_one(candidate)
            except DuplicateKeyStoreError:
                if event_key is not None:
                    existing = self.by_key(event_key)
                    if existing is not None:
                        return existing, False
                self._affinity.stream = other_than(stream, self.streams)  # lost the stream's next seq: take another
                continue
            if self._store.witness is not None:
                self._store.witness.record(stream, seq, candidate["hash"])
            return candidate, True
        raise StoreError("audit streams contended: append gave up", attempts=APPEND_ATTEMPTS_MAX)

    def by_key(self, event_key: str) -> dict | None:
        return self._events.find_one({"event_key": event_key})

    def heads(self) -> Heads:
        """Every stream's newest event (one read: an index walk per stream)."""
        rows = self._events.aggregate([{"$sort": {"stream": -1, "seq": -1}},
                                       {"$group": {"_id": "$stream", "seq": {"$first": "$seq"}, "hash": {"$first": "$hash"}}}])
        return {row["_id"]: (row["seq"], row["hash"]) for row in rows if isinstance(row.get("_id"), int)}

    def head(self) -> dict | None:
        """The newest event in display order (time, stream, sequence)."""
        return self._events.find_one({"order": {"$gte": ""}}, sort=[("order", -1)])

    def verify(self) -> VerifyResult:
        """Walk every stream in sequence order; report the first edited, deleted, inserted or
        reordered event by stream and sequence number — and, with a witness, the first
        witnessed event that is missing or different, so deleting the newest events of any
        stream is caught too."""
        witnessed, problems = self._store.witness.lines() if self._store.witness is not None else ({}, [])
        if problems:
            return VerifyResult(False, 0, None, f"witness: {problems[0]}")
        walk = _Walk(witnessed)
        # everything, in (stream, seq) index order: an event without a valid stream sorts first and fails
        if not self._walk_events(walk, {}, lambda last: {
            "$or": [{"stream": last["stream"], "seq": {"$gt": last["seq"]}}, {"stream": {"$gt": last["stream"]}}]
        }):
            return walk.result
        return walk.finish()

    def _walk_events(self, walk: _Walk, query: dict, after: Callable[[dict], dict]) -> bool:
        """Step `walk` through the events `query` finds in (stream, seq) order, a batch at a
        time (`after(last)` is the query for the events after a batch's last one). False as
        soon as the walk stops at a problem (its `result` says which)."""
        while True:
            batch = self._events.find(query, sort=[("stream", 1), ("seq", 1)], limit=VERIFY_BATCH_SIZE)
            for event in batch:
                if not walk.step(event):
                    return False
            if len(batch) < VERIFY_BATCH_SIZE:
                return True
            query = after(batch[-1])

    def verify_since(self, anchored: Heads) -> VerifyResult:
        """Verify only what was appended after `anchored` (each stream's head when the last
        integrity run anchored): the anchored head is still there, unedited, and every later
        event of its stream follows it. O(events appended since), plus one read of the heads."""
        walk, current = _Walk({}), self.heads()
        for stream in sorted(set(current) | set(anchored)):
            since = anchored.get(stream, (0, GENESIS_HASH))
            seq, head_hash = current.get(stream, (0, GENESIS_HASH))
            if seq < since[0]:
                return VerifyResult(False, walk.checked, since[0], f"event {where(stream, since[0])} was anchored but the stream "
                                    f"now ends at seq {seq} (the newest events were deleted)", stream)
            if (seq, head_hash) == since:
                continue
            walk.start(stream, since)
            first = {"stream": stream, "seq": {"$gte": max(since[0], 1)}}
            if not self._walk_events(walk, first, lambda last: {"stream": last["stream"], "seq": {"$gt": last["seq"]}}):
                return walk.result
        return VerifyResult(True, walk.checked)

    def check_witness_tail(self) -> VerifyResult:
        """The cheap check an incremental integrity run makes: the newest event the witness
        recorded for each stream (from the file's tail) is still in the chain, unchanged —
        one read, whatever the chain's length."""
        newest = self._store.witness.newest_per_stream() if self._store.witness is not None else {}
        if not newest:
            return VerifyResult(True, 0)
        found = {(e["stream"], e["seq"]): e.get("hash") for e in self._events.find(
            {"$or": [{"stream": stream, "seq": line.seq} for stream, line in sorted(newest.items())]},
            projection={"stream": 1, "seq": 1, "hash": 1}, limit=len(newest))}
        for stream, line in sorted(newest.items()):
            stored = found.get((stream, line.seq))
            if stored is None:
                return VerifyResult(False, 0, line.seq, f"event {where(stream, line.seq)} was recorded by the witness but is gone "
                                    f"(the newest events were deleted)", stream)
            if stored != line.hash:
                return VerifyResult(False, 0, line.seq, f"event {where(stream, line.seq)} differs from the one the witness recorded", stream)
        return VerifyResult(True, len(newest))


class _Walk:
    """Checks events stream by stream in (stream, seq) order: contiguous sequence numbers
    from 1 (or from an anchored head), hash links, hashes, the derived order key, and the
    witness's records."""

    def __init__(self, witnessed: dict[tuple[int, int], str]) -> None:
        self.witnessed = witnessed
        self.checked = 0
        self.seen: dict[int, int] = {}  # stream → last seq checked
        self.stream: int | None = None
        self.expected, self.prev_hash = 1, GENESIS_HASH
        self.anchor: tuple[int, str] | None = None  # an anchored head the walk starts at (verify_since)
        self.result = VerifyResult(True, 0)

    def start(self, stream: int, since: tuple[int, str]) -> None:
        """Walk `stream` from its anchored head `since` ((0, genesis): from the start)."""
        self.stream, self.prev_hash = stream, GENESIS_HASH
        self.expected, self.anchor = (since[0], since) if since[0] else (1, None)

    def _fail(self, stream: object, seq: object, problem: str) -> bool:
        self.result = VerifyResult(False, self.checked, seq if isinstance(seq, int) else None, problem,
                                   stream if isinstance(stream, int) else None)
        return False

    def step(self, event: dict) -> bool:
        stream, seq = event.get("stream"), event.get("seq")
        if stream != self.stream:
            self.stream, self.expected, self.prev_hash, self.anchor = stream, 1, GENESIS_HASH, None
        if not isinstance(stream, int) or not isinstance(seq, int):
            return self._fail(stream, seq, f"an event has no valid stream and sequence ({stream!r}, {seq!r})")
        if seq != self.expected:
            return self._fail(stream, self.expected, f"event {where(stream, self.expected)} is missing (next is seq {seq})")
        if self.anchor is not None:  # the anchored head: fixed by the anchor, the walk follows from it
            if event.get("hash") != self.anchor[1]:
                return self._fail(stream, seq, f"event {where(stream, seq)} is not the one the last integrity run anchored")
            self.anchor = None
        else:
            if event.get("prev_hash") != self.prev_hash:
                return self._fail(stream, seq, f"event {where(stream, seq)} does not follow seq {seq - 1} (prev_hash differs)")
            if _hash_or_none(event, self.prev_hash) != event.get("hash"):
                return self._fail(stream, seq, f"event {where(stream, seq)} was edited (hash differs)")
            self.checked += 1
        if not isinstance(event.get("at"), datetime) or event.get("order") != order_key(event["at"], stream, seq):
            return self._fail(stream, seq, f"event {where(stream, seq)} was moved in the display order (order key differs)")
        if event.get("family") != family_of(event.get("type")):
            return self._fail(stream, seq, f"event {where(stream, seq)} was hidden from its type's family (family differs)")
        if self.witnessed.get((stream, seq), event.get("hash")) != event.get("hash"):
            return self._fail(stream, seq, f"event {where(stream, seq)} differs from the one the witness recorded")
        self.prev_hash, self.expected = event.get("hash"), seq + 1
        self.seen[stream] = seq
        return True

    def finish(self) -> VerifyResult:
        """After the last event: every witnessed event must have been seen."""
        missing = sorted((stream, seq) for stream, seq in self.witnessed if seq > self.seen.get(stream, 0))
        if missing:
            stream, seq = missing[0]
            last = max(s for st, s in missing if st == stream)
            return VerifyResult(False, self.checked, seq, f"events {where(stream, seq)}..{last} were recorded by the witness but "
                                f"are gone (the newest events were deleted)", stream)
        return VerifyResult(True, self.checked)


def _hash_or_none(event: dict, prev_hash: str) -> str | None:
    """The event's hash, or None when a forged event holds values that cannot be hashed
    (a float, an unknown type): verification must report it, not crash on it."""
    try:
        return event_hash(event, prev_hash)
    except (BrokenInvariantError, TypeError, ValueError):
        return None
