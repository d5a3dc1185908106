"""Daily rollups of the journal (issue 15): per account and UTC day the movements in and
out by entry type, the closing balance and version; per account the head folded; per
(kind, asset) the total. The console's reports read these plus at most the entries not
folded yet, never the raw entries of a window.

`fold` keeps them exact under any number of concurrent runners and crashes (passes
serialised by compare-and-set, every derived write guarded by its pass number); `read`
serves the reports and recomputes them from scratch; `cli` is `python -m core rollups`.
"""

from core.rollups.cli import cmd_rollups, register_commands
from core.rollups.fold import (
    ACTIVE,
    DAY_FIELDS,
    HEADS,
    IN_BATCH_MAX,
    PASS_ACCOUNTS_MAX,
    PASS_ENTRIES_MAX,
    PASSES,
    PASSES_PER_RUN_MAX,
    ROLLUPS,
    STATE,
    TOTALS,
    FoldReport,
    PassDelta,
    active_generation,
    entries_by_claims,
    execute_pass,
    fold_links,
    rebuild,
    sweep,
    update,
)
from core.rollups.read import (
    DAY_ROWS_READ_MAX,
    SNAPSHOT_ATTEMPTS_MAX,
    TAIL_READ_MAX,
    TOTALS_READ_MAX,
    Snapshot,
    bulk_load,
    class_totals,
    day_rows,
    recompute,
    snapshot,
    stored,
)

__all__ = [
    "ACTIVE", "DAY_FIELDS", "DAY_ROWS_READ_MAX", "HEADS", "IN_BATCH_MAX", "PASSES", "PASSES_PER_RUN_MAX",
    "PASS_ACCOUNTS_MAX", "PASS_ENTRIES_MAX", "ROLLUPS", "SNAPSHOT_ATTEMPTS_MAX", "STATE", "TAIL_READ_MAX", "TOTALS",
    "TOTALS_READ_MAX", "FoldReport", "PassDelta", "Snapshot", "active_generation", "bulk_load", "class_totals",
    "cmd_rollups", "day_rows", "entries_by_claims", "execute_pass", "fold_links", "rebuild", "recompute",
    "register_commands", "snapshot", "stored", "sweep", "update",
]
