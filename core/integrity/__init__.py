"""The integrity engine's public face (SPEC §8): platform and per-user checks, stored run
records, history and trend, approval-gated projection repairs, and the hook the legacy
bridge plugs its per-user check into (the `python -m core integrity` command lives in
core.cli.integrity).

The rest of `core` and the pages import only these names; `engine` (running and recording
checks), `checks` (the individual checks) and `repairs` (the maker-checker repair) are
this package's own business.
"""

from core.integrity.checks import IntegrityFinding
from core.integrity.engine import (
    FINDINGS_STORED_MAX,
    HISTORY_PAGE_SIZE_MAX,
    check_platform,
    check_user,
    get_run,
    history,
    prune_history,
    register_legacy_user_check,
    trend,
)
from core.integrity.repairs import execute_projection_repair, request_projection_repair

__all__ = [
    "FINDINGS_STORED_MAX",
    "HISTORY_PAGE_SIZE_MAX",
    "IntegrityFinding",
    "check_platform",
    "check_user",
    "execute_projection_repair",
    "get_run",
    "history",
    "prune_history",
    "register_legacy_user_check",
    "request_projection_repair",
    "trend",
]
