"""Known-bad engines the simulator must catch (its teeth). Each is the real Ledger with
one safety rule removed (the exactly-once protocol, the hot-account stripes, the writer's
flag batches, the audit streams, replays and holds); tests assert the simulator finds each within a bounded number
of seeds and prints the seed and interleaving that breaks it. Never used by the product."""

from __future__ import annotations

from core.ledger.accounts import parse_account_id
from core.ledger.engine import Ledger
from core.ledger.entries import Entry, Head, Shortfall, make_request, plan_claims
from core.ledger.money import from_minor
from core.ledger.simulation.ledger_workload import CountingLedger
from core.ledger.store import DuplicateKeyStoreError
from core.ledger.stripes import is_striped, logical_id, part_id


class ProjectionWithoutVersionFilter(CountingLedger):
    """Projects with `$set` on the account alone: a stale helper moves a projection back."""

    def project(self, document: dict) -> None:
        for posting in document["postings"]:
            self._balances.update_one({"_id": posting["account"]}, {"$set": {
                "version": posting["version"], "balance_minor": posting["balance_after"], "head_hash": document["entry_hash"],
                "kind": posting["kind"], "owner": posting["owner"], "asset": posting["asset"]}}, upsert=True)


class DebitWithoutFundsCheck(CountingLedger):
    """Claims a debit whatever the balance: a constrained account goes negative."""

    def _plan(self, request, legs, heads: dict[str, Head]):  # noqa: ANN001, ANN202
        postings, shortfalls = super()._plan(request, legs, heads)
        return postings, [s for s in shortfalls if s.rule != "insufficient_funds"]


class MarkerEarlyCleanup(CountingLedger):
    """The first protocol: `$inc` guarded by a pending marker that is pulled as soon as the
    leg is in — a second driver of the same entry applies it again."""

    def project(self, document: dict) -> None:
        for posting in document["postings"]:
            try:
                self._balances.update_one(
                    {"_id": posting["account"], "pending": {"$ne": document["_id"]}},
                    {"$inc": {"balance_minor": posting["amount_minor"]}, "$max": {"version": posting["version"]},
                     "$set": {"head_hash": document["entry_hash"]}, "$push": {"pending": document["_id"]},
                     "$setOnInsert": {"kind": posting["kind"], "owner": posting["owner"], "asset": posting["asset"]}},
                    upsert=True)
            except DuplicateKeyStoreError:
                pass
            self._balances.update_one({"_id": posting["account"]}, {"$pull": {"pending": document["_id"]}})


class RecoveryReapplies(CountingLedger):
    """Recovery that applies an unprojected entry's legs by increment, without asking
    whether they are already in."""

    def _recover_one(self, document: dict, versions: dict) -> str:
        for posting in document["postings"]:
            self._balances.update_one({"_id": posting["account"]}, {
                "$inc": {"balance_minor": posting["amount_minor"]}, "$max": {"version": posting["version"]},
                "$set": {"head_hash": document["entry_hash"]},
                "$setOnInsert": {"kind": posting["kind"], "owner": posting["owner"], "asset": posting["asset"]}}, upsert=True)
        return ""


class StripeDebitWithoutOwnFundsCheck(CountingLedger):
    """Checks a debit of a striped account against the logical total only and takes it all
    from the writer's own stripe: that stripe goes negative."""

    def _plan(self, request, legs, heads: dict[str, Head]):  # noqa: ANN001, ANN202
        CountingLedger.attempts += 1

        def own_stripe(leg, heads, preferred, striping):  # noqa: ANN001, ANN202
            family = sum(h.balance_minor for part, h in heads.items() if logical_id(part) == leg.account.id)
            return [(part_id(leg.account, preferred % striping.count(leg.account.kind)), leg.amount_minor)] if family >= -leg.amount_minor else []
        postings, shortfalls = plan_claims(request, legs, heads, self._stripe(), self.striping, choose=own_stripe)
        return postings, [s for s in shortfalls if not (s.rule == "insufficient_funds" and is_striped(parse_account_id(s.account)))]


