"""Named refusals of the ledger.

Expected refusals are exceptions derived from `LedgerError`, grouped in families whose
names state the broken rule and which carry the offending values. Each class belongs to
one family: a malformed caller value of any kind is an `InvalidArgumentError` (ids and
keys, numbers and texts, flow inputs, filters, entry requests), so one except clause
catches what the boundary refuses. (The decision conflicts join two parents of the one
`InvalidStateError` family; `MalformedDatabaseUriError` is still both a configuration
and a store error, which the console and CLI rely on.) States that must be
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


# --- malformed caller values (core.ledger.arguments, core.platform.boundary) ----------
class InvalidArgumentError(LedgerError):
    """A caller value has the wrong type or shape; refused before the store is touched.
    The family of the boundary's refusals: catch it to catch any malformed argument."""


class InvalidIdentifierError(InvalidArgumentError):
    """An id or key is not plain text of its expected form (operators, control characters,
    a trailing newline, the wrong type)."""


class MalformedValueError(InvalidArgumentError):
    """A number, date, flag, text or document argument has the wrong type or shape (a bool
    or a float where an int belongs, a `$` field name, a control character, too long...)."""


class InvalidFlowInputError(InvalidArgumentError):
    """A flow argument is malformed (same asset twice, empty destination, buyer = seller...)."""


class InvalidFilterError(InvalidArgumentError):
    """A query filter or page request is malformed (non-text value, bad page, bad window)."""


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


class EmptyAmountError(InvalidAmountError):
    """No amount was given: the text is empty (or only padding)."""


class UnknownAssetError(LedgerError):
    """The asset code is not in the registry."""


class AssetMismatchError(LedgerError):
    """Two amounts of different assets were combined."""


# --- accounts and entries ------------------------------------------------------------
class InvalidAccountError(LedgerError):
    """The account is malformed (unknown kind, bad owner id)."""


class InvalidEntryError(InvalidArgumentError):
    """The entry request (or a ledger read's page or filter) is malformed (no postings, too
    many, bad fields)."""


class UnbalancedEntryError(InvalidEntryError):
    """The postings of an entry do not sum to zero for some asset."""


class IdempotencyConflictError(LedgerError):
    """The idempotency key was used before with a different request."""


class InsufficientFundsError(LedgerError):
    """A debit would take a constrained account below zero; the entry was rejected."""


class SweepExceedsFeeWalletError(InsufficientFundsError):
    """A fee sweep asks for more than the fee wallet holds: refused when requested, since
    its execution would be refused anyway."""


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


class ConsoleUserError(LedgerError):
    """A console-account command was refused (unknown user, bad role, weak password...)."""


# --- approvals (core.approvals) ------------------------------------------------------
class ApprovalNotFoundError(LedgerError):
    """No approval request with that id."""


class UnknownApprovalKindError(LedgerError):
    """No executor is registered for that approval kind."""


class ApprovalStateError(InvalidStateError):
    """The approval request is not in a state that allows the action."""


class SelfApprovalError(ApprovalStateError):
    """The requester tried to approve their own request (maker-checker)."""


class DuplicateApprovalError(ApprovalStateError):
    """The same approver tried to approve a request twice."""


class ApprovalExpiredError(ApprovalStateError):
    """The request expired before it was approved."""


class ApprovalRejectedError(ApprovalStateError):
    """The request was already rejected."""


class ApprovalAlreadyExecutedError(ApprovalStateError):
    """The request was already approved and executed."""


class ReasonRequiredError(LedgerError):
    """The action needs a non-empty reason (reject, adjustment, dispute)."""


# --- flows (core.flows) --------------------------------------------------------------
class FlowNotFoundError(LedgerError):
    """No flow document (withdrawal, deposit, quote, trade) with that id."""


class FlowStateError(InvalidStateError):
    """The flow document is not in a state that allows the action."""


class NotFlowPartyError(LedgerError):
    """The user is not a party of the flow (a foreign quote or trade)."""


class QuoteExpiredError(FlowStateError):
    """The quote's time to live has passed; its reservation is released."""


class SlippageExceededError(LedgerError):
    """The quoted output is below the caller's minimum, or the market moved too far."""


class InsufficientLiquidityError(LedgerError):
    """The liquidity float cannot cover the quote's output."""


class TradeClosedError(FlowStateError):
    """The P2P trade is already released, cancelled or resolved."""


class AmountTooSmallError(InvalidAmountError):
    """After fees and rounding nothing would be left to pay out."""


class PriceUnavailableError(LedgerError):
    """The price source has no price for that pair."""


class NoReferrerError(LedgerError):
    """The fee payer has no referrer, or the source entry carries no fee."""


# --- audit, integrity and the legacy bridge (core.audit, core.integrity, core.legacy) ---
class IntegrityRunNotFoundError(LedgerError):
    """No stored integrity run with that id."""


class RepairNotNeededError(InvalidStateError):
    """The projection already equals the journal: there is nothing to repair."""


class LegacyConfigurationError(ConfigurationError):
    """LEGACY_MONGODB_URI / LEGACY_DB are missing, or no legacy store was given."""


