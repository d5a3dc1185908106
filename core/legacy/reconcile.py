"""The legacy bridge, comparing side: reconcile the four legacy collections with each
other and with the ledger, per (user, currency), for available, locked and total.

The reference is the ledger when it knows the pair, otherwise the value most collections
agree on (ties go to `wallets`). A difference below one minor unit is noise, at least one
is drift; malformed documents come from `core.legacy.bridge` as dirt. Read-only.

Some states are wrong even when every copy agrees, so they are *findings* that fail the
reconcile like drift: a negative balance, a balance collection the database does not have,
and a database with no balance document at all (most likely the wrong `LEGACY_DB`: a
rebuild would populate it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.platform.boundary import boundary
from core.ledger import AccountKind
from core.legacy.bridge import (
    AUTHORITATIVE_DEFAULT,
    LOGICAL_FIELDS,
    SPECS,
    Dirt,
    LegacyRecord,
    LegacyView,
    Pair,
    legacy_store_for,
    read_legacy,
    read_user,
    scaled,
    to_minor,
)
from core.ledger import AssetRegistry
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.ledger import Finding
from core.ledger import Store
from core.integrity import IntegrityFinding, register_legacy_user_check


LEDGER_BALANCES_BATCH = 1_000  # balance documents per read of the ledger's user projections


@dataclass
class Comparison:
    drift: list[dict] = field(default_factory=list)
    noise: list[dict] = field(default_factory=list)
    dirt: list[Dirt] = field(default_factory=list)


def majority(values: list[int], preferred: int | None) -> int | None:
    """The most common value; a tie goes to `preferred` (the authoritative collection's)."""
    if not values:
        return None
    counts = Counter(values).most_common()
    top = [value for value, count in counts if count == counts[0][1]]
    return (
        preferred
        if preferred in top
        else top[0]
        if len(top) == 1
        else (preferred if preferred is not None else min(top))
    )


def reference_for(
    by_collection: dict[str, list[LegacyRecord]], scale: int, ledger: dict[str, int] | None
) -> tuple[dict[str, int], str]:
    """What each logical field should be: the ledger's numbers when it knows the pair,
    otherwise the value most collections agree on."""
    if ledger is not None:
        return {
            "available": ledger["available"],
            "locked": ledger["locked"],
            "total": ledger["available"] + ledger["locked"],
        }, "ledger"
    reference = {}
    for logical in LOGICAL_FIELDS:
        values = [
            to_minor(records[0].values[logical], scale)
            for records in by_collection.values()
            if logical in records[0].values
        ]
        wallet = by_collection.get(AUTHORITATIVE_DEFAULT, [None])[0]
        preferred = to_minor(wallet.values[logical], scale) if wallet and logical in wallet.values else None
        chosen = majority(values, preferred)
        if chosen is not None:
            reference[logical] = chosen
    return reference, "legacy_majority"


def compare_pair(
    pair: Pair, by_collection: dict[str, list[LegacyRecord]], scale: int, ledger: dict[str, int] | None
) -> Comparison:
    """Each stored field of each collection's primary document against the reference."""
    result = Comparison()
    reference, source = reference_for(by_collection, scale, ledger)
    for name, records in sorted(by_collection.items()):
        record, spec = records[0], SPECS[name]
        for logical in LOGICAL_FIELDS:
            if logical not in record.values or logical not in reference:
                continue
            stored, expected = spec.fields[logical], reference[logical]
            residual = scaled(record.values[logical], scale) - expected
            item = {
                "user": pair[0],
                "currency": pair[1],
                "collection": name,
                "field": stored,
                "document": record.document,
                "expected": expected,
                "reference": source,
            }
            if residual == 0:
                continue
            if abs(residual) < 1:
                result.noise.append({**item, "value": str(record.values[logical]), "residual_minor": str(residual)})
                continue
            actual = to_minor(record.values[logical], scale)
            if (
                logical == "total"
                and stored == "balance"
                and abs(scaled(record.values[logical], scale) - reference.get("available", expected)) < 1
            ):
                result.dirt.append(
                    Dirt(
                        "balance_is_available",
                        "info",
                        True,
                        name,
                        record.document,
                        pair[0],
                        record.raw_currency,
                        "`balance` holds the available amount, not the total",
                        stored,
                    )
                )
                continue
            result.drift.append({**item, "actual": actual, "difference": actual - expected})
    return result


@dataclass
class ReconcileReport:
    """Drift fails the reconcile; noise and dirt are reported beside it."""

    pairs_checked: int = 0
    documents_read: int = 0
    drift: list[dict] = field(default_factory=list)
    noise: list[dict] = field(default_factory=list)
    dirt: list[Dirt] = field(default_factory=list)
    system: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)  # negative_balance | missing_collection | empty_database
    held: list[dict] = field(default_factory=list)  # documents the bridge cannot read: a human decides
    choices: list[dict] = field(default_factory=list)  # which duplicate each comparison used, and why

    @property
    def ok(self) -> bool:
        return not self.drift and not self.findings

    @property
    def clean(self) -> bool:
        """Nothing a rebuild could still fix: no drift, no noise, only unfixable dirt."""
        return self.ok and not self.noise and all(not d.fixable for d in self.dirt)

    def as_dict(self) -> dict:
        dirt_counts = Counter(d.kind for d in self.dirt)
        return {
            "ok": self.ok,
            "clean": self.clean,
            "pairs_checked": self.pairs_checked,
            "documents_read": self.documents_read,
            "counts": {
                "drift": len(self.drift),
                "findings": len(self.findings),
                "held": len(self.held),
                "noise": len(self.noise),
                "dirt": len(self.dirt),
                "dirt_by_kind": dict(sorted(dirt_counts.items())),
            },
            "drift": self.drift,
            "findings": self.findings,
            "held": self.held,
            "choices": self.choices,
            "noise": self.noise,
            "dirt": [d.as_dict() for d in self.dirt],
            "system": self.system,
        }


