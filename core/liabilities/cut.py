"""A consistent cut of every user's liability, read while postings go on.

Why a plain read is not enough: balances are projected one account at a time, so a read
of all user balances can see a hold's debit of `user.available` without its credit of
`user.locked` (the user's total looks smaller), or see one account before and another
after a stream of entries. A proof of liabilities built on such a read would be wrong.

How the cut is made consistent (no transactions needed; standalone server, replica set
and embedded store alike):
1. collect #1: read every `user.available` / `user.locked` balance document in `_id`
   order, in bounded batches (one `_id` range per kind, served by the `_id` index);
2. read every journal entry still flagged `unprojected` (sparse index) and the newest
   entry's id;
3. collect #2: read the same documents again (version and balance only).
If both collects agree exactly (same documents, same `version` of each), no user balance
changed between the end of #1 and the start of #2: at any instant in that window the
projections held exactly the values read (versions only grow, so there is no ABA). Step 2
ran inside that window, so an entry projected on some user accounts but not yet on others
at that instant was still flagged and was read: the cut is refused if any flagged entry
touching user accounts has some user legs at or below the versions read (included) and
others above (excluded). With neither, the cut is the journal prefix "entries claiming
each user account's versions 1..v" and no entry is half in it.
Otherwise try again, up to CUT_ATTEMPTS_MAX times, then SnapshotContendedError: under
continuous load on user accounts take the snapshot at a quieter moment (a cut-off time).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from core.errors import NegativeLiabilityError, SnapshotContendedError
from core.ledger import AccountKind, Store

READ_BATCH_SIZE = 5_000
FLAGGED_READ_MAX = 50_000  # entries flagged `unprojected` one cut may inspect (core.ledger.store.QUERY_LIMIT_MAX)
CUT_ATTEMPTS_MAX = 5
USER_KINDS = (AccountKind.USER_AVAILABLE.value, AccountKind.USER_LOCKED.value)


@dataclass(frozen=True)
class Cut:
    """Liabilities per asset (user id -> minor units, above zero only) and the journal
    position they cover."""

    liabilities: dict[str, dict[str, int]]
    accounts: int  # user balance documents read
    versions_total: int  # sum of their versions = user-account postings covered
    versions_digest: str  # SHA-256 of "account@version:head_hash" lines, sorted: anchors the cut in the per-account hash chains
    newest_entry_id: str | None
    newest_entry_at: datetime | None
    attempts: int
    flagged_entries: int = 0  # unprojected-flagged entries inspected on the accepted attempt
    zero_balances: int = field(default=0)

    def position(self) -> dict:
        return {"accounts": self.accounts, "versions_total": self.versions_total, "versions_digest": self.versions_digest,
                "newest_entry_id": self.newest_entry_id, "newest_entry_at": self.newest_entry_at,
                "attempts": self.attempts, "flagged_entries": self.flagged_entries}


def _collect(store: Store, projection: dict) -> dict[str, dict]:
    """Every user balance document, by id, in bounded batches.

    Account ids are `kind:owner:asset`, so each user kind is one `_id` range
    ("user.available:" up to "user.available;", ";" being the character after ":"): the
    `_id` index serves both the filter and the order, and continuing after the last id read
    pages without skipping."""
    balances = store.collection("balances")
    documents: dict[str, dict] = {}
    for kind in USER_KINDS:
        after, before = f"{kind}:", f"{kind};"
        while True:
            batch = balances.find({"_id": {"$gt": after, "$lt": before}}, sort=[("_id", 1)], limit=READ_BATCH_SIZE,
                                  projection=projection)
            for document in batch:
                documents[document["_id"]] = document
            if len(batch) < READ_BATCH_SIZE:
                break
            after = batch[-1]["_id"]
    return documents


def _split_entries(store: Store, versions: dict[str, int]) -> tuple[list[str], int]:
    """Flagged entries that are half inside the cut (some user legs projected, some not).

    One read, no order needed (the sparse `unprojected` index serves it). More than
    FLAGGED_READ_MAX flagged entries means recovery has not run for a long time: the cut
    refuses rather than decide on a partial list (take_snapshot runs recovery first)."""
    batch = store.collection("entries").find({"unprojected": True}, limit=FLAGGED_READ_MAX, projection={"postings": 1})
    if len(batch) >= FLAGGED_READ_MAX:
        raise SnapshotContendedError(f"{FLAGGED_READ_MAX} or more journal entries await recovery: run `python -m core recover`, "
                                     "then take the snapshot", flagged_entries=len(batch))
    split = []
    for document in batch:
        inside = {versions.get(p["account"], 0) >= p["version"]
                  for p in document.get("postings", []) if p.get("kind") in USER_KINDS and "version" in p}
        if len(inside) == 2:
            split.append(document["_id"])
    return split, len(batch)


def _digest(documents: dict[str, dict]) -> str:
    lines = "".join(f"{account}@{doc.get('version', 0)}:{doc.get('head_hash', '')}\n" for account, doc in sorted(documents.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _liabilities(documents: dict[str, dict]) -> tuple[dict[str, dict[str, int]], int]:
    """Per asset, per user: available + locked. Raises: NegativeLiabilityError."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for account, document in documents.items():
        balance = document.get("balance_minor", 0)
        if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
            raise NegativeLiabilityError(f"user balance {account} is {balance!r}: not a non-negative integer",
                                         account=account, balance_minor=repr(balance))
        totals[document["asset"]][document["owner"]] += balance
    result = {asset: {user: value for user, value in users.items() if value > 0} for asset, users in totals.items()}
    zeros = sum(1 for asset, users in totals.items() for value in users.values() if value == 0)
    return {asset: users for asset, users in sorted(result.items()) if users}, zeros


