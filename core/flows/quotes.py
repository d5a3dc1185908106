"""Quotes against the liquidity float: swap, instant buy, instant sell.

A quote fixes the terms (price, fee, what the user pays and receives) and reserves the
output on the float for its time to live: `platform.liquidity` → `platform.liquidity_reserved`
as a hold whose id is the quote id. Executing is one entry that
consumes the reservation and takes the user's payment (user → float, fee → fees;
reserved → user); expiry releases the reservation. Both close the same hold (key
`hold:<id>:close`), so the journal decides each quote's fate exactly once.

State document in `quotes`:
`new` (written) → `open` (reserved) → `executing` → `executed`;
`open` → `expiring` → `expired` (reservation released); `new` → `failed` (float short).
`executing` (decision "execute") is entered with `expires_at > now` in the filter and
`expiring` (decision "expire") with `expires_at <= now`, so execution and expiry exclude
each other; a loser gets QuoteDecisionConflictError naming the winner. If the payment is
refused (the user's funds went elsewhere) the quote goes `executing` → `expiring` →
`expired` with `close_reason` and nothing moved — unless a concurrent executor's entry
consumed the reservation meanwhile, and then it is `executed` (the document follows the
journal). Calling `execute_quote` / `expire_quote` / `resume_quote` again finishes a
crashed one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from core.platform.boundary import boundary, instance_of, internal, register_check
from core.ledger import accounts as acct
from core.ledger import Entry
from core.base.errors import (
    AmountTooSmallError,
    FlowStateError,
    HoldClosedError,
    InsufficientFundsError,
    InsufficientLiquidityError,
    InvalidFlowInputError,
    NotFlowPartyError,
    QuoteDecisionConflictError,
    QuoteExpiredError,
    SlippageExceededError,
)
from core.base.errors import ensure
from core.flows import holds, referral, states
from core.flows.common import (
    convert_down, decide, decision, fee_minor, flow_id, hold_for_flow, insert_or_existing, load, release_or_closing,
    require_cover, step,
)
from core.flows.documents import Quote
from core.ledger import Amount, from_minor, positive_amount
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.transitions import SweepReport

COLLECTION, TERMINAL = states.QUOTES, states.QUOTE_TERMINAL
EXPIRE_BATCH_MAX = 500
KINDS = ("swap", "instant_buy", "instant_sell")


@dataclass(frozen=True)
class QuoteTerms:
    """What a quote fixes. All amounts in minor units; every entry built from them balances
    per asset because pay_minor = pay_to_liquidity_minor + pay_fee_minor and
    reserved_minor = receive_minor + receive_fee_minor (asserted)."""

    kind: str
    pay_asset: str
    pay_minor: int  # debited from the user
    pay_to_liquidity_minor: int  # credited to the float
    pay_fee_minor: int  # credited to fees (in pay_asset)
    receive_asset: str
    reserved_minor: int  # taken from the float (reserved at quote time)
    receive_minor: int  # credited to the user
    receive_fee_minor: int  # credited to fees (in receive_asset)
    price: Decimal  # receive per pay, after spread (the user's rate)
    market_price: Decimal  # receive per pay from the price source
    spread_minor: int  # float's trading profit, in the fiat/quote asset (metadata only)
    spread_asset: str

    def check(self) -> None:
        """The quote's legs add up: nothing created or lost by rounding. Raises: BrokenInvariantError."""
        ensure(self.pay_minor == self.pay_to_liquidity_minor + self.pay_fee_minor > 0, "quote: payment legs do not add up")
        ensure(self.reserved_minor == self.receive_minor + self.receive_fee_minor and self.receive_minor > 0,
               "quote: reserved amount does not equal what the user and fees receive")
        ensure(min(self.pay_fee_minor, self.receive_fee_minor, self.pay_to_liquidity_minor) >= 0, "quote: a negative leg")
        ensure(self.pay_asset != self.receive_asset, "quote: the same asset on both sides")

    @classmethod
    def priced(cls, kind: str, pay: Amount, receive_asset: str, *, out: int, price: Decimal, market: Decimal,
               spread_minor: int, spread_asset: str, pay_fee: int = 0, receive_fee: int = 0) -> QuoteTerms:
        """Terms paying `pay` for `out` (reserved on the float) of `receive_asset`, the fee taken
        from the payment (`pay_fee`: swap, instant buy) or from the payout (`receive_fee`: instant sell)."""
        return cls(kind=kind, pay_asset=pay.asset, pay_minor=pay.minor, pay_to_liquidity_minor=pay.minor - pay_fee,
                   pay_fee_minor=pay_fee, receive_asset=receive_asset, reserved_minor=out, receive_minor=out - receive_fee,
                   receive_fee_minor=receive_fee, price=price, market_price=market, spread_minor=spread_minor,
                   spread_asset=spread_asset)


