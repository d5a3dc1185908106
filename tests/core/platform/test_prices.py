"""The deterministic price source: Decimal only, exact ratios, named refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.base.errors import FloatAmountError, InvalidAmountError, PriceUnavailableError
from core.platform.prices import DeterministicPriceSource, PriceSource


def test_prices_cross_rate_is_exact_ratio():
    source = DeterministicPriceSource()
    assert source.price("BTC", "USDT") == Decimal(60000)
    assert source.price("BTC", "GBP") == Decimal(48000)
    assert source.price("GBP", "USD") == Decimal("1.25")
    assert isinstance(source.price("ETH", "BTC"), Decimal)


def test_prices_are_deterministic():
    assert DeterministicPriceSource().price("SOL", "EUR") == DeterministicPriceSource().price("SOL", "EUR")


@pytest.mark.parametrize("pair", [("BTC", "NOPE"), ("NOPE", "BTC"), ("BTC", "BTC"), (None, "BTC")])
def test_prices_unknown_or_same_pair_refused(pair):
    with pytest.raises(PriceUnavailableError):
        DeterministicPriceSource().price(*pair)


@pytest.mark.parametrize(
    "bad, error",
    [
        (0.5, FloatAmountError),
        (Decimal(0), InvalidAmountError),
        (Decimal(-1), InvalidAmountError),
        (Decimal("Infinity"), InvalidAmountError),
        ("1", InvalidAmountError),
    ],
)
def test_prices_bad_price_refused(bad, error):
    with pytest.raises(error):
        DeterministicPriceSource({"BTC": bad})
    source = DeterministicPriceSource()
    with pytest.raises(error):
        source.set_price("BTC", bad)
    assert source.price("BTC", "USD") == Decimal(60000)


def test_prices_set_price_moves_market():
    source = DeterministicPriceSource()
    source.set_price("BTC", Decimal(30000))
    assert source.price("BTC", "USD") == Decimal(30000)


def test_prices_source_satisfies_protocol():
    source: PriceSource = DeterministicPriceSource()
    assert source.price("ETH", "USD") == Decimal(3000)
