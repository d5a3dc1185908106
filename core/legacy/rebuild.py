"""The legacy bridge, writing side: import opening balances into the ledger, and rebuild
the four legacy collections from the ledger (SPEC §10). The CLI is `core.legacy.cli`.

Import books, per (user, currency), the authoritative collection's balance against
`platform.opening` (key `legacy-import:<user>:<currency>`; the locked part becomes an open
hold `legacy-import:<user>:<currency>` so locked always equals open holds). Replays are
no-ops; a balance that changed since it was imported is reported, never re-booked.

Rebuild is planned first (a dry-run lists every write with before/after), then requested
for approval ("legacy.rebuild"). The approved plan is stored; the executor recomputes the
plan and applies it only if every write it would make was approved (a crash part-way
leaves a subset, which is then finished), so nothing unapproved is ever written.

The old backend reads BSON doubles, so a rebuild writes doubles: the one place a float is
made, from exact decimal text that a double reads back exactly (`_text` refuses any other at planning time).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from core.ledger import accounts as acct
from core import approvals
from core.ledger import make_request
from core.errors import (
    InvalidAmountError,
    LedgerError,
    LegacyConfigurationError,
    LegacyPlanChangedError,
    RepairNotNeededError,
)
from core.ledger import digest
from core.legacy.bridge import (
    AUTHORITATIVE_DEFAULT,
    SPECS,
    LegacyRecord,
    LegacyView,
    Pair,
    iso,
    legacy_decimal,
    legacy_store_for,
    legacy_time,
    read_legacy,
    scaled,
    to_minor,
)
from core.legacy.reconcile import compare_pair, ledger_user_balances
from core.ledger import from_minor
from core.permissions import Permission, Principal, require
from core.platform import Platform
from core.ledger import DuplicateKeyStoreError, Store

IMPORT_ENTRY_TYPE = "legacy.import"
REBUILD_KIND = "legacy.rebuild"
PLANS = "legacy_rebuild_plans"
PLAN_CHUNK_WRITES = 1_000
IN_QUERY_BATCH_MAX = 1_000
AUDIT_WRITES_MAX = 200  # the rebuild's audit event lists at most this many writes (the count is exact)
NOW_MARKER = None  # a timestamp the rebuild sets to the time it runs


def import_key(user: str, currency: str) -> str:
    return f"legacy-import:{user}:{currency}"


# -- import ----------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    source: str
    dry_run: bool
    planned: list[dict] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    disagreements: list[dict] = field(default_factory=list)
    noise: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "counts": {
                name: len(getattr(self, name))
                for name in ("planned", "imported", "already", "skipped", "failed", "disagreements", "noise")
            },
            "planned": self.planned,
            "imported": self.imported,
            "already": self.already,
            "skipped": self.skipped,
            "failed": self.failed,
            "disagreements": self.disagreements,
            "noise": self.noise,
        }


def opening_values(record: LegacyRecord, scale: int) -> tuple[int, int] | str:
    """(available, locked) in minor units from one document, or why it cannot be imported."""
    values = record.values
    locked = values.get("locked", Decimal(0))
    if "available" in values:
        available = values["available"]
    elif "total" in values:
        available = values["total"] - locked
    else:
        return "no available or total amount"
    if available < 0 or locked < 0:
        return f"negative amount (available {available}, locked {locked})"
    return to_minor(available, scale), to_minor(locked, scale)


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


def import_balances(
    platform: Platform,
    principal: Principal,
    legacy: Store,
    *,
    source: str = AUTHORITATIVE_DEFAULT,
    dry_run: bool = False,
) -> ImportReport:
    """Book opening balances from `source`; list every disagreement of the other collections.

    Raises: PermissionDeniedError, LegacyConfigurationError (unknown source collection).
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
    for pair, by_collection in sorted(view.groups.items()):
        _import_pair(platform, principal, report, pair, by_collection, ledger, existing)
    if report.imported:
        platform.ledger.audit.append(
            type="legacy.import",
            actor=principal.name,
            role=principal.role.value,
            target=f"legacy:{source}",
            data={
                "source": source,
                "imported": len(report.imported),
                "already": len(report.already),
                "skipped": len(report.skipped),
                "failed": len(report.failed),
                "disagreements": len(report.disagreements),
            },
        )
    return report