class LogicalReadMissingAPart(CountingLedger):
    """Reads a logical balance from its first stored part only."""

    def balance(self, account):  # noqa: ANN001, ANN201
        document = self._balances.find_one({"_id": account.id})
        return from_minor(document["balance_minor"] if document else 0, account.asset, self.registry)


class StripeLegAppliedTwice(CountingLedger):
    """Projects the legs of striped accounts by increment (no version filter): a helper or a
    recovery that drives the same entry again applies the leg a second time."""

    def project(self, document: dict) -> None:
        for posting in document["postings"]:
            if not is_striped(parse_account_id(posting["account"])):
                continue
            self._balances.update_one({"_id": posting["account"]}, {
                "$inc": {"balance_minor": posting["amount_minor"]}, "$max": {"version": posting["version"]},
                "$set": {"head_hash": document["entry_hash"]},
                "$setOnInsert": {"kind": posting["kind"], "owner": posting["owner"], "asset": posting["asset"]}}, upsert=True)
        super().project(dict(document, postings=[p for p in document["postings"] if not is_striped(parse_account_id(p["account"]))]))


class FlagClearedBeforeProjection(CountingLedger):
    """Clears an entry's `unprojected` flag before projecting it: a crash in between leaves
    an entry no recovery will ever find."""

    def _commit(self, document: dict) -> None:
        self._entries.update_one({"_id": document["_id"]}, {"$unset": {"unprojected": ""}})
        self.project(document)


class RecoveryClearsFlagFirst(CountingLedger):
    """Recovery that clears a batch's flags before projecting it (a crash in between loses them)."""

    def _recover_one(self, document: dict, versions: dict) -> str:
        self._entries.update_one({"_id": document["_id"]}, {"$unset": {"unprojected": ""}})
        return super()._recover_one(document, versions)


class ReplayWithoutRequestCheck(CountingLedger):
    """A replay returns the entry journaled under the key without comparing the requests:
    a different request under the same key "succeeds" with someone else's outcome."""

    def _replay(self, request, existing: dict, heads):  # noqa: ANN001, ANN202
        return Entry.from_document(existing)


class CloseKeyPerAction(CountingLedger):
    """Keys a hold's closing entry by its action: a release and a consume both succeed."""

    def _close_hold(self, place, action, memo, actor, postings, entry_type, metadata):  # noqa: ANN001, ANN202, PLR0913
        request = make_request(idempotency_key=f"hold:{place.hold_id}:{action}", type=entry_type, actor=actor,
                               flow_ref=place.flow_ref, memo=memo, metadata=metadata or {}, hold_id=place.hold_id,
                               hold_action=action, postings=tuple(postings))
        return self.post(request)


class AuditSequenceNotUnique(CountingLedger):
    """The audit index on (stream, seq) declared without `unique`: two appends that read the
    same head both insert the next sequence number."""

    def __init__(self, store, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        super().__init__(store, *args, **kwargs)
        raw = store.raw("audit")
        if raw.index_information().get("stream_1_seq_1", {}).get("unique"):
            raw.drop_index("stream_1_seq_1")
            raw.create_index([("stream", 1), ("seq", 1)], name="stream_1_seq_1")


MUTANTS: dict[str, type[Ledger]] = {
    "projection_without_version_filter": ProjectionWithoutVersionFilter,
    "debit_without_funds_check": DebitWithoutFundsCheck,
    "marker_early_cleanup": MarkerEarlyCleanup,
    "recovery_reapplies": RecoveryReapplies,
    "stripe_debit_without_own_funds_check": StripeDebitWithoutOwnFundsCheck,
    "logical_read_missing_a_part": LogicalReadMissingAPart,
    "stripe_leg_applied_twice": StripeLegAppliedTwice,
    "flag_cleared_before_projection": FlagClearedBeforeProjection,
    "audit_sequence_not_unique": AuditSequenceNotUnique,
    "recovery_clears_flag_first": RecoveryClearsFlagFirst,
    "replay_without_request_check": ReplayWithoutRequestCheck,
    "close_key_per_action": CloseKeyPerAction,
}

__all__ = ["MUTANTS", "Shortfall"]
