"""The legacy bridge, reading side (SPEC §10): every document of the old platform's four
balance collections, normalised into exact records grouped by (user, currency).

The old database (LEGACY_PLATFORM.md) is dirty: money as BSON doubles with binary noise or
int32 zeros, text, NaN (a NaN or ±Infinity field states no amount: it is read like an
absent field and reported as `non_finite_value`, so `total − locked` stands in for a NaN
available exactly as it does for a missing one); duplicate (owner, currency) documents; `user_id` "None", an
embedded document or a number; missing fields; timestamps in four shapes; currency codes
with network suffixes; fee-counter documents and system owner ids; `_id`s of mixed BSON
types. Values are made exact or refused in `core.legacy.values`. Nothing here crashes on a
malformed document, and no stored value is ever used as a query: it is reported as dirt.

Three outcomes per document:
- a **record** the comparison and the rebuild use (the *primary* of its collection for the
  pair, or a duplicate of it);
- **held**: a user balance the bridge cannot read safely (an unparseable amount, a
  document whose only amounts are NaN/Infinity, or a suffixed-currency copy beside a plain
  one): listed with its raw values for a human decision, never written or deleted by a
  rebuild, never booked by an import;
- **excluded**: not a user balance the ledger can hold (system owner, fee counter, nobody's
  or an invalid owner, an unknown currency), listed with its raw values.

Reconciling lives in `core.legacy.reconcile`, import in `core.legacy.opening`, rebuild in
`core.legacy.rebuild`, the CLI in `core.legacy.cli`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from core.base.errors import ContentionError, LegacyConfigurationError
from core.base.records import record_dict
from core.platform.settings import LEGACY_DB_ENV, LEGACY_URI_ENV, legacy_settings
from core.ledger import OWNER_ID_PATTERN, AssetRegistry, Collection, Store
from core.legacy.values import (  # noqa: F401 (re-exported: the bridge's boundary helpers)
    document_label,
    exact_minor,
    iso,
    legacy_decimal,
    legacy_time,
    non_finite,
    normalise_currency,
    raw_text,
    scaled,
    to_minor,
)

LEGACY_URI_VARIABLE, LEGACY_DB_VARIABLE = LEGACY_URI_ENV, LEGACY_DB_ENV
LOGICAL_FIELDS = ("available", "locked", "total")
LEGACY_SCAN_BATCH = 1_000  # documents per read of the full scan
SCAN_RESTARTS_MAX = 3  # a scan that saw the collection shift under it starts again at most this often
SCAN_SHIFT_TOLERANCE = 64  # a positional step still finds its place after this many writes before it
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class CollectionSpec:
    """Where one legacy collection keeps owner, money and time."""

    name: str
    owner_field: str
    fields: dict[str, str]  # logical field → stored field
    timestamp_fields: tuple[str, ...]


SPECS: dict[str, CollectionSpec] = {
    "wallets": CollectionSpec(
        "wallets",
        "user_id",
        {"available": "available_balance", "locked": "locked_balance", "total": "total_balance"},
        ("last_updated", "created_at"),
    ),
    "crypto_balances": CollectionSpec(
        "crypto_balances",
        "user_id",
        {"available": "available_balance", "locked": "locked_balance", "total": "balance"},
        ("last_updated",),
    ),
    "trader_balances": CollectionSpec(
        "trader_balances",
        "trader_id",
        {"available": "available_balance", "locked": "locked_balance", "total": "total_balance"},
        ("updated_at",),
    ),
    "internal_balances": CollectionSpec(
        "internal_balances",
        "user_id",
        {"available": "available_balance", "locked": "locked_balance", "total": "balance"},
        ("updated_at", "last_updated"),
    ),
}
COLLECTIONS = tuple(SPECS)
AUTHORITATIVE_DEFAULT = "wallets"
SYSTEM_OWNERS = frozenset({"admin_wallet", "PLATFORM_TREASURY_WALLET", "ADMIN_LIQUIDITY"})
FEE_COUNTER_OWNER = "PLATFORM_FEES"
NULL_OWNERS = frozenset({"None", "none", "null", "NULL", ""})
USER_FIELDS = {"user_id": 1, "email": 1, "name": 1, "role": 1, "is_admin": 1}  # never password_hash or salt
IN_QUERY_BATCH_MAX = 1_000
# the report rows' keys, in the order readers see them
ITEM_KEYS = ("collection", "document", "user", "currency", "raw_currency", "values", "updated_at")  # + "reason" if held
DIRT_KEYS = ("kind", "severity", "fixable", "collection", "document", "owner", "currency", "field", "message")


def legacy_projection(spec: CollectionSpec) -> dict:
    """Only the fields the bridge needs: nothing else (a secret, say) is ever read."""
    names = [spec.owner_field, "currency", *spec.fields.values(), *spec.timestamp_fields]
    return {name: 1 for name in names}


# -- documents ----------------------------------------------------------------------------------
@dataclass
class LegacyRecord:
    """One balance document, normalised. `values` holds exact Decimals of the parseable
    money fields, `raw_values` every money field present as stored (by logical name)."""

    collection: str
    document: str  # document_label(_id)
    raw_id: object
    owner: str
    raw_currency: object
    currency: str | None
    values: dict[str, Decimal] = field(default_factory=dict)
    raw_values: dict[str, object] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # stored fields present but not a number
    non_finite: list[str] = field(default_factory=list)  # stored fields holding NaN/±Infinity: read as absent
    raw_times: dict[str, object] = field(default_factory=dict)
    updated_at: datetime | None = None
    suffixed: bool = False
    held: str | None = None  # why a human must decide about it (never written by a rebuild)

    @property
    def holds_balance(self) -> bool:
        """It states an amount: an available or a total the bridge can read."""
        return "available" in self.values or "total" in self.values

    def raw_money(self) -> dict[str, str | None]:
        """Every money field present, as stored (`repr`), by stored name: what a human sees."""
        spec = SPECS[self.collection]
        return {spec.fields[logical]: raw_text(raw) for logical, raw in self.raw_values.items()}

    def as_item(self) -> dict:
        """The document as a report row (held documents, duplicates, primary choices)."""
        row = record_dict(self, ITEM_KEYS, user=self.owner, raw_currency=raw_text(self.raw_currency),
                          values=self.raw_money(), updated_at=iso(self.updated_at))
        return {**row, "reason": self.held} if self.held else row


@dataclass
class Dirt:
    kind: str
    severity: str  # info | warning
    fixable: bool  # a rebuild rewrites it
    collection: str
    document: str
    owner: str | None
    currency: object
    message: str
    field: str | None = None

    def as_dict(self) -> dict:
        currency = self.currency if isinstance(self.currency, str) else raw_text(self.currency)
        return record_dict(self, DIRT_KEYS, currency=currency)


def _owner_problem(spec: CollectionSpec, owner: object) -> tuple[str, str, str] | None:
    """(kind, severity, message) when the owner is not a user the ledger can hold. Checks
    the type first: an embedded document or a list is never hashed, compared or queried."""
    if owner is None or (isinstance(owner, str) and owner.strip() in NULL_OWNERS):
        return "null_owner", "warning", f"{spec.owner_field} is {raw_text(owner)}: the balance belongs to nobody"
    if not isinstance(owner, str):
        return "invalid_owner", "warning", f"{spec.owner_field} is a {type(owner).__name__} ({raw_text(owner)}), not a user id"
    if owner == FEE_COUNTER_OWNER:
        return "fee_counter", "info", "fee counter document, not a balance"
    if owner in SYSTEM_OWNERS:
        return "system_owner", "info", f"platform-owned balance of {owner}"
    if not OWNER_ID_PATTERN.match(owner):
        return "invalid_owner", "warning", f"{spec.owner_field} {raw_text(owner)} is not a valid user id"
    return None


def read_record(spec: CollectionSpec, document: dict, registry: AssetRegistry, dirt: list[Dirt]) -> LegacyRecord | None:
    """Normalise one document, appending its dirt. None when it is not a user balance the
    ledger can hold (the first dirt appended then says why)."""
    label, owner_value = document_label(document.get("_id")), document.get(spec.owner_field)

    def note(kind: str, severity: str, fixable: bool, message: str, field_name: str | None = None) -> None:
        owner = owner_value if isinstance(owner_value, str) else None
        dirt.append(Dirt(kind, severity, fixable, spec.name, label, owner, document.get("currency"), message, field_name))

    problem = _owner_problem(spec, owner_value)
    if problem is not None:
        note(problem[0], problem[1], False, problem[2])
        return None
    currency, suffixed = normalise_currency(document.get("currency"), registry)
    if currency is None:
        note("unknown_currency", "warning", False, f"currency {raw_text(document.get('currency'))} is not a ledger asset")
        return None
    if suffixed:
        note("suffixed_currency", "info", True, f"currency {document.get('currency')!r} means {currency}")
    record = LegacyRecord(spec.name, label, document.get("_id"), owner_value, document.get("currency"), currency, suffixed=suffixed)
    scale = registry.get(currency).scale
    for logical, stored in spec.fields.items():
        if document.get(stored) is None:  # absent or null: nothing stated, nothing to misread
            note("missing_field", "info", True, f"{stored} is {'null' if stored in document else 'missing'}", stored)
            continue
        raw = record.raw_values[logical] = document[stored]
        number = legacy_decimal(raw)
        if number is None and non_finite(raw):
            record.non_finite.append(stored)
            note("non_finite_value", "warning", True, f"{stored} is {raw_text(raw)}: it states no amount, read as absent", stored)
            continue
        if number is None:
            record.unreadable.append(stored)
            note("malformed_value", "warning", False, f"{stored} is not a number: {raw_text(raw)} ({type(raw).__name__})", stored)
            continue
        if not isinstance(raw, float):
            note("mixed_type", "info", True, f"{stored} stored as {type(raw).__name__}, not a double", stored)
        minor = exact_minor(raw, number, scale)
        if isinstance(minor, str):
            note("excess_precision", "warning", True, f"{stored}: {minor}", stored)
        record.values[logical] = number
    if record.unreadable:
        record.held = f"unparseable {', '.join(record.unreadable)}: the bridge cannot read this document; a human decides"
    elif record.non_finite and not record.holds_balance:
        record.held = (f"{', '.join(record.non_finite)} not a finite number and no other amount stated: the bridge "
                       "cannot read this document; a human decides")
    times = []
    for name in spec.timestamp_fields:
        if name in document:
            record.raw_times[name] = document[name]
            moment = legacy_time(document[name])
            if moment is None:
                note("bad_timestamp", "warning", True, f"{name} is not a date: {raw_text(document[name])}", name)
            else:
                times.append(moment)
                if not isinstance(document[name], datetime):
                    note("string_timestamp", "info", True, f"{name} stored as text", name)
    record.updated_at = max(times, default=None)
    return record


def primary_key(record: LegacyRecord) -> tuple:
    """Order of preference among a pair's documents in one collection: one that states an
    amount, then a plain currency code, then the newest, then the lowest id. Recency alone
    once chose an empty newer copy over an older one holding 80.73912638 SOL."""
    age = -((record.updated_at - datetime.min) // MICROSECOND) if record.updated_at else 0  # exact, any year
    return (not record.holds_balance, record.suffixed, record.updated_at is None, age, record.document)


def _choice_reason(primary: LegacyRecord, runner_up: LegacyRecord) -> str:
    if primary.holds_balance and not runner_up.holds_balance:
        return f"it states an amount; {runner_up.document} states none"
    if runner_up.suffixed and not primary.suffixed:
        return f"its currency code is plain; {runner_up.document} has a network suffix"
    if primary.updated_at != runner_up.updated_at:
        return f"newest ({iso(primary.updated_at)} vs {iso(runner_up.updated_at) or 'no readable timestamp'})"
    return "no document is newer: the lowest id"


Pair = tuple[str, str]  # (owner, asset)


@dataclass
class LegacyView:
    """All documents, grouped: usable records by pair and collection (primary first),
    held records by pair and collection, excluded documents, and what was missing."""

    groups: dict[Pair, dict[str, list[LegacyRecord]]] = field(default_factory=lambda: defaultdict(dict))
    held: dict[Pair, dict[str, list[LegacyRecord]]] = field(default_factory=lambda: defaultdict(dict))
    excluded: list[dict] = field(default_factory=list)
    choices: list[dict] = field(default_factory=list)  # which duplicate became primary, and why
    dirt: list[Dirt] = field(default_factory=list)
    system: list[dict] = field(default_factory=list)
    documents_read: int = 0
    missing: list[str] = field(default_factory=list)  # balance collections the database does not have

    def held_items(self) -> list[dict]:
        return [r.as_item() for pair in sorted(self.held) for _, rs in sorted(self.held[pair].items()) for r in rs]


def _as_text(value: object) -> str | None:
    """Text as it is; anything else (an embedded document, a number) as its `repr`."""
    return value if isinstance(value, str) else raw_text(value)


def _excluded_item(spec: CollectionSpec, document: dict, dirt: Dirt) -> dict:
    return {
        "collection": spec.name,
        "document": dirt.document,
        "user": _as_text(document.get(spec.owner_field)),
        "currency": _as_text(document.get("currency")),
        "values": {stored: raw_text(document[stored]) for stored in spec.fields.values() if stored in document},
        "kind": dirt.kind,
        "reason": dirt.message,
    }


def _group(view: LegacyView, name: str, pair: Pair, records: list[LegacyRecord]) -> None:
    """Split one collection's documents of a pair into usable (primary first) and held."""
    plain = any(not r.suffixed and not r.held for r in records)
    for record in records:
        if record.suffixed and plain and not record.held:
            record.held = (
                f"currency {record.raw_currency!r} beside a plain {pair[1]} document: a separate network "
                "balance or a copy? a human decides"
            )
            view.dirt.append(Dirt("suffixed_beside_plain", "warning", False, name, record.document, record.owner,
                                  record.raw_currency, record.held))
    usable = sorted((r for r in records if not r.held), key=primary_key)
    held = [r for r in records if r.held]
    if usable:
        view.groups[pair][name] = usable
    if held:
        view.held[pair][name] = held
    if len(usable) > 1:
        view.choices.append(
            {
                "user": pair[0],
                "currency": pair[1],
                "collection": name,
                "primary": usable[0].document,
                "reason": _choice_reason(usable[0], usable[1]),
                "documents": [r.as_item() for r in usable],
            }
        )
    for extra in usable[1:]:
        view.dirt.append(
            Dirt("duplicate", "warning", True, name, extra.document, extra.owner, extra.raw_currency,
                 f"another {name} document ({usable[0].document}) holds {pair[0]}/{pair[1]}")
        )


