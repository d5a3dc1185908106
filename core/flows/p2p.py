"""P2P trades: the seller's crypto sits in a per-trade escrow until it is released to the
buyer (minus the maker fee), returned to the seller (cancel / payment timeout), or an
admin resolves a dispute to either side.

State document in `p2p_trades`:
`new` → `open` (escrowed: hold id = trade id, seller.available → escrow:<trade>) →
`paid` (buyer marked the fiat payment sent) → `closing` → `released`;
`open` → `closing` → `cancelled` (buyer cancels, or the payment window passed);
`open|paid` → `disputed` → `closing` → `resolved_buyer` | `resolved_seller`.
Every decision (paid, disputed, released, cancelled, resolved) is one compare-and-set
(`common.decide`) from the expected state that records who decided what, with its audit
event queued in the same update (core.platform.transitions); a loser gets
TradeDecisionConflictError / FlowDecisionConflictError naming the winner, never the
winner's outcome. `closing` (with `closing_to`) is entered by the closing decision, so two
racing decisions (release vs cancel, buyer vs seller) cannot both move the escrow; the
escrow entry then closes the hold (key `hold:<trade>:close`) and a last step (filter:
`closing` *and* `closing_to`) records it. Re-calling the same command, `resume_trade` or
recovery finishes a crashed close.
"""

from __future__ import annotations

from datetime import datetime

from core.platform.boundary import boundary
from core.ledger import accounts as acct
from core.approvals import check_reason
from core.ledger import Entry
from core.base.errors import (
    FlowDecisionConflictError,
    FlowStateError,
    HoldClosedError,
    InsufficientFundsError,
    InvalidFlowInputError,
    NotFlowPartyError,
    TradeClosedError,
    TradeDecisionConflictError,
)
from core.flows import referral, states
from core.flows.common import (
    holding_request,
    check_text,
    decide,
    decision,
    hold_for_flow,
    insert_holding_flow,
    load,
    replayed,
    stored,
    step,
    winner_of,
)
from core.flows.documents import FlowDecision, P2PTrade
from core.ledger import from_minor
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.transitions import SweepReport

COLLECTION, CLOSED = states.P2P_TRADES, states.P2P_CLOSED
TIMEOUT_BATCH_MAX = 500


@boundary
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
    if seller == buyer:
        raise InvalidFlowInputError("buyer and seller must differ", user_id=seller)
    collection, fields, _ = holding_request(
        platform, COLLECTION, "p2p", idempotency_key, seller, amount, asset, platform.config.p2p_maker_fee_rate,
        leaves="for the buyer")
    now = platform.clock.now()
    document, placer = insert_holding_flow(collection, P2PTrade, {
        **fields,
        "seller": seller,
        "buyer": buyer,
        "fiat_amount": check_text(fiat_amount, "fiat_amount", required=False),
        "state": "new",
        "created_at": now,
        "payment_due_at": now + platform.config.p2p_payment_timeout,
        "closing_to": None,
        "decision": None,
        "decisions": [],
        "dispute": None,
        "escrow_entry_id": None,
        "close_entry_id": None,
    }, ("seller", "buyer", "asset", "amount_minor"))
    return _drive(platform, principal, document, placer).to_document()


def _escrow(platform: Platform, principal: Principal, document: P2PTrade, placer: str | None) -> P2PTrade:
    asset = document.asset
    return hold_for_flow(
        platform, principal, platform.store.collection(COLLECTION), document, what="p2p",
        source=acct.user_available(document.seller, asset), held=acct.escrow(document.id, asset),
        amount_minor=document.amount_minor, memo="p2p escrow", metadata={"trade_id": document.id},
        from_state="new", held_state="open", entry_field="escrow_entry_id",
        refused_state="cancelled", refused_reason={"close_reason": "escrow_refused"}, placer=placer,
    )


