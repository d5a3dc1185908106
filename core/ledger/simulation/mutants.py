"""Known-bad engines the simulator must catch (its teeth). Each is the real Ledger with
one safety rule removed; tests assert the simulator finds each within a bounded number
of seeds and prints the seed and interleaving that breaks it. Never used by the product."""

from __future__ import annotations

from core.ledger.engine import Ledger
from core.ledger.entries import Head, Shortfall
from core.ledger.simulation.ledger_workload import CountingLedger
from core.ledger.store import DuplicateKeyStoreError


class ProjectionWithoutVersionFilter(CountingLedger):
    """Projects with `$set` on the account alone: a stale helper moves a projection back."""

    def project(self, document: dict) -> None:
        for posting in document["postings"]:
            self._balances.update_one({"_id": posting["account"]}, {"$set": {
                "version": posting["version"], "balance_minor": posting["balance_after"], "head_hash": document["entry_hash"],
                "kind": posting["kind"], "owner": posting["owner"], "asset": posting["asset"]}}, upsert=True)


class DebitWithoutFundsCheck(CountingLedger):
    """Claims a debit whatever the balance: a constrained account goes negative."""

    def _plan(self, request, heads: dict[str, Head]):  # noqa: ANN001, ANN202
        postings, shortfalls = super()._plan(request, heads)
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


MUTANTS: dict[str, type[Ledger]] = {
    "projection_without_version_filter": ProjectionWithoutVersionFilter,
    "debit_without_funds_check": DebitWithoutFundsCheck,
    "marker_early_cleanup": MarkerEarlyCleanup,
    "recovery_reapplies": RecoveryReapplies,
}

__all__ = ["MUTANTS", "Shortfall"]
