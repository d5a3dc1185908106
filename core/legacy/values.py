"""The legacy bridge's boundary: one legacy value at a time, made exact or refused.

The old platform stored money as BSON doubles (with binary noise), int32 zeros, text and
sometimes Decimal128; owners and currencies as whatever a writer had to hand. Every value
is turned into an exact `Decimal` here (`Decimal(repr(x))` for a double, so its shortest
round-trip text, noise included, stays visible) or refused with a reason: nothing past
this module ever sees a float or guesses.

Minor units are named two ways, on purpose:
- `to_minor` rounds half-even, only to *name* a value in a report (drift of 1,000 minor
  units is drift whatever its last digit);
- `exact_minor` is what import books: an exact value at the asset's scale, or a reason it
  is refused. Text, ints and Decimal128 must fit the scale exactly (9-decimal BTC text is
  refused, never rounded). A double is accepted as the minor amount it is *binary noise*
  around — within `NOISE_ULPS_MAX` units in the last place of the double, which is what
  float arithmetic leaves (0.1 + 0.2, nextafter) — and refused when it sits farther from
  every minor amount (a real ninth decimal) or when the double is too coarse at that
  magnitude to name one minor unit at all.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from core.base.errors import UnknownAssetError
from core.ledger import AssetRegistry

NETWORK_SUFFIXES = ("TRC20", "ERC20", "BEP20", "BEP2", "SPL", "POLYGON", "ARBITRUM", "OMNI", "BSC")
NOISE_ULPS_MAX = 16  # a double within this many ULPs of a minor amount is that amount plus float noise
RAW_TEXT_CHARS_MAX = 120  # a raw value shown in a report is cut here (an embedded document may be large)


def legacy_decimal(value: object) -> Decimal | None:
    """An exact Decimal from a legacy money value, or None when it is not a finite number.

    A double becomes `Decimal(repr(x))`; ints, decimal text and Decimal128 are exact.
    Booleans, None, embedded documents, lists, bytes, "1,5", "", NaN and ±Infinity → None.
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            number = Decimal(value)
        elif isinstance(value, str):
            number = Decimal(value.strip())
        elif callable(getattr(value, "to_decimal", None)):  # BSON Decimal128
            number = value.to_decimal()
        else:
            return None
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def non_finite(value: object) -> bool:
    """True for a number that is not finite: a double or Decimal128 NaN or ±Infinity (what a
    failed float computation stores). It states no amount at all, so the bridge reads it
    like an absent field (and reports it); text such as "1,5" is not one of these — a human
    may read a meaning into it, so it is held instead."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Decimal):
        return not value.is_finite()
    if type(value).__name__ == "Decimal128":
        return not value.to_decimal().is_finite()
    return False


def scaled(number: Decimal, scale: int) -> Decimal:
    """The value in minor units, exactly (may carry a sub-minor residual)."""
    return number.scaleb(scale)


def to_minor(number: Decimal, scale: int) -> int:
    """Nearest whole minor unit (half-even): used only to name a value, never to book one."""
    return int(scaled(number, scale).to_integral_value(rounding=ROUND_HALF_EVEN))


def exact_minor(raw: object, number: Decimal, scale: int) -> int | str:
    """The minor amount `raw` (whose exact reading is `number`) holds, or why it cannot be
    booked without rounding (see the module docstring).

    Returns: an int of minor units, or a reason (str) naming the value and the scale.
    """
    residual_text = f"{number} has more decimals than the asset's {scale}: refused, never rounded"
    if not isinstance(raw, float):
        minor = scaled(number, scale)
        return int(minor) if minor == minor.to_integral_value() else residual_text
    unit = Decimal(1).scaleb(-scale)
    tolerance = NOISE_ULPS_MAX * Decimal(math.ulp(raw))  # exact: a power of two
    if tolerance * 2 >= unit:
        return f"{number} is too large for a double to name one minor unit at scale {scale}: refused, never rounded"
    minor = to_minor(number, scale)
    if abs(Decimal(raw) - Decimal(minor) * unit) > tolerance:  # Decimal(raw): the double's exact binary value
        return residual_text
    return minor


def legacy_time(value: object) -> datetime | None:
    """A naive UTC datetime from a BSON date or an ISO string (with or without offset);
    None when it is not one, or when its offset moves it outside years 1-9999."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        return None


def iso(moment: datetime | None) -> str | None:
    """ISO text to the second, years zero-padded (`strftime("%Y")` writes year 1 as "1",
    which `datetime.fromisoformat` then refuses)."""
    return None if moment is None else moment.replace(microsecond=0).isoformat()


def normalise_currency(raw: object, registry: AssetRegistry) -> tuple[str | None, bool]:
    """(asset code, had a network suffix); (None, False) when the asset is unknown or the
    stored currency is not text at all."""
    if not isinstance(raw, str):
        return None, False
    code = raw.strip().upper()
    for candidate, suffixed in [(code, False)] + [
        (code[: -len(s)], True) for s in NETWORK_SUFFIXES if code.endswith(s) and len(code) > len(s)
    ]:
        try:
            return registry.get(candidate).code, suffixed
        except UnknownAssetError:
            continue
    return None, False


def raw_text(value: object) -> str | None:
    """A legacy value as a human reads it in a report: `repr` (so "1,5" shows its quotes,
    a double its full digits, NaN as nan), cut at `RAW_TEXT_CHARS_MAX`; None when absent."""
    if value is None:
        return None
    text = repr(value)
    return text if len(text) <= RAW_TEXT_CHARS_MAX else text[: RAW_TEXT_CHARS_MAX - 1] + "…"


def document_label(raw_id: object) -> str:
    """A document's `_id` as unambiguous text: a string id as it is, an ObjectId as
    `ObjectId('…')`, anything else as `<type>(<repr>)` — so the string "5" and the int 5
    never share a label (plans and reports name documents by it)."""
    if isinstance(raw_id, str):
        return raw_id
    if type(raw_id).__name__ == "ObjectId":
        return repr(raw_id)
    return f"{type(raw_id).__name__}({raw_text(raw_id)})"