def _drive(platform: Platform, principal: Principal, document: P2PTrade, placer: str | None = None) -> P2PTrade:
    if document.state == "new":
        document = _escrow(platform, principal, document, placer)
    if document.state == "closing":
        entry = _close_escrow(platform, principal, document)
        document = step(
            platform, principal, platform.store.collection(COLLECTION), document, document.closing_to,
            allowed_from=("closing",), what="p2p", match={"closing_to": document.closing_to},
            extra={"close_entry_id": entry.id, "closed_at": platform.clock.now()}, user=document.seller,
        )
    if document.state in ("released", "resolved_buyer"):
        document = referral.settle_referrals(platform, principal, COLLECTION, document, [document.close_entry_id])
    return document


def _close_escrow(platform: Platform, principal: Principal, document: P2PTrade) -> Entry:
    """Move the escrow to the side `closing_to` names (buyer minus fee, or back to the seller)."""
    asset, registry, trade_id = document.asset, platform.registry, document.id
    try:
        if document.closing_to in ("released", "resolved_buyer"):
            destinations = [
                (
                    acct.user_available(document.buyer, asset),
                    from_minor(document.amount_minor - document.fee_minor, asset, registry),
                )
            ]
            if document.fee_minor:
                destinations.append((acct.fees(asset), from_minor(document.fee_minor, asset, registry)))
            return platform.ledger.consume_hold(
                hold_id=trade_id,
                actor=principal.name,
                destinations=destinations,
                entry_type=f"p2p.{document.closing_to}",
                memo="p2p escrow to buyer",
                metadata={
                    "trade_id": trade_id,
                    "fee_minor": document.fee_minor,
                    "fee_asset": asset,
                    "fee_payer": document.seller,
                },
            )
        return platform.ledger.release_hold(
            hold_id=trade_id,
            actor=principal.name,
            entry_type=f"p2p.{document.closing_to}",
            memo="p2p escrow back to seller",
            metadata={"trade_id": trade_id},
        )
    except HoldClosedError:
        closing = platform.ledger.hold(trade_id)[1]
        assert closing is not None and closing.type == f"p2p.{document.closing_to}", "an escrow closes one way"
        return closing


def _begin_close(
    platform: Platform,
    principal: Principal,
    document: P2PTrade,
    wanted: FlowDecision,
    allowed_from: tuple[str, ...],
    extra: dict | None = None,
    match: dict | None = None,
    event_type: str | None = None,
) -> P2PTrade:
    """The closing decision: one compare-and-set from `allowed_from` to `closing` with
    `closing_to` = the wanted target; a replay of the same decision by the same caller
    resumes it. Raises: TradeDecisionConflictError naming the winner when another decision
    got there first (or the trade is already closed)."""
    if replayed(document, wanted):
        return _drive(platform, principal, document)  # replay of this caller's own decision
    if document.state in CLOSED or document.state == "closing":
        winner = document.decision
        raise TradeDecisionConflictError(
            f"trade {document.id} is {document.state}" + (f" ({winner.name} by {winner.by})" if winner else ""),
            trade_id=document.id, state=document.state, wanted=wanted.to, winner=winner_of(winner),
        )
    closing = decide(
        platform, platform.store.collection(COLLECTION), document, "closing", wanted,
        allowed_from=allowed_from, what="p2p", extra={"closing_to": wanted.to, **(extra or {})},
        match=match, event_type=event_type, user=document.buyer, error=TradeDecisionConflictError,
    )
    return _drive(platform, principal, closing)


def _loser_error(current: P2PTrade) -> type[FlowDecisionConflictError]:
    """TradeDecisionConflictError once the winner closed the trade, else FlowDecisionConflictError."""
    return TradeDecisionConflictError if current.state in (*CLOSED, "closing") else FlowDecisionConflictError


def _party(document: P2PTrade, user_id: str, role: str) -> None:
    if getattr(document, role) != user_id:
        raise NotFlowPartyError(
            f"{user_id} is not the {role} of trade {document.id}", trade_id=document.id, user_id=user_id
        )


def _trade(platform: Platform, trade_id: str) -> P2PTrade:
    return load(platform.store.collection(COLLECTION), trade_id, "trade")


