"""Finish every flow a crash left mid-way: the flow-level companion of `Ledger.recover`.

Order matters: first the ledger finishes or compensates half-applied entries, then each
flow document in a non-terminal, non-waiting state is driven on (its next entry is
idempotent, its transition guarded), then approvals with enough approvals or without a
result are executed. Safe to run at any time and any number of times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from core.validation import boundary
from core import approvals
from core.flows import deposit, p2p, quotes, withdrawal
from core.ledger import RECOVERY_STALE_AFTER
from core.permissions import Permission, Principal, require
from core.platform import Platform

RESUME_BATCH_MAX = 1_000
# collection → (states to drive on, resume function)
RESUMABLE = {
    "withdrawals": (("requested", "held", "approved", "rejecting"), withdrawal.resume_withdrawal),
    "deposits": (("confirming",), deposit.resume_deposit),
    "quotes": (("new", "executing", "expiring"), quotes.resume_quote),
    "p2p_trades": (("new", "closing"), p2p.resume_trade),
}
# finished flows whose referral commission a crash may have interrupted (`referral_done: False`)
REFERRAL_PENDING = {
    "withdrawals": (("settled",), withdrawal.resume_withdrawal),
    "quotes": (("executed",), quotes.resume_quote),
    "p2p_trades": (("released", "resolved_buyer"), p2p.resume_trade),
}


@dataclass
class FlowRecoveryReport:
    entries_driven: int = 0
    flows_resumed: dict[str, int] = field(default_factory=dict)
    approvals_finished: int = 0
    approvals_expired: int = 0
    quotes_expired: int = 0

    def as_dict(self) -> dict:
        return {
            "entries_driven": self.entries_driven,
            "flows_resumed": dict(self.flows_resumed),
            "approvals_finished": self.approvals_finished,
            "approvals_expired": self.approvals_expired,
            "quotes_expired": self.quotes_expired,
        }


@boundary
def resume_all(
    platform: Platform, principal: Principal, stale_after: timedelta = RECOVERY_STALE_AFTER
) -> FlowRecoveryReport:
    """Recover the ledger, then every interrupted flow. Raises: PermissionDeniedError."""
    require(principal, Permission.MOVE_MONEY)
    report = FlowRecoveryReport(entries_driven=len(platform.ledger.recover(stale_after=stale_after).entries_projected))
    for table, extra in ((RESUMABLE, {}), (REFERRAL_PENDING, {"referral_done": False})):
        for collection_name, (states, resume) in table.items():
            collection = platform.store.collection(collection_name)
            count = 0
            for state in states:
                for document in collection.find({"state": state, **extra}, sort=[("_id", 1)], limit=RESUME_BATCH_MAX):
                    resume(platform, principal, document["_id"])
                    count += 1
            report.flows_resumed[collection_name] = report.flows_resumed.get(collection_name, 0) + count
    report.approvals_finished = len(approvals.resume_approved(platform, principal, stale_after))
    report.approvals_expired = len(approvals.expire_due(platform, principal))
    report.quotes_expired = len(quotes.expire_due_quotes(platform, principal))
    return report
