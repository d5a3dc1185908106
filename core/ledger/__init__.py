"""The ledger engine's public face: exact money, accounts, entries, the store, posting,
holds, reads, recovery, the audit chain and the self-check.

The rest of `core` imports only the names below (`from core.ledger import ...`) — and the
simulator through its own face, `core.ledger.simulation`; the modules behind them are the
engine's own business.
"""

from core.ledger import accounts
from core.ledger.accounts import OWNER_ID_PATTERN, Account, AccountKind, check_asset_code, check_owner_id, parse_account_id
from core.ledger.money import (  # accounts and money first: core.platform.boundary, which the engine calls, imports them
    DEFAULT_REGISTRY,
    INT64_MAX,
    INT64_MIN,
    Amount,
    Asset,
    AssetRegistry,
    amount,
    from_minor,
    positive_amount,
    to_decimal,
)
from core.ledger.anchor import AnchorCheck, current_heads, heads_root, take_anchor, verify_anchor
from core.ledger.audit import GENESIS_HASH, AuditLog, VerifyResult, event_hash
from core.ledger.engine import RECOVERY_STALE_AFTER, Ledger
from core.ledger.reads import PAGE_SIZE_MAX, EntryFilter, Page, RecoveryReport, UserBalance
from core.ledger.entries import TERMINAL_STATES, Entry, EntryRequest, check_balanced, entry_hash, entry_id_floor, make_request
from core.ledger.hashing import canonical, digest
from core.ledger.selfcheck import STUCK_AFTER, Finding, SelfCheckReport, scan, self_check
from core.ledger.cut import JournalRead, ProjectionCut, close_journal, entries_by_claims, read_projections
from core.ledger.witness import WITNESS_ENV, Witness
from core.ledger.store import INDEXES, Collection, DuplicateKeyStoreError, OperationRecord, Store, uncovered
from core.ledger.stripes import DEFAULT_STRIPING, STRIPABLE_KINDS, Striping, family_query, is_striped, logical_id, part_id, striping
from core.ledger.entries import claim_of

__all__ = [
    "DEFAULT_REGISTRY", "GENESIS_HASH", "OWNER_ID_PATTERN", "RECOVERY_STALE_AFTER", "TERMINAL_STATES", "INDEXES", "INT64_MAX", "PAGE_SIZE_MAX", "STUCK_AFTER",
    "WITNESS_ENV", "AnchorCheck", "Witness", "current_heads", "heads_root", "take_anchor", "verify_anchor",
    "Account", "AccountKind", "Amount", "Asset", "AssetRegistry", "AuditLog", "Collection",
    "DuplicateKeyStoreError", "Entry", "EntryFilter", "EntryRequest", "Finding", "Ledger",
    "OperationRecord", "Page", "RecoveryReport", "SelfCheckReport", "Store", "UserBalance",
    "VerifyResult", "accounts", "amount", "canonical", "check_balanced", "check_owner_id",
    "digest", "entry_hash", "event_hash", "from_minor", "make_request", "parse_account_id",
    "positive_amount", "scan", "INT64_MIN", "check_asset_code", "to_decimal", "self_check", "uncovered",
    "entry_id_floor", "JournalRead", "ProjectionCut", "claim_of", "close_journal", "entries_by_claims", "family_query",
    "read_projections", "DEFAULT_STRIPING", "STRIPABLE_KINDS", "Striping", "is_striped", "logical_id", "part_id", "striping",
]
