"""The full platform check: every account's chain from genesis, every business rule over
one scan of the journal, the rollups against a from-scratch recomputation, the whole
audit chain. O(journal): run it on the schedule the README recommends (and whenever the
incremental check has no usable anchor).

The self-check and the business rules judge the same consistent cut (issue 19): the
balances first, then one scan of the journal closed by targeted reads, whose every entry
the self-check hands to the journal view (`on_entry`). Rules that compare the cut with
business documents read afterwards (quotes, trades) confirm each candidate by a targeted
re-read (`core.integrity.confirm`) before reporting it."""

from __future__ import annotations

from datetime import datetime, timedelta

from core import rollups
from core.base.errors import LedgerError
from core.base.errors import RollupContendedError
from core.integrity.checks import (
    IntegrityFinding,
    JournalView,
    absorb,
    audit_findings,
    escrow_findings,
    explained,
    fee_findings,
    hold_findings,
    reservation_findings,
)
from core.integrity.confirm import confirmed
from core.integrity.incremental import FOLD_STEPS_PER_RUN_MAX
from core.integrity.stranded import stranded_hold_findings
from core.ledger import AccountKind, Store, self_check
from core.platform import Platform

ROLLUP_FINDINGS_MAX = 100  # rollup mismatches listed; the rebuild fixes them all at once
ROLLUP_READ_ATTEMPTS_MAX = 8  # reads of the stored rollups retried when passes complete under them


def full_findings(platform: Platform, now: datetime, stuck_after: timedelta) -> tuple[list[IntegrityFinding], int, int]:
    """Returns (findings, entries checked, accounts checked)."""
    view, closed = JournalView(), set()
    base = self_check(platform.store, now, stuck_after, on_entry=lambda entry: absorb(view, entry, closed))
    locked = set(platform.ledger.balances_of_kind(AccountKind.USER_LOCKED))
    locked |= {a for a in view.applied if a.startswith(AccountKind.USER_LOCKED.value + ":")}
    findings = explained(base.findings)
    findings += hold_findings(view, locked)
    findings += confirmed(platform, reservation_findings(platform.store, view, now) + escrow_findings(platform.store, view),
                          now, stuck_after)
    findings += stranded_hold_findings(platform, now, stuck_after, view.open_holds)
    findings += fee_findings(view)
    findings += rollup_findings(platform.store)
    findings += audit_findings(platform)
    return findings, base.entries_checked, base.accounts_checked


def _stored_rollups(store: Store) -> tuple[dict, dict, dict]:
    """The stored rollups as of one completed pass (retried while passes complete under the read).
    Raises: RollupContendedError."""
    for _ in range(ROLLUP_READ_ATTEMPTS_MAX - 1):
        try:
            return rollups.stored(store)
        except RollupContendedError:
            continue
    return rollups.stored(store)


def rollup_findings(store: Store) -> list[IntegrityFinding]:
    """Fold everything (a sweep: also what the feed cannot see), then compare the stored
    rollups with the journal recomputed up to each stored head (the same versions: entries
    posted meanwhile are beyond them)."""
    try:
        rollups.sweep(store, passes_max=FOLD_STEPS_PER_RUN_MAX)  # bounded: the comparison needs no catching up
        days, heads, totals = _stored_rollups(store)
        expected_days, expected_heads, expected_totals = rollups.recompute(store, {a: h["version"] for a, h in heads.items()})
    except LedgerError as error:  # a hole in a chain (the chain findings name the entry) or contention
        return [IntegrityFinding("rollup_stalled", "critical", "rollups", f"rollups could not be verified: {error}",
                                 collection=rollups.HEADS)]
    findings = []
    for account in sorted(set(heads) | set(expected_heads)):
        if heads.get(account) != expected_heads.get(account):
            findings.append(_mismatch(account, "head", heads.get(account), expected_heads.get(account), rollups.HEADS))
    for key in sorted(set(days) | set(expected_days)):
        if days.get(key) != expected_days.get(key):
            findings.append(_mismatch(f"{key[0]} {key[1]}", "day", days.get(key), expected_days.get(key), rollups.ROLLUPS))
    for key in sorted(set(totals) | set(expected_totals)):
        if totals.get(key, 0) != expected_totals.get(key, 0):
            findings.append(_mismatch(f"{key[0]} {key[1]}", "total", totals.get(key), expected_totals.get(key), rollups.TOTALS))
    return findings[:ROLLUP_FINDINGS_MAX]


def _mismatch(subject: str, what: str, actual: object, expected: object, collection: str) -> IntegrityFinding:
    return IntegrityFinding("rollup_mismatch", "critical", subject,
                            f"rollup {what} {subject} is {actual}, the journal says {expected}: run `python -m core rollups rebuild`",
                            collection=collection)
