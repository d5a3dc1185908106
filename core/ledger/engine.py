"""The ledger engine: crash-safe, idempotent posting without multi-document transactions.

Protocol (see docs/posting-protocol.md for states and what readers observe):
1. validate the request (nothing written on refusal);
2. insert the entry as `pending` — the commit point; a unique idempotency key makes a
   replay find the original;
3. apply each leg, debits first, as one conditional `find_one_and_update` on the
   account's balance document that also pushes the entry id into `pending` (the marker
   that makes the leg idempotent) and, on constrained accounts, requires enough funds;
4. decide the outcome exactly once by appending the audit event `entry:<id>:outcome`
   (unique key): `applied` if every leg is in, `rejected` if a debit failed;
5. finalise the entry's state, then reverse rejected legs / drop the markers.
`recover()` drives every entry left `pending` by a crash through the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.ledger import accounts as acct
from core.ledger.accounts import Account, AccountKind, parse_account_id
from core.ledger.audit import AuditLog
from core.clock import Clock, SystemClock
from core.ledger.entries import (
    TERMINAL_STATES,
    Entry,
    EntryRequest,
    entry_document,
    make_request,
    validate_request,
)
from core.errors import (
    EntryNotFoundError,
    HoldClosedError,
    HoldNotFoundError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidEntryError,
    StoreError,
)
from core.ledger.money import DEFAULT_REGISTRY, Amount, AssetRegistry, from_minor, positive_amount
from core.ledger.store import DuplicateKeyStoreError, Store

PAGE_SIZE_MAX = 200
RECOVERY_STALE_AFTER = timedelta(seconds=60)
RECOVERY_BATCH_MAX = 10_000
ACCOUNT_CREATE_ATTEMPTS_MAX = 5


@dataclass(frozen=True)
class UserBalance:
    asset: str
    available: Amount
    locked: Amount

    @property
    def total(self) -> Amount:
        return self.available + self.locked


@dataclass(frozen=True)
class Page:
    items: list
    page: int
    page_size: int
    has_more: bool


@dataclass
class RecoveryReport:
    entries_driven: list[str] = field(default_factory=list)
    markers_cleared: int = 0
    legs_reversed: int = 0

    def as_dict(self) -> dict:
        return {"entries_driven": self.entries_driven, "markers_cleared": self.markers_cleared, "legs_reversed": self.legs_reversed}


@dataclass(frozen=True)
class EntryFilter:
    account: str | None = None
    user: str | None = None
    type: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    hold_id: str | None = None
    flow_ref: str | None = None

    def query(self) -> dict:
        """A filter of plain values only: no caller text can become an operator."""
        query: dict = {}
        for field_name, store_field in (("account", "accounts"), ("user", "user_ids"), ("type", "type"),
                                        ("state", "state"), ("hold_id", "hold_id"), ("flow_ref", "flow_ref")):
            value = getattr(self, field_name)
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidEntryError(f"filter {field_name} must be text", field=field_name)
                query[store_field] = value
        window = {}
        if self.since is not None:
            window["$gte"] = self.since
        if self.until is not None:
            window["$lt"] = self.until
        if window:
            query["created_at"] = window
        return query


class Ledger:
    """Posts entries and reads balances. One per store; safe to share across threads."""

    def __init__(self, store: Store, clock: Clock | None = None, registry: AssetRegistry = DEFAULT_REGISTRY) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.registry = registry
        self.audit = AuditLog(store, self.clock)
        self._entries = store.collection("entries")
        self._balances = store.collection("balances")

    # -- posting ---------------------------------------------------------------------------
    def post(self, request: EntryRequest) -> Entry:
        """Journal and apply one entry, idempotently.

        Returns: the applied Entry (the original one when the key was seen before).
        Raises: InvalidEntryError/UnbalancedEntryError/UnknownAssetError before anything
            is written; IdempotencyConflictError when the key was used for a different
            request; InsufficientFundsError when a debit failed (the entry is journaled as
            rejected, no balance changed).
        """
        validate_request(request, self.registry)
        document = entry_document(request, self.clock.now())
        try:
            self._entries.insert_one(document)
        except DuplicateKeyStoreError:
            existing = self._entries.find_one({"idempotency_key": request.idempotency_key})
            if existing is None:
                raise StoreError("duplicate entry id; retry") from None
            if existing["request_hash"] != document["request_hash"]:
                raise IdempotencyConflictError(
                    f"idempotency key {request.idempotency_key!r} was used for a different request",
                    key=request.idempotency_key, entry_id=existing["_id"],
                ) from None
            document = existing
            if document["state"] not in TERMINAL_STATES:
                document = self._drive(document, check_decision=True)
            return self._result(document)
        return self._result(self._drive(document))

    def _result(self, document: dict) -> Entry:
        if document["state"] == "rejected":
            reason = document.get("reason") or {}
            raise InsufficientFundsError(
                f"entry {document['_id']} rejected: {reason.get('message', 'insufficient funds')}",
                entry_id=document["_id"], key=document["idempotency_key"], **{k: v for k, v in reason.items() if k != "message"},
            )
        assert document["state"] == "applied", document["state"]
        return Entry.from_document(document)

    def _drive(self, document: dict, check_decision: bool = False) -> dict:
        """Take a pending entry to its terminal state (the same path for post and recover)."""
        entry_id = document["_id"]
        decided = self.audit.by_key(_outcome_key(entry_id)) if check_decision else None
        failure = None
        if decided is None:
            for posting in _ordered_legs(document["postings"]):
                failure = self._apply_leg(entry_id, posting)
                if failure is not None:
                    break
        outcome = decided or self._decide(document, failure)
        state, reason = outcome["data"]["state"], outcome["data"].get("reason")
        finalized = self._entries.find_one_and_update(
            {"_id": entry_id, "state": "pending"},
            {"$set": {"state": state, "reason": reason, "decided_at": outcome["at"]}},
        )
        document = finalized or self._entries.find_one({"_id": entry_id})
        assert document is not None and document["state"] == state, "an entry's outcome is decided once"
        if state == "applied":
            self._balances.update_many({"_id": {"$in": document["accounts"]}}, {"$pull": {"pending": entry_id}})
        else:
            for posting in document["postings"]:
                self._reverse_leg(entry_id, posting)
        return document

    def _apply_leg(self, entry_id: str, posting: dict) -> dict | None:
        """Apply one leg at most once. Returns None on success, or the rejection reason."""
        account = parse_account_id(posting["account"])
        amount_minor = posting["amount_minor"]
        constrained = amount_minor < 0 and not account.may_go_negative
        query: dict = {"_id": account.id, "pending": {"$ne": entry_id}}
        if constrained:
            query["balance_minor"] = {"$gte": -amount_minor}
        update = {
            "$inc": {"balance_minor": amount_minor},
            "$push": {"pending": entry_id},
            "$setOnInsert": {"kind": account.kind.value, "owner": account.owner, "asset": account.asset},
        }
        for _ in range(ACCOUNT_CREATE_ATTEMPTS_MAX):
            try:
                if self._balances.find_one_and_update(query, update, upsert=not constrained) is not None:
                    return None
            except DuplicateKeyStoreError:
                pass  # the document exists but did not match: look at it
            current = self._balances.find_one({"_id": account.id})
            if current is not None and entry_id in current.get("pending", []):
                return None  # applied before (replay or recovery)
            if constrained:
                available = current["balance_minor"] if current else 0
                if available >= -amount_minor:
                    continue  # funds arrived between the two reads: try again
                return {
                    "code": "insufficient_funds",
                    "message": f"{account.id} holds {available} minor units, needs {-amount_minor}",
                    "account": account.id, "needed_minor": -amount_minor, "available_minor": available,
                }
        raise StoreError(f"could not apply leg on {account.id}", account=account.id)

    def _reverse_leg(self, entry_id: str, posting: dict) -> bool:
        """Undo a leg that carries this entry's marker (compensation). Only debits of a
        rejected entry are ever applied, so the reversal is a credit and cannot fail."""
        result = self._balances.find_one_and_update(
            {"_id": posting["account"], "pending": entry_id},
            {"$inc": {"balance_minor": -posting["amount_minor"]}, "$pull": {"pending": entry_id}},
        )
        return result is not None

    def _decide(self, document: dict, failure: dict | None) -> dict:
        state = "rejected" if failure else "applied"
        event, _ = self.audit.append(
            type=f"entry.{state}",
            actor=document["actor"],
            target=document["_id"],
            user=(document.get("user_ids") or [None])[0],
            data={
                "state": state,
                "reason": failure,
                "entry_hash": document["entry_hash"],
                "idempotency_key": document["idempotency_key"],
                "entry_type": document["type"],
                "postings": [[p["account"], p["amount_minor"]] for p in document["postings"]],
            },
            event_key=_outcome_key(document["_id"]),
        )
        return event

    # -- recovery ----------------------------------------------------------------------------
    def recover(self, stale_after: timedelta = RECOVERY_STALE_AFTER) -> RecoveryReport:
        """Finish or compensate every entry a crash left mid-way, and clear stale markers.

        Only entries older than `stale_after` are touched, so a live writer is not raced
        (racing would still be safe: every step is guarded). Runs at start-up and on demand.
        """
        report = RecoveryReport()
        cutoff = self.clock.now() - stale_after
        for document in self._entries.find({"state": "pending", "created_at": {"$lte": cutoff}},
                                           sort=[("created_at", 1)], limit=RECOVERY_BATCH_MAX):
            self._drive(document, check_decision=True)
            report.entries_driven.append(document["_id"])
        for balance in self._balances.find({"pending": {"$ne": []}}, limit=RECOVERY_BATCH_MAX):
            for entry_id in list(balance.get("pending", [])):
                entry = self._entries.find_one({"_id": entry_id})
                assert entry is not None, f"marker {entry_id} without a journal entry"
                if entry["state"] == "applied":
                    self._balances.update_one({"_id": balance["_id"]}, {"$pull": {"pending": entry_id}})
                    report.markers_cleared += 1
                elif entry["state"] == "rejected":
                    posting = next(p for p in entry["postings"] if p["account"] == balance["_id"])
                    report.legs_reversed += int(self._reverse_leg(entry_id, posting))
        return report

    # -- holds ---------------------------------------------------------------------------------
    def place_hold(self, *, hold_id: str, source: Account, held: Account, amount: object, actor: str,
                   flow_ref: str | None = None, memo: str = "", metadata: dict | None = None) -> Entry:
        """Set `amount` aside: move it from `source` to `held` under `hold_id`
        (user.available → user.locked, or platform.liquidity → platform.liquidity_reserved).

        Raises: InsufficientFundsError, NonPositiveAmountError and amount errors,
            IdempotencyConflictError if `hold_id` was placed with different terms.
        """
        value = positive_amount(amount, source.asset, self.registry)
        return self.post(make_request(
            idempotency_key=f"hold:{hold_id}:place", type="hold.place", actor=actor, flow_ref=flow_ref,
            memo=memo, metadata=metadata or {}, hold_id=hold_id, hold_action="place",
            postings=_pair(source, held, value),
        ))

    def place_user_hold(self, *, hold_id: str, user_id: str, asset: str, amount: object, actor: str,
                        flow_ref: str | None = None, memo: str = "", metadata: dict | None = None) -> Entry:
        """A hold on a user's funds: available → locked. Raises: as `place_hold`."""
        return self.place_hold(hold_id=hold_id, source=acct.user_available(user_id, asset), held=acct.user_locked(user_id, asset),
                               amount=amount, actor=actor, flow_ref=flow_ref, memo=memo, metadata=metadata)

    def hold(self, hold_id: str) -> tuple[Entry, Entry | None]:
        """The placing entry of an applied hold and its closing entry (None while open).
        Raises: HoldNotFoundError."""
        documents = self._entries.find({"hold_id": hold_id}, limit=4)
        place = next((d for d in documents if d["hold_action"] == "place" and d["state"] == "applied"), None)
        if place is None:
            raise HoldNotFoundError(f"no hold {hold_id!r}", hold_id=hold_id)
        close = next((d for d in documents if d["hold_action"] != "place" and d["state"] == "applied"), None)
        return Entry.from_document(place), (Entry.from_document(close) if close else None)

    def open_holds(self, user_id: str, placed_max: int = PAGE_SIZE_MAX) -> list[Entry]:
        """Placing entries of the user's still-open holds among the `placed_max` most recently
        placed (newest first): two queries, however many holds there are."""
        acct.check_owner_id(user_id)
        placed = self._entries.find({"user_ids": user_id, "hold_action": "place", "state": "applied"},
                                    sort=[("created_at", -1), ("_id", -1)], limit=min(placed_max, PAGE_SIZE_MAX))
        if not placed:
            return []
        closes = self._entries.find({"hold_id": {"$in": [d["hold_id"] for d in placed]}, "hold_action": {"$in": ["release", "consume"]},
                                     "state": "applied"}, projection={"hold_id": 1}, limit=len(placed))
        closed = {d["hold_id"] for d in closes}
        return [Entry.from_document(d) for d in placed if d["hold_id"] not in closed]

    def _hold_legs(self, place: Entry) -> tuple[Account, Account, Amount]:
        source = next(p for p in place.postings if p.amount_minor < 0)
        held = next(p for p in place.postings if p.amount_minor > 0)
        value = from_minor(held.amount_minor, held.asset, self.registry)
        return parse_account_id(source.account), parse_account_id(held.account), value

    def release_hold(self, *, hold_id: str, actor: str, memo: str = "", entry_type: str = "hold.release",
                     metadata: dict | None = None) -> Entry:
        """Return a hold's funds to where they came from.
        Raises: HoldNotFoundError, HoldClosedError."""
        place, _ = self.hold(hold_id)
        source, held, value = self._hold_legs(place)
        return self._close_hold(place, "release", memo, actor, _pair(held, source, value), entry_type, metadata)

    def consume_hold(self, *, hold_id: str, actor: str, destinations: list[tuple[Account, Amount]], memo: str = "",
                     entry_type: str = "hold.consume", metadata: dict | None = None,
                     extra_postings: list[tuple[Account, Amount]] = ()) -> Entry:
        """Pay a hold's whole amount out to `destinations` (which must add up to it), in one
        entry that may carry further balanced `extra_postings` (e.g. the other side of a trade).
        Raises: HoldNotFoundError, HoldClosedError, UnbalancedEntryError."""
        place, _ = self.hold(hold_id)
        _, held, value = self._hold_legs(place)
        postings = [{"account": held, "amount": -value}]
        postings += [{"account": account, "amount": part} for account, part in [*destinations, *extra_postings]]
        return self._close_hold(place, "consume", memo, actor, postings, entry_type, metadata)

    def _close_hold(self, place: Entry, action: str, memo: str, actor: str, postings: list[dict] | tuple,
                    entry_type: str, metadata: dict | None) -> Entry:
        request = make_request(
            idempotency_key=f"hold:{place.hold_id}:close", type=entry_type, actor=actor,
            flow_ref=place.flow_ref, memo=memo, metadata=metadata or {}, hold_id=place.hold_id, hold_action=action,
            postings=tuple(postings),
        )
        try:
            return self.post(request)
        except IdempotencyConflictError as error:
            closing = self._entries.find_one({"_id": error.details["entry_id"]})
            raise HoldClosedError(
                f"hold {place.hold_id} was already {closing['hold_action'] if closing else 'closed'}d",
                hold_id=place.hold_id, closed_by=error.details["entry_id"],
            ) from None

    # -- reads ---------------------------------------------------------------------------------
    def balance(self, account: Account) -> Amount:
        """The projected balance of one account (zero if never used)."""
        document = self._balances.find_one({"_id": account.id})
        return from_minor(document["balance_minor"] if document else 0, account.asset, self.registry)

    def balances_of_kind(self, kind: AccountKind) -> dict[str, int]:
        """account id → balance in minor units for every account of `kind`."""
        documents = self._balances.find({"kind": kind.value}, projection={"balance_minor": 1})
        return {d["_id"]: d["balance_minor"] for d in documents}

    def user_balances(self, user_id: str) -> dict[str, UserBalance]:
        """Available, locked and total per asset for one user (one query)."""
        acct.check_owner_id(user_id)
        documents = self._balances.find(
            {"owner": user_id, "kind": {"$in": [AccountKind.USER_AVAILABLE.value, AccountKind.USER_LOCKED.value]}}
        )
        minor: dict[str, dict[str, int]] = {}
        for document in documents:
            minor.setdefault(document["asset"], {"user.available": 0, "user.locked": 0})[document["kind"]] = document["balance_minor"]
        return {
            asset: UserBalance(asset, from_minor(v["user.available"], asset, self.registry), from_minor(v["user.locked"], asset, self.registry))
            for asset, v in sorted(minor.items())
        }

    def entry(self, entry_id: str) -> Entry:
        """Raises: EntryNotFoundError."""
        document = self._entries.find_one({"_id": entry_id}) if isinstance(entry_id, str) else None
        if document is None:
            raise EntryNotFoundError(f"no entry {entry_id!r}", entry_id=entry_id)
        return Entry.from_document(document)

    def entry_by_key(self, key: str) -> Entry | None:
        document = self._entries.find_one({"idempotency_key": key}) if isinstance(key, str) else None
        return Entry.from_document(document) if document else None

    def entries(self, entry_filter: EntryFilter = EntryFilter(), *, page: int = 0, page_size: int = 50) -> Page:
        """Entries newest first, one page at a time (paged on the server)."""
        if not (1 <= page_size <= PAGE_SIZE_MAX) or page < 0:
            raise InvalidEntryError(f"page_size must be 1..{PAGE_SIZE_MAX} and page ≥ 0", page_size=page_size, page=page)
        query = entry_filter.query()
        sort = [("created_at", -1), ("_id", -1)]
        documents = self._entries.find(query, sort=sort, skip=page * page_size, limit=page_size + 1)
        items = [Entry.from_document(d) for d in documents[:page_size]]
        return Page(items, page, page_size, len(documents) > page_size)


def _outcome_key(entry_id: str) -> str:
    return f"entry:{entry_id}:outcome"


def _ordered_legs(postings: list[dict]) -> list[dict]:
    """Debits first: if one fails, only debits need compensating, and reversing a debit
    (a credit) can never fail."""
    return sorted(postings, key=lambda p: p["amount_minor"] >= 0)


def _pair(source: Account, destination: Account, value: Amount) -> tuple[dict, ...]:
    return ({"account": source, "amount": -value}, {"account": destination, "amount": value})

