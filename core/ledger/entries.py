"""Journal entries: the request a caller makes, its validation, and the stored record."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.ledger.accounts import Account, check_owner_id
from core.errors import InvalidEntryError, UnbalancedEntryError
from core.ledger.hashing import digest
from core.ledger.money import Amount, AssetRegistry, from_minor

POSTINGS_PER_ENTRY_MAX = 16
IDEMPOTENCY_KEY_LENGTH_MAX = 200
MEMO_LENGTH_MAX = 500
METADATA_FIELDS_MAX = 32
METADATA_TEXT_LENGTH_MAX = 500
ENTRY_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
METADATA_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

EntryState = Literal["pending", "applied", "rejected"]
TERMINAL_STATES: frozenset[str] = frozenset({"applied", "rejected"})
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

    @field_validator("idempotency_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not KEY_PATTERN.match(value):
            raise ValueError("idempotency key must be 1-200 printable characters without spaces")
        return value

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not ENTRY_TYPE_PATTERN.match(value):
            raise ValueError("entry type must match [a-z][a-z0-9_.]*")
        return value

    @field_validator("memo")
    @classmethod
    def _memo(cls, value: str) -> str:
        if len(value) > MEMO_LENGTH_MAX:
            raise ValueError(f"memo longer than {MEMO_LENGTH_MAX} characters")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict) -> dict:
        if len(value) > METADATA_FIELDS_MAX:
            raise ValueError(f"more than {METADATA_FIELDS_MAX} metadata fields")
        for key, item in value.items():
            if not METADATA_KEY_PATTERN.match(key):
                raise ValueError(f"metadata key {key!r} must match [a-z][a-z0-9_]*")
            if isinstance(item, str) and len(item) > METADATA_TEXT_LENGTH_MAX:
                raise ValueError(f"metadata {key} longer than {METADATA_TEXT_LENGTH_MAX}")
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
    "_id", "idempotency_key", "type", "postings", "actor", "flow_ref", "memo",
    "metadata", "hold_id", "hold_action", "created_at", "request_hash",
)


def entry_hash(document: dict) -> str:
    """Hash of an entry's immutable fields; an edit behind the engine's back changes it."""
    return digest({field: document.get(field) for field in IMMUTABLE_FIELDS})


def new_entry_id(now: datetime) -> str:
    """Time-ordered unique id."""
    return f"E{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}{uuid.uuid4().hex[:10]}"


def entry_document(request: EntryRequest, now: datetime) -> dict:
    """The journal record as first inserted (state `pending`)."""
    postings = posting_records(request)
    document = {
        "_id": new_entry_id(now),
        "idempotency_key": request.idempotency_key,
        "type": request.type,
        "postings": postings,
        "accounts": [p["account"] for p in postings],
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
        "state": "pending",
        "decided_at": None,
        "reason": None,
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
    account: str
    kind: str
    owner: str
    asset: str
    amount_minor: int


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
    decided_at: datetime | None
    reason: dict | None
    request_hash: str
    entry_hash: str

    @classmethod
    def from_document(cls, document: dict) -> Entry:
        fields = {key: document.get(key) for key in cls.model_fields if key != "id"}
        return cls(id=document["_id"], **fields)

    def amount_for(self, account_id: str, registry: AssetRegistry) -> Amount | None:
        for posting in self.postings:
            if posting.account == account_id:
                return from_minor(posting.amount_minor, posting.asset, registry)
        return None