def build_view(documents_by_collection: dict[str, list[dict]], registry: AssetRegistry) -> LegacyView:
    view = LegacyView()
    for name, documents in documents_by_collection.items():
        spec, pending = SPECS[name], defaultdict(list)
        for document in documents:
            view.documents_read += 1
            before = len(view.dirt)
            record = read_record(spec, document, registry, view.dirt)
            if record is not None:
                pending[(record.owner, record.currency)].append(record)
                continue
            reason = view.dirt[before]
            view.excluded.append(_excluded_item(spec, document, reason))
            if reason.kind in ("system_owner", "fee_counter"):
                view.system.append(
                    {"collection": name, "document": reason.document, "owner": document.get(spec.owner_field),
                     "currency": raw_text(document.get("currency"))}
                )
        for pair, records in pending.items():
            _group(view, name, pair, records)
    held = {(r.collection, r.document) for by_name in view.held.values() for rs in by_name.values() for r in rs}
    for dirt in view.dirt:
        if (dirt.collection, dirt.document) in held:
            dirt.fixable = False  # a rebuild never touches a held document: its dirt waits for a human
    return view


# -- reading the database ---------------------------------------------------------------------------
def _same_id(first: object, second: object) -> bool:
    return type(first) is type(second) and first == second


def scan_documents(collection: Collection, projection: dict, batch_size: int | None = None) -> list[dict]:
    """Every document of a legacy collection, whatever the BSON type of its `_id`.

    Why not `core.ledger.scan` (pages by `{_id: {$gt: last}}` only)? MongoDB compares
    values of one BSON type only, so after a string `_id` a `$gt` never reaches the
    ObjectIds: in a collection mixing them whole groups were silently never read. Here one
    sort on `_id` (a total order across types, served by the `_id` index) is read in
    bounded batches:
    - within one BSON type, by `{_id: {$gt: last}}` (the same comparison as the sort, so
      exactly the next documents; an index seek, safe under concurrent writes);
    - when that comes back short (the type is exhausted), one step by position into the
      next type: a window of the sort around the count read so far, wide enough to find
      the last document read even if up to `SCAN_SHIFT_TOLERANCE` documents were written
      or deleted before it meanwhile; what follows it in the window is exactly what comes
      next. If it is not in the window, the collection moved too much and the scan starts
      again. So a document present for the whole scan is never skipped, nor read twice.
    The positional step costs an index walk of `skip` keys, once per BSON type present.

    Raises: ContentionError (still shifting after `SCAN_RESTARTS_MAX` restarts: run it
    when the old backend is quiet).
    """
    batch_size = batch_size or LEGACY_SCAN_BATCH
    for _ in range(SCAN_RESTARTS_MAX + 1):
        documents = _scan_once(collection, projection, batch_size)
        if documents is not None:
            return documents
    raise ContentionError(
        f"legacy collection {collection.name} kept changing during the scan: run again when the old backend is quiet",
        collection=collection.name,
    )


