"""Instant buy and instant sell against the liquidity float at market ± spread, plus a fee.

Instant buy (user pays `spend` of a quote asset, e.g. GBP, for crypto):
  fee = ⌈spend × fee_rate⌉ (GBP → fees); the float gets spend − fee;
  user rate = market ÷ (1 + buy spread); crypto out = ⌊(spend − fee) × user rate⌋.
Instant sell (user pays `amount` of crypto for a quote asset):
  gross = ⌊amount × market × (1 − sell spread)⌋ (reserved on the float);
  fee = ⌈gross × fee_rate⌉ (→ fees); user receives gross − fee.
The spread is trading profit: it stays in the float (it is the difference between what the
float takes in and the market value of what it pays out) and is recorded in the entries'
metadata as `spread_minor` beside `fee_minor` — never credited to the fee wallet.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, localcontext

from core.platform.boundary import boundary
from core.base.errors import AmountTooSmallError
from core.flows import quotes
from core.flows.common import ARITHMETIC_PRECISION, convert_down, fee_minor
from core.base.permissions import Principal
from core.platform import Platform
from core.platform.prices import PRICE_SIGNIFICANT_DIGITS

TWO_ASSETS = "instant trades need"  # … two different assets


def _market_cost_up(amount_minor: int, market: Decimal, scale_from: int, scale_to: int) -> int:
    """What `amount_minor` of the received asset is worth at market in the paying asset, rounded up."""
    with localcontext() as context:
        context.prec = ARITHMETIC_PRECISION
        value = Decimal(amount_minor) / market * Decimal(10) ** (scale_from - scale_to)
        return int(value.to_integral_value(rounding=ROUND_CEILING))


@boundary
def buy_terms(platform: Platform, asset: str, pay_asset: str, spend: object) -> quotes.QuoteTerms:
    """Terms of buying `asset` with `spend` of `pay_asset` now (pure)."""
    pay, market, scale_pay, scale_receive = quotes.market_terms(platform, pay_asset, asset, spend, what=TWO_ASSETS)
    with localcontext() as context:
        context.prec = PRICE_SIGNIFICANT_DIGITS  # the user's rate is stored and shown: keep it readable
        rate = market / (Decimal(1) + platform.config.instant_buy_spread)
    fee, out = quotes.out_after_payment_fee(pay, platform.config.instant_fee_rate, rate, scale_pay, scale_receive,
                                            after="fee, spread and rounding")
    spread = pay.minor - fee - _market_cost_up(out, market, scale_pay, scale_receive)
    return quotes.QuoteTerms.priced("instant_buy", pay, asset, out=out, price=rate, market=market,
                                    spread_minor=max(spread, 0), spread_asset=pay_asset, pay_fee=fee)


@boundary
def sell_terms(platform: Platform, asset: str, receive_asset: str, amount: object) -> quotes.QuoteTerms:
    """Terms of selling `amount` of `asset` for `receive_asset` now (pure)."""
    pay, market, scale_pay, scale_receive = quotes.market_terms(platform, asset, receive_asset, amount, what=TWO_ASSETS)
    with localcontext() as context:
        context.prec = PRICE_SIGNIFICANT_DIGITS
        rate = market * (Decimal(1) - platform.config.instant_sell_spread)
    gross = convert_down(pay.minor, rate, scale_pay, scale_receive)
    fee = fee_minor(gross, platform.config.instant_fee_rate)
    if gross - fee <= 0:
        raise AmountTooSmallError(
            f"{pay} sells for nothing after spread, fee and rounding", amount=pay.text(), asset=asset
        )
    spread = convert_down(pay.minor, market, scale_pay, scale_receive) - gross
    return quotes.QuoteTerms.priced("instant_sell", pay, receive_asset, out=gross, price=rate, market=market,
                                    spread_minor=spread, spread_asset=receive_asset, receive_fee=fee)


@boundary
def quote_instant_buy(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    asset: str,
    pay_asset: str,
    spend: object,
    idempotency_key: str,
) -> dict:
    """Quote buying `asset` with `spend` of `pay_asset`; reserves the crypto on the float.
    Raises: PermissionDeniedError, amount errors, AmountTooSmallError, PriceUnavailableError,
        InsufficientLiquidityError, IdempotencyConflictError."""
    return quotes.quote_for(platform, principal, lambda: buy_terms(platform, asset, pay_asset, spend),
                            user_id=user_id, idempotency_key=idempotency_key)


@boundary
def quote_instant_sell(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    asset: str,
    receive_asset: str,
    amount: object,
    idempotency_key: str,
) -> dict:
    """Quote selling `amount` of `asset` for `receive_asset`; reserves the payout on the float.
    Raises: as quote_instant_buy."""
    return quotes.quote_for(platform, principal, lambda: sell_terms(platform, asset, receive_asset, amount),
                            user_id=user_id, idempotency_key=idempotency_key)


execute_instant = quotes.executor_of(
    __name__, "execute_instant", """Execute an instant buy/sell quote (see `quotes.execute_quote`).""")
