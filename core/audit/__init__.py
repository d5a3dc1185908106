"""Browsing the audit trail: filters, server-side pages, CSV export, and the permission-checked
service functions pages and the CLI call. The chain itself lives in `core.ledger.audit`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.platform.boundary import boundary, moment, optional, refuse, register_check, text
from core.base.errors import InvalidFilterError, LedgerError, MalformedValueError
from core.base.permissions import Permission, Principal, require
from core.ledger import AssetRegistry, Store, from_minor
from core.ledger import GENESIS_HASH, AuditLog, VerifyResult, event_hash  # noqa: F401 (re-exported)
from core.ledger.audit import order_key

PAGE_SIZE_MAX = 200
EXPORT_ROWS_MAX = 50_000  # one CSV export never carries more events than this
EXPORT_BATCH_SIZE = 1_000
FILTER_TEXT_LENGTH_MAX = 200
PREFIX_MARK = "*"  # a filter value ending in it matches by prefix ("approval.*")
CSV_COLUMNS = ("seq", "at", "type", "actor", "role", "target", "user", "event_key", "before", "after", "data", "stream", "prev_hash", "hash")
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas

if TYPE_CHECKING:  # the platform bundle imports the ledger, which imports this module
    from core.platform import Platform

# -- browsing: filters, server-side pages, CSV ------------------------------------------------
@dataclass(frozen=True)
class AuditFilter:
    """What the console filters the trail by. Every value is plain text (or a datetime):
    nothing a user types can become a query operator."""

    actor: str | None = None
    user: str | None = None
    type: str | None = None
    target: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def query(self) -> dict:
        """The store filter. Raises: InvalidFilterError for non-text values or a bad window.

        "text*" matches every value starting with "text" (escaped, anchored: an index range);
        a type family ("approval.*") is an equality on the stored `family` instead, so the
        trail's time order still comes from the index."""
        query: dict = {}
        for name in ("actor", "user", "type", "target"):
            value = getattr(self, name)
            if value is None or value == "":
                continue
            if not isinstance(value, str) or len(value) > FILTER_TEXT_LENGTH_MAX:
                raise InvalidFilterError(
                    f"audit filter {name} must be text of at most {FILTER_TEXT_LENGTH_MAX} characters", field=name)
            if not (value.endswith(PREFIX_MARK) and len(value) > 1):
                query[name] = value
            elif name == "type" and value[:-1].count(".") == 1 and value[:-1].endswith("."):
                query["family"] = value[:-2]
            else:
                query[name] = {"$regex": "^" + re.escape(value[:-1])}
        window: dict = {}
        for name, operator in (("since", "$gte"), ("until", "$lt")):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, datetime):
                raise InvalidFilterError(f"audit filter {name} must be a datetime", field=name)
            window[operator] = order_key(value)  # the display order starts with the time: a window is a range of it
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidFilterError("audit filter needs since < until")
        if window:
            query["order"] = window
        return query

    def matches(self, event: dict) -> bool:
        """Whether `event` (a stored event's fields) is one this filter selects, by the same
        rules as `query()` (exact, or "text*" by prefix; `since` inclusive, `until` exclusive).
        Lets a caller tell whether an event it appended itself is in the filtered set."""
        self.query()  # the same refusals as the store filter
        for name in ("actor", "user", "type", "target"):
            wanted, value = getattr(self, name), event.get(name)
            if wanted is None or wanted == "":
                continue
            if wanted.endswith(PREFIX_MARK) and len(wanted) > 1:
                if not (isinstance(value, str) and value.startswith(wanted[:-1])):
                    return False
            elif value != wanted:
                return False
        at = event.get("at")
        if self.since is not None and not (isinstance(at, datetime) and at >= self.since):
            return False
        return self.until is None or (isinstance(at, datetime) and at < self.until)


def check_audit_filter(value: object, name: str) -> None:
    """An AuditFilter whose fields are plain text and datetimes (the boundary's check of
    every `audit_filter` parameter). Raises: MalformedValueError."""
    if not isinstance(value, AuditFilter):
        refuse(name, value, "an AuditFilter", MalformedValueError)
    for field_name in ("actor", "user", "type", "target"):
        optional(text)(getattr(value, field_name), f"{name}.{field_name}")
    for field_name in ("since", "until"):
        optional(moment)(getattr(value, field_name), f"{name}.{field_name}")


