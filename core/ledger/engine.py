"""The ledger engine: exactly-once posting without multi-document transactions.

Protocol v2 — per-account version claims (see docs/posting-protocol.md and
shared EXACTLY_ONCE.md). Every balance document holds `version`, `balance_minor` and
`head_hash`; a missing one is version 0. A hot logical account (fee wallet, float,
external) is stored as several such accounts, its stripes (core.ledger.stripes).
1. validate the request (nothing written on refusal) and route each posting to a stored
   part: the writer's stripe, or for a checked debit of a striped account its whole family;
2. read the balance documents of the entry's parts (one `find`);
3. compute each balance after the entry; a constrained account below zero or a balance
   outside int64 refuses the request — nothing is journaled;
4. insert the entry — the commit point — carrying `claims` (`<account>@<version+1>`,
   unique multikey index), each posting's `balance_after` and its account's previous
   entry hash. A duplicate idempotency key is a replay (or a conflict); a duplicate claim
   means another entry owns that version: help project it, then go back to 2;
5. project: per account, a compare-and-set from `version` v to v+1 (never `$inc`).
Re-applying — by a retry, a recovery, a helper, a process with a skewed clock — matches
nothing and is a no-op, so whoever drives an entry, each leg lands exactly once.
A writer clears the `unprojected` flags of the entries it projected, in batches
(core.ledger.flags); `recover()` projects every entry still flagged and clears the rest.
Time never decides whether helping is safe; it only decides when recovery runs.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from core.base.errors import (
    BalanceOverflowError,
    ConfigurationError,
    ContentionError,
    EntryNotFoundError,
    HoldClosedError,
    HoldNotFoundError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidEntryError,
    LedgerError,
)
from core.base.clock import Clock, SystemClock
from core.ledger import accounts as acct
from core.ledger.accounts import STRIPES_MAX, Account, AccountKind, parse_account_id, stored_account
from core.ledger.audit import AUDIT_STREAMS_DEFAULT, AuditLog
from core.ledger.entries import (
    Entry,
    EntryRequest,
    Head,
    Leg,
    Shortfall,
    claim_of,
    entry_document,
    heads_query,
    make_request,
    next_claims,
    plan_claims,
    request_hash,
    route,
    validate_request,
)
from core.ledger.money import DEFAULT_REGISTRY, Amount, AssetRegistry, from_minor, positive_amount
from core.ledger.flags import FlagBatch
from core.ledger.ids import first_slot, other_than
from core.ledger.store import DuplicateKeyStoreError, Store
from core.ledger.stripes import DEFAULT_STRIPING, Striping, family_query, is_striped, logical_id
from core.ledger.arguments import account_kind, arguments, optional_arguments
from core.ledger.reads import PAGE_SIZE_MAX, EntryFilter, Page, RecoveryReport, UserBalance

CLAIM_ATTEMPTS_MAX = 64  # a post that keeps losing version claims gives up with ContentionError
RECOVERY_STALE_AFTER = timedelta(0)  # recovery may help any entry at once: helping is always safe
RECOVERY_BATCH_MAX = 1_000
RECOVERY_BATCHES_MAX = 1_000


class Ledger:
    """Posts entries and reads balances. One per store; safe to share across threads."""

    def __init__(self, store: Store, clock: Clock | None = None, registry: AssetRegistry = DEFAULT_REGISTRY,
                 striping: Striping = DEFAULT_STRIPING, audit_streams: int = AUDIT_STREAMS_DEFAULT) -> None:
        if not isinstance(striping, Striping):
            raise ConfigurationError("striping must be a core.ledger.Striping (Striping.build)")
        self.store = store
        self.clock = clock or SystemClock()
        self.registry = registry
        self.striping = striping
        self.audit = AuditLog(store, self.clock, audit_streams)
        self._entries = store.collection("entries")
        self._balances = store.collection("balances")
        self._affinity = threading.local()  # this thread's stripe (core.ledger.stripes)
        self._flags = FlagBatch(self._entries, self.clock)

    # -- posting ---------------------------------------------------------------------------
    def post(self, request: EntryRequest) -> Entry:
        """Journal and project one entry, exactly once, whoever else drives it.

        Cost: 1 read + 1 insert + 1 update per stored part (4 operations for two legs), plus
        one flag-clearing update per FLAG_BATCH_MAX entries; a replay of a projected entry
        costs 3.
        Returns: the Entry (the original one when the key was seen before).
        Raises: InvalidEntryError/UnbalancedEntryError/UnknownAssetError, and
            InsufficientFundsError/BalanceOverflowError when a balance would leave its range —
            nothing is written for any of them; IdempotencyConflictError when the key was used
            for a different request; ContentionError when other writers kept winning the
            accounts' versions for CLAIM_ATTEMPTS_MAX attempts (safe to retry).
        """
        if not isinstance(request, EntryRequest):
            raise InvalidEntryError(f"post takes an EntryRequest (from make_request), not {type(request).__name__}")
        validate_request(request, self.registry)
        for _ in range(CLAIM_ATTEMPTS_MAX):
            legs = route(request, self.striping, self._stripe())
            heads = self._heads(legs)
            postings, shortfalls = self._plan(request, legs, heads)
            if shortfalls:
                replayed = self._refuse(request, legs, heads, shortfalls)
                if replayed is not None:
                    return replayed
                continue  # an unprojected claim was helped: read again
            document = entry_document(request, self.clock.now(), postings)
            try:
                self._entries.insert_one(document)
            except DuplicateKeyStoreError:
                existing = self._entries.find_one({"idempotency_key": request.idempotency_key})
                if existing is not None:
                    return self._replay(request, existing, heads)
                lost = self._help_claims(document["claims"])
                if any(is_striped(parse_account_id(claim.rpartition("@")[0])) for claim in lost):
                    self._move_stripe()  # lost a hot part to another writer: take another stripe
                continue
            self._commit(document)
            return Entry.from_document(document)
        accounts = [posting.account.id for posting in request.postings]
        raise ContentionError(f"accounts {accounts} stayed contended; retry", accounts=accounts, attempts=CLAIM_ATTEMPTS_MAX)

    def _commit(self, document: dict) -> None:
        """Project a journaled entry, then hand its flag to the batch (cleared after, never before)."""
        self.project(document)
        self._flags.projected(document["_id"])

    def _stripe(self) -> int:
        """This thread's stripe: kept while it wins, changed at random when it loses."""
        stripe = getattr(self._affinity, "stripe", None)
        if stripe is None:
            stripe = self._affinity.stripe = first_slot(STRIPES_MAX)
        return stripe

    def _move_stripe(self) -> None:
        self._affinity.stripe = other_than(self._stripe(), STRIPES_MAX)

    def _plan(self, request: EntryRequest, legs: list[Leg], heads: dict[str, Head]) -> tuple[list[dict], list[Shortfall]]:
        return plan_claims(request, legs, heads, self._stripe(), self.striping)

    def _heads(self, legs: list[Leg]) -> dict[str, Head]:
        query, limit = heads_query(legs)
        documents = self._balances.find(query, projection={"version": 1, "balance_minor": 1, "head_hash": 1}, limit=limit)
        return {d["_id"]: Head.of(d) for d in documents}

    def _replay(self, request: EntryRequest, existing: dict, heads: dict[str, Head]) -> Entry:
        """The key was seen: the same request returns the original entry (projected first);
        a different one is a conflict. The logical request decides sameness: a retry may
        have planned other stripes."""
        if existing["request_hash"] != request_hash(request):
            raise IdempotencyConflictError(
                f"idempotency key {request.idempotency_key!r} was used for a different request",
                key=request.idempotency_key, entry_id=existing["_id"],
            )
        behind = any(heads.get(p["account"], Head()).version < p["version"] for p in existing["postings"])
        if behind and existing.get("unprojected"):  # an unflagged entry is projected: the flag is cleared only after
            self.project(existing)
        return Entry.from_document(existing)

    def _refuse(self, request: EntryRequest, legs: list[Leg], heads: dict[str, Head], shortfalls: list[Shortfall]) -> Entry | None:
        """Before refusing, make sure the heads read were current. Returns the original
        entry of a replay, or None after helping an unprojected claim on a next version
        (the caller reads again). Otherwise raises the refusal — nothing was written."""
        existing = self._entries.find_one({"idempotency_key": request.idempotency_key})
        if existing is not None:
            return self._replay(request, existing, heads)
        if self._help_claims(next_claims(legs, heads, self.striping)):
            return None
        shortfall = shortfalls[0]
        details = {"account": shortfall.account, "balance_minor": shortfall.balance_minor,
                   "amount_minor": shortfall.amount_minor, "key": request.idempotency_key}
        if shortfall.rule == "overflow":
            raise BalanceOverflowError(f"{shortfall.account} would hold more than the largest balance the ledger can store", **details)
        raise InsufficientFundsError(
            f"{shortfall.account} holds {shortfall.balance_minor} minor units, needs {-shortfall.amount_minor}",
            needed_minor=-shortfall.amount_minor, available_minor=shortfall.balance_minor, **details,
        )

    def _help_claims(self, claims: list[str]) -> set[str]:
        """Project the entries that own any of `claims`. Returns the claims they own."""
        owners = self._entries.find({"claims": {"$in": claims}}, limit=len(claims))
        for owner in owners:
            self.project(owner)
        return set(claims).intersection(claim for owner in owners for claim in owner.get("claims", []))

    def flush(self) -> None:
        """Clear the `unprojected` flags of the entries this process projected (batched)."""
        self._flags.flush()

    def project(self, document: dict) -> None:
        """Move each of the entry's accounts from the version before its claim to the claimed
        one. A compare-and-set: when it matches nothing the leg is already in (a projection
        never lags its claims by more than one version, because a claim is made only on a
        projected version and a writer meeting an unprojected claim helps it first)."""
        for posting in document["postings"]:
            version = posting["version"]
            update = {
                "$set": {"version": version, "balance_minor": posting["balance_after"], "head_hash": document["entry_hash"]},
                "$setOnInsert": {"kind": posting["kind"], "owner": posting["owner"], "asset": posting["asset"]},
            }
            try:
                self._balances.update_one({"_id": posting["account"], "version": version - 1}, update, upsert=version == 1)
            except DuplicateKeyStoreError:
                pass  # version 1 was projected by someone else: the document exists

    # -- recovery ----------------------------------------------------------------------------
    def recover(self, stale_after: timedelta = RECOVERY_STALE_AFTER) -> RecoveryReport:
        """Project every entry still flagged `unprojected` and clear the flags in batch.

        Safe any number of times beside any number of writers: projecting is a
        compare-and-set on versions. `stale_after` only decides *when* to help (entries
        younger than it are left to their writer); it never decides whether helping is
        safe. An entry that cannot be projected (its account's projection was edited, the
        document is malformed) is isolated and reported; the rest go on.
        """
        if not isinstance(stale_after, timedelta) or stale_after < timedelta(0):
            raise InvalidEntryError("stale_after must be a non-negative timedelta", stale_after=repr(stale_after)[:50])
        self._flags.flush()
        report = RecoveryReport()
        cutoff = self.clock.now() - stale_after
        seen: set[str] = set()
        for _ in range(RECOVERY_BATCHES_MAX):
            batch = [d for d in self._entries.find({"unprojected": True}, sort=[("_id", 1)], limit=RECOVERY_BATCH_MAX)
                     if d["_id"] not in seen]
            if not batch:
                break
            seen.update(d["_id"] for d in batch)
            if stale_after > timedelta(0):  # young (by this process's clock, which may be skewed): left to its writer for now
                batch = [d for d in batch if not (isinstance(d.get("created_at"), datetime) and d["created_at"] > cutoff)]
            versions = self._projections({p["account"] for d in batch for p in d["postings"]})
            landed = []
            for document in batch:
                problem = self._recover_one(document, versions)
                if problem:
                    report.poisoned[document["_id"]] = problem
                else:
                    landed.append(document)
            report.poisoned.update(self._heads_unowned(landed, versions))
            done = [d["_id"] for d in landed if d["_id"] not in report.poisoned]
            if done:
                self._entries.update_many({"_id": {"$in": done}, "unprojected": True}, {"$unset": {"unprojected": ""}})
                report.entries_projected += done
        return report

    def _projections(self, accounts: set[str]) -> dict[str, dict]:
        """account → its projection (version, balance, head hash), one read for a whole batch."""
        if not accounts:
            return {}
        documents = self._balances.find({"_id": {"$in": sorted(accounts)}}, projection={"version": 1, "balance_minor": 1, "head_hash": 1},
                                        limit=len(accounts))
        return {d["_id"]: d for d in documents}

    def _recover_one(self, document: dict, versions: dict[str, dict]) -> str:
        """Project one entry if any of its accounts lags its claim, and confirm it landed.
        Returns "" or why it could not."""
        def behind() -> list[str]:
            return [p["account"] for p in document["postings"]
                    if not isinstance(version := (versions.get(p["account"]) or {}).get("version", 0), int) or version < p["version"]]
        try:
            if behind():
                self.project(document)
                versions.update(self._projections({p["account"] for p in document["postings"]}))
            lagging = behind()
        except (LedgerError, KeyError, TypeError, ValueError) as error:
            return f"cannot project: {type(error).__name__}: {error}"[:300]
        return f"projection of {', '.join(lagging)} is behind the entry's claim" if lagging else ""

    def _heads_unowned(self, documents: list[dict], versions: dict[str, dict]) -> dict[str, str]:
        """Entries whose accounts' projections (as read) are not what the journal says: a
        projection at this entry's version must hold its balance and hash, and one ahead of
        it must be the version some entry claimed, with that entry's balance and hash — a
        projection edited ahead of its journal is reported, never silently confirmed.
        One read for the whole batch. Returns entry id → problem."""
        ahead = sorted({(p["account"], versions[p["account"]]["version"]) for d in documents for p in d["postings"]
                        if versions.get(p["account"], {}).get("version", 0) > p["version"]})
        owners: dict[str, tuple[dict, dict]] = {}
        if ahead:
            claims = [claim_of(account, version) for account, version in ahead]
            for entry in self._entries.find({"claims": {"$in": claims}}, projection={"postings": 1, "entry_hash": 1}, limit=len(claims)):
                owners.update({claim_of(p["account"], p["version"]): (entry, p) for p in entry.get("postings", [])})
        problems = {}
        for document in documents:
            for posting in document["postings"]:
                projection = versions.get(posting["account"], {})
                owner = (document, posting) if projection.get("version") == posting["version"] else \
                    owners.get(claim_of(posting["account"], projection.get("version", 0)))
                if owner is None:
                    problems[document["_id"]] = (f"projection of {posting['account']} is at version {projection.get('version')}, "
                                                 f"which no journal entry claims (ahead of its journal)")
                elif (projection.get("balance_minor"), projection.get("head_hash")) != (owner[1]["balance_after"], owner[0]["entry_hash"]):
                    problems[document["_id"]] = (f"projection of {posting['account']} at version {projection.get('version')} "
                                                 f"does not hold what entry {owner[0]['_id']} recorded (edited)")
        return problems

    # -- holds ---------------------------------------------------------------------------------
    def place_hold(self, *, hold_id: str, source: Account, held: Account, amount: object, actor: str,
                   flow_ref: str | None = None, memo: str = "", metadata: dict | None = None) -> Entry:
        """Set `amount` aside: move it from `source` to `held` under `hold_id`
        (user.available → user.locked, or platform.liquidity → platform.liquidity_reserved).

        Raises: InsufficientFundsError, NonPositiveAmountError and amount errors,
            IdempotencyConflictError if `hold_id` was placed with different terms.
        """
        arguments(hold_id=hold_id, source=source, held=held, amount=amount, actor=actor, memo=memo)  # the engine's own checks (core.ledger.arguments)
        optional_arguments(flow_ref=flow_ref, metadata=metadata)
        value = positive_amount(amount, source.asset, self.registry)
        return self.post(make_request(
            idempotency_key=f"hold:{hold_id}:place", type="hold.place", actor=actor, flow_ref=flow_ref,
            memo=memo, metadata=metadata or {}, hold_id=hold_id, hold_action="place",
            postings=_pair(source, held, value),
        ))

    def place_user_hold(self, *, hold_id: str, user_id: str, asset: str, amount: object, actor: str,
                        flow_ref: str | None = None, memo: str = "", metadata: dict | None = None) -> Entry:
        """A hold on a user's funds: available → locked. Raises: as `place_hold`."""
        arguments(hold_id=hold_id, user_id=user_id, asset=asset, amount=amount, actor=actor, memo=memo)  # the engine's own checks (core.ledger.arguments)
        optional_arguments(flow_ref=flow_ref, metadata=metadata)
        return self.place_hold(hold_id=hold_id, source=acct.user_available(user_id, asset), held=acct.user_locked(user_id, asset),
                               amount=amount, actor=actor, flow_ref=flow_ref, memo=memo, metadata=metadata)

    def hold(self, hold_id: str) -> tuple[Entry, Entry | None]:
        """The placing entry of an applied hold and its closing entry (None while open).
        Raises: HoldNotFoundError."""
        arguments(hold_id=hold_id)  # the engine's own checks (core.ledger.arguments)
        documents = self._entries.find({"hold_id": hold_id}, limit=4)
        place = next((d for d in documents if d["hold_action"] == "place" and d["state"] == "applied"), None)
        if place is None:
            raise HoldNotFoundError(f"no hold {hold_id!r}", hold_id=hold_id)
        close = next((d for d in documents if d["hold_action"] != "place" and d["state"] == "applied"), None)
        return Entry.from_document(place), (Entry.from_document(close) if close else None)

    def open_holds(self, user_id: str, placed_max: int = PAGE_SIZE_MAX) -> list[Entry]:
        """Placing entries of the user's still-open holds among the `placed_max` most recently
        placed (newest first): two queries, however many holds there are."""
        arguments(user_id=user_id, placed_max=placed_max)  # the engine's own checks (core.ledger.arguments)
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
        """The logical source and held accounts of a hold and its amount (a debit of the
        float may have been taken from several stripes; the credit lands on one)."""
        source = next(p for p in place.postings if p.amount_minor < 0)
        held = [p for p in place.postings if p.amount_minor > 0]
        value = from_minor(sum(p.amount_minor for p in held), held[0].asset, self.registry)
        return stored_account(source.logical), stored_account(held[0].logical), value  # its own postings: checked when placed

    def release_hold(self, *, hold_id: str, actor: str, memo: str = "", entry_type: str = "hold.release",
                     metadata: dict | None = None) -> Entry:
        """Return a hold's funds to where they came from.
        Raises: HoldNotFoundError, HoldClosedError."""
        arguments(hold_id=hold_id, actor=actor, memo=memo, entry_type=entry_type)  # the engine's own checks (core.ledger.arguments)
        optional_arguments(metadata=metadata)
        place, _ = self.hold(hold_id)
        source, held, value = self._hold_legs(place)
        return self._close_hold(place, "release", memo, actor, _pair(held, source, value), entry_type, metadata)

    def consume_hold(self, *, hold_id: str, actor: str, destinations: list[tuple[Account, Amount]], memo: str = "",
                     entry_type: str = "hold.consume", metadata: dict | None = None,
                     extra_postings: list[tuple[Account, Amount]] = ()) -> Entry:
        """Pay a hold's whole amount out to `destinations` (which must add up to it), in one
        entry that may carry further balanced `extra_postings` (e.g. the other side of a trade).
        Raises: HoldNotFoundError, HoldClosedError, UnbalancedEntryError."""
        arguments(hold_id=hold_id, actor=actor, destinations=destinations, memo=memo, entry_type=entry_type, extra_postings=extra_postings)  # the engine's own checks (core.ledger.arguments)
        optional_arguments(metadata=metadata)
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
        """The projected balance of one logical account — the sum of its stored parts when
        it is striped — in one read (zero if never used)."""
        arguments(account=account)  # the engine's own checks (core.ledger.arguments)
        if is_striped(account):
            documents = self._balances.find(family_query(account), projection={"balance_minor": 1}, limit=STRIPES_MAX)
            return from_minor(sum(d["balance_minor"] for d in documents), account.asset, self.registry)
        document = self._balances.find_one({"_id": account.id})
        return from_minor(document["balance_minor"] if document else 0, account.asset, self.registry)

    def balances_minor(self, accounts: list[Account]) -> dict[str, int]:
        """Logical account id → projected balance in minor units, for several logical
        accounts in one read (the stripes of a hot account added up; zero if never used)."""
        arguments(accounts=accounts)  # the engine's own checks (core.ledger.arguments)
        if not accounts:
            return {}
        plain = sorted({a.id for a in accounts if not is_striped(a)})
        families = [family_query(a) for a in {a.id: a for a in accounts if is_striped(a)}.values()]
        branches = ([{"_id": {"$in": plain}}] if plain else []) + families
        documents = self._balances.find(branches[0] if len(branches) == 1 else {"$or": branches}, projection={"balance_minor": 1},
                                        limit=len(plain) + STRIPES_MAX * len(families))
        totals = {a.id: 0 for a in accounts}
        for document in documents:
            totals[logical_id(document["_id"])] = totals.get(logical_id(document["_id"]), 0) + document["balance_minor"]
        return totals

    def balances_of_kind(self, kind: AccountKind) -> dict[str, int]:
        """Logical account id → balance in minor units for every account of `kind` (the
        parts of a striped account added up)."""
        account_kind(kind, "kind")  # the engine's own checks (core.ledger.arguments)
        documents = self._balances.find({"kind": kind.value}, projection={"balance_minor": 1})
        balances: dict[str, int] = {}
        for document in documents:
            logical = logical_id(document["_id"])
            balances[logical] = balances.get(logical, 0) + document["balance_minor"]
        return balances

    def user_balances(self, user_id: str) -> dict[str, UserBalance]:
        """Available, locked and total per asset for one user (one query)."""
        arguments(user_id=user_id)  # the engine's own checks (core.ledger.arguments)
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
        arguments(entry_id=entry_id)  # the engine's own checks (core.ledger.arguments)
        document = self._entries.find_one({"_id": entry_id}) if isinstance(entry_id, str) else None
        if document is None:
            raise EntryNotFoundError(f"no entry {entry_id!r}", entry_id=entry_id)
        return Entry.from_document(document)

    def entry_by_key(self, key: str) -> Entry | None:
        arguments(key=key)  # the engine's own checks (core.ledger.arguments)
        document = self._entries.find_one({"idempotency_key": key}) if isinstance(key, str) else None
        return Entry.from_document(document) if document else None

    def entries(self, entry_filter: EntryFilter = EntryFilter(), *, page: int = 0, page_size: int = 50) -> Page:
        """Entries newest first, one page at a time (paged on the server)."""
        arguments(entry_filter=entry_filter, page=page, page_size=page_size)  # the engine's own checks (core.ledger.arguments)
        if not (1 <= page_size <= PAGE_SIZE_MAX) or page < 0:
            raise InvalidEntryError(f"page_size must be 1..{PAGE_SIZE_MAX} and page ≥ 0", page_size=page_size, page=page)
        query = entry_filter.query()
        sort = [("created_at", -1), ("_id", -1)]
        documents = self._entries.find(query, sort=sort, skip=page * page_size, limit=page_size + 1)
        items = [Entry.from_document(d) for d in documents[:page_size]]
        return Page(items, page, page_size, len(documents) > page_size)


def _pair(source: Account, destination: Account, value: Amount) -> tuple[dict, ...]:
    return ({"account": source, "amount": -value}, {"account": destination, "amount": value})
