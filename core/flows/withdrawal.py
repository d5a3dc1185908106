"""Withdrawal: request → hold → (approve) → settle, or reject → release.

State document in `withdrawals`:
`requested` (document written) → `held` (available → locked, hold id = withdrawal id) →
`awaiting_approval` (above the first threshold; approval kind "withdrawal") or straight to
`approved` → `settled` (locked → external net amount, fee → fees, one entry).
`awaiting_approval` → `rejecting` (rejected or expired request) → `rejected` (hold
released). `requested` → `failed` when the hold is refused (funds spent concurrently).

Each step writes the entry (key derived from the withdrawal id) before the guarded
transition that records it, so re-calling `request_withdrawal` with the same key, or
`resume_withdrawal`, finishes whatever a crash interrupted.
"""

from __future__ import annotations

from core.platform.boundary import boundary
from core.ledger import accounts as acct
from core import approvals
from core.approvals import ApprovalRequest
from core.ledger import Entry
from core.base.errors import HoldClosedError
from core.flows import referral, states
from core.flows.documents import Withdrawal
from core.flows.common import (
    check_text,
    closing_entry,
    holding_request,
    hold_for_flow,
    insert_holding_flow,
    load,
    release_or_closing,
    step,
    user_accounts,
)
from core.ledger import amount as make_amount
from core.ledger import from_minor
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

COLLECTION, TERMINAL = states.WITHDRAWALS, states.WITHDRAWAL_TERMINAL
APPROVAL_KIND = "withdrawal"


@boundary
def approvals_needed(platform: Platform, asset: str, amount_minor: int) -> int:
    """0 up to the first threshold, 1 above it, 2 above the second (FlowConfig)."""
    first = platform.config.approval_threshold.get(asset)
    if first is None or amount_minor <= make_amount(first, asset, platform.registry).minor:
        return 0
    return approvals.approvals_required_for(platform, asset, amount_minor)


@boundary
def request_withdrawal(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    asset: str,
    amount: object,
    destination: str,
    idempotency_key: str,
) -> dict:
    """Ask to send `amount` (gross; the fee comes out of it) of `asset` to `destination`.

    Returns: the withdrawal document (settled at once below the approval threshold).
    Raises: PermissionDeniedError, amount errors, AmountTooSmallError (nothing left after
        the fee), InsufficientFundsError (nothing written), IdempotencyConflictError.
    """
    require(principal, Permission.MOVE_MONEY)
    destination = check_text(destination, "destination")
    collection, fields, value = holding_request(
        platform, COLLECTION, "wd", idempotency_key, user_id, amount, asset, platform.config.withdrawal_fee_rate,
        leaves="to send")
    document, placer = insert_holding_flow(collection, Withdrawal, {
        **fields,
        "user": user_id,
        "net_minor": value.minor - fields["fee_minor"],
        "destination": destination,
        "approvals_needed": approvals_needed(platform, asset, value.minor),
        "state": "requested",
        "created_at": platform.clock.now(),
        "requested_by": principal.name,
        "approval_id": None,
        "hold_entry_id": None,
        "settle_entry_id": None,
        "release_entry_id": None,
    }, ("user", "asset", "amount_minor", "destination"))
    return _drive(platform, principal, document, placer).to_document()


def _drive(platform: Platform, principal: Principal, document: Withdrawal, placer: str | None = None) -> Withdrawal:
    """Take the withdrawal as far as it can go without a human decision (`placer`: this
    caller's name when the document's insert named it, core.flows.holds)."""
    collection = platform.store.collection(COLLECTION)
    while True:
        state = document.state
        if state == "requested":
            document = _hold(platform, principal, document, placer)
        elif state == "held" and document.approvals_needed:
            approval = approvals.open_request(
                platform,
                principal,
                kind=APPROVAL_KIND,
                asset=document.asset,
                amount_minor=document.amount_minor,
                payload={
                    "withdrawal_id": document.id,
                    "user_id": document.user,
                    "asset": document.asset,
                    "amount_minor": document.amount_minor,
                    "destination": document.destination,
                },
                idempotency_key=f"withdrawal:{document.id}:approval",
                reason="withdrawal above the approval threshold",
                approvals_required=document.approvals_needed,
            )
            document = step(
                platform, principal, collection, document, "awaiting_approval", allowed_from=("held",),
                what="withdrawal", extra={"approval_id": approval["_id"]}, user=document.user,
            )
        elif state == "held":
            document = step(platform, principal, collection, document, "approved", allowed_from=("held",),
                            what="withdrawal", match={"approvals_needed": 0}, user=document.user)
        elif state == "approved":
            entry = _settle_entry(platform, principal, document)
            document = step(
                platform, principal, collection, document, "settled", allowed_from=("approved",), what="withdrawal",
                extra={"settle_entry_id": entry.id, "settled_at": platform.clock.now()}, user=document.user,
            )
        elif state == "rejecting":
            entry = _release_entry(platform, principal, document)
            document = step(
                platform, principal, collection, document, "rejected", allowed_from=("rejecting",),
                what="withdrawal", extra={"release_entry_id": entry.id}, user=document.user,
            )
        else:
            if state == "settled":
                document = referral.settle_referrals(platform, principal, COLLECTION, document,
                                                     [document.settle_entry_id])
            return document  # awaiting_approval or terminal


