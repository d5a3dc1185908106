"""The incremental platform check (issue 15): verify what changed since the last verified
anchor, reading O(new entries + accounts touched), not the journal.

What changed comes from the rollup fold (`core.rollups`): it folds every new entry
(flagged `unfolded`) in numbered passes and logs each pass's plan — per account the
version range it moved over. The anchor (`integrity_state`) records the last pass and the
last audit event a run verified. A run:
1. folds what is new (helping any runner mid-way);
2. for every account the passes since the anchor moved, verifies the chain slice
   (from the last verified version to the new head, by `claims`), every new entry on its
   own (balanced, unedited, the fee rule), the projection against the new head, and the
   business rules that account kind carries (locked = open holds, escrow of closed trades);
3. checks what is bounded anyway: expired reservations and open-quote sums, the zero sum
   per asset from the rollup totals;
4. verifies the audit events after the anchor's sequence number, from its hash;
5. moves the anchor (a compare-and-set that only moves forward).
An entry edited *behind* the anchor is found by the full check (`--full`), which the
README schedules; the incremental run falls back to it when it has no usable anchor.

While postings go on (issue 19): the chain slices end at versions the fold reached, so
they are in the journal whatever lands later; a projection read after them may be ahead
(left to the next run) or one version behind an entry in flight; the zero sum comes from
rollup totals read as of one completed pass (`core.rollups.read`); the business rules
compare those versions with holds, quotes and trades read later, so each candidate is
confirmed by a targeted re-read (`core.integrity.confirm`) before it is reported.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core import rollups
from core.base.errors import LedgerError
from core.integrity.chains import ChainSlice, projection_findings, verify_slices
from core.integrity.checks import IntegrityFinding, JournalView, audit_chain_findings, escrow_findings, hold_findings, reservation_findings
from core.integrity.confirm import confirmed
from core.ledger import AccountKind, AuditLog, Store, parse_account_id
from core.ledger.audit import Heads
from core.platform import Platform

STATE = "integrity_state"
logger = logging.getLogger(__name__)
ANCHOR_ID = "platform"
PASSES_READ_MAX = 10_000  # passes one incremental run reads; beyond it a full check is due
PASS_LOG_KEPT_BEHIND = 1_000  # rollup passes kept behind the anchor (the log is pruned as the anchor moves)
FOLD_STEPS_PER_RUN_MAX = 32  # fold steps (plan or execute: ~16 passes of 500 entries) one run makes: it never chases the writers


@dataclass
class Anchor:
    generation: int
    pass_number: int
    audit_heads: Heads  # each audit stream's (seq, hash) when the run anchored


@dataclass
class IncrementalResult:
    findings: list[IntegrityFinding] = field(default_factory=list)
    entries_checked: int = 0
    accounts_checked: int = 0
    anchor: Anchor | None = None
    accounts: list[str] = field(default_factory=list)  # accounts whose version moved (verified by this run)
    needs_full: str | None = None  # why the incremental check cannot run (then a full one does)


def read_anchor(store: Store) -> Anchor | None:
    document = store.collection(STATE).find_one({"_id": ANCHOR_ID})
    if document is None:
        return None
    heads = {int(stream): (seq, head_hash) for stream, (seq, head_hash) in (document.get("audit_heads") or {}).items()}
    return Anchor(document["generation"], document["pass"], heads)


def current_anchor(store: Store, audit: AuditLog) -> Anchor:
    """Where the rollups and the audit streams stand now (after a fold)."""
    generation = rollups.active_generation(store)
    state = store.collection(rollups.STATE).find_one({"_id": f"gen:{generation}"}) or {"pass": 0, "status": "done"}
    done = state["pass"] if state["status"] == "done" else state["pass"] - 1
    return Anchor(generation, done, audit.heads())


def save_anchor(store: Store, anchor: Anchor) -> None:
    """Move the anchor forward only (a slower concurrent run never moves it back)."""
    values = {"generation": anchor.generation, "pass": anchor.pass_number,
              "audit_heads": {str(stream): [seq, head_hash] for stream, (seq, head_hash) in sorted(anchor.audit_heads.items())}}
    guard = {"_id": ANCHOR_ID, "$or": [{"generation": {"$lt": anchor.generation}},
                                       {"generation": anchor.generation, "pass": {"$lte": anchor.pass_number}}]}
    try:
        store.collection(STATE).update_one(guard, {"$set": values}, upsert=True)
    except LedgerError:
        return  # the anchor exists and is further on: keep it
    # the pass log behind the anchor is no longer needed (a margin stays for slower runs)
    store.collection(rollups.PASSES).delete_many(
        {"generation": anchor.generation, "pass": {"$lte": anchor.pass_number - PASS_LOG_KEPT_BEHIND}})


def changed_ranges(store: Store, anchor: Anchor, until: Anchor) -> dict[str, tuple[int, int]] | None:
    """Per account the version range (from, to] the rollup passes after the anchor moved
    over. None when a pass is missing (the log was pruned): a full check is due."""
    passes = store.collection(rollups.PASSES).find(
        {"generation": until.generation, "pass": {"$gt": anchor.pass_number, "$lte": until.pass_number}},
        sort=[("generation", 1), ("pass", 1)], limit=PASSES_READ_MAX)
    if [p["pass"] for p in passes] != list(range(anchor.pass_number + 1, until.pass_number + 1)):
        return None
    ranges: dict[str, tuple[int, int]] = {}
    for document in passes:
        for account, start, _, end in document["plan"]:
            low, high = ranges.get(account, (start, end))
            ranges[account] = (min(low, start), max(high, end))
    return ranges


def audit_findings_since(audit: AuditLog, anchor: Anchor) -> tuple[list[IntegrityFinding], int]:
    """Verify the audit events appended to each stream after the anchor's head."""
    result = audit.verify_since(anchor.audit_heads)
    return audit_chain_findings(result), result.events_checked