def ledger_user_balances(store: Store, batch_size: int = LEDGER_BALANCES_BATCH) -> dict[Pair, dict[str, int]]:
    """Every user's available/locked per asset from the projections.

    Read per kind as a range of `_id`s (an account id starts with its kind, `user.available:`),
    in `_id` order and bounded batches: the `_id` index serves both the range and the order,
    where a filter on `kind` sorted by `_id` would need a blocking in-memory sort."""
    result: dict[Pair, dict[str, int]] = {}
    for kind, logical in ((AccountKind.USER_AVAILABLE.value, "available"), (AccountKind.USER_LOCKED.value, "locked")):
        bound: dict = {"$gte": f"{kind}:", "$lt": f"{kind};"}  # ';' follows ':': exactly this kind's ids
        while True:
            batch = store.collection("balances").find({"_id": bound}, sort=[("_id", 1)], limit=batch_size)
            for document in batch:
                values = result.setdefault((document["owner"], document["asset"]), {"available": 0, "locked": 0})
                values[logical] = document.get("balance_minor", 0)
            if len(batch) < batch_size:
                break
            bound = {"$gt": batch[-1]["_id"], "$lt": f"{kind};"}
    return result


def negative_findings(pair: Pair, by_collection: dict[str, list[LegacyRecord]]) -> list[dict]:
    """Every usable document of the pair holding a negative amount: wrong even when all agree."""
    findings = []
    for name, records in sorted(by_collection.items()):
        for record in records:
            negative = {SPECS[name].fields[k]: str(v) for k, v in record.values.items() if v < 0}
            if negative:
                findings.append(
                    {"kind": "negative_balance", "severity": "error", "user": pair[0], "currency": pair[1],
                     "collection": name, "document": record.document, "values": negative,
                     "message": f"{name} holds a negative {pair[1]} balance for {pair[0]}: {negative}"}
                )
    return findings


def database_findings(view: LegacyView) -> list[dict]:
    """Missing balance collections, and a database without a single balance document."""
    findings = [
        {"kind": "missing_collection", "severity": "error", "collection": name,
         "message": f"the legacy database has no {name} collection"}
        for name in view.missing
    ]
    if view.documents_read == 0:
        findings.append(
            {"kind": "empty_database", "severity": "error", "collection": None,
             "message": "the legacy database holds no balance document at all: is LEGACY_DB the right database?"}
        )
    return findings