def read_cut(store: Store, attempts_max: int = CUT_ATTEMPTS_MAX) -> Cut:
    """Read every user's liability per asset at one consistent journal position.

    Cost per attempt: 2 x (ceil(user balance documents / READ_BATCH_SIZE) + 1) reads of
    `balances` (one range per kind), one read of the flagged entries and one of the newest
    entry — all index-served.
    Raises: SnapshotContendedError after `attempts_max` attempts that saw balances move or
        an entry half projected; NegativeLiabilityError for a negative user balance.
    """
    entries = store.collection("entries")
    moved = split = 0
    split_ids: list[str] = []
    for attempt in range(1, attempts_max + 1):
        first = _collect(store, {"kind": 1, "owner": 1, "asset": 1, "version": 1, "balance_minor": 1, "head_hash": 1})
        versions = {account: document.get("version", 0) for account, document in first.items()}
        split_ids, flagged = _split_entries(store, versions)
        newest = entries.find_one({}, sort=[("created_at", -1)], projection={"created_at": 1})
        second = _collect(store, {"version": 1, "balance_minor": 1})
        changed = [account for account in first.keys() | second.keys()
                   if (first.get(account) or {}).get("version") != (second.get(account) or {}).get("version")
                   or (first.get(account) or {}).get("balance_minor") != (second.get(account) or {}).get("balance_minor")]
        moved, split = len(changed), len(split_ids)
        if not changed and not split_ids:
            liabilities, zeros = _liabilities(first)
            return Cut(liabilities=liabilities, accounts=len(first), versions_total=sum(versions.values()),
                       versions_digest=_digest(first), newest_entry_id=newest["_id"] if newest else None,
                       newest_entry_at=newest["created_at"] if newest else None, attempts=attempt,
                       flagged_entries=flagged, zero_balances=zeros)
    if not moved:  # nothing moved, yet an entry stays half projected: recovery could not finish it (a poisoned entry)
        raise SnapshotContendedError(
            f"{split} journal entries stay half projected on user accounts ({', '.join(split_ids[:5])}): run recovery and "
            "the integrity check, repair, then take the snapshot", attempts=attempts_max, accounts_moved=0,
            entries_half_projected=split, entries=split_ids[:20])
    raise SnapshotContendedError(
        f"user balances kept moving during {attempts_max} attempts to read a consistent cut; retry at a quieter moment",
        attempts=attempts_max, accounts_moved=moved, entries_half_projected=split,
    )
