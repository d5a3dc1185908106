"""Prices behind one interface, so flows never know where a price comes from.

A price is a `Decimal`: how many units of `quote` one unit of `base` costs. Floats are
refused. The deterministic source serves the demo and tests (no network); a production
source implements the same `PriceSource` protocol.
"""

from __future__ import annotations

import threading
from decimal import Decimal, localcontext
from typing import Protocol

from core.base.errors import FloatAmountError, InvalidAmountError, PriceUnavailableError

PRICE_SIGNIFICANT_DIGITS = 28  # Decimal context precision used for cross rates

# Reference prices in USD per unit (a plausible snapshot; only ratios matter).
DEFAULT_USD_PRICES: dict[str, Decimal] = {
    "BTC": Decimal("60000"),
    "ETH": Decimal("3000"),
    "USDT": Decimal("1"),
    "USDC": Decimal("1"),
    "SOL": Decimal("150"),
    "XRP": Decimal("0.5"),
    "LTC": Decimal("80"),
    "GBP": Decimal("1.25"),
    "USD": Decimal("1"),
    "EUR": Decimal("1.10"),
}


class PriceSource(Protocol):
    def price(self, base: str, quote: str) -> Decimal:
        """Units of `quote` per one unit of `base`. Raises: PriceUnavailableError."""
        ...


def _check_price(value: object, asset: str) -> Decimal:
    if isinstance(value, float):
        raise FloatAmountError(f"float price {value!r} for {asset} refused", value=repr(value))
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidAmountError(f"price for {asset} must be a positive Decimal", value=repr(value))
    return value


class DeterministicPriceSource:
    """Fixed reference prices (USD per unit); cross rates are exact ratios. Tests may move
    a price with `set_price` to exercise slippage guards."""

    def __init__(self, usd_prices: dict[str, Decimal] | None = None) -> None:
        self._usd = {asset: _check_price(p, asset) for asset, p in (usd_prices or DEFAULT_USD_PRICES).items()}
        self._lock = threading.Lock()

    def set_price(self, asset: str, usd_price: Decimal) -> None:
        with self._lock:
            self._usd[asset] = _check_price(usd_price, asset)

    def price(self, base: str, quote: str) -> Decimal:
        with self._lock:
            if base not in self._usd or quote not in self._usd:
                raise PriceUnavailableError(f"no price for {base}/{quote}", base=base, quote=quote)
            if base == quote:
                raise PriceUnavailableError(f"no price for {base}/{quote}: same asset", base=base, quote=quote)
            with localcontext() as context:
                context.prec = PRICE_SIGNIFICANT_DIGITS
                return self._usd[base] / self._usd[quote]
