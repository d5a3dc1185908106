"""P2P trades: the seller's crypto sits in a per-trade escrow until it is released to the
buyer (minus the maker fee), returned to the seller (cancel / payment timeout), or an
admin resolves a dispute to either side.

State document in `p2p_trades`:
`new` → `open` (escrowed: hold id = trade id, seller.available → escrow:<trade>) →
`paid` (buyer marked the fiat payment sent) → `closing` → `released`;
`open` → `closing` → `cancelled` (buyer cancels, or the payment window passed);
`open|paid` → `disputed` → `closing` → `resolved_buyer` | `resolved_seller`.
`closing` (with `closing_to`) is entered first with a guard on the current state, so two
racing decisions (release vs dispute) cannot both move the escrow; the escrow entry then
closes the hold (key `hold:<trade>:close`) and a last guarded transition records it.
Re-calling the same command, or `resume_trade`, finishes a crashed close.
"""

from __future__ import annotations

from core.ledger import accounts as acct
from core.approvals import check_reason
from core.ledger import Entry
from core.errors import (
    AmountTooSmallError,
    FlowStateError,
    HoldClosedError,
    InsufficientFundsError,
    InvalidFlowInputError,
    NotFlowPartyError,
    TradeClosedError,
)
from core.flows import referral
from core.flows.common import (
    check_key,
    check_text,
    check_user,
    fee_minor,
    flow_id,
    hold_for_flow,
    insert_or_existing,
    load,
    transition,
)
from core.ledger import from_minor, positive_amount
from core.permissions import Permission, Principal, require
from core.platform import Platform

COLLECTION = "p2p_trades"
CLOSED = ("released", "cancelled", "resolved_buyer", "resolved_seller")
TIMEOUT_BATCH_MAX = 500


def open_trade(
    platform: Platform,
    principal: Principal,
    *,
    seller: str,
    buyer: str,
    asset: str,
    amount: object,
    fiat_amount: str = "",
    idempotency_key: str,
) -> dict:
    """Open a trade: the seller's `amount` of `asset` moves to the trade's escrow.
    Returns the `open` trade. Raises: PermissionDeniedError, amount errors,
        InvalidFlowInputError (buyer = seller), InsufficientFundsError (nothing written),
        IdempotencyConflictError."""
    require(principal, Permission.MOVE_MONEY)
    check_key(idempotency_key)
    check_user(seller), check_user(buyer)
    if seller == buyer:
        raise InvalidFlowInputError("buyer and seller must differ", user_id=seller)
    value = positive_amount(amount, asset, platform.registry)
    fee = fee_minor(value.minor, platform.config.p2p_maker_fee_rate)
    if value.minor - fee <= 0:
        raise AmountTooSmallError(
            f"{value} leaves nothing for the buyer after the fee", amount=value.text(), asset=asset
        )
    collection = platform.store.collection(COLLECTION)
    trade_id = flow_id("p2p", idempotency_key)
    if collection.find_one({"_id": trade_id}) is None:
        available = platform.ledger.balance(acct.user_available(seller, asset))
        if available < value:
            raise InsufficientFundsError(
                f"{seller} has {available} available, needs {value}",
                needed_minor=value.minor,
                available_minor=available.minor,
                account=acct.user_available(seller, asset).id,
            )
    now = platform.clock.now()
    document = {
        "_id": trade_id,
        "idempotency_key": idempotency_key,
        "seller": seller,
        "buyer": buyer,
        "asset": asset,
        "amount_minor": value.minor,
        "fee_minor": fee,
        "fiat_amount": check_text(fiat_amount, "fiat_amount", required=False),
        "state": "new",
        "created_at": now,
        "payment_due_at": now + platform.config.p2p_payment_timeout,
        "closing_to": None,
        "dispute": None,
        "escrow_entry_id": None,
        "close_entry_id": None,
        "referral_done": False,
    }
    document, _ = insert_or_existing(collection, document, ("seller", "buyer", "asset", "amount_minor"))
    return _drive(platform, principal, document)


def _escrow(platform: Platform, principal: Principal, document: dict) -> dict:
    asset = document["asset"]
    return hold_for_flow(
        platform, principal, platform.store.collection(COLLECTION), document, what="trade",
        source=acct.user_available(document["seller"], asset), held=acct.escrow(document["_id"], asset),
        amount_minor=document["amount_minor"], memo="p2p escrow", metadata={"trade_id": document["_id"]},
        from_state="new", held_state="open", entry_field="escrow_entry_id",
        refused_state="cancelled", refused_reason={"close_reason": "escrow_refused"},
    )


