"""Finish every flow and approval a crash left mid-way: the flow-level companion of
`Ledger.recover` (`python -m core flows recover`, and the flow-test runner's recoveries).

Order matters: first the ledger projects every entry a crash left unprojected; then every
audit event a crash left in a document's outbox is appended (core.platform.transitions); then each
flow document in a non-terminal, non-waiting state is driven on (its next entry is keyed,
its state change a compare-and-set), finished flows whose referral commission is still
owed are settled again (paid when the fee wallet allows), approvals are executed or
corrected, due approvals and quotes are expired, and any hold left open behind a finished
flow (placed by a caller that found the flow refused and died before releasing it) is
released (core.flows.holds). Every item is isolated: one that
fails is reported in `failed` and the rest go on. Safe to run at any time, any number of
times, beside live writers (nothing here depends on clocks or staleness).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from core import approvals
from core.platform import transitions
from core.flows import deposit, holds, p2p, quotes, referral, withdrawal
from core.ledger import RECOVERY_STALE_AFTER
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.transitions import SweepReport
from core.platform.boundary import boundary

RESUME_BATCH_MAX = 1_000
# collection → (states to drive on, resume function)
RESUMABLE = {
    "withdrawals": (("requested", "held", "approved", "rejecting"), withdrawal.resume_withdrawal),
    "deposits": (("confirming",), deposit.resume_deposit),
    "quotes": (("new", "executing", "expiring"), quotes.resume_quote),
    "p2p_trades": (("new", "closing"), p2p.resume_trade),
}
# finished flows whose referral commission is owed or a crash interrupted (`referral_done: False`)
REFERRAL_PENDING = {
    name: (referral.FINISHED_STATES[name], resume)
    for name, resume in (
        ("withdrawals", withdrawal.resume_withdrawal),
        ("quotes", quotes.resume_quote),
        ("p2p_trades", p2p.resume_trade),
    )
}
# flow collections whose documents carry an audit outbox (core.platform.transitions)
OUTBOX_COLLECTIONS = ("withdrawals", "deposits", "quotes", "p2p_trades")


@dataclass
class FlowRecoveryReport:
    entries_driven: int = 0
    entries_poisoned: dict[str, str] = field(default_factory=dict)
    events_flushed: int = 0
    flows_resumed: dict[str, int] = field(default_factory=dict)
    approvals_finished: int = 0
    approvals_expired: int = 0
    quotes_expired: int = 0
    commissions_owed: int = 0
    holds_released: list[str] = field(default_factory=list)  # flows whose stranded hold this run released
    holds_awaiting_placer: list[str] = field(default_factory=list)  # finished flows naming a placer that placed nothing yet
    failed: dict[str, dict] = field(default_factory=dict)  # item id → {"error", "message"}

    @property
    def ok(self) -> bool:
        return not self.failed and not self.entries_poisoned

    def as_dict(self) -> dict:
        return {
            "entries_driven": self.entries_driven,
            "entries_poisoned": dict(self.entries_poisoned),
            "events_flushed": self.events_flushed,
            "flows_resumed": dict(self.flows_resumed),
            "approvals_finished": self.approvals_finished,
            "approvals_expired": self.approvals_expired,
            "quotes_expired": self.quotes_expired,
            "commissions_owed": self.commissions_owed,
            "holds_released": list(self.holds_released),
            "holds_awaiting_placer": list(self.holds_awaiting_placer),
            "failed": dict(self.failed),
        }


@boundary
def resume_all(
    platform: Platform, principal: Principal, stale_after: timedelta = RECOVERY_STALE_AFTER
) -> FlowRecoveryReport:
    """Recover the ledger, then every interrupted flow and approval (see the module doc).
    `stale_after` is passed to the ledger's recovery: it only decides *when* an entry is
    helped, never whether helping is safe. Returns the report (failures per item in
    `failed`). Raises: PermissionDeniedError."""
    require(principal, Permission.MOVE_MONEY)
    ledger_report = platform.ledger.recover(stale_after=stale_after)
    report = FlowRecoveryReport(entries_driven=len(ledger_report.entries_projected),
                                entries_poisoned=dict(ledger_report.poisoned))
    report.events_flushed = _flush_outboxes(platform, report)
    for table, extra in ((RESUMABLE, {}), (REFERRAL_PENDING, {"referral_done": False})):
        for collection_name, (states, resume) in table.items():
            sweep = SweepReport()
            documents = platform.store.collection(collection_name).find(
                {"state": {"$in": list(states)}, **extra}, limit=RESUME_BATCH_MAX
            )
            for document in documents:
                sweep.run(document["_id"], lambda d=document, f=resume: f(platform, principal, d["_id"]))
            report.flows_resumed[collection_name] = report.flows_resumed.get(collection_name, 0) + len(sweep.done)
            report.failed.update(sweep.failed)
    for name, sweep in (
        ("approvals_finished", approvals.resume_approved(platform, principal)),
        ("approvals_expired", approvals.expire_due(platform, principal)),
        ("quotes_expired", quotes.expire_due_quotes(platform, principal)),
    ):
        setattr(report, name, len(sweep.done))
        report.failed.update(sweep.failed)
    report.commissions_owed = len(referral.owed_commissions(platform))
    stranded = holds.release_stranded(platform, principal)
    report.holds_released, report.holds_awaiting_placer = stranded.released, stranded.waiting
    report.failed.update(stranded.failed)
    tail = platform.ledger.recover(stale_after=stale_after)  # confirm what the sweeps above journaled themselves
    report.entries_driven += len(tail.entries_projected)
    report.entries_poisoned.update(tail.poisoned)
    return report


def _flush_outboxes(platform: Platform, report: FlowRecoveryReport) -> int:
    """Append every audit event a crash left between a state change and its flush."""
    sweep = approvals.flush_waiting_events(platform)
    for collection_name in OUTBOX_COLLECTIONS:
        collection = platform.store.collection(collection_name)
        for document in transitions.waiting(collection):
            sweep.run(document["_id"], lambda d=document, c=collection: transitions.flush(platform.ledger.audit, c, d))
    report.failed.update(sweep.failed)
    return len(sweep.done)