def _import_pair(
    platform: Platform,
    principal: Principal,
    report: ImportReport,
    pair: Pair,
    by_collection: dict[str, list[LegacyRecord]],
    ledger: dict,
    existing: set[str],
) -> None:
    user, currency = pair
    records = by_collection.get(report.source)
    if not records:
        report.skipped.append({"user": user, "currency": currency, "reason": f"no {report.source} document"})
        return
    scale = platform.registry.get(currency).scale
    values = opening_values(records[0], scale)
    if isinstance(values, str):
        report.skipped.append({"user": user, "currency": currency, "reason": values})
        return
    available, locked = values
    comparison = compare_pair(pair, by_collection, scale, {"available": available, "locked": locked})
    report.disagreements += [dict(item, reference=report.source) for item in comparison.drift]
    report.noise += [item for item in comparison.noise if item["collection"] == report.source]
    key, known = import_key(user, currency), ledger.get(pair, {})
    if available + locked == 0:
        report.skipped.append({"user": user, "currency": currency, "reason": "zero balance"})
        return
    if key not in existing and (known.get("available") or known.get("locked")):
        report.skipped.append(
            {
                "user": user,
                "currency": currency,
                "reason": "the ledger already holds a balance not imported from legacy",
            }
        )
        return
    report.planned.append(
        {
            "user": user,
            "currency": currency,
            "available_minor": available,
            "locked_minor": locked,
            "key": key,
            "document": records[0].document,
        }
    )
    if report.dry_run:
        return
    try:
        _book(platform, principal, user, currency, available, locked, report.source)
    except LedgerError as error:
        report.failed.append(
            {"user": user, "currency": currency, "key": key, "error": error.code, "message": error.message}
        )
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


# -- rebuild ----------------------------------------------------------------------------------------
@dataclass
class RebuildPlan:
    writes: list[dict] = field(default_factory=list)  # JSON: what the approver sees (and the digest covers)
    raw_ids: list[object] = field(default_factory=list)  # the documents' real `_id`s, parallel to `writes`
    skipped: list[dict] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return digest({"writes": self.writes})

    @property
    def counts(self) -> dict:
        return dict(sorted(Counter(w["op"] for w in self.writes).items()))

    def as_dict(self) -> dict:
        return {"plan_digest": self.digest, "counts": self.counts, "writes": self.writes, "skipped": self.skipped}


def _text(minor: int, scale: int) -> str:
    """Exact decimal text of a planned legacy value. Refused at planning time (before any
    approval) when the old backend's double could not hold it exactly.
    Raises: InvalidAmountError."""
    text = f"{Decimal(minor).scaleb(-scale):.{scale}f}"
    if Decimal(repr(_legacy_double(text))) != Decimal(text):
        raise InvalidAmountError(f"{text} cannot be written exactly as a legacy double", value=text)
    return text


def _before(value: object) -> str | None:
    number = legacy_decimal(value)
    return str(number) if number is not None else (None if value is None else f"<{type(value).__name__}>")