def _drive(platform: Platform, principal: Principal, document: dict) -> dict:
    if document["state"] == "new":
        document = _escrow(platform, principal, document)
    if document["state"] == "closing":
        entry = _close_escrow(platform, principal, document)
        document = transition(
            platform.store.collection(COLLECTION),
            document,
            document["closing_to"],
            allowed_from=("closing",),
            what="trade",
            extra={"close_entry_id": entry.id, "closed_at": platform.clock.now()},
        )
    if document["state"] in ("released", "resolved_buyer"):
        document = referral.settle_referrals(platform, principal, COLLECTION, document, [document["close_entry_id"]])
    return document


def _close_escrow(platform: Platform, principal: Principal, document: dict) -> Entry:
    """Move the escrow to the side `closing_to` names (buyer minus fee, or back to the seller)."""
    asset, registry, trade_id = document["asset"], platform.registry, document["_id"]
    try:
        if document["closing_to"] in ("released", "resolved_buyer"):
            destinations = [
                (
                    acct.user_available(document["buyer"], asset),
                    from_minor(document["amount_minor"] - document["fee_minor"], asset, registry),
                )
            ]
            if document["fee_minor"]:
                destinations.append((acct.fees(asset), from_minor(document["fee_minor"], asset, registry)))
            return platform.ledger.consume_hold(
                hold_id=trade_id,
                actor=principal.name,
                destinations=destinations,
                entry_type=f"p2p.{document['closing_to']}",
                memo="p2p escrow to buyer",
                metadata={
                    "trade_id": trade_id,
                    "fee_minor": document["fee_minor"],
                    "fee_asset": asset,
                    "fee_payer": document["seller"],
                },
            )
        return platform.ledger.release_hold(
            hold_id=trade_id,
            actor=principal.name,
            entry_type=f"p2p.{document['closing_to']}",
            memo="p2p escrow back to seller",
            metadata={"trade_id": trade_id},
        )
    except HoldClosedError:
        closing = platform.ledger.hold(trade_id)[1]
        assert closing is not None and closing.type == f"p2p.{document['closing_to']}", "an escrow closes one way"
        return closing


def _begin_close(
    platform: Platform,
    principal: Principal,
    document: dict,
    to_state: str,
    allowed_from: tuple[str, ...],
    extra: dict | None = None,
) -> dict:
    """Guarded entry into `closing`; a replay of the same decision resumes it."""
    if document["state"] == "closing" and document["closing_to"] == to_state:
        return _drive(platform, principal, document)
    if document["state"] == to_state:
        return _drive(platform, principal, document)  # replay of a finished decision
    if document["state"] in CLOSED or document["state"] == "closing":
        raise TradeClosedError(
            f"trade {document['_id']} is {document['state']}",
            trade_id=document["_id"],
            state=document["state"],
            wanted=to_state,
        )
    closing = transition(
        platform.store.collection(COLLECTION),
        document,
        "closing",
        allowed_from=allowed_from,
        what="trade",
        extra={"closing_to": to_state, **(extra or {})},
    )
    return _drive(platform, principal, closing)


def _party(document: dict, user_id: str, role: str) -> None:
    if document[role] != user_id:
        raise NotFlowPartyError(
            f"{user_id} is not the {role} of trade {document['_id']}", trade_id=document["_id"], user_id=user_id
        )


def _trade(platform: Platform, trade_id: str) -> dict:
    return load(platform.store.collection(COLLECTION), trade_id, "trade")


def mark_paid(platform: Platform, principal: Principal, *, trade_id: str, buyer: str) -> dict:
    """The buyer says the fiat payment was sent. Raises: NotFlowPartyError, TradeClosedError,
    FlowStateError (not open, or the payment window has passed)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    _party(document, buyer, "buyer")
    if document["state"] == "paid":
        return document
    if document["state"] in CLOSED:
        raise TradeClosedError(f"trade {trade_id} is {document['state']}", trade_id=trade_id, state=document["state"])
    if document["state"] == "open" and platform.clock.now() >= document["payment_due_at"]:
        raise FlowStateError(f"trade {trade_id}: the payment window closed", trade_id=trade_id, state="open")
    return transition(
        platform.store.collection(COLLECTION),
        document,
        "paid",
        allowed_from=("open",),
        what="trade",
        extra={"paid_at": platform.clock.now()},
    )


def release_trade(platform: Platform, principal: Principal, *, trade_id: str, seller: str) -> dict:
    """The seller confirms the payment arrived: escrow → buyer (minus the maker fee → fees).
    Raises: NotFlowPartyError, TradeClosedError (cancelled/resolved), FlowStateError (disputed)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    _party(document, seller, "seller")
    return _begin_close(platform, principal, document, "released", ("paid", "open"))


