"""The writer's own clearing of `unprojected` flags, in batches (HOT_ACCOUNTS.md, "The
in-flight set stays small").

Every entry is inserted flagged `unprojected` (a sparse index), so recovery can find what
a crash left half-projected. A writer that has projected its entry clears the flag itself —
not at once (that would be a fifth store operation per posting) but in batches: one
`update_many` per FLAG_BATCH_MAX entries, or when the oldest waiting entry is older than
FLAG_FLUSH_AFTER at the next posting, and on `flush()`. Without crashes the flagged set is
the entries in flight plus one batch per process. A crash loses the batch: the entries stay
flagged until a recovery confirms them, exactly as before. A flag is only ever cleared for
an entry this process has projected — never before (a planted bug the simulator catches).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from core.base.clock import Clock
from core.base.errors import StoreError
from core.ledger.store import Collection

FLAG_BATCH_MAX = 64
FLAG_FLUSH_AFTER = timedelta(milliseconds=500)  # time decides when a batch is cleared, never whether

log = logging.getLogger(__name__)


class FlagBatch:
    """Entry ids projected by this process whose flag is still set."""

    def __init__(self, entries: Collection, clock: Clock) -> None:
        self._entries, self._clock = entries, clock
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._since: datetime | None = None

    def projected(self, entry_id: str) -> None:
        """Record a fully projected entry; clear the batch when it is full or old."""
        now = self._clock.now()
        with self._lock:
            self._ids.append(entry_id)
            self._since = self._since or now
            if len(self._ids) < FLAG_BATCH_MAX and now - self._since < FLAG_FLUSH_AFTER:
                return
            ids = self._take()
        self._clear(ids)

    def flush(self) -> None:
        """Clear every waiting flag now (at shutdown, before a recovery, in tests)."""
        with self._lock:
            ids = self._take()
        self._clear(ids)

    def _take(self) -> list[str]:
        ids, self._ids, self._since = self._ids, [], None
        return ids

    def _clear(self, ids: list[str]) -> None:
        if not ids:
            return
        try:
            self._entries.update_many({"_id": {"$in": ids}, "unprojected": True}, {"$unset": {"unprojected": ""}})
        except StoreError as error:  # the entries stay flagged: a recovery confirms them later
            log.warning("could not clear %d unprojected flags: %s", len(ids), error)
