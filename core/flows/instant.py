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
from core.base.errors import AmountTooSmallError, InvalidFlowInputError
from core.flows import quotes
from core.flows.common import ARITHMETIC_PRECISION, check_key, check_user, convert_down, fee_minor
from core.ledger import positive_amount
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.prices import PRICE_SIGNIFICANT_DIGITS


def _scales(platform: Platform, pay_asset: str, receive_asset: str) -> tuple[int, int]:
    if pay_asset == receive_asset:
        raise InvalidFlowInputError("instant trades need two different assets", asset=pay_asset)
    return platform.registry.get(pay_asset).scale, platform.registry.get(receive_asset).scale


def _market_cost_up(amount_minor: int, market: Decimal, scale_from: int, scale_to: int) -> int:
    """What `amount_minor` of the received asset is worth at market in the paying asset, rounded up."""
    with localcontext() as context:
        context.prec = ARITHMETIC_PRECISION
        value = Decimal(amount_minor) / market * Decimal(10) ** (scale_from - scale_to)
        return int(value.to_integral_value(rounding=ROUND_CEILING))


@boundary
def buy_terms(platform: Platform, asset: str, pay_asset: str, spend: object) -> quotes.QuoteTerms:
    """Terms of buying `asset` with `spend` of `pay_asset` now (pure)."""
    scale_pay, scale_receive = _scales(platform, pay_asset, asset)
    pay = positive_amount(spend, pay_asset, platform.registry)
    market = platform.prices.price(pay_asset, asset)
    config = platform.config
    fee = fee_minor(pay.minor, config.instant_fee_rate)
    net = pay.minor - fee
    with localcontext() as context:
        context.prec = PRICE_SIGNIFICANT_DIGITS  # the user's rate is stored and shown: keep it readable
        rate = market / (Decimal(1) + config.instant_buy_spread)
    out = convert_down(net, rate, scale_pay, scale_receive) if net > 0 else 0
    if out <= 0:
        raise AmountTooSmallError(
            f"{pay} buys nothing after fee, spread and rounding", amount=pay.text(), asset=pay_asset
        )
    spread = net - _market_cost_up(out, market, scale_pay, scale_receive)
    return quotes.QuoteTerms(
        kind="instant_buy",
        pay_asset=pay_asset,
        pay_minor=pay.minor,
        pay_to_liquidity_minor=net,
        pay_fee_minor=fee,
        receive_asset=asset,
        reserved_minor=out,
        receive_minor=out,
        receive_fee_minor=0,
        price=rate,
        market_price=market,
        spread_minor=max(spread, 0),
        spread_asset=pay_asset,
    )


@boundary
def sell_terms(platform: Platform, asset: str, receive_asset: str, amount: object) -> quotes.QuoteTerms:
    """Terms of selling `amount` of `asset` for `receive_asset` now (pure)."""
    scale_pay, scale_receive = _scales(platform, asset, receive_asset)
    pay = positive_amount(amount, asset, platform.registry)
    market = platform.prices.price(asset, receive_asset)
    config = platform.config
    with localcontext() as context:
        context.prec = PRICE_SIGNIFICANT_DIGITS
        rate = market * (Decimal(1) - config.instant_sell_spread)
    gross = convert_down(pay.minor, rate, scale_pay, scale_receive)
    fee = fee_minor(gross, config.instant_fee_rate)
    if gross - fee <= 0:
        raise AmountTooSmallError(
            f"{pay} sells for nothing after spread, fee and rounding", amount=pay.text(), asset=asset
        )
    spread = convert_down(pay.minor, market, scale_pay, scale_receive) - gross
    return quotes.QuoteTerms(
        kind="instant_sell",
        pay_asset=asset,
        pay_minor=pay.minor,
        pay_to_liquidity_minor=pay.minor,
        pay_fee_minor=0,
        receive_asset=receive_asset,
        reserved_minor=gross,
        receive_minor=gross - fee,
        receive_fee_minor=fee,
        price=rate,
        market_price=market,
        spread_minor=spread,
        spread_asset=receive_asset,
    )


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
    require(principal, Permission.MOVE_MONEY)
    check_key(idempotency_key)
    check_user(user_id)
    terms = buy_terms(platform, asset, pay_asset, spend)
    return quotes.create_quote(platform, principal, user_id=user_id, terms=terms, idempotency_key=idempotency_key)


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
    require(principal, Permission.MOVE_MONEY)
    check_key(idempotency_key)
    check_user(user_id)
    terms = sell_terms(platform, asset, receive_asset, amount)
    return quotes.create_quote(platform, principal, user_id=user_id, terms=terms, idempotency_key=idempotency_key)


@boundary
def execute_instant(
    platform: Platform, principal: Principal, *, quote_id: str, user_id: str, min_receive_minor: int | None = None
) -> dict:
    """Execute an instant buy/sell quote (see `quotes.execute_quote`)."""
    return quotes.execute_quote(
        platform, principal, quote_id=quote_id, user_id=user_id, min_receive_minor=min_receive_minor
    )
