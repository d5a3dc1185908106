"""Exact money: the asset registry and the one constructor of amounts.

Typed amounts follow one rule wherever they come from (a console form, the CLI, an API
call): plain decimal text, optionally with thousands separators exactly as the console
displays amounts ("1,234.5"). Refusals echo the text as typed.

Amounts live as integers of minor units (an asset's scale fixes how many decimals a
minor unit is). `amount()` is the single way to turn user input into an `Amount`; it
refuses floats, NaN/Infinity, more decimals than the scale, unknown assets and values
that would not fit a BSON int64.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from core.base.errors import (
    AmountOverflowError,
    AssetMismatchError,
    EmptyAmountError,
    ExcessPrecisionError,
    ExponentNotationError,
    FloatAmountError,
    InvalidAmountError,
    NonFiniteAmountError,
    NonPositiveAmountError,
    TooManyDigitsError,
    UnknownAssetError,
)

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
AMOUNT_TEXT_LENGTH_MAX = 64
# Any valid amount fits int64 minor units (19 digits) with at most SCALE_MAX decimals, so
# 64 significant digits leave room for harmless trailing zeros and refuse the rest. The
# limit keeps every later step exact: no Decimal context ever rounds an amount.
AMOUNT_DIGITS_MAX = 64
SCALE_MAX = 18
INT64_DIGITS = 19
# Plain decimal text only: optional sign, ASCII digits, one optional point. No exponent
# ("1e3" is not how anyone types 1000), no "_" separators, no non-ASCII digits.
DECIMAL_TEXT_PATTERN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# The same with thousands separators, exactly as the console displays amounts
# ("1,234.56789012"): a comma only between groups of three digits of the whole part, never
# in the fraction. "1,00" or "1,5" (a decimal comma?) is refused, never guessed at.
GROUPED_TEXT_PATTERN = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")
THOUSANDS_SEPARATOR = ","
SHOWN_LENGTH_MAX = 40  # a refusal names the amount in at most this many characters
EXPONENT_TEXT_PATTERN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+")
AMOUNT_TEXT_PADDING = " \t"  # a form may pad a number with spaces; nothing else is stripped


class Asset(BaseModel):
    """One registry entry: code, kind, scale (minor-unit decimals) and display name."""

    model_config = ConfigDict(strict=True, frozen=True)

    code: str
    kind: Literal["crypto", "fiat"]
    scale: int
    name: str


DEFAULT_ASSETS: tuple[Asset, ...] = (
    Asset(code="BTC", kind="crypto", scale=8, name="Bitcoin"),
    Asset(code="ETH", kind="crypto", scale=8, name="Ether"),
    Asset(code="USDT", kind="crypto", scale=6, name="Tether USD"),
    Asset(code="USDC", kind="crypto", scale=6, name="USD Coin"),
    Asset(code="SOL", kind="crypto", scale=8, name="Solana"),
    Asset(code="XRP", kind="crypto", scale=6, name="XRP"),
    Asset(code="LTC", kind="crypto", scale=8, name="Litecoin"),
    Asset(code="GBP", kind="fiat", scale=2, name="Pound sterling"),
    Asset(code="USD", kind="fiat", scale=2, name="US dollar"),
    Asset(code="EUR", kind="fiat", scale=2, name="Euro"),
)


class AssetRegistry:
    """The assets the ledger knows. Configurable: pass your own list of `Asset`."""

    def __init__(self, assets: tuple[Asset, ...] | list[Asset] = DEFAULT_ASSETS) -> None:
        self._assets = {asset.code: asset for asset in assets}
        for asset in assets:
            if not (0 <= asset.scale <= SCALE_MAX):
                raise InvalidAmountError(f"asset {asset.code}: scale must be 0..18", asset=asset.code)

    def get(self, code: object) -> Asset:
        """Return the asset for `code`. Raises: UnknownAssetError."""
        if not isinstance(code, str) or code not in self._assets:
            raise UnknownAssetError(f"unknown asset {code!r}", asset=code)
        return self._assets[code]

    def codes(self) -> list[str]:
        """Every asset code, in registry order."""
        return list(self._assets)


DEFAULT_REGISTRY = AssetRegistry()


class Amount(BaseModel):
    """An exact, signed quantity of one asset, held as integer minor units."""

    model_config = ConfigDict(strict=True, frozen=True)

    asset: str
    minor: int
    scale: int

    @model_validator(mode="after")
    def _in_range(self) -> Amount:
        """A forged Amount (e.g. `minor=2**70`) is refused here with a named error, not by
        pymongo's OverflowError when it is written."""
        if not (INT64_MIN <= self.minor <= INT64_MAX):
            raise AmountOverflowError(f"{self.asset} amount of {self.minor} minor units overflows int64", asset=self.asset, minor=str(self.minor))
        if not (0 <= self.scale <= SCALE_MAX):
            raise InvalidAmountError(f"scale must be 0..{SCALE_MAX}, got {self.scale}", scale=self.scale)
        return self

    def to_decimal(self) -> Decimal:
        """The amount in major units, exactly."""
        return Decimal(self.minor).scaleb(-self.scale)

    def __str__(self) -> str:
        return f"{self.to_decimal():.{self.scale}f} {self.asset}"

    def text(self) -> str:
        """The amount as a plain decimal string with the asset's full scale."""
        return f"{self.to_decimal():.{self.scale}f}"

    def _same_asset(self, other: Amount) -> None:
        if not isinstance(other, Amount) or other.asset != self.asset:
            raise AssetMismatchError(
                f"cannot combine {self.asset} with {getattr(other, 'asset', other)!r}",
                left=self.asset,
                right=getattr(other, "asset", None),
            )

    def __add__(self, other: Amount) -> Amount:
        self._same_asset(other)
        return _checked(self.asset, self.minor + other.minor, self.scale)

    def __sub__(self, other: Amount) -> Amount:
        self._same_asset(other)
        return _checked(self.asset, self.minor - other.minor, self.scale)

    def __neg__(self) -> Amount:
        return _checked(self.asset, -self.minor, self.scale)

    def __lt__(self, other: Amount) -> bool:
        self._same_asset(other)
        return self.minor < other.minor

    def __le__(self, other: Amount) -> bool:
        self._same_asset(other)
        return self.minor <= other.minor

    def is_zero(self) -> bool:
        return self.minor == 0