def market_terms(platform: Platform, pay_asset: str, receive_asset: str, amount: object, *,
                 what: str) -> tuple[Amount, Decimal, int, int]:
    """Where every quote's terms start: two different known assets, the caller's amount of
    `pay_asset` (parsed here, once), the market price and both scales.
    Raises: InvalidFlowInputError (the same asset twice), amount errors, UnknownAssetError,
    PriceUnavailableError."""
    if pay_asset == receive_asset:
        raise InvalidFlowInputError(f"{what} two different assets", asset=pay_asset)
    pay = positive_amount(amount, pay_asset, platform.registry)
    scale_to = platform.registry.get(receive_asset).scale
    return pay, platform.prices.price(pay_asset, receive_asset), platform.registry.get(pay_asset).scale, scale_to


def out_after_payment_fee(pay: Amount, fee_rate: Decimal, price: Decimal, scale_from: int, scale_to: int, *,
                          after: str) -> tuple[int, int]:
    """(fee, out): the fee on `pay` rounded up, and what the rest buys at `price` rounded
    down. Raises: AmountTooSmallError when it buys nothing (`after` says after what)."""
    fee = fee_minor(pay.minor, fee_rate)
    net = pay.minor - fee
    out = convert_down(net, price, scale_from, scale_to) if net > 0 else 0
    if out <= 0:
        raise AmountTooSmallError(f"{pay} buys nothing after {after}", amount=pay.text(), asset=pay.asset)
    return fee, out


register_check("terms", instance_of(QuoteTerms, "QuoteTerms"))  # the boundary's check of a `terms` parameter


@boundary
def create_quote(
    platform: Platform, principal: Principal, *, user_id: str, terms: QuoteTerms, idempotency_key: str
) -> dict:
    """Write the quote and reserve its output. Returns the `open` quote.
    Raises: InsufficientLiquidityError (nothing written), IdempotencyConflictError."""
    terms.check()
    collection = platform.store.collection(COLLECTION)
    quote_id = flow_id("q", terms.kind, idempotency_key)
    reserve_from = acct.liquidity(terms.receive_asset)
    if collection.find_one({"_id": quote_id}, projection={"_id": 1}) is None:  # a first request only
        require_cover(platform, reserve_from, terms.reserved_minor, lambda free: (
            f"the {terms.receive_asset} float holds {free} minor units, the quote needs {terms.reserved_minor}"),
            InsufficientLiquidityError, asset=terms.receive_asset)
    now = platform.clock.now()
    placer = holds.new_placer()  # this call may place the reservation (core.flows.holds)
    document = Quote(
        id=quote_id,
        idempotency_key=idempotency_key,
        kind=terms.kind,
        user=user_id,
        state="new",
        created_at=now,
        expires_at=now + platform.config.quote_ttl,
        pay_asset=terms.pay_asset,
        pay_minor=terms.pay_minor,
        pay_to_liquidity_minor=terms.pay_to_liquidity_minor,
        pay_fee_minor=terms.pay_fee_minor,
        receive_asset=terms.receive_asset,
        receive_minor=terms.receive_minor,
        receive_fee_minor=terms.receive_fee_minor,
        reserved_asset=terms.receive_asset,
        reserved_minor=terms.reserved_minor,
        price=format(terms.price, "f"),
        market_price=format(terms.market_price, "f"),
        spread_minor=terms.spread_minor,
        spread_asset=terms.spread_asset,
        pay_entry_id=None,
        receive_entry_id=None,
        release_entry_id=None,
        close_reason=None,
        decision=None,
        decisions=(),
        referral_done=False,
        hold_placers=(placer,),
    )
    same = ("kind", "user", "pay_asset", "pay_minor", "receive_asset")
    document, _ = insert_or_existing(collection, document, same)
    if document.state == "new":
        document = _reserve(platform, principal, document, placer)
    return document.to_document()


