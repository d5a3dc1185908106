"""Journal entries: the request a caller makes, its validation, and the stored record."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from core.ledger.accounts import STRIPES_MAX, Account, check_owner_id
from core.ledger.arguments import ENTRY_TYPE_PATTERN, IDENTIFIER_LENGTH_MAX, IDENTIFIER_PATTERN
from core.base.errors import InvalidEntryError, UnbalancedEntryError
from core.ledger.hashing import digest
from core.ledger.ids import random_below, random_hex
from core.ledger.money import Amount, AssetRegistry, from_minor
from core.ledger.stripes import Striping, family_query, is_striped, logical_id, part_id, part_range

POSTINGS_PER_ENTRY_MAX = 16
IDEMPOTENCY_KEY_LENGTH_MAX = 200
MEMO_LENGTH_MAX = 500
METADATA_FIELDS_MAX = 32
METADATA_TEXT_LENGTH_MAX = 500
# \A...\Z with fullmatch: `$` also matches before a trailing newline ("k\n" was a key).
METADATA_KEY_PATTERN = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
PATTERNED_FIELDS = {  # an entry request's field → (the pattern it must match, the refusal when it does not)
    "idempotency_key": (IDENTIFIER_PATTERN, f"idempotency key must be 1-{IDENTIFIER_LENGTH_MAX} printable characters without spaces"),
    "type": (ENTRY_TYPE_PATTERN, "entry type must match [a-z][a-z0-9_.]*"),
}
SIZED_FIELDS = {  # an entry request's field → (the most it may hold, the refusal when it holds more)
    "memo": (MEMO_LENGTH_MAX, f"memo longer than {MEMO_LENGTH_MAX} characters"),
    "metadata": (METADATA_FIELDS_MAX, f"more than {METADATA_FIELDS_MAX} metadata fields"),
}
METADATA_INT_MIN, METADATA_INT_MAX = -(2**63), 2**63 - 1  # BSON int64: pymongo cannot store more

EntryState = Literal["applied"]  # a journaled entry is committed; a refused request journals nothing
TERMINAL_STATES: frozenset[str] = frozenset({"applied"})
HoldAction = Literal["place", "release", "consume"]
MetadataValue = str | int | bool | None


class Posting(BaseModel):
    """One leg: a signed amount on one account (negative = debit)."""

    model_config = ConfigDict(strict=True, frozen=True)

    account: Account
    amount: Amount


class EntryRequest(BaseModel):
    """What a caller asks the engine to journal. Validated before anything is written."""

    model_config = ConfigDict(strict=True, frozen=True)

    idempotency_key: str
    type: str
    postings: tuple[Posting, ...]
    actor: str
    flow_ref: str | None = None
    memo: str = ""
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    hold_id: str | None = None
    hold_action: HoldAction | None = None

    @field_validator("idempotency_key", "type")
    @classmethod
    def _patterned(cls, value: str, info: ValidationInfo) -> str:
        pattern, refusal = PATTERNED_FIELDS[info.field_name]
        if not pattern.fullmatch(value):
            raise ValueError(refusal)
        return value

    @field_validator("memo", "metadata")
    @classmethod
    def _sized(cls, value: str | dict, info: ValidationInfo) -> str | dict:
        size_max, refusal = SIZED_FIELDS[info.field_name]
        if len(value) > size_max:
            raise ValueError(refusal)
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict) -> dict:
        """Runs after `_sized` (pydantic applies a field's validators in the order they are declared)."""
        for key, item in value.items():
            if not METADATA_KEY_PATTERN.fullmatch(key):
                raise ValueError(f"metadata key {key!r} must match [a-z][a-z0-9_]*")
            if isinstance(item, str) and (len(item) > METADATA_TEXT_LENGTH_MAX or "\x00" in item):
                raise ValueError(f"metadata {key} longer than {METADATA_TEXT_LENGTH_MAX} or holds NUL")
            if isinstance(item, int) and not isinstance(item, bool) and not (METADATA_INT_MIN <= item <= METADATA_INT_MAX):
                raise ValueError(f"metadata {key} is outside int64")
        return value


def make_request(**fields: object) -> EntryRequest:
    """Build an EntryRequest, turning pydantic's errors into InvalidEntryError."""
    try:
        return EntryRequest(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise InvalidEntryError(f"invalid entry request: {problems}", problems=problems) from None


def validate_request(request: EntryRequest, registry: AssetRegistry) -> None:
    """Refuse what must never be journaled.

    Raises: InvalidEntryError (fewer than 2 or more than POSTINGS_PER_ENTRY_MAX postings,
    a zero or asset-mismatched posting, an account twice, bad ids),
    UnknownAssetError, UnbalancedEntryError (per-asset sum not zero).
    """
    count = len(request.postings)
    if count < 2 or count > POSTINGS_PER_ENTRY_MAX:
        raise InvalidEntryError(f"an entry needs 2..{POSTINGS_PER_ENTRY_MAX} postings, got {count}", postings=count)
    check_owner_id(request.actor)
    if (request.hold_id is None) != (request.hold_action is None):
        raise InvalidEntryError("hold_id and hold_action go together")
    sums: dict[str, int] = defaultdict(int)
    seen: set[str] = set()
    for posting in request.postings:
        registry.get(posting.account.asset)
        if posting.amount.asset != posting.account.asset:
            raise InvalidEntryError(
                f"posting of {posting.amount.asset} on a {posting.account.asset} account",
                account=posting.account.id, asset=posting.amount.asset,
            )
        if posting.amount.minor == 0:
            raise InvalidEntryError(f"zero posting on {posting.account.id}", account=posting.account.id)
        if posting.account.id in seen:
            raise InvalidEntryError(f"account {posting.account.id} appears twice", account=posting.account.id)
        seen.add(posting.account.id)
        sums[posting.amount.asset] += posting.amount.minor
    for asset, total in sums.items():
        if total != 0:
            raise UnbalancedEntryError(f"postings of {asset} sum to {total} minor units, not zero", asset=asset, sum_minor=total)


def posting_records(request: EntryRequest) -> list[dict]:
    return [
        {
            "account": p.account.id,
            "kind": p.account.kind.value,
            "owner": p.account.owner,
            "asset": p.account.asset,
            "amount_minor": p.amount.minor,
        }
        for p in request.postings
    ]


def request_hash(request: EntryRequest) -> str:
    """What makes two requests 'the same' for idempotency (the actor is not part of it)."""
    return digest(
        {
            "type": request.type,
            "postings": posting_records(request),
            "flow_ref": request.flow_ref,
            "memo": request.memo,
            "metadata": request.metadata,
            "hold_id": request.hold_id,
            "hold_action": request.hold_action,
        }
    )


IMMUTABLE_FIELDS = (
    "_id", "idempotency_key", "type", "postings", "claims", "actor", "flow_ref", "memo",
    "metadata", "hold_id", "hold_action", "created_at", "request_hash",
)
GENESIS_HASH = "0" * 64  # the `prev_hash` of an account's first entry


def entry_hash(document: dict) -> str:
    """Hash of an entry's immutable fields — its postings carry each account's version,
    balance after and previous entry hash, so the hash links every account's chain."""
    return digest({field: document.get(field) for field in IMMUTABLE_FIELDS})


def new_entry_id(now: datetime) -> str:
    """Time-ordered unique id."""
    return f"{entry_id_floor(now)}{random_hex(10)}"


def entry_id_floor(moment: datetime) -> str:
    """The smallest entry id of `moment`'s millisecond: ids below it were made before it (by
    their writer's clock), so `_id < floor` is an index range of older entries."""
    return f"E{moment:%Y%m%d%H%M%S}{moment.microsecond // 1000:03d}"


def claim_of(account_id: str, version: int) -> str:
    """The unique token by which one entry owns one version of one account."""
    return f"{account_id}@{version}"


@dataclass(frozen=True)
class Head:
    """An account's projection as read before a claim (a missing document is version 0)."""

    version: int = 0
    balance_minor: int = 0
    head_hash: str = GENESIS_HASH

    @classmethod
    def of(cls, document: dict | None) -> Head:
        if document is None:
            return cls()
        return cls(document["version"], document["balance_minor"], document["head_hash"])


@dataclass(frozen=True)
class Shortfall:
    """Why a request cannot be journaled against the heads read: `rule` is
    "insufficient_funds" (a constrained account would go below zero) or "overflow"."""

    rule: str
    account: str
    balance_minor: int
    amount_minor: int
    version: int


@dataclass(frozen=True)
class Leg:
    """One posting of a request routed to where it is stored: a fixed part (`part`), or —
    a debit of a striped constrained account — whichever of its parts hold the funds,
    chosen when the heads are read (`part` None)."""

    account: Account
    amount_minor: int
    part: str | None


Chooser = Callable[[Leg, dict[str, "Head"], int, Striping], list[tuple[str, int]]]


def route(request: EntryRequest, striping: Striping, stripe: int) -> list[Leg]:
    """Route each posting: plain accounts to themselves; credits and legs of accounts that
    may go negative to the writer's stripe (`stripe`, taken modulo the kind's count); debits
    of striped constrained accounts to their whole family."""
    legs = []
    for posting in request.postings:
        account, minor = posting.account, posting.amount.minor
        if not is_striped(account):
            legs.append(Leg(account, minor, account.id))
        elif minor < 0 and not account.may_go_negative:
            legs.append(Leg(account, minor, None))
        else:
            legs.append(Leg(account, minor, part_id(account, stripe % striping.count(account.kind))))
    return legs


def heads_query(legs: list[Leg]) -> tuple[dict, int]:
    """The one read of every head the legs need, and its limit."""
    ids = sorted({leg.part for leg in legs if leg.part is not None})
    families = [family_query(leg.account) for leg in legs if leg.part is None]
    branches = ([{"_id": {"$in": ids}}] if ids else []) + families
    query = branches[0] if len(branches) == 1 else {"$or": branches}
    return query, len(ids) + STRIPES_MAX * len(families)


def next_claims(legs: list[Leg], heads: dict[str, Head], striping: Striping) -> list[str]:
    """The claims an entry planned on `heads` would make next on every part it could use —
    if another entry holds one unprojected, the heads were not current."""
    parts = {leg.part for leg in legs if leg.part is not None}
    for leg in legs:
        if leg.part is None:
            parts |= {part for part in heads if logical_id(part) == leg.account.id}
            parts |= {part_id(leg.account, stripe) for stripe in range(striping.count(leg.account.kind))}
    return [claim_of(part, heads.get(part, Head()).version + 1) for part in sorted(parts)]


def plan_claims(request: EntryRequest, legs: list[Leg], heads: dict[str, Head], preferred: int,
                striping: Striping, choose: Chooser | None = None) -> tuple[list[dict], list[Shortfall]]:
    """Each stored posting with the part it lands on, the version it claims, the balance
    after it and its part's previous entry hash; plus every rule the resulting balances
    would break (nothing is journaled then)."""
    postings, shortfalls = [], []
    for leg in legs:
        record = {"logical": leg.account.id, "kind": leg.account.kind.value, "owner": leg.account.owner, "asset": leg.account.asset}
        takes = [(leg.part, leg.amount_minor)] if leg.part is not None else (choose or takes_for_debit)(leg, heads, preferred, striping)
        if not takes:
            total = sum(head.balance_minor for part, head in heads.items() if logical_id(part) == leg.account.id)
            shortfalls.append(Shortfall("insufficient_funds", leg.account.id, total, leg.amount_minor, 0))
            continue
        low, high = part_range(leg.account)
        for part, minor in takes:
            head = heads.get(part, Head())
            after = head.balance_minor + minor
            if minor < 0 and after < 0 and not leg.account.may_go_negative:
                shortfalls.append(Shortfall("insufficient_funds", part, head.balance_minor, minor, head.version))
            elif not low <= after <= high:
                shortfalls.append(Shortfall("overflow", part, head.balance_minor, minor, head.version))
            postings.append(dict(record, account=part, amount_minor=minor, version=head.version + 1,
                                 balance_after=after, prev_hash=head.head_hash))
    return postings, shortfalls


def takes_for_debit(leg: Leg, heads: dict[str, Head], preferred: int, striping: Striping) -> list[tuple[str, int]]:
    """Where a debit of a striped constrained account is taken from: the writer's own stripe
    when it holds enough, else one stripe that does (picked at random, so writers spread),
    else the largest stripes in turn (a split within the one entry). Empty when the logical
    balance is short."""
    need = -leg.amount_minor
    family = sorted((part, head.balance_minor) for part, head in heads.items() if logical_id(part) == leg.account.id)
    own = part_id(leg.account, preferred % striping.count(leg.account.kind))
    balances = dict(family)
    if balances.get(own, 0) >= need:
        return [(own, -need)]
    enough = [part for part, balance in family if balance >= need]
    if enough:
        return [(enough[random_below(len(enough))], -need)]
    if sum(balance for _, balance in family if balance > 0) < need:
        return []
    takes = []
    for part, balance in sorted(family, key=lambda item: (-item[1], item[0])):
        take = min(balance, need)
        takes.append((part, -take))
        need -= take
        if need == 0:
            return takes
    raise AssertionError("unreachable: the family holds enough")


def entry_document(request: EntryRequest, now: datetime, postings: list[dict]) -> dict:
    """The journal record, committed by its insert: `claims` (unique multikey index) make
    it the one owner of the next version of each of its accounts."""
    document = {
        "_id": new_entry_id(now),
        "idempotency_key": request.idempotency_key,
        "type": request.type,
        "postings": postings,
        "claims": [claim_of(p["account"], p["version"]) for p in postings],
        # the stored parts, then the logical accounts they belong to (entries by account find either)
        "accounts": list(dict.fromkeys([p["account"] for p in postings] + [p["logical"] for p in postings])),
        "user_ids": sorted({p["owner"] for p in postings if p["kind"].startswith("user.")}),
        "assets": sorted({p["asset"] for p in postings}),
        "actor": request.actor,
        "flow_ref": request.flow_ref,
        "memo": request.memo,
        "metadata": dict(request.metadata),
        "hold_id": request.hold_id,
        "hold_action": request.hold_action,
        "created_at": now,
        "request_hash": request_hash(request),
        "state": "applied",
        "unprojected": True,
        "unfolded": True,  # sparse flag: core.rollups has not folded this entry yet (cleared in batch)
    }
    document["entry_hash"] = entry_hash(document)
    return document


def check_balanced(document: dict) -> list[str]:
    """The paired check on read: problems with a stored entry's postings (empty if fine)."""
    problems = []
    sums: dict[str, int] = defaultdict(int)
    for posting in document.get("postings", []):
        amount_minor = posting.get("amount_minor")
        if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
            problems.append(f"posting on {posting.get('account')} has non-integer amount {amount_minor!r}")
            continue
        sums[posting.get("asset")] += amount_minor
    problems += [f"{asset} postings sum to {total}" for asset, total in sums.items() if total != 0]
    if len(document.get("postings", [])) < 2:
        problems.append("fewer than two postings")
    return problems


class PostingView(BaseModel):
    """One stored posting: `account` is the stored part (its version chain), `logical` the
    account flows and reports name (the same id unless the account is striped)."""

    account: str
    logical: str = ""
    kind: str
    owner: str
    asset: str
    amount_minor: int
    version: int
    balance_after: int
    prev_hash: str

    @model_validator(mode="after")
    def _logical(self) -> PostingView:
        if not self.logical:
            object.__setattr__(self, "logical", self.account)
        return self


class Entry(BaseModel):
    """An entry as read back from the journal."""

    model_config = ConfigDict(frozen=True)

    id: str
    idempotency_key: str
    type: str
    postings: list[PostingView]
    state: EntryState
    actor: str
    flow_ref: str | None
    memo: str
    metadata: dict
    hold_id: str | None
    hold_action: HoldAction | None
    created_at: datetime
    request_hash: str
    entry_hash: str

    @classmethod
    def from_document(cls, document: dict) -> Entry:
        fields = {key: document.get(key) for key in cls.model_fields if key != "id"}
        return cls(id=document["_id"], **fields)

    def amount_for(self, account_id: str, registry: AssetRegistry) -> Amount | None:
        """What the entry moved on one logical account (all its parts), or None."""
        legs = [p for p in self.postings if account_id in (p.logical, p.account)]
        return from_minor(sum(p.amount_minor for p in legs), legs[0].asset, registry) if legs else None
