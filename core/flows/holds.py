"""No hold stranded behind a finished flow (issue 19): who may still place a flow's hold,
and the sweep that releases a hold placed after its flow was refused.

Why: a flow's hold (a withdrawal's hold, a P2P escrow, a quote's reservation; hold id =
the flow id) is placed by whichever caller drives the flow — the first call, a client's
retry with the same key, a resumer, recovery. A refusal (the funds were spent meanwhile)
is not durable: a retry that read the flow before it was refused may place the hold a
moment later, once the funds are back. That caller then finds the flow refused and
releases the hold itself — unless it dies first, and then nothing would ever look at a
finished flow again.

The protocol (`common.hold_for_flow`):
- every caller that means to place the hold first names itself in the flow's
  `hold_placers`, by a compare-and-set that holds only while the flow is still in its
  hold-placing state (the creator is named by the document's insert). So once the flow
  has left that state nobody new places its hold, and whoever still might is named;
- the step that records the hold (→ `held`/`open`) clears every name: any other placement
  is a replay of the same keyed entry (`hold:<id>:place`) and moves nothing;
- a refusal (→ `failed`/`cancelled`) takes out only the refuser's own name;
- a caller that placed the hold and finds the flow refused releases it (one entry keyed
  `hold:<id>:close`) and clears every name: placed and closed, the hold can never move
  money again.
So a finished flow with names left is the only place a stranded hold can be, and
`release_stranded` (run by every recovery) finds those flows through the index
`(state, hold_placers)` — it examines the flows that carry names, not every finished
flow — and releases any open hold behind them. Safe beside any number of retries,
resumers and recoveries in any number of processes, whatever their clocks: the release is
the keyed close entry (a second releaser replays it), and names are cleared only once the
hold is placed and closed. A flow whose named placer never placed the hold (it died
before, or is still on its way) keeps its name: the sweep looks at it again next time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.flows import states
from core.base.errors import HoldClosedError, HoldNotFoundError
from core.ledger import Collection, Entry
from core.base.permissions import Principal
from core.platform import Platform
from core.platform.transitions import SweepReport
from core.platform.boundary import internal

PLACERS = "hold_placers"
RELEASE_TYPE = "hold.release"  # the same request whoever releases it: a second releaser replays the first
RELEASE_MEMO = "flow refused meanwhile"
SWEEP_BATCH_MAX = 500


def new_placer() -> str:
    """A name for one caller's attempt to place a flow's hold."""
    return uuid.uuid4().hex


def register(collection: Collection, document_id: str, from_state: str, placer: str) -> dict | None:
    """Name `placer` among those who may place the flow's hold — one compare-and-set that
    holds only while the flow is still in `from_state`. Returns the document after (as
    stored), or None when the flow has left that state (then the caller must not place
    the hold)."""
    return collection.find_one_and_update({"_id": document_id, "state": from_state}, {"$push": {PLACERS: placer}})


def forget(collection: Collection, document_id: str, placer: str) -> None:
    """Take one caller's name out (it will not place the hold: it was refused)."""
    collection.update_one({"_id": document_id, PLACERS: placer}, {"$pull": {PLACERS: placer}})


def settle(collection: Collection, document_id: str) -> None:
    """Clear every name: the hold is placed and closed, so no placement can move money again."""
    collection.update_one({"_id": document_id, PLACERS: {"$gt": ""}}, {"$set": {PLACERS: []}})


@internal  # core-made values only: a collection the flow opened, the id of a flow it read
def release_behind(platform: Platform, principal: Principal, collection: Collection, hold_id: str) -> Entry | None:
    """Release the hold of a flow that was refused meanwhile, and clear its names once the
    hold is closed. Returns the closing entry (this caller's or an earlier one), or None
    when no hold was placed (the names stay: a named placer may still place it)."""
    try:
        entry = platform.ledger.release_hold(hold_id=hold_id, actor=principal.name, entry_type=RELEASE_TYPE,
                                             memo=RELEASE_MEMO)
    except HoldNotFoundError:
        return None
    except HoldClosedError:
        entry = platform.ledger.hold(hold_id)[1]
    settle(collection, hold_id)
    return entry


# -- the flows whose holds can be stranded ---------------------------------------------------------
@dataclass(frozen=True)
class FlowHolds:
    collection: str
    what: str  # the flow's name in events and findings
    terminal: tuple[str, ...]  # states after which the flow never moves its hold again