def _reserve(platform: Platform, principal: Principal, document: Quote, placer: str | None = None) -> Quote:
    asset = document.reserved_asset
    try:
        return hold_for_flow(
            platform, principal, platform.store.collection(COLLECTION), document, what="quote",
            source=acct.liquidity(asset), held=acct.liquidity_reserved(asset), amount_minor=document.reserved_minor,
            memo=f"{document.kind} quote reservation", metadata={"quote_id": document.id},
            from_state="new", held_state="open", entry_field="reserve_entry_id",
            refused_state="failed", refused_reason={"close_reason": "float_short"}, placer=placer,
        )
    except InsufficientFundsError as error:
        raise InsufficientLiquidityError(
            f"the {asset} float cannot cover the quote",
            asset=asset,
            **{k: v for k, v in error.details.items() if k in ("needed_minor", "available_minor")},
        ) from None


@internal
def quote_for(platform: Platform, principal: Principal, terms_of: Callable[[], QuoteTerms], *, user_id: str,
              idempotency_key: str) -> dict:
    """What every quote request does (swap, instant buy and sell): the permission first, then
    the terms (which parse the caller's amount), then the open quote."""
    require(principal, Permission.MOVE_MONEY)
    return create_quote(platform, principal, user_id=user_id, terms=terms_of(), idempotency_key=idempotency_key)


def executor_of(module: str, name: str, doc: str) -> Callable[..., dict]:
    """A public `execute_*` of one quote kind: `execute_quote` under the kind's own name, in
    the kind's own `module`."""
    def execute(platform: Platform, principal: Principal, *, quote_id: str, user_id: str,
                min_receive_minor: int | None = None) -> dict:
        return execute_quote(platform, principal, quote_id=quote_id, user_id=user_id, min_receive_minor=min_receive_minor)

    execute.__name__ = execute.__qualname__ = name
    execute.__doc__, execute.__module__ = doc, module
    return boundary(execute)


@boundary
def get_quote(platform: Platform, quote_id: str) -> dict:
    """Raises: FlowNotFoundError, MalformedDocumentError."""
    return _quote(platform, quote_id).to_document()


def _quote(platform: Platform, quote_id: str) -> Quote:
    return load(platform.store.collection(COLLECTION), quote_id, "quote")


