"""Integrity: an open hold behind a finished withdrawal, P2P trade or quote (issue 19).

A hold placed after its flow was refused is released by its placer or, if that caller
died first, by recovery (`core.flows.holds`). Until then the money sits locked behind a
flow that will never move it: a `stranded_hold` finding, critical, naming the flow, its
state, the held account and the amount. Every platform run looks at the finished flows
that still name a placer (a bounded read); the full and per-user runs also join every
open hold of their journal scan with its flow, so a hold stranded without a name (an
older layout, a bug) is found as well. A hold younger than the stuck threshold is not
reported: its placer may be about to release it.

One problem, one finding: the P2P escrow and the quote reservation of a stranded hold
would also read as `closed_trade_escrow` and `reservation_mismatch`; those are dropped
when the stranded holds explain them entirely.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from core.flows.holds import StrandedHold, stranded_holds
from core.integrity.checks import IntegrityFinding
from core.ledger import logical_id, parse_account_id
from core.platform import Platform

KIND = "stranded_hold"
OWNER_FIELD = {"withdrawals": "user", "p2p_trades": "seller", "quotes": "user"}


def stranded_hold_findings(platform: Platform, now: datetime, stuck_after: timedelta,
                           open_holds: dict[str, dict] | None = None, *, named: bool = True) -> list[IntegrityFinding]:
    """One critical finding per open hold behind a finished flow (see the module doc;
    `named=False` looks only at `open_holds`, e.g. one user's)."""
    return [_finding(hold) for hold in stranded_holds(platform, now, stuck_after, open_holds, named=named)]


def _finding(hold: StrandedHold) -> IntegrityFinding:
    account, amount_minor = hold.held
    flow, document = hold.flow, hold.document
    return IntegrityFinding(
        KIND, "critical", str(document["_id"]),
        f"{flow.what} {document['_id']} is {document['state']} but its hold {hold.place.id} still holds "
        f"{amount_minor} on {account}: recovery releases it",
        parse_account_id(account).asset, 0, amount_minor, amount_minor,
        account=account, user=document.get(OWNER_FIELD[flow.collection]), collection=flow.collection, field="state",
    )


def fold_duplicates(findings: list[IntegrityFinding]) -> list[IntegrityFinding]:
    """Drop the escrow and reservation findings that stranded holds explain entirely:
    `closed_trade_escrow` of a trade with a stranded escrow, and a `reservation_mismatch`
    whose difference is the sum of the stranded quote reservations of its account."""
    stranded = [f for f in findings if f.kind == KIND]
    trades = {f.subject for f in stranded if f.collection == "p2p_trades"}
    reserved: dict[str, int] = defaultdict(int)
    for finding in stranded:
        if finding.collection == "quotes":  # the reserved float's stripe it sits on → the logical account
            reserved[logical_id(finding.account or "")] += finding.actual or 0
    return [f for f in findings
            if not (f.kind == "closed_trade_escrow" and f.subject in trades)
            and not (f.kind == "reservation_mismatch" and f.account in reserved and f.difference == reserved[f.account])]
