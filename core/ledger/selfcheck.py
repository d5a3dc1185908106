"""The ledger self-check: the journal and its projections agree.

Checks that every entry is balanced, unedited and committed; that each account's entries
form an unbroken hash chain of versions 1..n with exact running balances; that each
projection holds what its chain says at the projection's own version; that per asset all
accounts sum to zero; and that no constrained account is negative. The integrity engine
builds on this; the tests run it after every scenario.

It reads a consistent cut while postings go on (issue 19, docs/integrity.md "The cut"):
the balances FIRST, the journal after. A projection only ever holds an exact prefix of its
chain, so every version a projection holds is in the journal read, and each projection is
compared with its chain at its own version; legs claimed above it are in flight, not a
mismatch, and the zero sum per asset is the projections plus those legs. The journal scan
is closed by targeted reads (`core.ledger.cut.close_journal`) so an entry inserted behind
the scan's cursor is never a hole. A projection more than one version behind its chain, or
behind an entry older than the stuck threshold, is a candidate: it is reported only when a
targeted re-read of the projection, made after the journal read, still shows it behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from core.base.errors import BrokenInvariantError
from core.ledger.accounts import parse_account_id
from core.ledger.cut import IN_BATCH_MAX, JournalRead, close_journal
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
    in_flight: list[str] = field(default_factory=list)  # entries with legs above the projections read (not yet in them)
    in_flight_minor: dict[str, int] = field(default_factory=dict)  # per asset: those legs, added to the zero sum
    confirming_reads: int = 0  # targeted re-reads made to close the cut and confirm candidates (0 on a quiet ledger)

    @property
    def ok(self) -> bool:
        return not self.findings


def scan(collection: Collection, query: dict | None = None, batch_size: int | None = None,
         projection: dict | None = None) -> Iterator[dict]:
    """Every matching document in `_id` order, one bounded batch at a time (only the
    `projection` fields when given: e.g. never a legacy secret). A document present for the
    whole scan is returned once; one inserted meanwhile may or may not be."""
    size = batch_size or SCAN_BATCH_SIZE
    last = None
    while True:
        batch_query = dict(query or {})
        if last is not None:
            batch_query["_id"] = {"$gt": last}
        batch = collection.find(batch_query, sort=[("_id", 1)], limit=size, projection=projection)
        yield from batch
        if len(batch) < size:
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


EntryObserver = Callable[[dict], None]


def journal_chains(store: Store, report: SelfCheckReport, on_entry: EntryObserver | None = None) -> dict[str, list[ChainLink]]:
    """Walk the journal once, then close the read (core.ledger.cut): every entry checked on
    read (balanced, unedited, committed) and handed to `on_entry`, and each account's links
    in version order."""
    chains: dict[str, list[ChainLink]] = defaultdict(list)
    read = JournalRead()

    def absorb(entry: dict) -> None:
        _check_entry(entry, report)
        stored_hash = entry.get("entry_hash")
        for posting in entry.get("postings", []):
            if not isinstance(posting, dict):
                continue
            chains[str(posting.get("account"))].append(ChainLink(
                entry["_id"], posting.get("version"), posting.get("amount_minor"), posting.get("balance_after"),
                posting.get("prev_hash"), stored_hash, entry.get("created_at"), bool(entry.get("unprojected"))))
        if on_entry is not None:
            on_entry(entry)

    for entry in scan(store.collection("entries")):
        if read.add(entry):
            absorb(entry)
    report.confirming_reads += close_journal(store, read, absorb)
    for links in chains.values():
        links.sort(key=lambda link: link.version if isinstance(link.version, int) else -1)
    return chains


def _check_entry(entry: dict, report: SelfCheckReport) -> None:
    report.entries_checked += 1
    entry_id = entry["_id"]
    for problem in check_balanced(entry):
        report.findings.append(Finding("unbalanced_entry", "critical", entry_id, problem))
    if entry.get("entry_hash") != _hash_or_none(entry):
        report.findings.append(Finding("entry_edited", "critical", entry_id, f"entry {entry_id} changed after it was written (hash differs)"))
    if entry.get("state") not in TERMINAL_STATES:
        report.findings.append(Finding("bad_entry_state", "critical", entry_id, f"unknown state {entry.get('state')!r}"))


def check_chain(account_id: str, links: list[ChainLink], balance: dict | None, reread: dict | None, now: datetime,
                stuck_after: timedelta, report: SelfCheckReport) -> int:
    """One account: versions 1..n contiguous, each link follows the previous one (hash and
    running balance), and the projection holds its chain's balance and hash at its own
    version. `balance` is the projection read before the journal, `reread` the same one read
    again after it (None when it was not re-read). Returns the account's share of its
    asset's zero sum: the projection plus the legs above it (the projection alone when it
    is wrong)."""
    prev_hash, running = GENESIS_HASH, 0
    for expected_version, link in enumerate(links, start=1):
        if link.version != expected_version:
            report.findings.append(Finding("chain_broken", "critical", account_id,
                                           f"{account_id}: entry {link.entry_id} claims version {link.version!r}, expected {expected_version} "
                                           "(an entry was deleted, inserted or its claim edited)"))
            return _actual(balance)
        if link.prev_hash != prev_hash:
            report.findings.append(Finding("chain_broken", "critical", account_id,
                                           f"{account_id}: entry {link.entry_id} (version {expected_version}) does not follow the previous entry"))
        if not isinstance(link.amount_minor, int) or link.balance_after != running + link.amount_minor:
            report.findings.append(Finding("chain_broken", "critical", account_id,
                                           f"{account_id}: entry {link.entry_id} (version {expected_version}) records a balance after of "
                                           f"{link.balance_after!r}, the chain says {running + (link.amount_minor if isinstance(link.amount_minor, int) else 0)}"))
        running += link.amount_minor if isinstance(link.amount_minor, int) else 0
        prev_hash = link.entry_hash
    return _check_projection(account_id, links, balance, reread, now, stuck_after, report)


def _actual(balance: dict | None) -> int:
    actual = (balance or {}).get("balance_minor", 0)
    return actual if isinstance(actual, int) else 0


def _check_projection(account_id: str, links: list[ChainLink], balance: dict | None, reread: dict | None, now: datetime,
                      stuck_after: timedelta, report: SelfCheckReport) -> int:
    version = (balance or {}).get("version", 0)
    actual = (balance or {}).get("balance_minor", 0)
    account = parse_account_id(account_id)
    want_version = len(links)
    current = reread.get("version", 0) if reread is not None else version
    if not isinstance(version, int) or version > want_version or not isinstance(current, int) or max(version, current) < want_version - 1:
        seen = version if not isinstance(version, int) or version > want_version else current
        report.findings.append(Finding("projection_mismatch", "critical", account_id,
                                       f"{account_id} is at version {seen!r}, the journal has {want_version}", account.asset,
                                       want_version, seen if isinstance(seen, int) else None))
        return _actual(balance)
    at = links[version - 1] if version else None
    want = at.balance_after if at else 0
    want_head = at.entry_hash if at else GENESIS_HASH
    if actual != want or (balance is not None and balance.get("head_hash") != want_head):
        difference = actual - want if isinstance(actual, int) and isinstance(want, int) else None
        report.findings.append(Finding("projection_mismatch", "critical", account_id,
                                       f"{account_id} holds {actual}, journal says {want} at version {version}",
                                       account.asset, want, actual, difference))
    above = links[version:]
    for link in above:  # claimed after the projection was read: in flight, counted in the zero sum
        report.in_flight.append(link.entry_id)
        report.in_flight_minor[account.asset] = report.in_flight_minor.get(account.asset, 0) + (
            link.amount_minor if isinstance(link.amount_minor, int) else 0)
    pending = links[-1] if max(version, current) == want_version - 1 else None  # still behind after the re-read
    if pending is not None and _old(pending, now, stuck_after):
        report.findings.append(Finding("stuck_entry", "critical", pending.entry_id,
                                       f"entry {pending.entry_id} not projected on {account_id} since {pending.created_at:%Y-%m-%d %H:%M:%S}"))
    if isinstance(actual, int) and actual < 0 and not account.may_go_negative:
        report.findings.append(Finding("negative_balance", "critical", account_id, f"{account_id} is negative ({actual})", account.asset, 0, actual, actual))
    return _actual(balance) + sum(link.amount_minor for link in above if isinstance(link.amount_minor, int))


def _old(link: ChainLink, now: datetime, stuck_after: timedelta) -> bool:
    return isinstance(link.created_at, datetime) and link.created_at <= now - stuck_after


def _candidates(chains: dict[str, list[ChainLink]], balances: dict[str, dict], now: datetime, stuck_after: timedelta) -> list[str]:
    """Accounts whose projection, as first read, looks wrong only because it may have moved
    since: more than one version behind its chain, or one behind an entry older than the
    stuck threshold."""
    candidates = []
    for account_id, links in chains.items():
        version = (balances.get(account_id) or {}).get("version", 0)
        if not isinstance(version, int) or version >= len(links):
            continue
        if version < len(links) - 1 or _old(links[-1], now, stuck_after):
            candidates.append(account_id)
    return sorted(candidates)


def reread_projections(store: Store, accounts: list[str], report: SelfCheckReport) -> dict[str, dict]:
    """The projections of `accounts` read again, after the journal (targeted, by `_id`)."""
    found: dict[str, dict] = {}
    for start in range(0, len(accounts), IN_BATCH_MAX):
        chunk = accounts[start:start + IN_BATCH_MAX]
        report.confirming_reads += 1
        found.update({d["_id"]: d for d in store.collection("balances").find({"_id": {"$in": chunk}}, limit=len(chunk),
                                                                            projection={"version": 1})})
    return {account: found.get(account, {"version": 0}) for account in accounts}


def self_check(store: Store, now: datetime, stuck_after: timedelta = STUCK_AFTER,
               on_entry: EntryObserver | None = None) -> SelfCheckReport:
    """Run every check on a consistent cut (module docstring). `on_entry` sees every entry
    of the cut once (the full platform check builds its journal view from it, so both judge
    the same entries). Returns a report; `report.ok` is True when nothing was found."""
    report = SelfCheckReport()
    balances = {d["_id"]: d for d in scan(store.collection("balances"))}  # first: every projected version is in the journal read
    chains = journal_chains(store, report, on_entry)
    rereads = reread_projections(store, _candidates(chains, balances, now, stuck_after), report)
    per_asset: dict[str, int] = defaultdict(int)
    for account_id in sorted(set(chains) | set(balances)):
        report.accounts_checked += 1
        share = check_chain(account_id, chains.get(account_id, []), balances.get(account_id), rereads.get(account_id), now,
                            stuck_after, report)
        per_asset[parse_account_id(account_id).asset] += share
    for asset, total in sorted(per_asset.items()):
        if total != 0:
            report.findings.append(Finding("asset_not_zero_sum", "critical", asset, f"all {asset} accounts sum to {total}", asset, 0, total, total))
    return report


def _hash_or_none(entry: dict) -> str | None:
    """The entry's hash, or None when a forged entry holds values that cannot be hashed."""
    try:
        return entry_hash(entry)
    except (BrokenInvariantError, TypeError, ValueError):
        return None