register_check("audit_filter", check_audit_filter)


def display_order(query: dict) -> list[tuple[str, int]]:
    """Newest first — grouped by value when a field is matched by a prefix (a range on that
    field's index cannot also give the time order without sorting every match in memory;
    grouped, the index gives both: O(the page) read)."""
    ranged = next((name for name, value in query.items() if isinstance(value, dict) and "$regex" in value), None)
    return [(ranged, 1), ("order", -1)] if ranged else [("order", -1)]


@dataclass(frozen=True)
class AuditPage:
    """One page of events, newest first (same shape as `core.ledger.Page`)."""

    items: list
    page: int
    page_size: int
    has_more: bool


def _check_page(page: object, page_size: object) -> None:
    if any(isinstance(value, bool) or not isinstance(value, int) for value in (page, page_size)):
        raise InvalidFilterError("page and page_size must be integers")
    if page < 0 or not (1 <= page_size <= PAGE_SIZE_MAX):
        raise InvalidFilterError(f"page must be ≥ 0 and page_size 1..{PAGE_SIZE_MAX}", page=page, page_size=page_size)


@boundary
def query_events(log_store: Store, audit_filter: AuditFilter, *, page: int = 0, page_size: int = 50) -> AuditPage:
    """Events matching `audit_filter`, newest first (time, stream, sequence), one page
    fetched by the server (skip + limit on the `order` key; each filter field leads an
    index whose next key is `order`, and a time window is a range of `order`)."""
    _check_page(page, page_size)
    query = audit_filter.query()
    documents = log_store.collection("audit").find(query or {"order": {"$gte": ""}}, sort=display_order(query),
                                                    skip=page * page_size, limit=page_size + 1)
    return AuditPage([_public(d) for d in documents[:page_size]], page, page_size, len(documents) > page_size)


@boundary
def iter_events(log_store: Store, audit_filter: AuditFilter, rows_max: int = EXPORT_ROWS_MAX) -> Iterator[dict]:
    """Matching events oldest first, in bounded batches keyed on `order` (no deep skips)."""
    query = audit_filter.query()
    window = query.pop("order", {})
    lower, upper = {"$gte": window.get("$gte", "")}, {key: value for key, value in window.items() if key == "$lt"}
    produced = 0
    while produced < rows_max:
        limit = min(EXPORT_BATCH_SIZE, rows_max - produced)
        batch = log_store.collection("audit").find(dict(query, order={**lower, **upper}), sort=[("order", 1)], limit=limit)
        for document in batch:
            yield _public(document)
        produced += len(batch)
        if len(batch) < EXPORT_BATCH_SIZE:
            return
        lower = {"$gt": batch[-1]["order"]}


def _public(document: dict) -> dict:
    return {key: value for key, value in document.items() if key != "_id"}


def _cell(value: Any) -> str:
    """One CSV cell: structured values as JSON, and text that a spreadsheet would run as a
    formula prefixed with a quote (CSV injection)."""
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(CSV_FORMULA_PREFIXES) else text


READABLE_COLUMNS = ("before", "after", "data")  # structured columns whose amounts are written with asset and decimals
MINOR_SUFFIX = "_minor"


def readable_amounts(value: Any, registry: AssetRegistry, asset: str | None = None) -> Any:
    """`value` with every integer `<name>_minor` of a known asset written as `<name>`: exact
    decimal text with the asset ("amount_minor": 500000 of BTC → "amount": "0.00500000 BTC"),
    as the console shows it. The asset is the dict's own `asset` (else the enclosing one's);
    a `_minor` value without a known asset stays as it is, an absent one (None) is written
    as `<name>`: null. Pure."""
    if isinstance(value, (list, tuple)):
        return [readable_amounts(item, registry, asset) for item in value]
    if not isinstance(value, dict):
        return value
    own = value.get("asset")
    asset = own if isinstance(own, str) and own in registry.codes() else asset
    result = {}
    for key, item in value.items():
        amount_key = isinstance(key, str) and key.endswith(MINOR_SUFFIX) and len(key) > len(MINOR_SUFFIX) \
            and key.removesuffix(MINOR_SUFFIX) not in value
        if amount_key and item is None:  # no amount (a request that moves none): no unit to speak of
            result[key.removesuffix(MINOR_SUFFIX)] = None
            continue
        if amount_key and asset and isinstance(item, int) and not isinstance(item, bool):
            try:
                result[key.removesuffix(MINOR_SUFFIX)] = f"{from_minor(item, asset, registry).text()} {asset}"
                continue
            except LedgerError:
                pass  # beyond the ledger's range: the raw number stays
        result[key] = readable_amounts(item, registry, asset)
    return result


