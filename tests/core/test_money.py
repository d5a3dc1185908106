from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    AmountOverflowError,
    AssetMismatchError,
    ExcessPrecisionError,
    FloatAmountError,
    InvalidAmountError,
    NonFiniteAmountError,
    NonPositiveAmountError,
    UnknownAssetError,
)
from core.ledger.money import DEFAULT_REGISTRY, INT64_MAX, Amount, Asset, AssetRegistry, amount, from_minor, positive_amount


def test_amount_from_decimal_string_is_exact():
    value = amount("0.00153", "BTC")
    assert value.minor == 153_000 and value.scale == 8
    assert value.to_decimal() == Decimal("0.00153")
    assert value.text() == "0.00153000"
    assert str(value) == "0.00153000 BTC"


def test_amount_from_decimal_and_int():
    assert amount(Decimal("12.34"), "GBP").minor == 1234
    assert amount(5, "USDT").minor == 5_000_000
    assert amount("-1.5", "ETH").minor == -150_000_000


@pytest.mark.parametrize("value", [0.1, 1.0, float("nan"), float("inf")])
def test_amount_float_refused(value):
    with pytest.raises(FloatAmountError):
        amount(value, "BTC")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", Decimal("NaN"), Decimal("Infinity"), "sNaN"])
def test_amount_non_finite_refused(value):
    with pytest.raises(NonFiniteAmountError):
        amount(value, "BTC")


@pytest.mark.parametrize("value,asset", [("0.000000001", "BTC"), ("1.001", "GBP"), ("0.0000001", "USDT"), (Decimal("1.234"), "EUR")])
def test_amount_excess_precision_refused_never_rounded(value, asset):
    with pytest.raises(ExcessPrecisionError) as error:
        amount(value, asset)
    assert error.value.details["asset"] == asset


def test_amount_trailing_zeros_beyond_scale_are_fine():
    assert amount("1.2300000000", "GBP").minor == 123


@pytest.mark.parametrize("asset", ["DOGE", "btc", "", None, 5, {"$gt": ""}])
def test_amount_unknown_asset_refused(asset):
    with pytest.raises(UnknownAssetError):
        amount("1", asset)


def test_amount_int64_overflow_refused():
    with pytest.raises(AmountOverflowError):
        amount(str(Decimal(INT64_MAX + 1).scaleb(-8)), "BTC")
    assert amount(str(Decimal(INT64_MAX).scaleb(-8)), "BTC").minor == INT64_MAX
    with pytest.raises(AmountOverflowError):
        from_minor(INT64_MAX, "BTC") + from_minor(1, "BTC")


@pytest.mark.parametrize("value", ["", "abc", "1e", "1,5", True, None, [1], b"1", "1" * 80])
def test_amount_malformed_refused(value):
    with pytest.raises(InvalidAmountError):
        amount(value, "BTC")


def test_amount_mixed_assets_refused():
    with pytest.raises(AssetMismatchError):
        amount("1", "BTC") + amount("1", "ETH")
    with pytest.raises(AssetMismatchError):
        amount("1", "BTC") < amount("1", "ETH")


def test_positive_amount_refuses_zero_and_negative():
    for value in ("0", "-0.01", "0.00"):
        with pytest.raises(NonPositiveAmountError):
            positive_amount(value, "GBP")
    assert positive_amount("0.01", "GBP").minor == 1


def test_amount_model_is_strict_and_frozen():
    value = amount("1", "BTC")
    with pytest.raises(Exception):
        value.minor = 5  # frozen
    with pytest.raises(Exception):
        type(value)(asset="BTC", minor=1.0, scale=8)  # strict: no float minor units


