"""Swap: the user trades asset X for asset Y against the liquidity float at the market
price, paying the swap fee in X (1.5% by default).

Terms (rounding rule, docs/flows.md): fee = ⌈amount × rate⌉ in X; the float receives
amount − fee; the user receives ⌊(amount − fee) × price⌋ of Y, reserved on the float
until the quote executes or expires.
"""

from __future__ import annotations

from core.platform.boundary import boundary
from core.flows import quotes
from core.base.permissions import Principal
from core.platform import Platform


@boundary
def swap_terms(platform: Platform, from_asset: str, to_asset: str, amount: object) -> quotes.QuoteTerms:
    """The terms a swap of `amount` of `from_asset` gets now (pure: nothing written).
    Raises: amount errors, InvalidFlowInputError, PriceUnavailableError, AmountTooSmallError."""
    pay, market, scale_from, scale_to = quotes.market_terms(platform, from_asset, to_asset, amount, what="a swap needs")
    fee, out = quotes.out_after_payment_fee(pay, platform.config.swap_fee_rate, market, scale_from, scale_to,
                                            after="fees and rounding")
    return quotes.QuoteTerms.priced("swap", pay, to_asset, out=out, price=market, market=market, spread_minor=0,
                                    spread_asset=to_asset, pay_fee=fee)


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
    return quotes.quote_for(platform, principal, lambda: swap_terms(platform, from_asset, to_asset, amount),
                            user_id=user_id, idempotency_key=idempotency_key)


execute_swap = quotes.executor_of(
    __name__, "execute_swap", """Execute a swap quote (see `quotes.execute_quote` for the guards and errors).""")
