"""Daily rollups of the journal (issue 15): per account and UTC day the movements in and
out by entry type, the closing balance and version; per account the head folded; per
(kind, asset) the total. The console's reports read these plus at most the entries not
folded yet, never the raw entries of a window.

`fold` keeps them exact under any number of concurrent runners and crashes (passes
serialised by compare-and-set, every derived write guarded by its pass number); `read`
serves the reports and recomputes them from scratch; `cli` is `python -m core rollups`.
"""

from core.rollups.fold import (
    HEADS,
    PASSES,
    ROLLUPS,
    STATE,
    TOTALS,
    active_generation,
    execute_pass,
    rebuild,
    sweep,
    update,
)
from core.rollups.read import bulk_load, class_totals, day_rows, recompute, stored

__all__ = [
    "HEADS",
    "PASSES",
    "ROLLUPS",
    "STATE",
    "TOTALS",
    "active_generation",
    "bulk_load",
    "class_totals",
    "day_rows",
    "execute_pass",
    "rebuild",
    "recompute",
    "stored",
    "sweep",
    "update",
]