def cancel_trade(platform: Platform, principal: Principal, *, trade_id: str, user_id: str) -> dict:
    """Return the escrow to the seller: the buyer may cancel an unpaid trade at any time,
    the seller only after the payment window passed. Raises: NotFlowPartyError,
    TradeClosedError, FlowStateError (paid or disputed, or seller before the timeout)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    if user_id not in (document["buyer"], document["seller"]):
        raise NotFlowPartyError(f"{user_id} is not a party of trade {trade_id}", trade_id=trade_id, user_id=user_id)
    if (
        user_id == document["seller"]
        and document["state"] == "open"
        and platform.clock.now() < document["payment_due_at"]
    ):
        raise FlowStateError(f"the seller may cancel trade {trade_id} only after the payment window", trade_id=trade_id)
    return _begin_close(platform, principal, document, "cancelled", ("open",), {"cancelled_by": user_id})


def cancel_timed_out(platform: Platform, principal: Principal) -> list[str]:
    """The sweep: cancel every open (unpaid) trade past its payment window. Returns ids."""
    require(principal, Permission.MOVE_MONEY)
    collection = platform.store.collection(COLLECTION)
    due = collection.find({"state": "open", "payment_due_at": {"$lte": platform.clock.now()}}, limit=TIMEOUT_BATCH_MAX)
    due += collection.find({"state": "closing"}, limit=TIMEOUT_BATCH_MAX)
    done = []
    for document in due:
        if document["state"] == "closing":
            done.append(_drive(platform, principal, document)["_id"])
        else:
            done.append(
                _begin_close(platform, principal, document, "cancelled", ("open",), {"cancelled_by": "timeout"})["_id"]
            )
    return done


def open_dispute(platform: Platform, principal: Principal, *, trade_id: str, user_id: str, reason: str) -> dict:
    """Either party disputes an open or paid trade; the escrow stays until an admin resolves.
    Raises: NotFlowPartyError, TradeClosedError (disputing a completed trade), ReasonRequiredError."""
    require(principal, Permission.MOVE_MONEY)
    reason = check_reason(reason, "a dispute")
    document = _trade(platform, trade_id)
    if user_id not in (document["buyer"], document["seller"]):
        raise NotFlowPartyError(f"{user_id} is not a party of trade {trade_id}", trade_id=trade_id, user_id=user_id)
    if document["state"] in CLOSED or document["state"] == "closing":
        raise TradeClosedError(f"trade {trade_id} is {document['state']}", trade_id=trade_id, state=document["state"])
    if document["state"] == "disputed":
        return document
    return transition(
        platform.store.collection(COLLECTION),
        document,
        "disputed",
        allowed_from=("open", "paid"),
        what="trade",
        extra={"dispute": {"by": user_id, "reason": reason, "at": platform.clock.now()}},
    )


def resolve_dispute(platform: Platform, principal: Principal, *, trade_id: str, to: str, reason: str) -> dict:
    """An admin decides a disputed trade: `to` = "buyer" (escrow → buyer minus fee) or
    "seller" (escrow back). Audited. Raises: PermissionDeniedError, InvalidFlowInputError,
    ReasonRequiredError, FlowStateError (not disputed), TradeClosedError."""
    require(principal, Permission.RESOLVE_DISPUTE)
    reason = check_reason(reason, "a dispute resolution")
    if to not in ("buyer", "seller"):
        raise InvalidFlowInputError('a dispute resolves to "buyer" or "seller"', to=repr(to))
    document = _trade(platform, trade_id)
    target = f"resolved_{to}"
    if document["state"] not in ("disputed", "closing", target):
        if document["state"] in CLOSED:
            raise TradeClosedError(
                f"trade {trade_id} is {document['state']}", trade_id=trade_id, state=document["state"]
            )
        raise FlowStateError(
            f"trade {trade_id} is {document['state']}, not disputed", trade_id=trade_id, state=document["state"]
        )
    before = document["state"]
    result = _begin_close(
        platform,
        principal,
        document,
        target,
        ("disputed",),
        {"resolved_by": principal.name, "resolution_reason": reason},
    )
    platform.ledger.audit.append(
        type="p2p.dispute_resolved",
        actor=principal.name,
        role=principal.role.value,
        target=trade_id,
        user=document["buyer"],
        before={"state": before},
        after={"state": result["state"]},
        data={"to": to, "reason": reason, "entry_id": result["close_entry_id"]},
        event_key=f"p2p:{trade_id}:resolved",
    )
    return result


def resume_trade(platform: Platform, principal: Principal, trade_id: str) -> dict:
    """Finish whatever a crash interrupted (escrow a `new` trade, close a `closing` one)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    try:
        return _drive(platform, principal, document)
    except InsufficientFundsError:
        return _trade(platform, trade_id)


def get_trade(platform: Platform, trade_id: str) -> dict:
    """Raises: FlowNotFoundError."""
    return _trade(platform, trade_id)