@boundary
def mark_paid(platform: Platform, principal: Principal, *, trade_id: str, buyer: str) -> dict:
    """The buyer says the fiat payment was sent (a decision: open → paid, only inside the
    payment window, checked by the same compare-and-set). Raises: NotFlowPartyError,
    TradeClosedError (TradeDecisionConflictError when a concurrent close won),
    FlowStateError (not open, or the payment window has passed)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    _party(document, buyer, "buyer")
    now = platform.clock.now()
    wanted = decision(principal, "mark_paid", "paid", party=buyer, at=now)
    if document.state == "paid" and replayed(document, wanted):
        return document.to_document()
    if document.state in CLOSED:
        raise TradeClosedError(f"trade {trade_id} is {document.state}", trade_id=trade_id, state=document.state)
    if document.state == "open" and now >= document.payment_due_at:
        raise FlowStateError(f"trade {trade_id}: the payment window closed", trade_id=trade_id, state="open")
    return decide(
        platform, platform.store.collection(COLLECTION), document, "paid", wanted, allowed_from=("open",),
        what="p2p", extra={"paid_at": now}, match={"payment_due_at": {"$gt": now}}, user=buyer,
        error=_loser_error,
    ).to_document()


@boundary
def release_trade(platform: Platform, principal: Principal, *, trade_id: str, seller: str) -> dict:
    """The seller confirms the payment arrived: escrow → buyer (minus the maker fee → fees).
    Raises: NotFlowPartyError, TradeClosedError (cancelled/resolved), FlowStateError (disputed)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    _party(document, seller, "seller")
    if document.state == "disputed":
        raise FlowStateError(f"trade {trade_id} is disputed: an admin resolves it", trade_id=trade_id, state="disputed")
    wanted = decision(principal, "release", "released", party=seller, at=platform.clock.now())
    return _begin_close(platform, principal, document, wanted, ("paid", "open")).to_document()


@boundary
def cancel_trade(platform: Platform, principal: Principal, *, trade_id: str, user_id: str) -> dict:
    """Return the escrow to the seller: the buyer may cancel an unpaid trade at any time,
    the seller only after the payment window passed. Raises: NotFlowPartyError,
    TradeClosedError, FlowStateError (paid or disputed, or seller before the timeout)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    if user_id not in (document.buyer, document.seller):
        raise NotFlowPartyError(f"{user_id} is not a party of trade {trade_id}", trade_id=trade_id, user_id=user_id)
    now = platform.clock.now()
    by_seller = user_id == document.seller
    if by_seller and document.state == "open" and now < document.payment_due_at:
        raise FlowStateError(f"the seller may cancel trade {trade_id} only after the payment window", trade_id=trade_id)
    wanted = decision(principal, "cancel", "cancelled", party=user_id, at=now)
    if document.state in ("paid", "disputed") and not replayed(document, wanted):
        raise FlowStateError(f"trade {trade_id} is {document.state}; it cannot be cancelled", trade_id=trade_id,
                             state=document.state)
    return _begin_close(platform, principal, document, wanted, ("open",), {"cancelled_by": user_id},
                        match={"payment_due_at": {"$lte": now}} if by_seller else None).to_document()


@boundary
def cancel_timed_out(platform: Platform, principal: Principal) -> SweepReport:
    """The sweep: cancel every open (unpaid) trade past its payment window and finish
    closes a crash interrupted. One trade's failure (a concurrent decision won, the store
    hiccupped) never stops the others: each is tried and reported.
    Returns a SweepReport (`done` ids, `failed` id → error code)."""
    require(principal, Permission.MOVE_MONEY)
    collection = platform.store.collection(COLLECTION)
    now = platform.clock.now()
    due = collection.find({"state": "open", "payment_due_at": {"$lte": now}}, limit=TIMEOUT_BATCH_MAX)
    due += collection.find({"state": "closing"}, limit=TIMEOUT_BATCH_MAX)
    wanted = decision(principal, "cancel", "cancelled", party=None, reason="payment timeout", at=now)
    report = SweepReport()
    for document in due:
        report.run(document["_id"], lambda found=document: _time_out(platform, principal, stored(collection, found),
                                                                      wanted, now))
    return report


def _time_out(platform: Platform, principal: Principal, document: P2PTrade, wanted: FlowDecision,
              now: datetime) -> P2PTrade:
    """Finish a `closing` trade's close, or cancel an unpaid one past its payment window."""
    if document.state == "closing":
        return _drive(platform, principal, document)
    return _begin_close(platform, principal, document, wanted, ("open",), {"cancelled_by": "timeout"},
                        match={"payment_due_at": {"$lte": now}})