@boundary
def execute_quote(
    platform: Platform, principal: Principal, *, quote_id: str, user_id: str, min_receive_minor: int | None = None
) -> dict:
    """Execute an open quote for its owner.

    Slippage guard: refused if the quote pays less than `min_receive_minor`, or if the
    market has moved against the platform by more than `quote_price_move_max` since the
    quote (stale prices are not honoured). Returns the `executed` quote.
    Raises: PermissionDeniedError, FlowNotFoundError, NotFlowPartyError (foreign quote),
        QuoteExpiredError (its reservation is released), FlowStateError (executed,
        expired), SlippageExceededError, InvalidFlowInputError, InsufficientFundsError (the
        user cannot pay: nothing written — unless the funds vanish mid-execution, when the
        quote is closed and its reservation released).
    """
    require(principal, Permission.MOVE_MONEY)
    document = _quote(platform, quote_id)
    if document.user != user_id:
        raise NotFlowPartyError(f"quote {quote_id} belongs to another user", quote_id=quote_id, user_id=user_id)
    if document.state == "open":
        if platform.clock.now() >= document.expires_at:
            expire_quote(platform, principal, quote_id)
            raise QuoteExpiredError(
                f"quote {quote_id} expired at {document.expires_at:%Y-%m-%d %H:%M:%S}", quote_id=quote_id
            )
        _refuse_unfit(platform, document, min_receive_minor)
        document = _enter_executing(platform, principal, document)
    if document.state == "executed":  # a replay of a finished execution
        return _settle_referrals(platform, principal, document).to_document()
    if document.state in ("expiring", "expired"):
        raise QuoteExpiredError(f"quote {quote_id} is {document.state}", quote_id=quote_id, state=document.state)
    if document.state != "executing":
        raise FlowStateError(f"quote {quote_id} is {document.state}", quote_id=quote_id, state=document.state)
    return _finish_execution(platform, principal, document).to_document()


def _settle_referrals(platform: Platform, principal: Principal, document: Quote) -> Quote:
    """The commission on an executed quote's fee (its one execution entry)."""
    return referral.settle_referrals(platform, principal, COLLECTION, document,
                                     [document.pay_entry_id, document.receive_entry_id])


def _refuse_unfit(platform: Platform, document: Quote, min_receive_minor: int | None) -> None:
    """The slippage guards (nothing is written when they refuse)."""
    if min_receive_minor is not None and (
        isinstance(min_receive_minor, bool) or not isinstance(min_receive_minor, int)
    ):
        raise InvalidFlowInputError(
            "min_receive_minor must be an integer of minor units", value=repr(min_receive_minor)
        )
    if min_receive_minor is not None and document.receive_minor < min_receive_minor:
        raise SlippageExceededError(
            f"quote pays {document.receive_minor} minor units, below the minimum {min_receive_minor}",
            quote_id=document.id,
            receive_minor=document.receive_minor,
            min_receive_minor=min_receive_minor,
        )
    payer = acct.user_available(document.user, document.pay_asset)
    require_cover(platform, payer, document.pay_minor,
                  lambda held: f"{payer.id} holds {held} minor units, the quote needs {document.pay_minor}",
                  account=payer.id)
    quoted = Decimal(document.market_price)
    now = platform.prices.price(document.pay_asset, document.receive_asset)
    move = (quoted - now) / quoted  # > 0: the platform would now pay out more than the market
    if move > platform.config.quote_price_move_max:
        raise SlippageExceededError(
            f"market moved {move:.4%} against the quote (max {platform.config.quote_price_move_max:.2%})",
            quote_id=document.id,
            quoted_price=str(quoted),
            market_price=str(now),
        )


def _enter_executing(platform: Platform, principal: Principal, document: Quote) -> Quote:
    """The execute decision: open → executing while the quote is still valid (the expiry is
    in the same compare-and-set). A replay by the same caller resumes; an executor losing
    to an expiry gets QuoteDecisionConflictError naming it."""
    now = platform.clock.now()
    wanted = decision(principal, "execute", "executing", party=document.user, at=now)
    return decide(
        platform, platform.store.collection(COLLECTION), document, "executing", wanted, allowed_from=("open",),
        what="quote", match={"expires_at": {"$gt": now}}, user=document.user, error=QuoteDecisionConflictError,
    )


