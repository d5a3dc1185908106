"""The integrity checks beyond the self-check, each comparing like with like.

The ledger's self-check verifies every account's hash chain and projection. These compare
the journal's balances with the business documents and the audit chain: user.locked
against open holds, reserved liquidity against open quotes (and no expired quote still
held), escrow of closed P2P trades, the fee wallet against fees booked minus payouts and
sweeps, and the chain itself. The full check builds them on one scan of the journal
(`JournalView`); the incremental one (`core.integrity.incremental`) on what changed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from core.ledger import AccountKind, logical_id, parse_account_id
from core.base.errors import InvalidAccountError
from core.platform import Platform
from core.ledger import Finding, scan
from core.ledger import Store, VerifyResult

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
logger = logging.getLogger(__name__)
RESERVATION_GRACE = timedelta(minutes=5)  # the expiry sweep may lag this much behind a quote's TTL
CLOSED_TRADE_STATES = ("released", "cancelled", "resolved_buyer", "resolved_seller")
FEE_DEBIT_TYPES = ("referral.commission", "treasury.fee_sweep")
OFFENDERS_LISTED_MAX = 10
IN_QUERY_BATCH_MAX = 1_000


@dataclass(frozen=True)
class IntegrityFinding(Finding):
    """A self-check finding plus where it lives: account, user, legacy collection and field."""

    account: str | None = None
    user: str | None = None
    collection: str | None = None
    field: str | None = None


def lift(finding: Finding, **where: object) -> IntegrityFinding:
    """An IntegrityFinding from a self-check Finding (account/user filled in when the
    subject is an account id)."""
    values = asdict(finding)
    if "account" not in where and ":" in finding.subject:
        try:
            account = parse_account_id(finding.subject)  # the stored account (a hot account's stripe) is named as found
            where = {"account": finding.subject, "user": account.owner if account.is_user else None, **where}
        except InvalidAccountError:
            logger.debug("finding subject %.80r is not an account id: no account or user named", finding.subject)
    return IntegrityFinding(**values, **where)


# -- one pass over the journal ----------------------------------------------------------------
@dataclass
class JournalView:
    """What the checks beyond the self-check need from the journal, built in one scan."""

    applied: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # account → applied sum
    open_holds: dict[str, dict] = field(default_factory=dict)  # hold id → its applied place entry
    fee_booked: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # fees account → Σ fee_minor
    fee_paid_out: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fee_offenders: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    entries: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (state, stored entry_hash)


def absorb(view: JournalView, entry: dict, closed: set[str]) -> None:
    entry_id, state = entry["_id"], entry.get("state")
    view.entries[entry_id] = (state, entry.get("entry_hash"))
    if state != "applied":
        return
    for posting in entry.get("postings", []):
        if isinstance(posting.get("amount_minor"), int):
            view.applied[posting["account"]] += posting["amount_minor"]
        if posting.get("kind") == AccountKind.FEES.value:
            _absorb_fee(view, entry, posting)
    hold_id = entry.get("hold_id")
    if hold_id is not None and entry.get("hold_action") == "place":
        if hold_id not in closed:
            view.open_holds[hold_id] = entry
    elif hold_id is not None:
        closed.add(hold_id)
        view.open_holds.pop(hold_id, None)


def _absorb_fee(view: JournalView, entry: dict, posting: dict) -> None:
    account_id, amount_minor = logical_id(posting["account"]), posting["amount_minor"]  # the fee wallet, whichever stripe
    if amount_minor > 0:
        booked = (entry.get("metadata") or {}).get("fee_minor")
        booked = booked if isinstance(booked, int) and not isinstance(booked, bool) else 0
        view.fee_booked[account_id] += booked
        if booked != amount_minor:
            view.fee_offenders[account_id].append(entry["_id"])
    elif entry.get("type") in FEE_DEBIT_TYPES:
        view.fee_paid_out[account_id] += -amount_minor
    else:
        view.fee_offenders[account_id].append(entry["_id"])


def journal_view(store: Store, query: dict | None = None) -> JournalView:
    """Scan the journal (or the part `query` selects) once."""
    view, closed = JournalView(), set()
    for entry in scan(store.collection("entries"), query):
        absorb(view, entry, closed)
    return view


def logical_totals(view: JournalView, kind: AccountKind) -> dict[str, int]:
    """Applied balance per logical account of `kind` (the stripes of a hot account added up)."""
    totals: dict[str, int] = defaultdict(int)
    for account_id, minor in view.applied.items():
        if account_id.startswith(kind.value + ":"):
            totals[logical_id(account_id)] += minor
    return dict(totals)


# -- the checks ---------------------------------------------------------------------------------
def hold_findings(view: JournalView, locked_accounts: set[str]) -> list[IntegrityFinding]:
    """Applied balance of each user.locked account equals the open holds it holds."""
    held: dict[str, int] = defaultdict(int)
    for place in view.open_holds.values():
        for posting in place.get("postings", []):
            if posting.get("kind") == AccountKind.USER_LOCKED.value and posting["amount_minor"] > 0:
                held[posting["account"]] += posting["amount_minor"]
    findings = []
    for account_id in sorted(locked_accounts | set(held)):
        expected, actual = held.get(account_id, 0), view.applied.get(account_id, 0)
        if expected != actual:
            account = parse_account_id(account_id)
            findings.append(
                IntegrityFinding(
                    "locked_hold_mismatch",
                    "critical",
                    account_id,
                    f"{account_id} holds {actual} in the journal, open holds add up to {expected}",
                    account.asset,
                    expected,
                    actual,
                    actual - expected,
                    account=account_id,
                    user=account.owner,
                )
            )
    return findings


def reservation_findings(store: Store, view: JournalView, now: datetime) -> list[IntegrityFinding]:
    """No expired quote still holds its reservation; reserved liquidity equals open quotes."""
    quotes = store.collection("quotes")
    findings = []
    for quote in scan(quotes, {"state": "open", "expires_at": {"$lt": now - RESERVATION_GRACE}}):
        if quote["_id"] in view.open_holds:
            asset = quote.get("reserved_asset")
            findings.append(
                IntegrityFinding(
                    "expired_reservation",
                    "critical",
                    str(quote["_id"]),
                    f"quote {quote['_id']} expired at {quote['expires_at']:%Y-%m-%d %H:%M:%S} "
                    f"but still reserves {quote.get('reserved_minor')}",
                    asset,
                    0,
                    quote.get("reserved_minor"),
                    quote.get("reserved_minor"),
                    account=f"{AccountKind.LIQUIDITY_RESERVED.value}:platform:{asset}",
                    user=quote.get("user"),
                    collection="quotes",
                    field="state",
                )
            )
    open_sums = {
        row["_id"]: int(row["total"])
        for row in quotes.aggregate(
            [
                {"$match": {"state": "open"}},
                {"$group": {"_id": "$reserved_asset", "total": {"$sum": "$reserved_minor"}}},
            ]
        )
    }
    reserved = logical_totals(view, AccountKind.LIQUIDITY_RESERVED)
    for asset in sorted(set(open_sums) | {parse_account_id(a).asset for a in reserved}):
        account_id = f"{AccountKind.LIQUIDITY_RESERVED.value}:platform:{asset}"
        expected, actual = open_sums.get(asset, 0), reserved.get(account_id, 0)
        if expected != actual:
            findings.append(
                IntegrityFinding(
                    "reservation_mismatch",
                    "critical",
                    account_id,
                    f"{account_id} holds {actual}, open quotes reserve {expected}",
                    asset,
                    expected,
                    actual,
                    actual - expected,
                    account=account_id,
                    collection="quotes",
                    field="reserved_minor",
                )
            )
    return findings


def escrow_findings(store: Store, view: JournalView) -> list[IntegrityFinding]:
    """Escrow of a closed P2P trade is zero (and every non-zero escrow has a trade)."""
    prefix = AccountKind.ESCROW.value + ":"
    nonzero = {a: v for a, v in view.applied.items() if a.startswith(prefix) and v != 0}
    by_trade = {parse_account_id(a).owner: a for a in nonzero}
    trades: dict[str, dict] = {}
    ids = sorted(by_trade)
    for start in range(0, len(ids), IN_QUERY_BATCH_MAX):
        chunk = ids[start : start + IN_QUERY_BATCH_MAX]
        trades.update(
            {t["_id"]: t for t in store.collection("p2p_trades").find({"_id": {"$in": chunk}}, limit=len(chunk))}
        )
    findings = []
    for trade_id, account_id in sorted(by_trade.items()):
        actual, account = nonzero[account_id], parse_account_id(account_id)
        trade = trades.get(trade_id)
        if trade is None:
            findings.append(
                IntegrityFinding(
                    "orphan_escrow",
                    "warning",
                    account_id,
                    f"{account_id} holds {actual} but there is no trade {trade_id}",
                    account.asset,
                    0,
                    actual,
                    actual,
                    account=account_id,
                    collection="p2p_trades",
                )
            )
        elif trade.get("state") in CLOSED_TRADE_STATES:
            findings.append(
                IntegrityFinding(
                    "closed_trade_escrow",
                    "critical",
                    trade_id,
                    f"trade {trade_id} is {trade['state']} but its escrow holds {actual}",
                    account.asset,
                    0,
                    actual,
                    actual,
                    account=account_id,
                    user=trade.get("seller"),
                    collection="p2p_trades",
                    field="state",
                )
            )
    return findings


def fee_findings(view: JournalView) -> list[IntegrityFinding]:
    """Per asset: the fee wallet equals fees booked − referral payouts − sweeps."""
    findings = []
    wallets = logical_totals(view, AccountKind.FEES)
    for account_id, actual in sorted(wallets.items()):
        expected = view.fee_booked.get(account_id, 0) - view.fee_paid_out.get(account_id, 0)
        if expected != actual:
            account, offenders = parse_account_id(account_id), view.fee_offenders.get(account_id, [])
            listed = ", ".join(offenders[:OFFENDERS_LISTED_MAX]) + (
                " …" if len(offenders) > OFFENDERS_LISTED_MAX else ""
            )
            findings.append(
                IntegrityFinding(
                    "fee_revenue_drift",
                    "critical",
                    account_id,
                    f"{account_id} holds {actual}; fees booked minus payouts and sweeps is {expected} "
                    f"(entries: {listed})",
                    account.asset,
                    expected,
                    actual,
                    actual - expected,
                    account=account_id,
                )
            )
    return findings


def explained(findings: list[Finding]) -> list[IntegrityFinding]:
    """Lift self-check findings, dropping a zero-sum failure its projection mismatches explain."""
    drift: dict[str, int] = defaultdict(int)
    for finding in findings:
        if finding.kind == "projection_mismatch":
            drift[finding.asset] += finding.difference or 0
    return [lift(f) for f in findings if not (f.kind == "asset_not_zero_sum" and drift.get(f.asset) == f.actual)]


def audit_findings(platform: Platform) -> list[IntegrityFinding]:
    return audit_chain_findings(platform.ledger.audit.verify())


def audit_chain_findings(result: VerifyResult) -> list[IntegrityFinding]:
    """A broken audit chain (or one that disagrees with its witness file) as a finding
    naming the first bad event by stream and sequence number."""
    if result.ok:
        return []
    return [IntegrityFinding("audit_chain_broken", "critical", f"audit {result.first_bad}".strip(), result.problem,
                             collection="audit", field="seq")]
