"""What the engine's reads return: a user's balance per asset, a page of entries, a
recovery's report, and the filter a caller pages the journal with (plain values only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.base.errors import InvalidEntryError
from core.ledger.money import Amount

PAGE_SIZE_MAX = 200


@dataclass(frozen=True)
class UserBalance:
    asset: str
    available: Amount
    locked: Amount

    @property
    def total(self) -> Amount:
        return self.available + self.locked


@dataclass(frozen=True)
class Page:
    items: list
    page: int
    page_size: int
    has_more: bool


@dataclass
class RecoveryReport:
    """What one `recover()` run did: entries it projected (or found projected and
    unflagged), and entries it could not project (isolated, with the reason)."""

    entries_projected: list[str] = field(default_factory=list)
    poisoned: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"entries_projected": self.entries_projected, "poisoned": self.poisoned}


@dataclass(frozen=True)
class EntryFilter:
    account: str | None = None
    user: str | None = None
    type: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    hold_id: str | None = None
    flow_ref: str | None = None

    def query(self) -> dict:
        """A filter of plain values only: no caller text can become an operator."""
        query: dict = {}
        for field_name, store_field in (("account", "accounts"), ("user", "user_ids"), ("type", "type"),
                                        ("state", "state"), ("hold_id", "hold_id"), ("flow_ref", "flow_ref")):
            value = getattr(self, field_name)
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidEntryError(f"filter {field_name} must be text", field=field_name)
                query[store_field] = value
        window = {}
        if self.since is not None:
            window["$gte"] = self.since
        if self.until is not None:
            window["$lt"] = self.until
        if window:
            query["created_at"] = window
        return query