def test_registry_is_configurable():
    registry = AssetRegistry([Asset(code="DOGE", kind="crypto", scale=8, name="Dogecoin")])
    assert amount("1.5", "DOGE", registry).minor == 150_000_000
    with pytest.raises(UnknownAssetError):
        amount("1", "BTC", registry)
    assert DEFAULT_REGISTRY.get("GBP").scale == 2
    assert {a: DEFAULT_REGISTRY.get(a).scale for a in ("BTC", "ETH", "USDT", "USDC", "SOL", "XRP", "LTC", "GBP", "USD", "EUR")} == {
        "BTC": 8, "ETH": 8, "USDT": 6, "USDC": 6, "SOL": 8, "XRP": 6, "LTC": 8, "GBP": 2, "USD": 2, "EUR": 2}


@given(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6, allow_nan=False, allow_infinity=False),
       st.sampled_from(["BTC", "USDT", "XRP", "ETH"]))
def test_amount_round_trips_exactly(value, asset):
    made = amount(str(value), asset)
    assert made.to_decimal() == value
    assert from_minor(made.minor, asset) == made


# -- hostile text (issue 11): no rounding context, no exponents, no raw decimal errors -----------
def test_amount_31_digit_text_is_excess_precision_not_rounded():
    from core.errors import ExcessPrecisionError

    with pytest.raises(ExcessPrecisionError):
        amount("1.000000000000000000000000000001", "BTC")
    with pytest.raises(ExcessPrecisionError):
        amount(Decimal("1.000000000000000000000000000001"), "BTC")


@pytest.mark.parametrize("value", ["1e3", "1E3", "1e-999999999", "1e999999999", "-2.5e1", ".5e1"])
def test_amount_exponent_text_refused(value):
    from core.errors import ExponentNotationError

    with pytest.raises(ExponentNotationError):
        amount(value, "BTC")


def test_amount_extreme_decimal_exponents_are_named_errors():
    from core.errors import AmountOverflowError, ExcessPrecisionError

    with pytest.raises(ExcessPrecisionError):
        amount(Decimal("1e-999999999"), "BTC")  # was silently 0
    with pytest.raises(AmountOverflowError):
        amount(Decimal("1e999999999"), "BTC")  # was a raw decimal.Overflow
    with pytest.raises(AmountOverflowError):
        amount("1" * 40, "BTC")
    assert amount(Decimal("0e999999999"), "BTC").minor == 0  # zero is exactly zero at any exponent


def test_amount_too_many_digits_refused():
    from core.errors import InvalidAmountError, TooManyDigitsError

    with pytest.raises(TooManyDigitsError):
        amount(Decimal("1." + "0" * 80), "BTC")
    with pytest.raises(InvalidAmountError):  # text is limited by length first
        amount("1." + "0" * 80, "BTC")


@pytest.mark.parametrize("value", ["1_000", "١", "0x10", "1,5", "1.5\n", "\n1", "+-1", "1..2", "."])
def test_amount_only_plain_ascii_decimal_text(value):
    from core.errors import InvalidAmountError

    with pytest.raises(InvalidAmountError):
        amount(value, "BTC")


def test_amount_text_padding_and_forms_that_stay_exact():
    assert amount(" 1.5\t", "BTC").minor == 150_000_000
    assert amount(".5", "BTC").minor == 50_000_000
    assert amount("5.", "BTC").minor == 500_000_000
    assert amount("-0.00000001", "BTC").minor == -1
    assert amount("92233720368.54775807", "BTC").minor == 2**63 - 1


def test_forged_amount_model_overflow_is_named():
    from core.errors import AmountOverflowError

    with pytest.raises(AmountOverflowError):
        Amount(asset="BTC", minor=2**70, scale=8)
    with pytest.raises(AmountOverflowError):
        Amount(asset="BTC", minor=-(2**63) - 1, scale=8)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_amount_of_any_decimal_is_exact_or_named(value):
    """Whatever the Decimal, the result is exact (round-trips) or a named refusal."""
    from core.errors import LedgerError

    try:
        result = amount(value, "BTC")
    except LedgerError:
        return
    assert result.to_decimal() == value