def _scan_once(collection: Collection, projection: dict, batch_size: int) -> list[dict] | None:
    """One full pass, or None when the collection shifted under a positional step."""
    order = [("_id", 1)]
    documents = collection.find({}, sort=order, limit=batch_size, projection=projection)
    if len(documents) < batch_size:
        return documents
    while True:
        batch = collection.find({"_id": {"$gt": documents[-1]["_id"]}}, sort=order, limit=batch_size,
                                projection=projection)  # the rest of this BSON type
        documents += batch
        if len(batch) == batch_size:
            continue
        last, limit = documents[-1]["_id"], batch_size + 2 * SCAN_SHIFT_TOLERANCE + 1
        window = collection.find({}, sort=order, skip=max(0, len(documents) - 1 - SCAN_SHIFT_TOLERANCE), limit=limit,
                                 projection=projection)
        place = next((i for i, document in enumerate(window) if _same_id(document["_id"], last)), None)
        if place is None:
            return None  # moved farther than the window: start again
        following = window[place + 1 :]
        documents += following
        if len(window) < limit:
            return documents  # the window reached the end of the sort
        if not following:
            return None


def read_legacy(legacy: Store, registry: AssetRegistry, batch_size: int | None = None) -> LegacyView:
    """Every document of the four collections (only the fields the bridge needs), and
    which of the four the database does not have."""
    present = set(legacy.collection_names())
    documents = {
        name: scan_documents(legacy.collection(name), legacy_projection(spec), batch_size)
        for name, spec in SPECS.items()
        if name in present
    }
    view = build_view(documents, registry)
    view.missing = [name for name in SPECS if name not in present]
    return view


