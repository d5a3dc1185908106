"""The ledger self-check: the journal and its projections agree.

Checks that every entry is balanced, unedited and committed; that each account's entries
form an unbroken hash chain of versions 1..n with exact running balances; that each
projection sits at the chain's head (or one version behind an entry still in flight);
that per asset all accounts sum to zero; and that no constrained account is negative. The integrity
engine builds on this; the tests run it after every scenario.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from core.errors import BrokenInvariantError
from core.ledger.accounts import parse_account_id
from core.ledger.entries import GENESIS_HASH, TERMINAL_STATES, check_balanced, entry_hash
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


@dataclass
class ChainLink:
    """One account's posting in one entry, as the journal records it."""

    entry_id: str
    version: object
    amount_minor: object
    balance_after: object
    prev_hash: object
    entry_hash: object
    created_at: object
    unprojected: bool


def journal_chains(store: Store, report: SelfCheckReport) -> dict[str, list[ChainLink]]:
    """Walk the journal once: every entry checked on read (balanced, unedited, committed),
    and each account's links in version order."""
    chains: dict[str, list[ChainLink]] = defaultdict(list)
    for entry in scan(store.collection("entries")):
        report.entries_checked += 1
        entry_id = entry["_id"]
        for problem in check_balanced(entry):
            report.findings.append(Finding("unbalanced_entry", "critical", entry_id, problem))
        stored_hash = entry.get("entry_hash")
        if stored_hash != _hash_or_none(entry):
            report.findings.append(Finding("entry_edited", "critical", entry_id, f"entry {entry_id} changed after it was written (hash differs)"))
        if entry.get("state") not in TERMINAL_STATES:
            report.findings.append(Finding("bad_entry_state", "critical", entry_id, f"unknown state {entry.get('state')!r}"))
        for posting in entry.get("postings", []):
            if not isinstance(posting, dict):
                continue
            chains[str(posting.get("account"))].append(ChainLink(
                entry_id, posting.get("version"), posting.get("amount_minor"), posting.get("balance_after"),
                posting.get("prev_hash"), stored_hash, entry.get("created_at"), bool(entry.get("unprojected"))))
    for links in chains.values():
        links.sort(key=lambda link: link.version if isinstance(link.version, int) else -1)
    return chains


def check_chain(account_id: str, links: list[ChainLink], balance: dict | None, now: datetime, stuck_after: timedelta,
                report: SelfCheckReport) -> int:
    """One account: versions 1..n contiguous, each link follows the previous one (hash and
    running balance), and the projection sits on a link of the chain — at its head, or one
    behind an entry still in flight. Returns the journal's balance of the account."""
    prev_hash, running = GENESIS_HASH, 0
    for expected_version, link in enumerate(links, start=1):
        if link.version != expected_version:
            report.findings.append(Finding("chain_broken", "critical", account_id,
                                           f"{account_id}: entry {link.entry_id} claims version {link.version!r}, expected {expected_version} "
                                           "(an entry was deleted, inserted or its claim edited)"))
            return running
        if link.prev_hash != prev_hash:
            report.findings.append(Finding("chain_broken", "critical", account_id,
                                           f"{account_id}: entry {link.entry_id} (version {expected_version}) does not follow the previous entry"))
        if not isinstance(link.amount_minor, int) or link.balance_after != running + link.amount_minor:
            report.findings.append(Finding("chain_broken", "critical", account_id,
                                           f"{account_id}: entry {link.entry_id} (version {expected_version}) records a balance after of "
                                           f"{link.balance_after!r}, the chain says {running + (link.amount_minor if isinstance(link.amount_minor, int) else 0)}"))
        running += link.amount_minor if isinstance(link.amount_minor, int) else 0
        prev_hash = link.entry_hash
    _check_projection(account_id, links, balance, now, stuck_after, report)
    return running


def _check_projection(account_id: str, links: list[ChainLink], balance: dict | None, now: datetime, stuck_after: timedelta,
                      report: SelfCheckReport) -> None:
    version = (balance or {}).get("version", 0)
    actual = (balance or {}).get("balance_minor", 0)
    account = parse_account_id(account_id)
    want_version = len(links)
    if not isinstance(version, int) or version > want_version or version < want_version - 1:
        report.findings.append(Finding("projection_mismatch", "critical", account_id,
                                       f"{account_id} is at version {version!r}, the journal has {want_version}", account.asset,
                                       want_version, version if isinstance(version, int) else None))
        return
    at = links[version - 1] if version else None
    want = at.balance_after if at else 0
    want_head = at.entry_hash if at else GENESIS_HASH
    if actual != want or (balance is not None and balance.get("head_hash") != want_head):
        difference = actual - want if isinstance(actual, int) and isinstance(want, int) else None
        report.findings.append(Finding("projection_mismatch", "critical", account_id,
                                       f"{account_id} holds {actual}, journal says {want} at version {version}",
                                       account.asset, want, actual, difference))
    if version < want_version:
        pending = links[-1]
        report.in_flight.append(pending.entry_id)
        report.in_flight_minor[account.asset] = report.in_flight_minor.get(account.asset, 0) + (
            pending.amount_minor if isinstance(pending.amount_minor, int) else 0)
        if isinstance(pending.created_at, datetime) and pending.created_at <= now - stuck_after:
            report.findings.append(Finding("stuck_entry", "critical", pending.entry_id,
                                           f"entry {pending.entry_id} not projected on {account_id} since {pending.created_at:%Y-%m-%d %H:%M:%S}"))
    if isinstance(actual, int) and actual < 0 and not account.may_go_negative:
        report.findings.append(Finding("negative_balance", "critical", account_id, f"{account_id} is negative ({actual})", account.asset, 0, actual, actual))


def self_check(store: Store, now: datetime, stuck_after: timedelta = STUCK_AFTER) -> SelfCheckReport:
    """Run every check. Returns a report; `report.ok` is True when nothing was found."""
    report = SelfCheckReport()
    chains = journal_chains(store, report)
    balances = {d["_id"]: d for d in scan(store.collection("balances"))}
    per_asset: dict[str, int] = defaultdict(int)
    for account_id in sorted(set(chains) | set(balances)):
        report.accounts_checked += 1
        check_chain(account_id, chains.get(account_id, []), balances.get(account_id), now, stuck_after, report)
        actual = balances.get(account_id, {}).get("balance_minor", 0)
        per_asset[parse_account_id(account_id).asset] += actual if isinstance(actual, int) else 0
    for asset, total in sorted(per_asset.items()):
        total += report.in_flight_minor.get(asset, 0)  # a half-projected entry is visible, not lost
        if total != 0:
            report.findings.append(Finding("asset_not_zero_sum", "critical", asset, f"all {asset} accounts sum to {total}", asset, 0, total, total))
    return report


def _hash_or_none(entry: dict) -> str | None:
    """The entry's hash, or None when a forged entry holds values that cannot be hashed."""
    try:
        return entry_hash(entry)
    except (BrokenInvariantError, TypeError, ValueError):
        return None