def _hold(platform: Platform, principal: Principal, document: Withdrawal, placer: str | None) -> Withdrawal:
    available, locked = user_accounts(document.user, document.asset)
    return hold_for_flow(
        platform, principal, platform.store.collection(COLLECTION), document, what="withdrawal",
        source=available, held=locked, amount_minor=document.amount_minor,
        memo="withdrawal hold", metadata={"withdrawal_id": document.id},
        from_state="requested", held_state="held", entry_field="hold_entry_id",
        refused_state="failed", refused_reason={"failure": "insufficient_funds"}, placer=placer,
    )


def _settle_entry(platform: Platform, principal: Principal, document: Withdrawal) -> Entry:
    asset = document.asset
    destinations = [(acct.external(asset), from_minor(document.net_minor, asset, platform.registry))]
    if document.fee_minor:
        destinations.append((acct.fees(asset), from_minor(document.fee_minor, asset, platform.registry)))
    try:
        return platform.ledger.consume_hold(
            hold_id=document.id,
            actor=principal.name,
            destinations=destinations,
            entry_type="withdrawal.settle",
            memo=f"withdrawal to {document.destination}"[:200],
            metadata={
                "withdrawal_id": document.id,
                "fee_minor": document.fee_minor,
                "fee_asset": asset,
                "fee_payer": document.user,
                "net_minor": document.net_minor,
            },
        )
    except HoldClosedError:
        return closing_entry(platform, document.id, "withdrawal.settle")


def _release_entry(platform: Platform, principal: Principal, document: Withdrawal) -> Entry:
    entry = release_or_closing(platform, principal, document.id, entry_type="withdrawal.release",
                               memo="withdrawal rejected", metadata={"withdrawal_id": document.id})
    assert entry.type == "withdrawal.release", "a withdrawal hold closes one way"
    return entry


@boundary
def resume_withdrawal(platform: Platform, principal: Principal, withdrawal_id: str) -> dict:
    """Finish a withdrawal a crash interrupted. Raises: PermissionDeniedError, FlowNotFoundError."""
    require(principal, Permission.MOVE_MONEY)
    return _drive(platform, principal, _withdrawal(platform, withdrawal_id)).to_document()


@boundary
def get_withdrawal(platform: Platform, withdrawal_id: str) -> dict:
    """The withdrawal as stored, read through its model (core.flows.documents).
    Raises: FlowNotFoundError, MalformedDocumentError."""
    return _withdrawal(platform, withdrawal_id).to_document()


def _withdrawal(platform: Platform, withdrawal_id: str) -> Withdrawal:
    return load(platform.store.collection(COLLECTION), withdrawal_id, "withdrawal")


def _record_outcome(platform: Platform, principal: Principal, approval: ApprovalRequest, to_state: str,
                    extra: dict) -> Withdrawal:
    """Carry the approval's outcome over to its withdrawal (awaiting_approval → `to_state`,
    once, for this very approval) and drive the withdrawal on."""
    document = _withdrawal(platform, approval.payload["withdrawal_id"])
    if document.state == "awaiting_approval":
        document = step(
            platform, principal, platform.store.collection(COLLECTION), document, to_state,
            allowed_from=("awaiting_approval",), what="withdrawal", match={"approval_id": approval.id},
            user=document.user, extra=extra,
        )
    return _drive(platform, principal, document)


def _execute_approved(platform: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
    """Approval executor: the checker(s) said yes, so settle."""
    document = _record_outcome(platform, principal, approval, "approved",
                               {"approved_by": [a.by for a in approval.approvals]})
    return {"withdrawal_id": document.id, "state": document.state, "entry_id": document.settle_entry_id}


def _close_rejected(platform: Platform, approval: ApprovalRequest, principal: Principal) -> None:
    """Approval close hook: rejected or expired, so release the hold."""
    _record_outcome(platform, principal, approval, "rejecting", {"rejection": approval.state})


approvals.register_executor(
    APPROVAL_KIND, _execute_approved, on_close=_close_rejected, permission=Permission.MOVE_MONEY
)
