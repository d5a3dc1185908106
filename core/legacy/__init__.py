"""The legacy bridge (SPEC §10): read the old platform's four balance collections, reconcile
them with the ledger, import opening balances, and rebuild them from the ledger.

Public face (the rest of the product imports only these names):
- opening the legacy database: `open_legacy_store`, `open_legacy_store_if_configured`;
- `reconcile_platform`, `user_legacy_findings` (read-only; `core.legacy.reconcile.reconcile`
  compares any ledger store with any legacy store — not re-exported, so the name
  `core.legacy.reconcile` always means the module);
- `import_balances`, `plan_rebuild`, `request_rebuild` (the writing side);
- `SPECS`, `AUTHORITATIVE_DEFAULT` (the collections and the default source).
The modules behind them: `values` (one legacy value made exact or refused), `bridge` (the
type-safe full scan; documents → records, held and excluded documents), `reconcile`,
`opening` (import), `rebuild` (the approval-gated rewrite and its executor), `cli`
(`python -m core legacy ...`), `fixture` (a dirty legacy database generated in code).
"""

from core.legacy.bridge import (
    AUTHORITATIVE_DEFAULT,
    SPECS,
    open_legacy_store,
    open_legacy_store_if_configured,
)
from core.legacy.reconcile import reconcile_platform, user_legacy_findings
from core.legacy.opening import import_balances
from core.legacy.rebuild import plan_rebuild, request_rebuild

__all__ = [
    "AUTHORITATIVE_DEFAULT", "SPECS", "import_balances", "open_legacy_store",
    "open_legacy_store_if_configured", "plan_rebuild", "reconcile_platform",
    "request_rebuild", "user_legacy_findings",
]
