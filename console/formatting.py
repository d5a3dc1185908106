"""One formatter per kind of value the console shows: amounts (exact, with thousands
separators, never via float), times (UTC), accounts (owner's name and balance), and core's
refusals in plain words.
"""

from __future__ import annotations

from datetime import datetime, timezone


from core.approvals import view as approvals_view
from core.base.errors import (
    AmountOverflowError,
    ExcessPrecisionError,
    FloatAmountError,
    LedgerError,
    NonFiniteAmountError,
    StoreError,
)
from core.ledger import from_minor
from console import loading


def money(minor: int | None, asset: str) -> str:
    """Exact text of a minor-unit amount with thousands separators (never via float)."""
    if minor is None:
        return "—"
    return approvals_view.group_thousands(from_minor(int(minor), asset, loading.get_platform().registry).text())


def amount(minor: int | None, asset: str | None) -> str:
    """Exact amount with its asset: "1,234.56789012 BTC" ("" when there is none)."""
    if minor is None or not asset:
        return ""
    return approvals_view.amount_text(minor, asset, loading.get_platform().registry)


def when(value: object) -> str:
    """A stored time (naive UTC) as "2026-11-02 00:10:16 UTC"; "—" when missing."""
    if not isinstance(value, datetime):
        return "—" if value in (None, "") else str(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def chart_number(minor: int, asset: str) -> float:
    """A plotting coordinate only: charts need numbers, tables show exact text via money()."""
    return float(from_minor(int(minor), asset, loading.get_platform().registry).to_decimal())


# Core refusals whose own wording is for engineers: the console says it in plain words.
PLAIN_MESSAGES: dict[type, str] = {
    AmountOverflowError: "That amount is too large for the ledger to record. Check the number and the asset.",
    FloatAmountError: "Give the amount as plain decimal text, e.g. 0.015.",
    NonFiniteAmountError: "That is not a number. Give the amount as decimal text, e.g. 0.015.",
    StoreError: "The database did not answer. Nothing was changed; try again in a moment.",
}


JARGON = {"minor units": "smallest units", "int64": "the ledger's number range", "projection": "stored balance"}


def plain(error: LedgerError) -> str:
    """What to tell an operator about a core refusal: its own message when it is already
    plain, a rewording when it is engineering talk (named error types and a few words)."""
    for error_type, text in PLAIN_MESSAGES.items():
        if isinstance(error, error_type):
            return text
    if isinstance(error, ExcessPrecisionError) and error.details.get("asset"):
        asset = error.details["asset"]
        return f"{asset} amounts have at most {loading.get_platform().registry.get(asset).scale} decimals: {error.message}."
    message = error.message
    for word, replacement in JARGON.items():
        message = message.replace(word, replacement)
    return message[0].upper() + message[1:] if message else "The request was refused."


def readable_account(account_id: str | None, names: dict[str, str]) -> str:
    """"Ada Walker (u0044) · available BTC" for a user account, "fees BTC" for the platform's."""
    if not account_id:
        return ""
    text = approvals_view.account_text(account_id)
    owner = text.split(" · ", 1)[0]
    return f"{names[owner]} ({owner}) · {text.split(' · ', 1)[1]}" if owner in names and " · " in text else text