class LegacyPlanChangedError(InvalidStateError):
    """The legacy rebuild plan changed since it was approved: dry-run and request again."""


# --- posting protocol v2 (core.ledger.engine) -------------------------------------------
class BalanceOverflowError(InvalidAmountError):
    """A posting would take a balance outside a signed 64-bit integer; nothing was written."""


class ContentionError(StoreError):
    """Other writers kept claiming the same accounts' versions; retrying later is safe."""


# --- the validation boundary (core.platform.boundary, issue 11) ------------------------------
class InvalidPrincipalError(PermissionDeniedError):
    """The acting principal is not a Principal, or a person uses a reserved internal name:
    nobody may act without a valid principal, so it is a permission refusal."""


class ReservedNameError(ConsoleUserError):
    """A console account may not take a name the core reserves for its own actors."""


class ExponentNotationError(InvalidAmountError):
    """Amount text in exponent notation ("1e3"): people type amounts as plain decimals."""


class TooManyDigitsError(InvalidAmountError):
    """The amount has more digits than any valid amount can have."""


class DatabaseUnreachableError(StoreError):
    """A database (`which`: "ledger" or "legacy") could not be reached or its URI is malformed."""


class MalformedDatabaseUriError(ConfigurationError, StoreError):
    """MONGODB_URI / LEGACY_MONGODB_URI (`which`: "ledger" or "legacy") is not a valid MongoDB URI."""


# --- proof of liabilities (core.liabilities) --------------------------------------------
class SnapshotContendedError(LedgerError):
    """User balances kept moving while a liabilities snapshot read them: retry at a quieter moment."""


class SnapshotNotFoundError(LedgerError):
    """No published liabilities snapshot with that id (or none at all yet)."""


class NegativeLiabilityError(LedgerError):
    """A user balance is below zero, so it cannot be a leaf of a Merkle-sum tree."""


class ProofNotFoundError(LedgerError):
    """The user has no leaf in that snapshot (no liability in any asset when it was taken)."""


class InvalidReserveError(LedgerError):
    """A declared reserve is malformed (wallet address, evidence or time)."""


class SecretAlreadyRevealedError(LedgerError):
    """A user's proof-of-liabilities verification secret is shown once; it was shown already
    (`revealed_by`, `generation`): an admin re-issues a new one instead."""


# --- console reads (core.integrity per-user checks, core.approvals.view) ---------------
class UnknownUserError(LedgerError):
    """No such user: not in the directory and nothing in the ledger (a typo, not a clean user)."""


# --- decisions on flows and approvals (core.platform.transitions) ---------------------------------
class DecisionConflictError(InvalidStateError):
    """Another caller's decision won the compare-and-set on this flow or approval; the
    loser's call changed nothing. `details["winner"]` names the winning decision (what,
    by whom, when), so the loser never mistakes someone else's outcome for its own."""


class FlowDecisionConflictError(FlowStateError, DecisionConflictError):
    """A flow (trade, quote, withdrawal) was decided differently by a concurrent caller."""


class TradeDecisionConflictError(TradeClosedError, FlowDecisionConflictError):
    """A P2P trade was closed (released, cancelled or resolved) by a concurrent decision."""


class ApprovalDecisionConflictError(ApprovalStateError, DecisionConflictError):
    """An approval request was decided (approved, rejected, expired) by a concurrent caller."""


class RepairAlreadyRequestedError(InvalidStateError):
    """Someone else already asked for this very repair and it is waiting for approval:
    approve or reject theirs instead of opening a second one."""


class SnapshotTamperedError(LedgerError):
    """A stored liabilities snapshot no longer matches the root it published."""


# --- rollups (core.rollups) ---
class RollupChainError(LedgerError):
    """An account's versions have a hole the rollup fold cannot cross (an entry is missing
    from the journal): the integrity check names the entry; nothing is folded past it."""


class RollupContendedError(LedgerError):
    """Rollup passes kept completing while a report read them: retry the read."""


class CutNotClosedError(LedgerError):
    """A reader could not close a consistent cut of the journal (core.ledger.cut):
    `reason` "gap" (a version below a claimed one is claimed by no entry — a broken chain,
    which the integrity check names), "flagged" (too many entries await recovery: run
    `python -m core recover`) or "rounds" (the bounded closing rounds ran out)."""


class QuoteDecisionConflictError(QuoteExpiredError, FlowDecisionConflictError):
    """A quote's execution lost to its expiry (or the reverse) decided by a concurrent caller."""


class BrokenInvariantError(LedgerError):
    """A money invariant failed at run time — a bug, never user input. Raised before
    anything is written, and never stripped the way `assert` is under `python -O`."""


def ensure(condition: object, message: str, **details: object) -> None:
    """Check a money invariant explicitly. Raises: BrokenInvariantError."""
    if not condition:
        raise BrokenInvariantError(message, **details)


class MalformedDocumentError(LedgerError):
    """A stored flow or approval document does not have the shape its model names (a field
    missing, of the wrong type, or unknown): a bug or a changed store, never user input.
    Carries the kind of document, its id and the broken fields (core.platform.documents)."""
