"""How the flow-test evidence words a refusal: as an operator reads it on the Flow tests page.

The flows' own refusals are written for engineers ("user.available:u3:BTC holds 41000000
minor units, the quote needs 70000000", "expired at 2026-01-01 12:00:30"). The runner's
report shows amounts as decimals with their asset and times with their zone (issue 22);
the numbers come from the error's own `details`, never from parsing prose. Pure.
"""

from __future__ import annotations

import re

from core.base.errors import LedgerError
from core.ledger import AssetRegistry, from_minor, parse_account_id

MINOR_SUFFIX = "_minor"
# a wall time without a zone ("2026-01-01 12:00:30"): the flows' clock is UTC
TIME_WITHOUT_ZONE = re.compile(r"\b(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?!\d)(?!\s*(?:UTC|Z\b|[+-]\d{2}:?\d{2}))")


def asset_of(details: dict, registry: AssetRegistry) -> str | None:
    """The asset a refusal's amounts are in: its `asset`, else the asset of its `account`."""
    asset = details.get("asset")
    if isinstance(asset, str) and asset in registry.codes():
        return asset
    account = details.get("account")
    if isinstance(account, str):
        try:
            asset = parse_account_id(account).asset
        except LedgerError:
            return None
        return asset if asset in registry.codes() else None
    return None


def readable_message(error: LedgerError, registry: AssetRegistry) -> str:
    """`error.message` with each of its own minor-unit amounts (the integer `*_minor` values
    of `details`) written as decimals with the asset, "minor units" dropped, the account id
    shortened to its owner, and times given their zone (UTC)."""
    message = error.message
    asset = asset_of(error.details, registry)
    if asset is not None:
        for key, value in error.details.items():
            if not (key.endswith(MINOR_SUFFIX) and isinstance(value, int) and not isinstance(value, bool)):
                continue
            try:
                text = f"{from_minor(value, asset, registry).text()} {asset}"
            except LedgerError:
                continue  # beyond the ledger's range: the number stays
            message = re.sub(rf"(?<![\w.]){value}(?: minor units)?(?![\w.])", text, message)
        account = error.details.get("account")
        if isinstance(account, str) and account in message:
            owner = parse_account_id(account)
            message = message.replace(account, f"{owner.owner}'s {owner.kind.value.split('.')[-1]} {owner.asset}")
    return TIME_WITHOUT_ZONE.sub(r"\1 UTC", message)


def readable_refusal(error: BaseException, registry: AssetRegistry) -> str:
    """"<ErrorName>: <readable message>" for a core refusal; other errors as they are."""
    if isinstance(error, LedgerError):
        return f"{type(error).__name__}: {readable_message(error, registry)}"
    return f"{type(error).__name__}: {error}"