def events_csv(events: Iterator[dict] | list[dict], registry: AssetRegistry | None = None) -> str:
    """CSV text (header + one row per event) of the given events. With `registry`, amounts
    in the structured columns are written with their asset and decimals (`readable_amounts`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        if registry is not None:
            event = {**event, **{column: readable_amounts(event.get(column), registry) for column in READABLE_COLUMNS}}
        writer.writerow([_cell(event.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


# -- the service functions pages and the CLI call (permission-checked) --------------------------
@boundary
def search_audit(platform: Platform, principal: Principal, audit_filter: AuditFilter = AuditFilter(), *,
                 page: int = 0, page_size: int = 50) -> AuditPage:
    """Browse the trail. Raises: PermissionDeniedError, InvalidFilterError."""
    require(principal, Permission.READ_AUDIT)
    return query_events(platform.store, audit_filter, page=page, page_size=page_size)


@dataclass(frozen=True)
class AuditExport:
    """A prepared CSV export and what it accounts for.

    `matching` is how many events matched the filter just after the export, the export's
    own `audit.export` event included when the filter selects it: while the filter's count
    is still `matching`, the file holds every matching event (up to `rows`); once the count
    differs, events arrived and the file is stale (issue 22). None when the file was cut at
    `rows_max` (the count at export time is then the caller's reference)."""

    csv: str
    rows: int
    matching: int | None


@boundary
def export_audit(platform: Platform, principal: Principal, audit_filter: AuditFilter = AuditFilter(), *,
                 rows_max: int = EXPORT_ROWS_MAX) -> AuditExport:
    """The matching events (oldest first, at most `rows_max`) as CSV, amounts with asset and
    decimals; the export itself is audited. Raises: PermissionDeniedError, InvalidFilterError."""
    require(principal, Permission.READ_AUDIT)
    if isinstance(rows_max, bool) or not isinstance(rows_max, int) or not (1 <= rows_max <= EXPORT_ROWS_MAX):
        raise InvalidFilterError(f"rows_max must be 1..{EXPORT_ROWS_MAX}")
    events = list(iter_events(platform.store, audit_filter, rows_max))
    event, _ = platform.ledger.audit.append(
        type="audit.export", actor=principal.name, role=principal.role.value, target="audit",
        data={"rows": len(events), "filter": {k: getattr(audit_filter, k) for k in ("actor", "user", "type", "target")
                                              if getattr(audit_filter, k)},
              "since": audit_filter.since, "until": audit_filter.until},
    )
    matching = None if len(events) >= rows_max else len(events) + int(audit_filter.matches(event))
    return AuditExport(events_csv(events, platform.registry), len(events), matching)


@boundary
def export_audit_csv(platform: Platform, principal: Principal, audit_filter: AuditFilter = AuditFilter(), *,
                     rows_max: int = EXPORT_ROWS_MAX) -> str:
    """The CSV text of `export_audit` (the CLI's `audit export`).
    Raises: PermissionDeniedError, InvalidFilterError."""
    return export_audit(platform, principal, audit_filter, rows_max=rows_max).csv


@boundary
def verify_audit(platform: Platform, principal: Principal) -> VerifyResult:
    """Walk the whole chain. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_AUDIT)
    return platform.ledger.audit.verify()


@dataclass(frozen=True)
class WitnessStatus:
    """Where the audit chain's witness file is and whether the chain still holds its newest
    recorded event (shown on the Audit trail page)."""

    configured: bool
    path: str = ""
    last_seq: int | None = None
    tail: VerifyResult | None = None
    last_stream: int | None = None


@boundary
def witness_status(platform: Platform, principal: Principal) -> WitnessStatus:
    """The witness file (`LEDGER_AUDIT_WITNESS`) and a two-read check of the chain's tail
    against it. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_AUDIT)
    witness = platform.store.witness
    if witness is None:
        return WitnessStatus(False)
    last = witness.last()
    return WitnessStatus(True, str(witness.path), last.seq if last else None, platform.ledger.audit.check_witness_tail(),
                         last.stream if last else None)
