from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.base.errors import (
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
    from core.base.errors import ExcessPrecisionError

    with pytest.raises(ExcessPrecisionError):
        amount("1.000000000000000000000000000001", "BTC")
    with pytest.raises(ExcessPrecisionError):
        amount(Decimal("1.000000000000000000000000000001"), "BTC")


@pytest.mark.parametrize("value", ["1e3", "1E3", "1e-999999999", "1e999999999", "-2.5e1", ".5e1"])
def test_amount_exponent_text_refused(value):
    from core.base.errors import ExponentNotationError

    with pytest.raises(ExponentNotationError):
        amount(value, "BTC")


def test_amount_extreme_decimal_exponents_are_named_errors():
    from core.base.errors import AmountOverflowError, ExcessPrecisionError

    with pytest.raises(ExcessPrecisionError):
        amount(Decimal("1e-999999999"), "BTC")  # was silently 0
    with pytest.raises(AmountOverflowError):
        amount(Decimal("1e999999999"), "BTC")  # was a raw decimal.Overflow
    with pytest.raises(AmountOverflowError):
        amount("1" * 40, "BTC")
    assert amount(Decimal("0e999999999"), "BTC").minor == 0  # zero is exactly zero at any exponent


def test_amount_too_many_digits_refused():
    from core.base.errors import InvalidAmountError, TooManyDigitsError

    with pytest.raises(TooManyDigitsError):
        amount(Decimal("1." + "0" * 80), "BTC")
    with pytest.raises(InvalidAmountError):  # text is limited by length first
        amount("1." + "0" * 80, "BTC")


@pytest.mark.parametrize("value", ["1_000", "١", "0x10", "1,5", "1.5\n", "\n1", "+-1", "1..2", "."])
def test_amount_only_plain_ascii_decimal_text(value):
    from core.base.errors import InvalidAmountError

    with pytest.raises(InvalidAmountError):
        amount(value, "BTC")


def test_amount_text_padding_and_forms_that_stay_exact():
    assert amount(" 1.5\t", "BTC").minor == 150_000_000
    assert amount(".5", "BTC").minor == 50_000_000
    assert amount("5.", "BTC").minor == 500_000_000
    assert amount("-0.00000001", "BTC").minor == -1
    assert amount("92233720368.54775807", "BTC").minor == 2**63 - 1


def test_forged_amount_model_overflow_is_named():
    from core.base.errors import AmountOverflowError

    with pytest.raises(AmountOverflowError):
        Amount(asset="BTC", minor=2**70, scale=8)
    with pytest.raises(AmountOverflowError):
        Amount(asset="BTC", minor=-(2**63) - 1, scale=8)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_amount_of_any_decimal_is_exact_or_named(value):
    """Whatever the Decimal, the result is exact (round-trips) or a named refusal."""
    from core.base.errors import LedgerError

    try:
        result = amount(value, "BTC")
    except LedgerError:
        return
    assert result.to_decimal() == value


# -- typed amounts (issue 22 item 14): one rule, the form the console displays, echoed as typed ---------------
@pytest.mark.parametrize("text,minor", [("1,000", 100_000_000_000), ("1,234.56789012", 123_456_789_012),
                                        ("-1,000,000.5", -100_000_050_000_000), ("+12,345.", 1_234_500_000_000),
                                        (" 1,000\t", 100_000_000_000), ("999", 99_900_000_000)])
def test_amount_accepts_thousands_separators_as_the_console_displays_them(text, minor):
    assert amount(text, "BTC").minor == minor


def test_amount_reads_back_what_the_console_displays():
    from core.approvals.view import group_thousands

    for minor in (1, 99_999_999, 100_000_000_000, 123_456_789_012_345, 2**63 - 1):
        shown = group_thousands(from_minor(minor, "BTC").text())
        assert amount(shown, "BTC").minor == minor, shown


@pytest.mark.parametrize("text", ["1,00", "1,0000", ",100", "1,,000", "1000,000", "1,000,00", "0.000,001", "1,5",
                                  "1.5,000", "1,000,", ",", "1 000", "1'000", "1.000,5", "1,000e3"])
def test_amount_refuses_separators_out_of_place(text):
    from core.base.errors import EmptyAmountError

    with pytest.raises(InvalidAmountError) as refusal:
        amount(text, "BTC")
    assert not isinstance(refusal.value, EmptyAmountError)


def test_amount_misplaced_comma_is_explained():
    with pytest.raises(InvalidAmountError, match="comma may only separate thousands"):
        amount("1,00", "BTC")


def test_amount_excess_precision_echoes_the_text_as_typed():
    """"0.000000001" was refused as "1E-9 has more than 8 decimals"."""
    with pytest.raises(ExcessPrecisionError) as refusal:
        amount("0.000000001", "BTC")
    assert refusal.value.message.startswith("0.000000001 has more than 8 decimals") and "E" not in refusal.value.message
    with pytest.raises(ExcessPrecisionError, match=r"^1,000\.123456789 has more"):
        amount("1,000.123456789", "BTC")
    with pytest.raises(ExcessPrecisionError, match=r"^0\.000000001 has more"):
        amount(Decimal("1E-9"), "BTC")  # a Decimal in positional notation too
    with pytest.raises(ExcessPrecisionError, match=r"^1E-999999999 has more"):
        amount(Decimal("1E-999999999"), "BTC")  # never expanded to a billion characters


@pytest.mark.parametrize("text", ["", " ", "\t", "  \t "])
def test_amount_empty_text_asks_for_an_amount(text):
    from core.base.errors import EmptyAmountError

    with pytest.raises(EmptyAmountError, match="^enter an amount"):
        amount(text, "BTC")


def test_amount_too_long_text_says_so():
    with pytest.raises(InvalidAmountError, match="at most 64 characters"):
        amount("1" * 65, "BTC")
