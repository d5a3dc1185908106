"""A report record's JSON shape: its keys in a fixed order, read from the record.

CLI output, stored integrity runs and flow-test evidence are read by people and by tests
in the order their keys are written, which is rarely the order the dataclass declares its
fields in (and some keys are properties or renamed). So each record names its keys once,
in the order readers see them, and this one function builds the dict.
"""

from __future__ import annotations

from collections.abc import Iterable


def record_dict(record: object, keys: Iterable[str], **values: object) -> dict:
    """`{key: record.key}` for each of `keys`, in their order. `values` gives a key whose
    value is not the attribute of that name as it stands (renamed, converted, computed)."""
    return {key: values[key] if key in values else getattr(record, key) for key in keys}
