"""Canonical JSON and SHA-256, so the same data hashes the same on every store."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.base.errors import ensure


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not canonical JSON")


def canonical(value: Any) -> bytes:
    """Sorted-key, compact JSON. Floats are a bug here: money is never a float."""
    ensure(not _contains_float(value), "a float reached a hash: money is never a float")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False).encode()


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_float(item) for item in value)
    return False


def digest(value: Any, prefix: str = "") -> str:
    """Hex SHA-256 of `prefix` followed by the canonical JSON of `value`."""
    return hashlib.sha256(prefix.encode() + canonical(value)).hexdigest()