def business_findings(platform: Platform, heads: dict, now: datetime, stuck_after: timedelta) -> list[IntegrityFinding]:
    """The per-kind rules for the accounts that moved, plus the bounded reservation checks,
    each candidate confirmed by a targeted re-read."""
    view = JournalView()
    for account, head in heads.items():
        view.applied[account] = head.balance_minor
    users = sorted({parse_account_id(a).owner for a in heads if a.startswith(AccountKind.USER_LOCKED.value + ":")})
    for user in users:
        for place in platform.ledger.open_holds(user):
            view.open_holds[place.hold_id] = place.model_dump()
    locked = {a for a in heads if a.startswith(AccountKind.USER_LOCKED.value + ":")}
    findings = hold_findings(view, locked)
    findings += escrow_findings(platform.store, view)
    reserved = JournalView()
    for document in platform.store.collection("balances").find({"kind": AccountKind.LIQUIDITY_RESERVED.value}, limit=1_000):
        reserved.applied[document["_id"]] = document.get("balance_minor", 0)
    expired = platform.store.collection("quotes").find(
        {"state": "open", "expires_at": {"$lt": now}}, limit=1_000, projection={"_id": 1})
    for quote in expired:
        try:
            place, close = platform.ledger.hold(str(quote["_id"]))
        except LedgerError as error:
            logger.debug("expired quote %s: its hold cannot be read (%s)", quote["_id"], error.code)
            continue
        if close is None:
            reserved.open_holds[str(quote["_id"])] = place.model_dump()
    findings += reservation_findings(platform.store, reserved, now)
    return confirmed(platform, findings, now, stuck_after, holds=True)


def zero_sum_findings(store: Store) -> list[IntegrityFinding]:
    per_asset: dict[str, int] = defaultdict(int)
    for (_, asset), total in rollups.class_totals(store).items():
        per_asset[asset] += total
    return [IntegrityFinding("asset_not_zero_sum", "critical", asset, f"all {asset} accounts sum to {total}", asset, 0, total, total)
            for asset, total in sorted(per_asset.items()) if total != 0]


def check_incremental(platform: Platform, now: datetime, stuck_after: timedelta) -> IncrementalResult:
    """Everything that changed since the anchor. Sets `needs_full` (and checks nothing)
    when there is no usable anchor."""
    store, result = platform.store, IncrementalResult()
    anchor = read_anchor(store)
    if anchor is None:
        result.needs_full = "no verified anchor yet"
        return result
    try:  # bounded: under continuous posting the feed is never empty, and a run must end (the rest is the next run's)
        rollups.update(store, passes_max=FOLD_STEPS_PER_RUN_MAX)
    except LedgerError as error:  # a hole in a chain: named below by the chain walk
        result.findings.append(IntegrityFinding("rollup_stalled", "critical", "rollups", str(error)))
    until = current_anchor(store, platform.ledger.audit)
    if until.generation != anchor.generation:
        result.needs_full = "the rollups were rebuilt since the last verified anchor"
        return result
    ranges = changed_ranges(store, anchor, until)
    if ranges is None:
        result.needs_full = "the rollup pass log no longer reaches the last verified anchor"
        return result
    chains: ChainSlice = verify_slices(store, ranges)
    result.findings += chains.findings
    result.findings += projection_findings(store, chains.heads, chains.entries, now, stuck_after)
    result.findings += business_findings(platform, chains.heads, now, stuck_after)
    result.findings += zero_sum_findings(store)
    audit, _ = audit_findings_since(platform.ledger.audit, anchor)
    result.findings += audit
    result.findings += audit_chain_findings(platform.ledger.audit.check_witness_tail())
    result.entries_checked, result.accounts_checked = len(chains.entries), len(ranges)
    result.accounts = sorted(ranges)
    if not any(f.severity == "critical" for f in result.findings):
        result.anchor = until  # a failing slice stays behind the anchor: the next run reports it again
    return result