def _finish_execution(platform: Platform, principal: Principal, document: Quote) -> Quote:
    """Post the execution (one entry: the user pays, the reservation is consumed to the
    user) and record it. The reservation's close (`hold:<id>:close`) is the single point
    the journal decides a quote's fate at: consumed by the execution, or released by the
    expiry — so a payment refused here (nothing journaled) can never strand a concurrent
    executor's payment: whatever the journal says, the document follows (`_follow_journal`)."""
    collection = platform.store.collection(COLLECTION)
    try:
        entry = _execution_entry(platform, principal, document)
    except InsufficientFundsError:
        closing = step(platform, principal, collection, document, "expiring", allowed_from=("executing",),
                       what="quote", extra={"close_reason": "payment_refused"}, user=document.user)
        if _follow_journal(platform, principal, _finish_expiry(platform, principal, closing)).state == "executed":
            return _quote(platform, document.id)  # a concurrent execution went through meanwhile
        raise
    except HoldClosedError:
        current = _follow_journal(platform, principal, _quote(platform, document.id))
        raise QuoteExpiredError(f"quote {document.id} is {current.state}", quote_id=document.id,
                                state=current.state) from None
    done = step(
        platform, principal, collection, document, "executed", allowed_from=("executing",), what="quote",
        extra={"pay_entry_id": entry.id, "receive_entry_id": entry.id, "executed_at": platform.clock.now()},
        user=document.user,
    )
    done = _follow_journal(platform, principal, done)
    return referral.settle_referrals(platform, principal, COLLECTION, done, [entry.id])


def _follow_journal(platform: Platform, principal: Principal, document: Quote) -> Quote:
    """An `expiring` quote whose reservation was in fact consumed by an execution becomes
    `executed` (with that entry); any other document is returned as it is."""
    if document.state != "expiring":
        return document
    closing = platform.ledger.hold(document.id)[1]
    if closing is None or closing.hold_action != "consume":
        return document
    return step(
        platform, principal, platform.store.collection(COLLECTION), document, "executed", allowed_from=("expiring",),
        what="quote", extra={"pay_entry_id": closing.id, "receive_entry_id": closing.id,
                             "executed_at": platform.clock.now(), "close_reason": None},
        user=document.user,
    )


def _metadata(document: Quote, fee_minor: int, fee_asset: str) -> dict:
    return {
        "quote_id": document.id,
        "quote_kind": document.kind,
        "fee_minor": fee_minor,
        "fee_asset": fee_asset,
        "fee_payer": document.user,
        "price": document.price,
        "market_price": document.market_price,
        "spread_minor": document.spread_minor,
        "spread_asset": document.spread_asset,
    }


def _execution_entry(platform: Platform, principal: Principal, document: Quote) -> Entry:
    """One entry, consuming the reservation (key `hold:<id>:close`): the user pays (user →
    float, fee → fees) and receives (reserved → user, fee → fees). A quote charges its fee
    on one side only (swap and instant buy: the payment; instant sell: the payout), so the
    entry's `fee_minor` / `fee_asset` name that one fee.
    Raises: InsufficientFundsError (nothing journaled), HoldClosedError (expired meanwhile)."""
    registry, user = platform.registry, document.user
    pay_asset, receive_asset = document.pay_asset, document.receive_asset
    pay_fee, receive_fee = document.pay_fee_minor, document.receive_fee_minor
    ensure(not (pay_fee and receive_fee), "a quote charges its fee on one side", quote_id=document.id)
    received = from_minor(document.receive_minor, receive_asset, registry)
    destinations = [(acct.user_available(user, receive_asset), received)]
    if receive_fee:
        destinations.append((acct.fees(receive_asset), from_minor(receive_fee, receive_asset, registry)))
    payment = [(acct.user_available(user, pay_asset), -from_minor(document.pay_minor, pay_asset, registry))]
    if document.pay_to_liquidity_minor:
        payment.append((acct.liquidity(pay_asset), from_minor(document.pay_to_liquidity_minor, pay_asset, registry)))
    if pay_fee:
        payment.append((acct.fees(pay_asset), from_minor(pay_fee, pay_asset, registry)))
    fee, fee_asset = (pay_fee, pay_asset) if pay_fee else (receive_fee, receive_asset)
    return platform.ledger.consume_hold(
        hold_id=document.id, actor=principal.name, destinations=destinations, extra_postings=payment,
        entry_type=f"{document.kind}.execute", memo=f"{document.kind} execution",
        metadata=_metadata(document, fee, fee_asset),
    )