def _pair_writes(
    plan: RebuildPlan, pair: Pair, by_collection: dict[str, list[LegacyRecord]], target: dict[str, int], scale: int
) -> None:
    user, currency = pair
    desired = {logical: _text(minor, scale) for logical, minor in target.items()}
    for name, spec in SPECS.items():
        records = by_collection.get(name, [])
        if not records:
            if name == AUTHORITATIVE_DEFAULT and target["total"]:
                fields = {
                    spec.owner_field: user,
                    "currency": currency,
                    **{spec.fields[k]: v for k, v in desired.items()},
                }
                plan.writes.append(
                    {
                        "op": "insert",
                        "collection": name,
                        "document": None,
                        "user": user,
                        "currency": currency,
                        "set": fields,
                        "before": {},
                        "timestamps": {t: NOW_MARKER for t in spec.timestamp_fields},
                    }
                )
                plan.raw_ids.append(None)
            continue
        primary = records[0]
        sets, before = {}, {}
        for logical, stored in spec.fields.items():
            raw = primary.raw_values.get(logical)
            if not (isinstance(raw, float) and scaled(Decimal(repr(raw)), scale) == target[logical]):
                sets[stored], before[stored] = desired[logical], _before(raw)
        if primary.raw_currency != currency:
            sets["currency"], before["currency"] = currency, str(primary.raw_currency)
        timestamps = {}
        for name_t, raw_t in sorted(primary.raw_times.items()):
            if not isinstance(raw_t, datetime):
                moment = legacy_time(raw_t)
                timestamps[name_t] = iso(moment) if moment else NOW_MARKER
        if sets:
            timestamps[spec.timestamp_fields[0]] = NOW_MARKER
        if sets or timestamps:
            plan.writes.append(
                {
                    "op": "update",
                    "collection": name,
                    "document": primary.document,
                    "user": user,
                    "currency": currency,
                    "set": sets,
                    "before": before,
                    "timestamps": timestamps,
                }
            )
            plan.raw_ids.append(primary.raw_id)
        for extra in records[1:]:
            plan.writes.append(
                {
                    "op": "delete",
                    "collection": name,
                    "document": extra.document,
                    "user": user,
                    "currency": currency,
                    "set": {},
                    "before": {},
                    "timestamps": {},
                }
            )
            plan.raw_ids.append(extra.raw_id)


def compute_plan(platform: Platform, view: LegacyView) -> RebuildPlan:
    """Every write that makes the user balance documents equal the ledger."""
    plan, ledger = RebuildPlan(), ledger_user_balances(platform.store)
    for pair in sorted(set(view.groups) | set(ledger)):
        by_collection = view.groups.get(pair, {})
        values = ledger.get(pair)
        if values is None:  # the ledger never saw it: only an all-zero legacy balance may be rewritten
            if any(v != 0 for records in by_collection.values() for r in records for v in r.values.values()):
                plan.skipped.append(
                    {"user": pair[0], "currency": pair[1], "reason": "not in the ledger: import it first"}
                )
                continue
            values = {"available": 0, "locked": 0}
        target = {
            "available": values["available"],
            "locked": values["locked"],
            "total": values["available"] + values["locked"],
        }
        if min(target.values()) < 0:
            plan.skipped.append(
                {"user": pair[0], "currency": pair[1], "reason": "negative ledger balance: run the integrity check"}
            )
            continue
        _pair_writes(plan, pair, by_collection, target, platform.registry.get(pair[1]).scale)
    return plan


def plan_rebuild(platform: Platform, principal: Principal, legacy: Store) -> RebuildPlan:
    """The dry-run: what a rebuild would write. Raises: PermissionDeniedError."""
    require(principal, Permission.MANAGE_LEGACY)
    return compute_plan(platform, read_legacy(legacy, platform.registry))


def request_rebuild(platform: Platform, principal: Principal, legacy: Store, reason: str) -> dict:
    """Store the current plan and open an approval request for it.

    Raises: PermissionDeniedError, RepairNotNeededError (nothing to rewrite), ReasonRequiredError.
    """
    plan = plan_rebuild(platform, principal, legacy)
    if not plan.writes:
        raise RepairNotNeededError("the legacy collections already agree with the ledger")
    _store_plan(platform, principal, plan)
    return approvals.request_approval(
        platform,
        principal,
        kind=REBUILD_KIND,
        asset=None,
        amount_minor=None,
        payload={"plan_digest": plan.digest, "writes": len(plan.writes), **plan.counts},
        idempotency_key=f"{REBUILD_KIND}:{plan.digest}",
        reason=reason,
    )


