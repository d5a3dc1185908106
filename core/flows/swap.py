"""Swap: the user trades asset X for asset Y against the liquidity float at the market
price, paying the swap fee in X (1.5% by default).

Terms (rounding rule, docs/flows.md): fee = ⌈amount × rate⌉ in X; the float receives
amount − fee; the user receives ⌊(amount − fee) × price⌋ of Y, reserved on the float
until the quote executes or expires.
"""

from __future__ import annotations

from core.platform.boundary import boundary
from core.base.errors import AmountTooSmallError, InvalidFlowInputError
from core.flows import quotes
from core.flows.common import check_key, check_user, convert_down, fee_minor
from core.ledger import positive_amount
from core.base.permissions import Permission, Principal, require
from core.platform import Platform


@boundary
def swap_terms(platform: Platform, from_asset: str, to_asset: str, amount: object) -> quotes.QuoteTerms:
    """The terms a swap of `amount` of `from_asset` gets now (pure: nothing written).
    Raises: amount errors, InvalidFlowInputError, PriceUnavailableError, AmountTooSmallError."""
    if from_asset == to_asset:
        raise InvalidFlowInputError("a swap needs two different assets", asset=from_asset)
    pay = positive_amount(amount, from_asset, platform.registry)
    platform.registry.get(to_asset)
    market = platform.prices.price(from_asset, to_asset)
    fee = fee_minor(pay.minor, platform.config.swap_fee_rate)
    net = pay.minor - fee
    scale_from, scale_to = platform.registry.get(from_asset).scale, platform.registry.get(to_asset).scale
    out = convert_down(net, market, scale_from, scale_to) if net > 0 else 0
    if out <= 0:
        raise AmountTooSmallError(f"{pay} buys nothing after fees and rounding", amount=pay.text(), asset=from_asset)
    return quotes.QuoteTerms(
        kind="swap",
        pay_asset=from_asset,
        pay_minor=pay.minor,
        pay_to_liquidity_minor=net,
        pay_fee_minor=fee,
        receive_asset=to_asset,
        reserved_minor=out,
        receive_minor=out,
        receive_fee_minor=0,
        price=market,
        market_price=market,
        spread_minor=0,
        spread_asset=to_asset,
    )


@boundary
def quote_swap(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    from_asset: str,
    to_asset: str,
    amount: object,
    idempotency_key: str,
) -> dict:
    """Quote a swap and reserve its output. Returns the open quote document.
    Raises: PermissionDeniedError, swap_terms' errors, InsufficientLiquidityError."""
    require(principal, Permission.MOVE_MONEY)
    check_key(idempotency_key)
    check_user(user_id)
    terms = swap_terms(platform, from_asset, to_asset, amount)
    return quotes.create_quote(platform, principal, user_id=user_id, terms=terms, idempotency_key=idempotency_key)


@boundary
def execute_swap(
    platform: Platform, principal: Principal, *, quote_id: str, user_id: str, min_receive_minor: int | None = None
) -> dict:
    """Execute a swap quote (see `quotes.execute_quote` for the guards and errors)."""
    return quotes.execute_quote(
        platform, principal, quote_id=quote_id, user_id=user_id, min_receive_minor=min_receive_minor
    )