@boundary
def expire_quote(platform: Platform, principal: Principal, quote_id: str) -> dict:
    """Expire an open quote whose time is up (or finish an expiry a crash interrupted):
    release its reservation. Returns the quote. Raises: FlowStateError if not yet due."""
    require(principal, Permission.MOVE_MONEY)
    return _expire(platform, principal, _quote(platform, quote_id)).to_document()


def _expire(platform: Platform, principal: Principal, document: Quote) -> Quote:
    quote_id = document.id
    if document.state == "open":
        now = platform.clock.now()
        if now < document.expires_at:
            raise FlowStateError(f"quote {quote_id} is open until {document.expires_at:%Y-%m-%d %H:%M:%S}",
                                 quote_id=quote_id, state="open")
        wanted = decision(principal, "expire", "expiring", reason="ttl", at=now)
        document = decide(
            platform, platform.store.collection(COLLECTION), document, "expiring", wanted, allowed_from=("open",),
            what="quote", match={"expires_at": {"$lte": now}}, extra={"close_reason": "ttl"}, user=document.user,
        )
    if document.state == "expiring":
        document = _finish_expiry(platform, principal, document)
    return document


def _finish_expiry(platform: Platform, principal: Principal, document: Quote) -> Quote:
    entry = release_or_closing(platform, principal, document.id, entry_type="quote.release", memo="quote expired",
                               metadata={"quote_id": document.id})
    if entry.hold_action == "consume":  # an execution consumed the reservation first: it executed
        return _follow_journal(platform, principal, document)
    return step(
        platform, principal, platform.store.collection(COLLECTION), document, "expired", allowed_from=("expiring",),
        what="quote", extra={"release_entry_id": entry.id}, user=document.user,
    )


@boundary
def expire_due_quotes(platform: Platform, principal: Principal) -> SweepReport:
    """The sweep: expire every open quote past its TTL, finish interrupted expiries. One
    quote's failure (an execution won the race, a store error) is recorded and the sweep
    goes on. Returns a SweepReport (`done`: the ids it expired or finished expiring)."""
    require(principal, Permission.MOVE_MONEY)
    collection = platform.store.collection(COLLECTION)
    due = collection.find({"state": "open", "expires_at": {"$lte": platform.clock.now()}}, limit=EXPIRE_BATCH_MAX)
    due += collection.find({"state": "expiring"}, limit=EXPIRE_BATCH_MAX)
    report = SweepReport()
    for document in due:
        report.run(document["_id"], lambda quote_id=document["_id"]: expire_quote(platform, principal, quote_id))
    return report


@boundary
def resume_quote(platform: Platform, principal: Principal, quote_id: str) -> dict:
    """Finish whatever a crash interrupted: reserve a `new` quote, complete an `executing`
    one, release an `expiring` one. Returns the quote."""
    require(principal, Permission.MOVE_MONEY)
    return _resume(platform, principal, _quote(platform, quote_id)).to_document()


def _resume(platform: Platform, principal: Principal, document: Quote) -> Quote:
    if document.state == "new":
        try:
            return _reserve(platform, principal, document)
        except InsufficientLiquidityError:
            return _quote(platform, document.id)
    if document.state == "executing":
        try:
            return _finish_execution(platform, principal, document)
        except InsufficientFundsError:
            return _quote(platform, document.id)  # the payment was refused: the quote expired
    if document.state == "expiring":
        return _finish_expiry(platform, principal, document)
    if document.state == "executed":
        return _settle_referrals(platform, principal, document)
    return document
