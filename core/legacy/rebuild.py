"""The legacy bridge, rebuild: rewrite the four legacy collections from the ledger (SPEC
§10) so the old backend keeps reading correct numbers. Import is `core.legacy.opening`, the
CLI `core.legacy.cli`.

A rebuild is planned first (a dry-run lists every write with before/after), then requested
for approval ("legacy.rebuild"). The approved plan is stored; the executor recomputes the
plan and applies it only if every write it would make was approved (a crash part-way
leaves a subset, which is then finished), so nothing unapproved is ever written.

What a plan never does:
- write or delete a *held* document (unparseable amounts, a suffixed copy beside a plain
  one): it is listed with its raw values for a human decision, and no copy is inserted
  beside it;
- touch an excluded document (system owners, fee counters, unknown currencies);
- create a missing collection, or populate a database with no balance document at all
  (refused: most likely the wrong `LEGACY_DB`);
- abort for one pair: a pair it cannot plan (not in the ledger — "import it first", or,
  when the import itself refuses the pair, the import's reason —, a negative ledger balance,
  a value a double cannot hold exactly, a held document of a pair the ledger does not
  know) is *refused* by name — user, currency, value, reason — and the rest proceeds.

The old backend reads BSON doubles, so a rebuild writes doubles: the one place a float is
made, from exact decimal text that a double reads back exactly (`_text` refuses any other
at planning time). Writes address documents by `{_id: {$eq: id}}`: an `_id` stored as an
embedded document is compared as a value, never read as an operator. Every write is
idempotent, so two executions of one approved plan (approvals run executors without
claims) end in the same state: `$set` updates, deletes by `_id`, and inserts under a
deterministic `_id` (`inserted_id`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from core.platform.boundary import boundary
from core import approvals
from core.approvals import ApprovalRequest
from core.base.records import record_dict
from core.base.errors import InvalidAmountError, LegacyConfigurationError, LegacyPlanChangedError, RepairNotNeededError
from core.ledger import DuplicateKeyStoreError, Store, digest
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
    raw_text,
    read_legacy,
    scaled,
)
from core.legacy.opening import opening_values
from core.legacy.reconcile import ledger_user_balances
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

REBUILD_KIND = "legacy.rebuild"
PLANS = "legacy_rebuild_plans"
PLAN_CHUNK_WRITES = 1_000
AUDIT_WRITES_MAX = 200  # the rebuild's audit event lists at most this many writes (the count is exact)
NOW_MARKER = None  # a timestamp the rebuild sets to the time it runs
PLAN_KEYS = ("plan_digest", "counts", "writes", "refused", "held", "missing_collections")  # the plan's JSON, in order


@dataclass
class RebuildPlan:
    """Every write a rebuild would make, and every pair and document it will not touch."""

    writes: list[dict] = field(default_factory=list)  # JSON: what the approver sees (and the digest covers)
    raw_ids: list[object] = field(default_factory=list)  # the documents' real `_id`s, parallel to `writes`
    refused: list[dict] = field(default_factory=list)  # pairs: user, currency, value, reason
    held: list[dict] = field(default_factory=list)  # documents a human decides about, with raw values
    missing: list[str] = field(default_factory=list)  # collections the database does not have (never created)

    @property
    def digest(self) -> str:
        """Covers what the approver decides on: the writes, and what is left alone and why."""
        return digest({"writes": self.writes, "refused": self.refused, "held": self.held, "missing": self.missing})

    @property
    def counts(self) -> dict:
        return dict(sorted(Counter(w["op"] for w in self.writes).items()))

    def as_dict(self) -> dict:
        return record_dict(self, PLAN_KEYS, plan_digest=self.digest, missing_collections=self.missing)


class PairRefused(Exception):
    """Internal: one pair cannot be planned (caught per pair by `compute_plan`)."""

    def __init__(self, value: str | None, reason: str) -> None:
        super().__init__(reason)
        self.value, self.reason = value, reason


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


def inserted_id(user: str, currency: str) -> str:
    """The `_id` of a `wallets` document a rebuild creates: deterministic, so two runs of
    one approved plan (a retry beside a slow first run) insert one document, never two."""
    return f"ledger-rebuild:{user}:{currency}"


def _write(op: str, name: str, document: str | None, pair: Pair, sets: dict, before: dict, timestamps: dict) -> dict:
    return {"op": op, "collection": name, "document": document, "user": pair[0], "currency": pair[1],
            "set": sets, "before": before, "timestamps": timestamps}


def _update(name: str, primary: LegacyRecord, pair: Pair, target: dict[str, int], desired: dict[str, str],
            scale: int) -> dict | None:
    """The update that makes the primary document equal the ledger, or None when it does."""
    spec, sets, before = SPECS[name], {}, {}
    for logical, stored in spec.fields.items():
        raw = primary.raw_values.get(logical)
        if not (isinstance(raw, float) and scaled(Decimal(repr(raw)), scale) == target[logical]):
            sets[stored], before[stored] = desired[logical], _before(raw)
    if primary.raw_currency != pair[1]:
        sets["currency"], before["currency"] = pair[1], raw_text(primary.raw_currency)
    timestamps = {}
    for name_t, raw_t in sorted(primary.raw_times.items()):
        if not isinstance(raw_t, datetime):
            moment = legacy_time(raw_t)
            timestamps[name_t] = iso(moment) if moment else NOW_MARKER
    if sets:
        timestamps[spec.timestamp_fields[0]] = NOW_MARKER
    return _write("update", name, primary.document, pair, sets, before, timestamps) if sets or timestamps else None


def _pair_writes(view: LegacyView, pair: Pair, target: dict[str, int], scale: int) -> list[tuple[dict, object]]:
    """Every write of one pair, as (write, raw `_id`). Held documents are never among them.
    Raises: PairRefused (a value a double cannot hold exactly)."""
    try:
        desired = {logical: _text(minor, scale) for logical, minor in target.items()}
    except InvalidAmountError as error:
        raise PairRefused(error.details.get("value"), f"{error.message}: the old backend would read another amount") from None
    writes: list[tuple[dict, object]] = []
    for name, spec in SPECS.items():
        if name in view.missing:
            continue  # a rebuild never creates a collection
        records, held = view.groups.get(pair, {}).get(name, []), view.held.get(pair, {}).get(name, [])
        if not records:
            if name == AUTHORITATIVE_DEFAULT and target["total"] and not held:
                fields = {spec.owner_field: pair[0], "currency": pair[1], **{spec.fields[k]: v for k, v in desired.items()}}
                timestamps = {t: NOW_MARKER for t in spec.timestamp_fields}
                document_id = inserted_id(*pair)
                writes.append((_write("insert", name, document_id, pair, fields, {}, timestamps), document_id))
            continue
        update = _update(name, records[0], pair, target, desired, scale)
        if update is not None:
            writes.append((update, records[0].raw_id))
        for extra in records[1:]:
            writes.append((_write("delete", name, extra.document, pair, {}, extra.raw_money(), {}), extra.raw_id))
    return writes


def _not_importable(view: LegacyView, pair: Pair, scale: int) -> str | None:
    """Why the import (from its default source) would book nothing for `pair`, in its own
    words; None when it would book it. A plan that said "import it first" to a pair the
    import refuses (a negative amount, say) sent the operator round in a circle."""
    records = view.groups.get(pair, {}).get(AUTHORITATIVE_DEFAULT)
    if not records:
        return None  # importable from another source collection: "import it first" holds
    primary = records[0]
    values = opening_values(primary, scale)
    if isinstance(values, str):
        return f"import refuses {AUTHORITATIVE_DEFAULT} document {primary.document} ({values})"
    if sum(values) == 0:
        return f"import books nothing: {AUTHORITATIVE_DEFAULT} document {primary.document} says zero"
    return None


def _target(view: LegacyView, pair: Pair, values: dict[str, int] | None, scale: int) -> dict[str, int]:
    """What the pair's documents must say. Raises: PairRefused."""
    if values is None:  # the ledger never saw it: only an all-zero, fully readable legacy balance may be rewritten
        if view.held.get(pair):
            documents = ", ".join(r.document for rs in view.held[pair].values() for r in rs)
            raise PairRefused(None, f"not in the ledger, and {documents} needs a human decision")
        for records in view.groups.get(pair, {}).values():
            for record in records:
                for logical, number in sorted(record.values.items()):
                    if number != 0:
                        stored = SPECS[record.collection].fields[logical]
                        refusal = _not_importable(view, pair, scale)
                        reason = (f"not in the ledger, and {refusal}: importing it cannot fix this pair; a human "
                                  "decides (correct the legacy document)") if refusal else "not in the ledger: import it first"
                        raise PairRefused(f"{record.collection}.{stored} = {number}", reason)
        values = {"available": 0, "locked": 0}
    target = {"available": values["available"], "locked": values["locked"], "total": values["available"] + values["locked"]}
    if min(target.values()) < 0:
        raise PairRefused(f"{target} minor units", "negative ledger balance: run the integrity check")
    return target


