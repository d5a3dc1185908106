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
from core.ledger import Entry
from core.base.errors import AmountTooSmallError, HoldClosedError, InsufficientFundsError
from core.flows import holds, referral, states
from core.flows.documents import Withdrawal
from core.flows.common import (
    check_key,
    check_text,
    check_user,
    fee_minor,
    flow_id,
    hold_for_flow,
    insert_or_existing,
    load,
    step,
)
from core.ledger import amount as make_amount
from core.ledger import from_minor, positive_amount
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
    check_key(idempotency_key)
    check_user(user_id)
    destination = check_text(destination, "destination")
    value = positive_amount(amount, asset, platform.registry)
    fee = fee_minor(value.minor, platform.config.withdrawal_fee_rate)
    if value.minor - fee <= 0:
        raise AmountTooSmallError(
            f"{value} leaves nothing after the {fee} minor-unit fee", amount=value.text(), asset=asset
        )
    collection = platform.store.collection(COLLECTION)
    withdrawal_id = flow_id("wd", idempotency_key)
    if collection.find_one({"_id": withdrawal_id}) is None:
        available = platform.ledger.balance(acct.user_available(user_id, asset))
        if available < value:
            raise InsufficientFundsError(
                f"{user_id} has {available} available, needs {value}",
                account=acct.user_available(user_id, asset).id,
                needed_minor=value.minor,
                available_minor=available.minor,
            )
    placer = holds.new_placer()  # this call may place the hold (core.flows.holds)
    document = {
        "_id": withdrawal_id,
        "idempotency_key": idempotency_key,
        "user": user_id,
        "asset": asset,
        "amount_minor": value.minor,
        "fee_minor": fee,
        "net_minor": value.minor - fee,
        "destination": destination,
        "approvals_needed": approvals_needed(platform, asset, value.minor),
        "state": "requested",
        "created_at": platform.clock.now(),
        "requested_by": principal.name,
        "approval_id": None,
        "hold_entry_id": None,
        "settle_entry_id": None,
        "release_entry_id": None,
        "referral_done": False,
        holds.PLACERS: [placer],
    }
    document, _ = insert_or_existing(collection, document, ("user", "asset", "amount_minor", "destination"))
    return _drive(platform, principal, document, placer)


def _drive(platform: Platform, principal: Principal, document: dict, placer: str | None = None) -> dict:
    """Take the withdrawal as far as it can go without a human decision (`placer`: this
    caller's name when the document's insert named it, core.flows.holds)."""
    collection = platform.store.collection(COLLECTION)
    while True:
        state = document["state"]
        if state == "requested":
            document = _hold(platform, principal, document, placer)
        elif state == "held" and document["approvals_needed"]:
            approval = approvals.open_request(
                platform,
                principal,
                kind=APPROVAL_KIND,
                asset=document["asset"],
                amount_minor=document["amount_minor"],
                payload={
                    "withdrawal_id": document["_id"],
                    "user_id": document["user"],
                    "asset": document["asset"],
                    "amount_minor": document["amount_minor"],
                    "destination": document["destination"],
                },
                idempotency_key=f"withdrawal:{document['_id']}:approval",
                reason="withdrawal above the approval threshold",
                approvals_required=document["approvals_needed"],
            )
            document = step(
                platform, principal, collection, document, "awaiting_approval", allowed_from=("held",),
                what="withdrawal", extra={"approval_id": approval["_id"]}, user=document["user"],
            )
        elif state == "held":
            document = step(platform, principal, collection, document, "approved", allowed_from=("held",),
                            what="withdrawal", match={"approvals_needed": 0}, user=document["user"])
        elif state == "approved":
            entry = _settle_entry(platform, principal, document)
            document = step(
                platform, principal, collection, document, "settled", allowed_from=("approved",), what="withdrawal",
                extra={"settle_entry_id": entry.id, "settled_at": platform.clock.now()}, user=document["user"],
            )
        elif state == "rejecting":
            entry = _release_entry(platform, principal, document)
            document = step(
                platform, principal, collection, document, "rejected", allowed_from=("rejecting",),
                what="withdrawal", extra={"release_entry_id": entry.id}, user=document["user"],
            )
        else:
            if state == "settled":
                document = referral.settle_referrals(
                    platform, principal, COLLECTION, document, [document["settle_entry_id"]]
                )
            return document  # awaiting_approval or terminal