@boundary
def open_dispute(platform: Platform, principal: Principal, *, trade_id: str, user_id: str, reason: str) -> dict:
    """Either party disputes an open or paid trade; the escrow stays until an admin resolves.
    Raises: NotFlowPartyError, TradeClosedError (disputing a completed trade), ReasonRequiredError."""
    require(principal, Permission.MOVE_MONEY)
    reason = check_reason(reason, "a dispute")
    document = _trade(platform, trade_id)
    if user_id not in (document.buyer, document.seller):
        raise NotFlowPartyError(f"{user_id} is not a party of trade {trade_id}", trade_id=trade_id, user_id=user_id)
    now = platform.clock.now()
    wanted = decision(principal, "dispute", "disputed", party=user_id, reason=reason, at=now)
    if replayed(document, wanted):
        return document.to_document()  # a replay of this party's own dispute
    if document.state in CLOSED or document.state == "closing":
        raise TradeClosedError(f"trade {trade_id} is {document.state}", trade_id=trade_id, state=document.state)
    return decide(
        platform, platform.store.collection(COLLECTION), document, "disputed", wanted, allowed_from=("open", "paid"),
        what="p2p", extra={"dispute": {"by": user_id, "reason": reason, "at": now}}, user=user_id,
        error=_loser_error,
    ).to_document()


@boundary
def resolve_dispute(platform: Platform, principal: Principal, *, trade_id: str, to: str, reason: str) -> dict:
    """An admin decides a disputed trade: `to` = "buyer" (escrow → buyer minus fee) or
    "seller" (escrow back). The decision (event `p2p:<id>:resolved`, type
    `p2p.dispute_resolved`) is one compare-and-set from `disputed`: of two admins resolving
    at once, one wins and the other gets TradeDecisionConflictError naming the winner.
    Raises: PermissionDeniedError, InvalidFlowInputError, ReasonRequiredError,
    FlowStateError (not disputed), TradeDecisionConflictError (a TradeClosedError)."""
    require(principal, Permission.RESOLVE_DISPUTE)
    reason = check_reason(reason, "a dispute resolution")
    if to not in ("buyer", "seller"):
        raise InvalidFlowInputError('a dispute resolves to "buyer" or "seller"', to=repr(to))
    document = _trade(platform, trade_id)
    target = f"resolved_{to}"
    if document.state not in ("disputed", "closing", *CLOSED):  # a closed trade: _begin_close names its decision
        raise FlowStateError(
            f"trade {trade_id} is {document.state}, not disputed", trade_id=trade_id, state=document.state
        )
    wanted = decision(principal, "resolved", target, party=None, reason=reason, at=platform.clock.now())
    return _begin_close(
        platform, principal, document, wanted, ("disputed",),
        {"resolved_by": principal.name, "resolution_reason": reason}, event_type="p2p.dispute_resolved",
    ).to_document()


@boundary
def resume_trade(platform: Platform, principal: Principal, trade_id: str) -> dict:
    """Finish whatever a crash interrupted (escrow a `new` trade, close a `closing` one)."""
    require(principal, Permission.MOVE_MONEY)
    document = _trade(platform, trade_id)
    try:
        return _drive(platform, principal, document).to_document()
    except InsufficientFundsError:
        return _trade(platform, trade_id).to_document()


@boundary
def get_trade(platform: Platform, trade_id: str) -> dict:
    """Raises: FlowNotFoundError, MalformedDocumentError."""
    return _trade(platform, trade_id).to_document()