def _store_plan(platform: Platform, principal: Principal, plan: RebuildPlan) -> None:
    """The approved plan, in chunks (a document stays far below MongoDB's 16 MB limit);
    chunk ids `<digest>:<n>` make storing the same plan again a no-op."""
    collection, now = platform.store.collection(PLANS), platform.clock.now()
    for number, start in enumerate(range(0, len(plan.writes), PLAN_CHUNK_WRITES)):
        try:
            collection.insert_one(
                {
                    "_id": f"{plan.digest}:{number:06d}",
                    "plan_digest": plan.digest,
                    "created_at": now,
                    "requested_by": principal.name,
                    "writes": plan.writes[start : start + PLAN_CHUNK_WRITES],
                }
            )
        except DuplicateKeyStoreError:
            pass  # stored before (the same plan requested again)


def _approved_writes(platform: Platform, plan_digest: str) -> set[str]:
    """Keys of every write of a stored plan (its chunks are a range of `_id`s)."""
    chunks = platform.store.collection(PLANS).find({"_id": {"$gte": f"{plan_digest}:", "$lt": f"{plan_digest};"}})
    return {_write_key(write) for chunk in chunks for write in chunk["writes"]}


def _write_key(write: dict) -> str:
    return digest(write)


def execute_rebuild(platform: Platform, approval: dict, principal: Principal) -> dict:
    """The executor of "legacy.rebuild": apply the current plan if every write in it was approved.

    Raises: LegacyPlanChangedError, LegacyConfigurationError (no legacy store).
    """
    legacy = legacy_store_for(platform.legacy)
    approved = _approved_writes(platform, approval["payload"]["plan_digest"])
    if not approved:
        raise LegacyPlanChangedError("the approved plan is not stored: dry-run and request again")
    plan = compute_plan(platform, read_legacy(legacy, platform.registry))
    if not plan.writes:  # already applied (a re-run after a crash between the writes and the result)
        return {"plan_digest": approval["payload"]["plan_digest"], "writes_applied": 0}
    if any(_write_key(w) not in approved for w in plan.writes):
        raise LegacyPlanChangedError(
            "the legacy collections or the ledger changed since the plan was approved",
            plan_digest=approval["payload"]["plan_digest"],
        )
    platform.ledger.audit.append(
        type="legacy.rebuild",
        actor=principal.name,
        role=principal.role.value,
        target="legacy",
        before=[
            {"collection": w["collection"], "document": w["document"], **w["before"]}
            for w in plan.writes[:AUDIT_WRITES_MAX]
        ],
        after=[
            {"op": w["op"], "collection": w["collection"], "document": w["document"], **w["set"]}
            for w in plan.writes[:AUDIT_WRITES_MAX]
        ],
        data={
            "approval_id": approval["_id"],
            "plan_digest": approval["payload"]["plan_digest"],
            "writes": len(plan.writes),
            **plan.counts,
        },
        event_key=f"{REBUILD_KIND}:{approval['_id']}:{plan.digest}",
    )
    _apply(legacy, plan, platform.clock.now())
    return {"plan_digest": approval["payload"]["plan_digest"], "writes_applied": len(plan.writes), **plan.counts}


def _legacy_double(text: str) -> float:
    """The old backend's number format; `_text` has checked that the text reads back
    unchanged through `Decimal(repr(x))`. This is the only float the product writes."""
    return float(text)


def _apply(legacy: Store, plan: RebuildPlan, now: datetime) -> None:
    for write, raw_id in zip(plan.writes, plan.raw_ids, strict=True):
        collection = legacy.collection(write["collection"])
        money = {
            k: (v if k in ("currency", SPECS[write["collection"]].owner_field) else _legacy_double(v))
            for k, v in write["set"].items()
        }
        times = {k: (now if v is NOW_MARKER else datetime.fromisoformat(v)) for k, v in write["timestamps"].items()}
        if write["op"] == "insert":
            collection.insert_one({**money, **times})
        elif write["op"] == "update":
            collection.update_one({"_id": raw_id}, {"$set": {**money, **times}})
        else:
            collection.delete_many({"_id": raw_id})


approvals.register_executor(REBUILD_KIND, execute_rebuild)
