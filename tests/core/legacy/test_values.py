"""core.legacy.values: legacy values made exact or refused, never rounded into the ledger."""

from __future__ import annotations

import math
from decimal import Decimal

from bson import Decimal128, ObjectId

from core.legacy.values import document_label, exact_minor, iso, legacy_decimal, legacy_time, raw_text


def _exact(raw, scale):
    return exact_minor(raw, legacy_decimal(raw), scale)


def test_exact_minor_books_exact_text_ints_and_decimal128():
    assert _exact("0.12345678", 8) == 12_345_678
    assert _exact(" 2.50 ", 2) == 250
    assert _exact(0, 8) == 0 and _exact(7, 2) == 700
    assert _exact(Decimal128("1.25"), 2) == 125


def test_exact_minor_refuses_excess_precision_never_rounds():
    for raw in ("0.123456789", Decimal128("0.123456789"), 0.123456789):
        reason = _exact(raw, 8)
        assert isinstance(reason, str) and "refused, never rounded" in reason and "0.123456789" in reason
    assert isinstance(_exact("1.005", 2), str)  # half a penny is not noise in text


def test_exact_minor_reads_float_noise_as_the_amount_it_surrounds():
    assert _exact(0.0015300000000000001, 8) == 153_000  # the production dump's noise
    assert _exact(math.nextafter(0.00153, 1.0), 8) == 153_000
    assert _exact(0.1 + 0.2, 2) == 30
    assert _exact(250000.0, 6) == 250_000_000_000
    assert _exact(-0.5, 8) == -50_000_000  # negative is exact here; import refuses it by rule


def test_exact_minor_refuses_a_double_too_coarse_for_the_scale():
    huge = 12345678901234567.89  # a double cannot name a penny at this size
    reason = _exact(huge, 2)
    assert isinstance(reason, str) and "too large for a double" in reason


def test_legacy_decimal_refuses_every_unreadable_value():
    for bad in ("1,5", "", "  ", "abc", float("nan"), float("inf"), float("-inf"), {"$gt": 1}, [1], True, None, b"1",
                Decimal128("NaN"), Decimal128("Infinity")):
        assert legacy_decimal(bad) is None, bad


def test_legacy_time_at_the_ends_of_time_never_raises():
    assert legacy_time("0001-01-01T00:00:00+01:00") is None and legacy_time("9999-12-31T23:59:59-01:00") is None
    year_one = legacy_time("0001-01-01 00:00:00")
    assert iso(year_one) == "0001-01-01T00:00:00" and legacy_time(iso(year_one)) == year_one


def test_document_labels_are_unambiguous_and_raw_text_is_bounded():
    oid = ObjectId("65ab00000000000000000001")
    labels = {document_label("5"), document_label(5), document_label(5.0), document_label(oid),
              document_label(str(oid)), document_label({"k": 1})}
    assert len(labels) == 6
    assert document_label(oid) == "ObjectId('65ab00000000000000000001')"
    assert raw_text("1,5") == "'1,5'" and raw_text(float("inf")) == "inf" and raw_text(None) is None
    assert len(raw_text({"x": "y" * 1_000})) <= 120
    assert Decimal(repr(0.1)) == legacy_decimal(0.1)
