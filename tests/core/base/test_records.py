"""core.base.records: a record's JSON keys in the order it names them, not its field order."""

from dataclasses import dataclass

from core.base.records import record_dict
from core.flowtests.sandbox import StepRecord
from core.legacy.bridge import Dirt


@dataclass
class Sample:
    first: int
    second: str

    @property
    def total(self) -> int:
        return self.first * 2


def test_keys_in_the_named_order_with_properties_and_given_values():
    sample = Sample(1, "b")
    assert list(record_dict(sample, ("total", "second", "first"))) == ["total", "second", "first"]
    assert record_dict(sample, ("total", "renamed"), renamed=sample.second) == {"total": 2, "renamed": "b"}
    assert record_dict(sample, ("first",), first=None) == {"first": None}  # a given None wins over the attribute


def test_step_and_dirt_keep_their_published_key_order():
    step = StepRecord("s", True, "d", {}, {}, [], {}, {}, entries_written=2, duration_ms=3)
    assert list(step.as_dict()) == ["name", "ok", "detail", "balances_before", "balances_after", "entries",
                                    "entries_written", "fees_booked", "self_check", "duration_ms"]
    dirt = Dirt("k", "info", True, "wallets", "doc", None, 5, "msg", field="f")
    assert dirt.as_dict() == {"kind": "k", "severity": "info", "fixable": True, "collection": "wallets",
                              "document": "doc", "owner": None, "currency": "5", "field": "f", "message": "msg"}