def read_user(legacy: Store, user_id: str, registry: AssetRegistry) -> LegacyView:
    """One user's documents: one query per collection, by its owner field (`$eq`: the id
    is compared as a value, never read as an operator)."""
    assert isinstance(user_id, str), "the caller checked the user id"
    documents = {
        name: legacy.collection(name).find({spec.owner_field: {"$eq": user_id}}, projection=legacy_projection(spec))
        for name, spec in SPECS.items()
    }
    return build_view(documents, registry)


# -- opening the legacy database ---------------------------------------------------------------------
def open_legacy_store() -> Store:
    """The legacy database named by LEGACY_MONGODB_URI / LEGACY_DB, opened without
    creating anything in it. Raises: LegacyConfigurationError, MalformedDatabaseUriError
    (naming legacy: checked before any connection, core.platform.settings), StoreError."""
    settings = legacy_settings()
    if settings.uri is None or settings.name is None:
        raise LegacyConfigurationError(
            f"set {LEGACY_URI_VARIABLE} and {LEGACY_DB_VARIABLE} to reach the legacy database"
        )
    return Store.from_uri(settings.uri.get_secret_value(), settings.name, create_indexes=False)


def open_legacy_store_if_configured() -> Store | None:
    """The legacy store when configured, else None (the per-user check then skips it)."""
    if legacy_settings().uri is None:
        return None
    return open_legacy_store()


def legacy_store_for(platform_legacy: Store | None) -> Store:
    return platform_legacy if platform_legacy is not None else open_legacy_store()