def _checked(asset: str, minor: int, scale: int) -> Amount:
    if not (INT64_MIN <= minor <= INT64_MAX):
        raise AmountOverflowError(f"{asset} amount of {minor} minor units overflows int64", asset=asset, minor=minor)
    return Amount(asset=asset, minor=minor, scale=scale)


def to_decimal(value: object) -> Decimal:
    """Turn `Decimal`, `int` or plain decimal text into a finite Decimal, exactly.

    Raises: FloatAmountError for floats, NonFiniteAmountError for NaN/Infinity,
    ExponentNotationError for text like "1e3", TooManyDigitsError past AMOUNT_DIGITS_MAX,
    EmptyAmountError for empty text, InvalidAmountError for anything else that is not an
    exact number (misplaced thousands separators included).
    """
    if isinstance(value, bool):
        raise InvalidAmountError(f"{value!r} is not an amount", value=value)
    if isinstance(value, float):
        raise FloatAmountError(f"float {value!r} refused: give a Decimal or a decimal string", value=value)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if not (INT64_MIN <= value <= INT64_MAX):
            raise AmountOverflowError("integer amount outside int64", value=str(value)[:40])
        number = Decimal(value)
    elif isinstance(value, str):
        number = _parse_text(value)
    else:
        raise InvalidAmountError(f"{type(value).__name__} is not an amount", value=repr(value)[:80])
    if not number.is_finite():
        raise NonFiniteAmountError(f"{str(value)[:40]!r} is not a finite amount", value=str(value)[:40])
    if len(number.as_tuple().digits) > AMOUNT_DIGITS_MAX:
        raise TooManyDigitsError(f"an amount has at most {AMOUNT_DIGITS_MAX} digits", digits=len(number.as_tuple().digits))
    return number


def _parse_text(value: str) -> Decimal:
    """Decimal text → Decimal: plain ("1234.5") or with thousands separators as the console
    shows amounts ("1,234.5"). `Decimal(text)` itself is exact whatever the context (only
    arithmetic rounds), so the patterns are what keep exponents and junk out.

    Raises: EmptyAmountError (nothing typed), InvalidAmountError (too long, misplaced
    separators, not a number), ExponentNotationError, NonFiniteAmountError."""
    text = value.strip(AMOUNT_TEXT_PADDING)
    if not text:
        raise EmptyAmountError("enter an amount: none was given", value=value[:80])
    if len(text) > AMOUNT_TEXT_LENGTH_MAX:
        raise InvalidAmountError(f"an amount is at most {AMOUNT_TEXT_LENGTH_MAX} characters long", value=value[:80])
    if DECIMAL_TEXT_PATTERN.fullmatch(text):
        return Decimal(text)
    if GROUPED_TEXT_PATTERN.fullmatch(text):
        return Decimal(text.replace(THOUSANDS_SEPARATOR, ""))
    if THOUSANDS_SEPARATOR in text and DECIMAL_TEXT_PATTERN.fullmatch(text.replace(THOUSANDS_SEPARATOR, "")):
        raise InvalidAmountError(
            f"{text!r}: a comma may only separate thousands (groups of three digits before the point, "
            "e.g. 1,000 or 1,234.5); write a decimal point as '.'", value=text)
    if EXPONENT_TEXT_PATTERN.fullmatch(text):
        raise ExponentNotationError(f"{text!r}: write amounts as plain decimals, without an exponent", value=text)
    if text.lower().lstrip("+-") in {"nan", "snan", "inf", "infinity"}:
        raise NonFiniteAmountError(f"{text!r} is not a finite amount", value=text)
    raise InvalidAmountError(f"{value!r} is not a decimal amount", value=value[:80])


