"""The legacy bridge, reading side (SPEC §10): normalise the old platform's four balance
collections and reconcile them with each other and with the ledger.

The old database (LEGACY_PLATFORM.md) is dirty: money as BSON doubles with binary noise or
int32 zeros, duplicate (owner, currency) documents, `user_id` "None", missing fields,
timestamps in four shapes, currency codes with network suffixes, fee-counter documents and
system owner ids. Every value is turned into an exact `Decimal` at the boundary
(`Decimal(repr(x))` for a double) and compared in minor units of the asset's scale: a
difference below one minor unit is *noise*, at least one is *drift*. Nothing here crashes on
a malformed document: it is reported as dirt (and whether a rebuild can fix it).

Reconciling lives in `core.legacy.reconcile`, import and rebuild (the writing side) in
`core.legacy.rebuild`, the CLI in `core.legacy.cli`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from core.ledger import OWNER_ID_PATTERN
from core.errors import LegacyConfigurationError, UnknownAssetError
from core.ledger import AssetRegistry
from core.ledger import scan
from core.ledger import Store

LEGACY_URI_VARIABLE, LEGACY_DB_VARIABLE = "LEGACY_MONGODB_URI", "LEGACY_DB"
LOGICAL_FIELDS = ("available", "locked", "total")


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
NETWORK_SUFFIXES = ("TRC20", "ERC20", "BEP20", "BEP2", "SPL", "POLYGON", "ARBITRUM", "OMNI", "BSC")
USER_FIELDS = {"user_id": 1, "email": 1, "name": 1, "role": 1, "is_admin": 1}  # never password_hash or salt
IN_QUERY_BATCH_MAX = 1_000


def legacy_projection(spec: CollectionSpec) -> dict:
    """Only the fields the bridge needs: nothing else (a secret, say) is ever read."""
    names = [spec.owner_field, "currency", *spec.fields.values(), *spec.timestamp_fields]
    return {name: 1 for name in names}


# -- values at the boundary ------------------------------------------------------------------
def legacy_decimal(value: object) -> Decimal | None:
    """An exact Decimal from a legacy money value, or None when it is not a number.

    A double becomes `Decimal(repr(x))` (its shortest round-trip text, so binary noise such
    as 0.0015300000000000001 stays visible); ints, decimal text and Decimal128 are exact.
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            number = Decimal(value)
        elif isinstance(value, str):
            number = Decimal(value.strip())
        elif callable(getattr(value, "to_decimal", None)):  # BSON Decimal128
            number = value.to_decimal()
        else:
            return None
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def scaled(number: Decimal, scale: int) -> Decimal:
    """The value in minor units, exactly (may carry a sub-minor residual)."""
    return number.scaleb(scale)


def to_minor(number: Decimal, scale: int) -> int:
    """Nearest whole minor unit (half-even): used only to name a value, never to hide drift."""
    return int(scaled(number, scale).to_integral_value(rounding=ROUND_HALF_EVEN))


