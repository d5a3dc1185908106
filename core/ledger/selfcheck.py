"""The ledger self-check: the journal and its projections agree.

Checks that every entry is balanced, unedited and terminal (or provably in flight), that
each balance projection equals the sum of the postings it has absorbed, that per asset
all accounts sum to zero, and that no constrained account is negative. The integrity
engine builds on this; the tests run it after every scenario.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from core.ledger.accounts import parse_account_id
from core.ledger.entries import TERMINAL_STATES, check_balanced, entry_hash
from core.ledger.store import Collection, Store

SCAN_BATCH_SIZE = 2_000
STUCK_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str  # "critical" | "warning"
    subject: str
    message: str
    asset: str | None = None
    expected: int | None = None
    actual: int | None = None
    difference: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SelfCheckReport:
    findings: list[Finding] = field(default_factory=list)
    entries_checked: int = 0
    accounts_checked: int = 0
    in_flight: list[str] = field(default_factory=list)
    in_flight_minor: dict[str, int] = field(default_factory=dict)  # per asset: legs absorbed by unfinished entries

    @property
    def ok(self) -> bool:
        return not self.findings


def scan(collection: Collection, query: dict | None = None, batch_size: int = SCAN_BATCH_SIZE,
         projection: dict | None = None) -> Iterator[dict]:
    """Every matching document in `_id` order, one bounded batch at a time (only the
    `projection` fields when given: e.g. never a legacy secret)."""
    last = None
    while True:
        batch_query = dict(query or {})
        if last is not None:
            batch_query["_id"] = {"$gt": last}
        batch = collection.find(batch_query, sort=[("_id", 1)], limit=batch_size, projection=projection)
        yield from batch
        if len(batch) < batch_size:
            return
        last = batch[-1]["_id"]


def expected_balances(store: Store, now: datetime, stuck_after: timedelta, report: SelfCheckReport) -> tuple[dict[str, int], dict[str, dict]]:
    """Walk the journal once: the balance each account should hold, and the balance documents."""
    balances = {d["_id"]: d for d in scan(store.collection("balances"))}
    expected: dict[str, int] = defaultdict(int)
    for entry in scan(store.collection("entries")):
        report.entries_checked += 1
        entry_id = entry["_id"]
        for problem in check_balanced(entry):
            report.findings.append(Finding("unbalanced_entry", "critical", entry_id, problem))
        if entry.get("entry_hash") != entry_hash(entry):
            report.findings.append(Finding("entry_edited", "critical", entry_id, f"entry {entry_id} changed after it was written (hash differs)"))
        state = entry.get("state")
        if state not in TERMINAL_STATES and state != "pending":
            report.findings.append(Finding("bad_entry_state", "critical", entry_id, f"unknown state {state!r}"))
        if state == "pending":
            report.in_flight.append(entry_id)
            if entry["created_at"] <= now - stuck_after:
                report.findings.append(Finding("stuck_entry", "critical", entry_id, f"entry {entry_id} pending since {entry['created_at']:%Y-%m-%d %H:%M:%S}"))
        for posting in entry.get("postings", []):
            account_id = posting.get("account")
            absorbed = entry_id in balances.get(account_id, {}).get("pending", [])
            if (state == "applied" or absorbed) and isinstance(posting.get("amount_minor"), int):
                expected[account_id] += posting["amount_minor"]
                if state != "applied":
                    asset = posting.get("asset")
                    report.in_flight_minor[asset] = report.in_flight_minor.get(asset, 0) + posting["amount_minor"]
    return expected, balances


def self_check(store: Store, now: datetime, stuck_after: timedelta = STUCK_AFTER) -> SelfCheckReport:
    """Run every check. Returns a report; `report.ok` is True when nothing was found."""
    report = SelfCheckReport()
    expected, balances = expected_balances(store, now, stuck_after, report)
    per_asset: dict[str, int] = defaultdict(int)
    for account_id in sorted(set(expected) | set(balances)):
        report.accounts_checked += 1
        actual = balances.get(account_id, {}).get("balance_minor", 0)
        want = expected.get(account_id, 0)
        account = parse_account_id(account_id)
        per_asset[account.asset] += actual
        if actual != want:
            report.findings.append(Finding("projection_mismatch", "critical", account_id,
                                           f"{account_id} holds {actual}, journal says {want}", account.asset, want, actual, actual - want))
        if actual < 0 and not account.may_go_negative:
            report.findings.append(Finding("negative_balance", "critical", account_id, f"{account_id} is negative ({actual})", account.asset, 0, actual, actual))
    for asset, total in sorted(per_asset.items()):
        total -= report.in_flight_minor.get(asset, 0)  # a half-applied entry is visible, not lost
        if total != 0:
            report.findings.append(Finding("asset_not_zero_sum", "critical", asset, f"all {asset} accounts sum to {total}", asset, 0, total, total))
    return report