def _hold(platform: Platform, principal: Principal, document: dict, placer: str | None) -> dict:
    user, asset = document["user"], document["asset"]
    return hold_for_flow(
        platform, principal, platform.store.collection(COLLECTION), document, what="withdrawal",
        source=acct.user_available(user, asset), held=acct.user_locked(user, asset), amount_minor=document["amount_minor"],
        memo="withdrawal hold", metadata={"withdrawal_id": document["_id"]},
        from_state="requested", held_state="held", entry_field="hold_entry_id",
        refused_state="failed", refused_reason={"failure": "insufficient_funds"}, placer=placer,
    )


def _closing(platform: Platform, hold_id: str) -> Entry | None:
    return platform.ledger.hold(hold_id)[1]


def _settle_entry(platform: Platform, principal: Principal, document: dict) -> Entry:
    asset = document["asset"]
    destinations = [(acct.external(asset), from_minor(document["net_minor"], asset, platform.registry))]
    if document["fee_minor"]:
        destinations.append((acct.fees(asset), from_minor(document["fee_minor"], asset, platform.registry)))
    try:
        return platform.ledger.consume_hold(
            hold_id=document["_id"],
            actor=principal.name,
            destinations=destinations,
            entry_type="withdrawal.settle",
            memo=f"withdrawal to {document['destination']}"[:200],
            metadata={
                "withdrawal_id": document["_id"],
                "fee_minor": document["fee_minor"],
                "fee_asset": asset,
                "fee_payer": document["user"],
                "net_minor": document["net_minor"],
            },
        )
    except HoldClosedError:
        closing = _closing(platform, document["_id"])
        assert closing is not None and closing.type == "withdrawal.settle", "a withdrawal hold closes one way"
        return closing


def _release_entry(platform: Platform, principal: Principal, document: dict) -> Entry:
    try:
        return platform.ledger.release_hold(
            hold_id=document["_id"],
            actor=principal.name,
            entry_type="withdrawal.release",
            memo="withdrawal rejected",
            metadata={"withdrawal_id": document["_id"]},
        )
    except HoldClosedError:
        closing = _closing(platform, document["_id"])
        assert closing is not None and closing.type == "withdrawal.release", "a withdrawal hold closes one way"
        return closing


@boundary
def resume_withdrawal(platform: Platform, principal: Principal, withdrawal_id: str) -> dict:
    """Finish a withdrawal a crash interrupted. Raises: PermissionDeniedError, FlowNotFoundError."""
    require(principal, Permission.MOVE_MONEY)
    return _drive(platform, principal, load(platform.store.collection(COLLECTION), withdrawal_id, "withdrawal"))


@boundary
def get_withdrawal(platform: Platform, withdrawal_id: str) -> dict:
    """The withdrawal as stored, read through its model (core.flows.documents).
    Raises: FlowNotFoundError, MalformedDocumentError."""
    document = load(platform.store.collection(COLLECTION), withdrawal_id, "withdrawal")
    return Withdrawal.from_document(document).to_document()


def _execute_approved(platform: Platform, approval: dict, principal: Principal) -> dict:
    """Approval executor: the checker(s) said yes, so settle."""
    collection = platform.store.collection(COLLECTION)
    document = load(collection, approval["payload"]["withdrawal_id"], "withdrawal")
    if document["state"] == "awaiting_approval":
        document = step(
            platform, principal, collection, document, "approved", allowed_from=("awaiting_approval",),
            what="withdrawal", match={"approval_id": approval["_id"]}, user=document["user"],
            extra={"approved_by": [a["by"] for a in approval["approvals"]]},
        )
    document = _drive(platform, principal, document)
    return {"withdrawal_id": document["_id"], "state": document["state"], "entry_id": document["settle_entry_id"]}


def _close_rejected(platform: Platform, approval: dict, principal: Principal) -> None:
    """Approval close hook: rejected or expired, so release the hold."""
    collection = platform.store.collection(COLLECTION)
    document = load(collection, approval["payload"]["withdrawal_id"], "withdrawal")
    if document["state"] == "awaiting_approval":
        document = step(
            platform, principal, collection, document, "rejecting", allowed_from=("awaiting_approval",),
            what="withdrawal", match={"approval_id": approval["_id"]}, user=document["user"],
            extra={"rejection": approval["state"]},
        )
    _drive(platform, principal, document)


approvals.register_executor(
    APPROVAL_KIND, _execute_approved, on_close=_close_rejected, permission=Permission.MOVE_MONEY
)
