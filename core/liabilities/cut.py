"""A consistent cut of every user's liability, read while postings go on.

Why a plain read is not enough: balances are projected one account at a time, so a read
of all user balances can see a hold's debit of `user.available` without its credit of
`user.locked` (the user's total looks smaller), or see one account before and another
after a stream of entries. A proof of liabilities built on such a read would be wrong.

How the cut is made consistent (no transactions needed; standalone server, replica set
and embedded store alike) — `core.ledger.read_projections`, scoped to the user accounts:
1. collect #1: read every `user.available` / `user.locked` balance document in `_id`
   order, in bounded batches (one `_id` range per kind, served by the `_id` index);
2. read every journal entry still flagged `unprojected` (sparse index);
3. collect #2: read the same documents again (version only), and the entries claiming
   the versions that moved between the two collects (by `claims`).
An entry whose user legs straddle collect #1 (some read as projected, some not) is among
those entries (core.ledger.cut explains why), and is taken in whole: the accounts of its
other legs are rolled forward to it from the journal (`balance_after`), round after round
until no entry straddles. The cut is then the journal prefix "entries claiming each user
account's versions 1..v" with no entry half in it, whatever kept posting meanwhile: it
never retries, so it finishes under continuous load (issue 19: the former double collect
gave up in 42 of 57 attempts with 4 writers).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from core.base.errors import CutNotClosedError, NegativeLiabilityError, SnapshotContendedError
from core.ledger import AccountKind, Store, read_projections

READ_BATCH_SIZE = 5_000
FLAGGED_READ_MAX = 50_000  # entries flagged `unprojected` one cut may inspect (core.ledger.store.QUERY_LIMIT_MAX)
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
    attempts: int  # always 1 since the cut closes itself (kept in the published position for continuity)
    flagged_entries: int = 0  # unprojected-flagged entries inspected
    zero_balances: int = field(default=0)
    rolled_forward: int = 0  # user accounts taken past collect #1 from the journal, so no entry is half in the cut
    versions: dict[str, int] = field(default_factory=dict, compare=False)  # the position: user account → version (not published)

    def position(self) -> dict:
        return {"accounts": self.accounts, "versions_total": self.versions_total, "versions_digest": self.versions_digest,
                "newest_entry_id": self.newest_entry_id, "newest_entry_at": self.newest_entry_at,
                "attempts": self.attempts, "flagged_entries": self.flagged_entries, "rolled_forward": self.rolled_forward}


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


def read_cut(store: Store) -> Cut:
    """Read every user's liability per asset at one consistent journal position.

    Cost: 2 x (ceil(user balance documents / READ_BATCH_SIZE) + 1) reads of `balances` (one
    range per kind), one read of the flagged entries and one of the newest entry — all
    index-served; plus, only when user balances moved during the read, the entries that
    moved them (by `claims`) and the closing rounds.
    Raises: SnapshotContendedError when FLAGGED_READ_MAX or more entries await recovery;
        CutNotClosedError when a claimed version is missing from the journal (a broken
        chain: run the integrity check); NegativeLiabilityError for a negative user balance.
    """
    try:
        cut = read_projections(store, lambda projection: _collect(store, projection or _FULL), _user_leg,
                               flagged_max=FLAGGED_READ_MAX)
    except CutNotClosedError as error:
        if error.details.get("reason") != "flagged":
            raise
        raise SnapshotContendedError(f"{FLAGGED_READ_MAX} or more journal entries await recovery: run `python -m core recover`, "
                                     "then take the snapshot", **error.details) from None
    newest = store.collection("entries").find_one({}, sort=[("created_at", -1)], projection={"created_at": 1})
    documents = {account: document for account, document in cut.positions.items() if document.get("version", 0) > 0}
    liabilities, zeros = _liabilities(documents)
    return Cut(liabilities=liabilities, accounts=len(documents), versions_total=sum(d.get("version", 0) for d in documents.values()),
               versions_digest=_digest(documents), newest_entry_id=newest["_id"] if newest else None,
               newest_entry_at=newest["created_at"] if newest else None, attempts=1, flagged_entries=cut.flagged,
               zero_balances=zeros, rolled_forward=len(cut.rolled),
               versions={account: d.get("version", 0) for account, d in documents.items()})


_FULL = {"kind": 1, "owner": 1, "asset": 1, "version": 1, "balance_minor": 1, "head_hash": 1}


def _user_leg(posting: dict) -> bool:
    return posting.get("kind") in USER_KINDS