def compute_plan(platform: Platform, view: LegacyView) -> RebuildPlan:
    """Every write that makes the user balance documents equal the ledger; pairs it cannot
    plan are refused by name and the rest proceeds.

    Raises: LegacyConfigurationError (no balance document at all: never populated)."""
    if view.documents_read == 0:
        missing = f" (missing: {', '.join(view.missing)})" if view.missing else ""
        raise LegacyConfigurationError(
            f"the legacy database holds no balance document{missing}: a rebuild never populates an empty "
            "database — is LEGACY_DB the right one?"
        )
    plan, ledger = RebuildPlan(held=view.held_items(), missing=list(view.missing)), ledger_user_balances(platform.store)
    for pair in sorted(set(view.groups) | set(view.held) | set(ledger)):
        try:
            scale = platform.registry.get(pair[1]).scale
            target = _target(view, pair, ledger.get(pair), scale)
            writes = _pair_writes(view, pair, target, scale)
        except PairRefused as refusal:
            plan.refused.append({"user": pair[0], "currency": pair[1], "value": refusal.value, "reason": refusal.reason})
            continue
        for write, raw_id in writes:
            plan.writes.append(write)
            plan.raw_ids.append(raw_id)
    return plan

@boundary
def plan_rebuild(platform: Platform, principal: Principal, legacy: Store) -> RebuildPlan:
    """The dry-run: what a rebuild would write, refuse and leave for a human.

    Raises: PermissionDeniedError, LegacyConfigurationError (an empty legacy database),
    ContentionError (a legacy collection kept changing during the scan)."""
    require(principal, Permission.MANAGE_LEGACY)
    return compute_plan(platform, read_legacy(legacy, platform.registry))