def legacy_time(value: object) -> datetime | None:
    """A naive UTC datetime from a BSON date or an ISO string (with or without offset)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def normalise_currency(raw: object, registry: AssetRegistry) -> tuple[str | None, bool]:
    """(asset code, had a network suffix); (None, False) when the asset is unknown."""
    if not isinstance(raw, str):
        return None, False
    code = raw.strip().upper()
    for candidate, suffixed in [(code, False)] + [
        (code[: -len(s)], True) for s in NETWORK_SUFFIXES if code.endswith(s) and len(code) > len(s)
    ]:
        try:
            return registry.get(candidate).code, suffixed
        except UnknownAssetError:
            continue
    return None, False


# -- documents ----------------------------------------------------------------------------------
@dataclass
class LegacyRecord:
    """One balance document, normalised. `values` holds exact Decimals of the fields present."""

    collection: str
    document: str  # str(_id)
    raw_id: object
    owner: str
    raw_currency: object
    currency: str | None
    values: dict[str, Decimal] = field(default_factory=dict)
    raw_values: dict[str, object] = field(default_factory=dict)
    raw_times: dict[str, object] = field(default_factory=dict)
    updated_at: datetime | None = None
    suffixed: bool = False


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
        return {
            "kind": self.kind,
            "severity": self.severity,
            "fixable": self.fixable,
            "collection": self.collection,
            "document": self.document,
            "owner": self.owner,
            "currency": self.currency if isinstance(self.currency, str) else repr(self.currency),
            "field": self.field,
            "message": self.message,
        }


def read_record(spec: CollectionSpec, document: dict, registry: AssetRegistry, dirt: list[Dirt]) -> LegacyRecord | None:
    """Normalise one document, appending its dirt. None when it is not a user balance."""
    doc_id, owner_value = str(document.get("_id")), document.get(spec.owner_field)

    def note(kind: str, severity: str, fixable: bool, message: str, field_name: str | None = None) -> None:
        dirt.append(
            Dirt(
                kind,
                severity,
                fixable,
                spec.name,
                doc_id,
                owner_value if isinstance(owner_value, str) else None,
                document.get("currency"),
                message,
                field_name,
            )
        )

    if owner_value == FEE_COUNTER_OWNER:
        note("fee_counter", "info", False, "fee counter document, not a balance")
        return None
    if owner_value in SYSTEM_OWNERS:
        note("system_owner", "info", False, f"platform-owned balance of {owner_value}")
        return None
    if owner_value is None or (isinstance(owner_value, str) and owner_value.strip() in NULL_OWNERS):
        note("null_owner", "warning", False, f"{spec.owner_field} is {owner_value!r}: the balance belongs to nobody")
        return None
    if not isinstance(owner_value, str) or not OWNER_ID_PATTERN.match(owner_value):
        note("invalid_owner", "warning", False, f"{spec.owner_field} {owner_value!r} is not a valid user id")
        return None
    currency, suffixed = normalise_currency(document.get("currency"), registry)
    if currency is None:
        note("unknown_currency", "warning", False, f"currency {document.get('currency')!r} is not a ledger asset")
        return None
    if suffixed:
        note("suffixed_currency", "info", True, f"currency {document.get('currency')!r} means {currency}")
    record = LegacyRecord(
        spec.name, doc_id, document.get("_id"), owner_value, document.get("currency"), currency, suffixed=suffixed
    )
    for logical, stored in spec.fields.items():
        if stored not in document:
            note("missing_field", "info", True, f"{stored} is missing", stored)
            continue
        raw = document[stored]
        number = legacy_decimal(raw)
        if number is None:
            note("malformed_value", "warning", True, f"{stored} is not a number ({type(raw).__name__})", stored)
            continue
        if not isinstance(raw, float):
            note("mixed_type", "info", True, f"{stored} stored as {type(raw).__name__}, not a double", stored)
        record.values[logical], record.raw_values[logical] = number, raw
    times = []
    for name in spec.timestamp_fields:
        if name in document:
            record.raw_times[name] = document[name]
            moment = legacy_time(document[name])
            if moment is None:
                note("bad_timestamp", "warning", True, f"{name} is not a date: {type(document[name]).__name__}", name)
            else:
                times.append(moment)
                if not isinstance(document[name], datetime):
                    note("string_timestamp", "info", True, f"{name} stored as text", name)
    record.updated_at = max(times, default=None)
    return record


def _primary_first(records: list[LegacyRecord]) -> list[LegacyRecord]:
    """The document the comparison uses first: an unsuffixed code, then the newest, then the lowest id."""
    return sorted(records, key=lambda r: (r.suffixed, -(r.updated_at.timestamp() if r.updated_at else 0.0), r.document))


Pair = tuple[str, str]  # (owner, asset)


@dataclass
class LegacyView:
    """All user balance documents, grouped by pair and collection (duplicates last)."""

    groups: dict[Pair, dict[str, list[LegacyRecord]]] = field(default_factory=lambda: defaultdict(dict))
    dirt: list[Dirt] = field(default_factory=list)
    system: list[dict] = field(default_factory=list)
    documents_read: int = 0


def build_view(documents_by_collection: dict[str, list[dict]], registry: AssetRegistry) -> LegacyView:
    view = LegacyView()
    for name, documents in documents_by_collection.items():
        spec, pending = SPECS[name], defaultdict(list)
        for document in documents:
            view.documents_read += 1
            before = len(view.dirt)
            record = read_record(spec, document, registry, view.dirt)
            if record is None:
                if view.dirt[before].kind in ("system_owner", "fee_counter"):
                    view.system.append(
                        {
                            "collection": name,
                            "document": str(document.get("_id")),
                            "owner": document.get(spec.owner_field),
                            "currency": str(document.get("currency")),
                        }
                    )
                continue
            pending[(record.owner, record.currency)].append(record)
        for pair, records in pending.items():
            ordered = _primary_first(records)
            view.groups[pair][name] = ordered
            for extra in ordered[1:]:
                view.dirt.append(
                    Dirt(
                        "duplicate",
                        "warning",
                        True,
                        name,
                        extra.document,
                        extra.owner,
                        extra.raw_currency,
                        f"another {name} document ({ordered[0].document}) holds {pair[0]}/{pair[1]}",
                    )
                )
    return view


def read_legacy(legacy: Store, registry: AssetRegistry) -> LegacyView:
    """Every document of the four collections (full scans by `_id`, bounded batches, only
    the fields the bridge needs)."""
    documents = {
        name: list(scan(legacy.collection(name), {}, projection=legacy_projection(spec)))
        for name, spec in SPECS.items()
    }
    return build_view(documents, registry)


def read_user(legacy: Store, user_id: str, registry: AssetRegistry) -> LegacyView:
    """One user's documents: one query per collection, by its owner field."""
    documents = {
        name: legacy.collection(name).find({spec.owner_field: user_id}, projection=legacy_projection(spec))
        for name, spec in SPECS.items()
    }
    return build_view(documents, registry)


# -- opening the legacy database ---------------------------------------------------------------------
def open_legacy_store() -> Store:
    """The legacy database named by LEGACY_MONGODB_URI / LEGACY_DB, opened without
    creating anything in it. Raises: LegacyConfigurationError, StoreError."""
    uri, name = os.environ.get(LEGACY_URI_VARIABLE, "").strip(), os.environ.get(LEGACY_DB_VARIABLE, "").strip()
    if not uri or not name:
        raise LegacyConfigurationError(
            f"set {LEGACY_URI_VARIABLE} and {LEGACY_DB_VARIABLE} to reach the legacy database"
        )
    return Store.from_uri(uri, name, create_indexes=False)


def open_legacy_store_if_configured() -> Store | None:
    """The legacy store when configured, else None (the per-user check then skips it)."""
    if not os.environ.get(LEGACY_URI_VARIABLE, "").strip():
        return None
    return open_legacy_store()


def legacy_store_for(platform_legacy: Store | None) -> Store:
    return platform_legacy if platform_legacy is not None else open_legacy_store()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S")