def _shown(value: object, number: Decimal) -> str:
    """The amount as a refusal names it: text exactly as typed (padding aside), so
    "0.000000001" is echoed, never its Decimal form "1E-9"; any other value in plain
    positional notation. Cut at SHOWN_LENGTH_MAX characters."""
    if isinstance(value, str):
        text = value.strip(AMOUNT_TEXT_PADDING)
    else:  # positional only while it stays short: f"{Decimal('1E-999999999'):f}" is a billion characters
        text = f"{number:f}" if abs(number.as_tuple().exponent) <= SHOWN_LENGTH_MAX else str(number)
    return text if len(text) <= SHOWN_LENGTH_MAX else text[: SHOWN_LENGTH_MAX - 1] + "…"


def _minor_units(number: Decimal, spec: Asset, value: object) -> int:
    """`number` in minor units of `spec`, exactly, with integer arithmetic only (no Decimal
    context, so nothing can round and no exponent can raise decimal.Overflow). `value` is
    what the caller gave: a refusal names it as typed (`_shown`).

    Raises: ExcessPrecisionError, AmountOverflowError."""
    sign, digits, exponent = number.as_tuple()
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0:
        return 0
    shift = exponent + spec.scale  # minor = coefficient × 10**shift
    if shift < 0:
        if -shift > len(digits) or coefficient % 10**-shift:
            raise ExcessPrecisionError(
                f"{_shown(value, number)} has more than {spec.scale} decimals allowed for {spec.code}",
                value=_shown(value, number), asset=spec.code, scale=spec.scale,
            )
        minor = coefficient // 10**-shift
    else:
        if shift + len(digits) > INT64_DIGITS + 1:
            raise AmountOverflowError(f"{spec.code} amount overflows int64 minor units", asset=spec.code, value=_shown(value, number))
        minor = coefficient * 10**shift
    return -minor if sign else minor


def amount(value: object, asset: str, registry: AssetRegistry = DEFAULT_REGISTRY) -> Amount:
    """The one constructor: an exact `Amount` of `asset` from a Decimal, int or decimal string.

    Args:
        value: Decimal, int or decimal text in major units (e.g. "0.015", or "1,000.5" with
            thousands separators as the console displays amounts).
        asset: asset code from the registry.
        registry: the asset registry to resolve `asset` against.
    Returns: the Amount, signed as given.
    Raises: FloatAmountError, NonFiniteAmountError, InvalidAmountError, ExponentNotationError,
        TooManyDigitsError, ExcessPrecisionError, UnknownAssetError, AmountOverflowError.
    """
    spec = registry.get(asset)
    return _checked(spec.code, _minor_units(to_decimal(value), spec, value), spec.scale)


def from_minor(minor: int, asset: str, registry: AssetRegistry = DEFAULT_REGISTRY) -> Amount:
    """An Amount from integer minor units (as stored). Raises: UnknownAssetError, AmountOverflowError."""
    spec = registry.get(asset)
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise InvalidAmountError(f"minor units must be an integer, got {type(minor).__name__}", value=repr(minor))
    return _checked(spec.code, minor, spec.scale)


def positive_amount(value: object, asset: str, registry: AssetRegistry = DEFAULT_REGISTRY) -> Amount:
    """Like `amount()` but refuses zero and negatives. Raises: NonPositiveAmountError and amount()'s errors."""
    result = value if isinstance(value, Amount) else amount(value, asset, registry)
    if isinstance(value, Amount) and value.asset != asset:
        raise AssetMismatchError(f"expected {asset}, got {value.asset}", left=asset, right=value.asset)
    if result.minor <= 0:
        raise NonPositiveAmountError(f"amount must be above zero, got {result}", value=result.text(), asset=asset)
    return result
