"""The legacy bridge, import: book opening balances into the ledger from one authoritative
legacy collection (SPEC §10; default `wallets`). The CLI is `core.legacy.cli`.

Per (user, currency) the primary document of the source collection (the one that states an
amount, then the newest: `core.legacy.bridge.primary_key`) is booked against
`platform.opening` under the key `legacy-import:<user>:<currency>`; its locked part becomes
an open hold under the same id, so locked always equals open holds. Replays are no-ops; a
balance that changed since it was imported is reported, never re-booked.

Amounts are booked exactly or not at all (`core.legacy.values.exact_minor`): text with more
decimals than the asset's scale is refused, never rounded. The report names **every**
document of the source collection that was not booked — duplicates (and which copy was
booked, and why), held documents (unparseable amounts, a suffixed copy beside a plain
one), excluded ones (unknown currency, system owners, invalid owners), excess precision,
negative or zero amounts — with its raw values, and lists every disagreement of the other
collections with what was booked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.base.errors import LedgerError, LegacyConfigurationError
from core.ledger import Store, accounts as acct, from_minor, make_request
from core.legacy.bridge import AUTHORITATIVE_DEFAULT, SPECS, LegacyRecord, Pair, exact_minor, read_legacy
from core.legacy.reconcile import compare_pair, database_findings, ledger_user_balances
from core.base.permissions import Permission, Principal, require
from core.base.records import record_dict
from core.platform import Platform
from core.platform.boundary import boundary, word

IMPORT_ENTRY_TYPE = "legacy.import"
IN_QUERY_BATCH_MAX = 1_000
REPORT_LISTS = ("planned", "imported", "already", "skipped", "failed", "not_booked", "choices", "findings",
                "disagreements", "noise")


def import_key(user: str, currency: str) -> str:
    return f"legacy-import:{user}:{currency}"


@dataclass
class ImportReport:
    """What an import booked, would book (dry run) or did not, and why.

    `skipped` lists pairs; `not_booked` lists documents of the source collection, each with
    its raw values and the reason; `findings` (a missing source collection, an empty
    database) fail the import like `failed` does."""

    source: str
    dry_run: bool
    planned: list[dict] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    not_booked: list[dict] = field(default_factory=list)
    choices: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    disagreements: list[dict] = field(default_factory=list)
    noise: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.findings

    def as_dict(self) -> dict:
        counts = {name: len(getattr(self, name)) for name in REPORT_LISTS}
        return record_dict(self, ("source", "dry_run", "ok", "counts", *REPORT_LISTS), counts=counts)


def _exact(record: LegacyRecord, logical: str, scale: int) -> int | str:
    stored = SPECS[record.collection].fields[logical]
    minor = exact_minor(record.raw_values[logical], record.values[logical], scale)
    return f"{stored}: {minor}" if isinstance(minor, str) else minor


def opening_values(record: LegacyRecord, scale: int) -> tuple[int, int] | str:
    """(available, locked) in exact minor units from one document, or why it cannot be
    imported (no amount, excess precision, negative)."""
    locked = _exact(record, "locked", scale) if "locked" in record.values else 0
    if "available" in record.values:
        available = _exact(record, "available", scale)
    elif "total" in record.values:
        total = _exact(record, "total", scale)
        available = total if isinstance(total, str) or isinstance(locked, str) else total - locked
    else:
        return "no available or total amount"
    for problem in (available, locked):
        if isinstance(problem, str):
            return problem
    if available < 0 or locked < 0:
        return f"negative amount (available {available}, locked {locked} minor units)"
    return available, locked


def _existing_keys(store: Store, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), IN_QUERY_BATCH_MAX):
        chunk = keys[start : start + IN_QUERY_BATCH_MAX]
        found |= {
            d["idempotency_key"]
            for d in store.collection("entries").find(
                {"idempotency_key": {"$in": chunk}}, limit=len(chunk), projection={"idempotency_key": 1}
            )
        }
    return found


@boundary(source=word)
def import_balances(
    platform: Platform,
    principal: Principal,
    legacy: Store,
    *,
    source: str = AUTHORITATIVE_DEFAULT,
    dry_run: bool = False,
) -> ImportReport:
    """Book opening balances from `source`; name every document not booked; list every
    disagreement of the other collections.

    Raises: PermissionDeniedError, LegacyConfigurationError (unknown source collection),
    ContentionError (the legacy collection kept changing during the scan).
    """
    require(principal, Permission.MANAGE_LEGACY)
    if source not in SPECS:
        raise LegacyConfigurationError(
            f"authoritative collection must be one of {', '.join(SPECS)}", source=repr(source)
        )
    view = read_legacy(legacy, platform.registry)
    ledger = ledger_user_balances(platform.store)
    existing = _existing_keys(platform.store, [import_key(*pair) for pair in sorted(view.groups)])
    report = ImportReport(source, dry_run)
    report.findings = [f for f in database_findings(view) if f["collection"] in (source, None)]
    report.not_booked += [item for item in view.excluded if item["collection"] == source]
    report.not_booked += [dict(item, kind="held") for item in view.held_items() if item["collection"] == source]
    report.choices = [choice for choice in view.choices if choice["collection"] == source]
    for pair, by_collection in sorted(view.groups.items()):
        held = view.held.get(pair, {}).get(source, [])
        _import_pair(platform, principal, report, pair, by_collection, ledger, existing, held)
    if report.imported:
        platform.ledger.audit.append(
            type="legacy.import",
            actor=principal.name,
            role=principal.role.value,
            target=f"legacy:{source}",
            data={"source": source, **{name: len(getattr(report, name)) for name in REPORT_LISTS if name != "planned"}},
        )
    return report


def _not_booked(report: ImportReport, record: LegacyRecord, kind: str, reason: str) -> None:
    report.not_booked.append({**record.as_item(), "kind": kind, "reason": reason})


def _refuse_pair(report: ImportReport, record: LegacyRecord, kind: str, reason: str) -> None:
    report.skipped.append({"user": record.owner, "currency": record.currency, "document": record.document, "reason": reason})
    _not_booked(report, record, kind, reason)


def _import_pair(
    platform: Platform,
    principal: Principal,
    report: ImportReport,
    pair: Pair,
    by_collection: dict[str, list[LegacyRecord]],
    ledger: dict,
    existing: set[str],
    held: list[LegacyRecord],
) -> None:
    user, currency = pair
    records = by_collection.get(report.source)
    if not records and held:  # there is a document: say which, and why it cannot be read (listed in not_booked)
        documents = ", ".join(record.document for record in held)
        report.skipped.append({"user": user, "currency": currency, "document": documents,
                               "reason": f"{report.source} document {documents} is held: {held[0].held}"})
        return
    if not records:
        report.skipped.append({"user": user, "currency": currency, "reason": f"no {report.source} document"})
        return
    primary = records[0]
    choice = next((c["reason"] for c in report.choices if (c["user"], c["currency"]) == pair), "")
    for extra in records[1:]:
        _not_booked(report, extra, "duplicate", f"duplicate of {primary.document}, the primary ({choice}): only a primary is booked")
    scale = platform.registry.get(currency).scale
    values = opening_values(primary, scale)
    if isinstance(values, str):
        _refuse_pair(report, primary, "unbookable", values)
        return
    available, locked = values
    comparison = compare_pair(pair, by_collection, scale, {"available": available, "locked": locked})
    report.disagreements += [dict(item, reference=report.source) for item in comparison.drift]
    report.noise += [item for item in comparison.noise if item["collection"] == report.source]
    key, known = import_key(user, currency), ledger.get(pair, {})
    if available + locked == 0:
        _refuse_pair(report, primary, "zero_balance", "zero balance: nothing to book")
        return
    if key not in existing and (known.get("available") or known.get("locked")):
        _refuse_pair(report, primary, "ledger_holds_balance", "the ledger already holds a balance not imported from legacy")
        return
    planned = {"user": user, "currency": currency, "available_minor": available, "locked_minor": locked, "key": key,
               "document": primary.document}
    if primary.raw_currency != currency:
        planned["raw_currency"] = primary.raw_currency  # a network suffix (USDTTRC20) booked as its asset
    if primary.non_finite:  # NaN/Infinity read as absent (dirt `non_finite_value`): say so beside what is booked
        planned["read_as_absent"] = {stored: primary.raw_money()[stored] for stored in primary.non_finite}
    report.planned.append(planned)
    if report.dry_run:
        return
    try:
        _book(platform, principal, user, currency, available, locked, report.source)
    except LedgerError as error:
        report.failed.append(
            {"user": user, "currency": currency, "key": key, "error": error.code, "message": error.message}
        )
        _not_booked(report, primary, "failed", f"{error.code}: {error.message}")
        return
    (report.already if key in existing else report.imported).append(key)


def _book(
    platform: Platform, principal: Principal, user: str, currency: str, available: int, locked: int, source: str
) -> None:
    """The opening entry (idempotent by key) and, for the locked part, an open hold."""
    total = from_minor(available + locked, currency, platform.registry)
    platform.ledger.post(
        make_request(
            idempotency_key=import_key(user, currency),
            type=IMPORT_ENTRY_TYPE,
            actor=principal.name,
            flow_ref=f"legacy:{source}",
            memo=f"opening balance imported from legacy {source}",
            metadata={"source": source},
            postings=(
                {"account": acct.opening(currency), "amount": -total},
                {"account": acct.user_available(user, currency), "amount": total},
            ),
        )
    )
    if locked:
        platform.ledger.place_user_hold(
            hold_id=import_key(user, currency),
            user_id=user,
            asset=currency,
            amount=from_minor(locked, currency, platform.registry),
            actor=principal.name,
            flow_ref=f"legacy:{source}",
            memo="locked in the legacy platform",
            metadata={"source": source},
        )