def reconcile_view(
    view: LegacyView, ledger: dict[Pair, dict[str, int]] | None, registry: AssetRegistry
) -> ReconcileReport:
    report = ReconcileReport(
        documents_read=view.documents_read, dirt=list(view.dirt), system=view.system,
        findings=database_findings(view), held=view.held_items(), choices=view.choices,
    )
    for pair in sorted(view.groups):
        report.pairs_checked += 1
        comparison = compare_pair(pair, view.groups[pair], registry.get(pair[1]).scale, (ledger or {}).get(pair))
        report.drift += comparison.drift
        report.noise += comparison.noise
        report.dirt += comparison.dirt
        report.findings += negative_findings(pair, view.groups[pair])
    for pair in sorted(set(ledger or {}) - set(view.groups) - set(view.held)):
        values = ledger[pair]
        if values["available"] or values["locked"]:
            report.drift.append(
                {
                    "user": pair[0],
                    "currency": pair[1],
                    "collection": AUTHORITATIVE_DEFAULT,
                    "field": "*",
                    "document": None,
                    "expected": values["available"] + values["locked"],
                    "actual": 0,
                    "difference": -(values["available"] + values["locked"]),
                    "reference": "ledger",
                }
            )
            report.pairs_checked += 1
    return report


def reconcile(ledger_store: Store | None, legacy: Store, registry: AssetRegistry) -> ReconcileReport:
    """Per (user, currency): the four collections against the ledger (when it knows the
    pair) or against each other. Read-only."""
    ledger = ledger_user_balances(ledger_store) if ledger_store is not None else None
    return reconcile_view(read_legacy(legacy, registry), ledger, registry)


@boundary
def reconcile_platform(platform: Platform, principal: Principal) -> ReconcileReport:
    """The console's reconcile: the configured legacy database against this ledger.
    Raises: PermissionDeniedError, LegacyConfigurationError (no legacy database)."""
    require(principal, Permission.RUN_INTEGRITY)
    return reconcile(platform.store, legacy_store_for(platform.legacy), platform.registry)


def user_legacy_findings(
    legacy: Store, user_id: str, projected: dict[str, int], registry: AssetRegistry
) -> list[Finding]:
    """The per-user integrity check's legacy part: each collection against the ledger's
    projections (an asset the ledger never saw counts as zero)."""

    view = read_user(legacy, user_id, registry)
    ledger: dict[Pair, dict[str, int]] = {}
    for account_id, minor in projected.items():
        kind, owner, asset = account_id.split(":")
        ledger.setdefault((owner, asset), {"available": 0, "locked": 0})[kind.removeprefix("user.")] = minor
    findings: list[Finding] = []
    dirt_found = list(view.dirt)
    for pair in sorted(view.groups):
        comparison = compare_pair(
            pair, view.groups[pair], registry.get(pair[1]).scale, ledger.get(pair, {"available": 0, "locked": 0})
        )
        for item in comparison.drift:
            findings.append(
                IntegrityFinding(
                    "legacy_mismatch",
                    "warning",
                    f"{item['collection']}:{item['document']}",
                    f"{item['collection']}.{item['field']} of {user_id}/{pair[1]} is {item['actual']}, "
                    f"the ledger says {item['expected']}",
                    pair[1],
                    item["expected"],
                    item["actual"],
                    item["difference"],
                    user=user_id,
                    collection=item["collection"],
                    field=item["field"],
                )
            )
        for item in comparison.noise:
            findings.append(
                IntegrityFinding(
                    "legacy_noise",
                    "info",
                    f"{item['collection']}:{item['document']}",
                    f"{item['collection']}.{item['field']} = {item['value']}: float noise below one minor unit",
                    pair[1],
                    item["expected"],
                    None,
                    None,
                    user=user_id,
                    collection=item["collection"],
                    field=item["field"],
                )
            )
        dirt_found += comparison.dirt
    for dirt in dirt_found:
        findings.append(
            IntegrityFinding(
                f"legacy_{dirt.kind}",
                "info" if dirt.severity == "info" else "warning",
                f"{dirt.collection}:{dirt.document}",
                dirt.message,
                user=user_id,
                collection=dirt.collection,
                field=dirt.field,
            )
        )
    return findings


register_legacy_user_check(user_legacy_findings)  # integrity's per-user check compares a given legacy store with this