@boundary
def request_rebuild(platform: Platform, principal: Principal, legacy: Store, reason: str) -> dict:
    """Store the current plan and open an approval request for it.

    Raises: PermissionDeniedError, RepairNotNeededError (nothing to rewrite), ReasonRequiredError,
    LegacyConfigurationError (an empty legacy database).
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
        payload={"plan_digest": plan.digest, "writes": len(plan.writes), **plan.counts,
                 "refused": len(plan.refused), "held": len(plan.held)},
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


@boundary
def execute_rebuild(platform: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
    """The executor of "legacy.rebuild": apply the current plan if every write in it was approved.

    Raises: LegacyPlanChangedError, LegacyConfigurationError (no legacy store).
    """
    legacy = legacy_store_for(platform.legacy)
    approved = _approved_writes(platform, approval.payload["plan_digest"])
    if not approved:
        raise LegacyPlanChangedError("the approved plan is not stored: dry-run and request again")
    plan = compute_plan(platform, read_legacy(legacy, platform.registry))
    if not plan.writes:  # already applied (a re-run after a crash between the writes and the result)
        return {"plan_digest": approval.payload["plan_digest"], "writes_applied": 0}
    if any(_write_key(w) not in approved for w in plan.writes):
        raise LegacyPlanChangedError(
            "the legacy collections or the ledger changed since the plan was approved",
            plan_digest=approval.payload["plan_digest"],
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
            "approval_id": approval.id,
            "plan_digest": approval.payload["plan_digest"],
            "writes": len(plan.writes),
            **plan.counts,
        },
        event_key=f"{REBUILD_KIND}:{approval.id}:{plan.digest}",
    )
    _apply(legacy, plan, platform.clock.now())
    return {"plan_digest": approval.payload["plan_digest"], "writes_applied": len(plan.writes), **plan.counts}


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
            try:
                collection.insert_one({"_id": raw_id, **money, **times})
            except DuplicateKeyStoreError:
                pass  # another run of the same approved plan inserted it first: one document, never two
        elif write["op"] == "update":
            collection.update_one({"_id": {"$eq": raw_id}}, {"$set": {**money, **times}})
        else:
            collection.delete_many({"_id": {"$eq": raw_id}})


approvals.register_executor(REBUILD_KIND, execute_rebuild)
