"""Named refusals of the ledger.

Expected refusals are exceptions derived from `LedgerError`, grouped in families whose
names state the broken rule and which carry the offending values. States that must be
impossible are guarded with `assert` instead (a programmer's bug, not user input).
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every refusal the core raises on purpose.

    `details` carries the offending values so callers (pages, CLI, tests) can show them
    without parsing the message.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def code(self) -> str:
        """A stable snake_case name of the rule, used in JSON output."""
        name = type(self).__name__.removesuffix("Error")
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


# --- money ---------------------------------------------------------------------------
class InvalidAmountError(LedgerError):
    """The value cannot be an exact amount (wrong type or malformed text)."""


class FloatAmountError(InvalidAmountError):
    """A float was given where money is expected; floats are never exact."""


class NonFiniteAmountError(InvalidAmountError):
    """NaN or Infinity was given as an amount."""


class ExcessPrecisionError(InvalidAmountError):
    """The amount has more decimals than its asset's scale (never silently rounded)."""


class AmountOverflowError(InvalidAmountError):
    """The amount in minor units does not fit a signed 64-bit integer."""


class NonPositiveAmountError(InvalidAmountError):
    """The operation needs an amount above zero."""


class UnknownAssetError(LedgerError):
    """The asset code is not in the registry."""


class AssetMismatchError(LedgerError):
    """Two amounts of different assets were combined."""


# --- accounts and entries ------------------------------------------------------------
class InvalidAccountError(LedgerError):
    """The account is malformed (unknown kind, bad owner id)."""


class InvalidEntryError(LedgerError):
    """The entry request is malformed (no postings, too many, bad fields)."""


class UnbalancedEntryError(InvalidEntryError):
    """The postings of an entry do not sum to zero for some asset."""


class IdempotencyConflictError(LedgerError):
    """The idempotency key was used before with a different request."""


class InsufficientFundsError(LedgerError):
    """A debit would take a constrained account below zero; the entry was rejected."""


class EntryNotFoundError(LedgerError):
    """No entry with that id or key."""


class HoldNotFoundError(LedgerError):
    """No open hold with that id."""


class HoldClosedError(LedgerError):
    """The hold was already released or consumed."""


# --- access and state ----------------------------------------------------------------
class PermissionDeniedError(LedgerError):
    """The acting principal's role may not run this command."""


class InvalidStateError(LedgerError):
    """The command is not allowed in the object's current state."""


# --- store ---------------------------------------------------------------------------
class StoreError(LedgerError):
    """The database failed or could not be reached (translated from pymongo)."""


class ConfigurationError(LedgerError):
    """The configuration is missing or unsafe (e.g. demo credentials on a real store)."""