def flows_with_holds() -> tuple[FlowHolds, ...]:
    """Withdrawals, P2P trades and quotes (core.flows.states)."""
    return (FlowHolds(states.WITHDRAWALS, "withdrawal", states.WITHDRAWAL_TERMINAL),
            FlowHolds(states.P2P_TRADES, "p2p", states.P2P_CLOSED),
            FlowHolds(states.QUOTES, "quote", states.QUOTE_TERMINAL))


def finished_with_placers(platform: Platform, flow: FlowHolds, limit: int = SWEEP_BATCH_MAX) -> list[dict]:
    """Finished flows that still name a placer: the only ones a hold can be stranded behind.
    Served by `(state, hold_placers)` (names are non-empty text: the range holds every
    named flow), so it examines what it returns."""
    return platform.store.collection(flow.collection).find(
        {"state": {"$in": list(flow.terminal)}, PLACERS: {"$gt": ""}}, limit=limit)


@dataclass
class StrandedSweep:
    """What one sweep did: holds it released, flows whose hold it found closed (names
    cleared), flows still waiting for a named placer, failures per flow."""

    released: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: dict[str, dict] = field(default_factory=dict)


@internal  # run by recovery (`resume_all`), which checks the principal's permission first
def release_stranded(platform: Platform, principal: Principal) -> StrandedSweep:
    """Release every open hold behind a finished flow that still names a placer, and clear
    the names of those whose hold is closed. One flow's failure is recorded and the sweep
    goes on. Safe at any time, any number of times, beside anything else."""
    result = StrandedSweep()
    for flow in flows_with_holds():
        collection = platform.store.collection(flow.collection)
        sweep = SweepReport()
        for document in finished_with_placers(platform, flow):
            outcome = sweep.run(document["_id"], lambda d=document, c=collection: _settle_one(platform, principal, c, d))
            if outcome is not None:
                getattr(result, outcome).append(document["_id"])
        result.failed.update(sweep.failed)
    return result


def _settle_one(platform: Platform, principal: Principal, collection: Collection, document: dict) -> str:
    try:
        _, closing = platform.ledger.hold(document["_id"])
    except HoldNotFoundError:
        return "waiting"  # nothing placed (yet): a named placer may still, and its own step releases it
    if closing is not None:
        settle(collection, document["_id"])
        return "settled"
    release_behind(platform, principal, collection, document["_id"])
    return "released"


@dataclass(frozen=True)
class StrandedHold:
    """An open hold behind a finished flow."""

    flow: FlowHolds
    document: dict
    place: Entry

    @property
    def held(self) -> tuple[str, int]:
        """(held account, amount in minor units)."""
        posting = next(p for p in self.place.postings if p.amount_minor > 0)
        return posting.account, posting.amount_minor


def stranded_holds(platform: Platform, now: datetime, settle_after: timedelta,
                   open_holds: dict[str, dict] | None = None, *, named: bool = True) -> list[StrandedHold]:
    """Open holds behind finished flows, placed before `now - settle_after` (a younger one
    may be on its way to its placer's own release). The candidates are the finished flows
    that name a placer (`named`: bounded, as `release_stranded` reads them) and, when
    `open_holds` (hold id → its place entry, from a scan of the journal or of one user's
    entries) is given, the flows of those holds — which finds a stranded hold even without
    a name (an older layout, a bug)."""
    found: dict[str, StrandedHold] = {}
    for flow in flows_with_holds():
        documents = {d["_id"]: d for d in finished_with_placers(platform, flow)} if named else {}
        if open_holds:
            ids = sorted(h for h in open_holds if h.startswith(_PREFIXES[flow.collection]) and h not in documents)
            for start in range(0, len(ids), SWEEP_BATCH_MAX):
                chunk = ids[start:start + SWEEP_BATCH_MAX]
                documents.update({d["_id"]: d for d in platform.store.collection(flow.collection).find(
                    {"_id": {"$in": chunk}, "state": {"$in": list(flow.terminal)}}, limit=len(chunk))})
        for flow_id, document in documents.items():
            if document.get("state") not in flow.terminal:
                continue
            place = _open_place(platform, flow_id, open_holds)
            if place is not None and place.created_at <= now - settle_after:
                found[flow_id] = StrandedHold(flow, document, place)
    return [found[k] for k in sorted(found)]


_PREFIXES = {"withdrawals": "wd_", "p2p_trades": "p2p_", "quotes": "q_"}  # flow ids (common.flow_id) = hold ids


def _open_place(platform: Platform, hold_id: str, open_holds: dict[str, dict] | None) -> Entry | None:
    if open_holds is not None:
        place = open_holds.get(hold_id)
        return Entry.from_document(place) if place is not None else None
    try:
        place, closing = platform.ledger.hold(hold_id)
    except HoldNotFoundError:
        return None
    return place if closing is None else None
