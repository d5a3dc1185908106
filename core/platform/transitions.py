"""State changes of flows and approvals: compare-and-set, each with its own audit event,
crash-complete (docs/flows.md, "State changes").

Why: a flow or approval document and the global audit chain are two documents, and
nothing here may depend on multi-document transactions. So the audit event of a state
change is written *into the changed document itself, in the same atomic update* (an
"outbox": `audit_outbox: [event, ...]`), and then appended to the chain under a
deterministic `event_key` (the chain's unique index makes that idempotent) and pulled
from the outbox. A crash anywhere leaves either no change, or the change with its event
still in the outbox, which `flush` (called by the next caller or by recovery) appends —
never a change without its event, never an event twice, and the event always names the
caller whose update won (it was written by that very update).

Every change's filter names the expected current state *and* the intended decision, so
a caller that loses learns it from the document (`decision`) instead of "succeeding"
with someone else's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.base.errors import LedgerError
from core.ledger import AuditLog, Collection

OUTBOX = "audit_outbox"
EVENT_FIELDS = ("type", "actor", "role", "target", "user", "before", "after", "data")
FLUSH_BATCH_MAX = 500
logger = logging.getLogger(__name__)


def event(
    *,
    key: str,
    type: str,
    actor: str,
    role: str,
    target: str,
    user: str | None = None,
    before: Any = None,
    after: Any = None,
    data: Any = None,
) -> dict:
    """An audit event waiting in a document's outbox (`key` is its chain-wide unique event key)."""
    return {
        "event_key": key,
        "type": type,
        "actor": actor,
        "role": role,
        "target": target,
        "user": user if isinstance(user, str) else None,
        "before": before,
        "after": after,
        "data": data,
    }


def change(collection: Collection, query: dict, update: dict, audit_event: dict) -> dict | None:
    """One guarded `find_one_and_update` that also queues `audit_event` in the document.

    `query` must name the document, its expected state and anything the decision depends
    on. Returns the document after the change (outbox included: pass it to `flush`), or
    None when the filter matched nothing (the caller lost, or the state moved on)."""
    assert "_id" in query and OUTBOX not in update.get("$push", {}), "one event per change"
    update = dict(update)
    update["$push"] = {**update.get("$push", {}), OUTBOX: audit_event}
    return collection.find_one_and_update(query, update)


def flush(audit: AuditLog, collection: Collection, document: dict | None) -> dict | None:
    """Append every event waiting in `document`'s outbox to the audit chain (idempotent on
    each event key), then remove them from the outbox. Returns the document without them.
    Safe for any number of callers at once: a second append of a key returns the first."""
    if document is None:
        return None
    waiting = document.get(OUTBOX) or []
    if not waiting:
        return document
    for queued in waiting:
        audit.append(event_key=queued["event_key"], **{name: queued.get(name) for name in EVENT_FIELDS})
    keys = [queued["event_key"] for queued in waiting]
    collection.update_one({"_id": document["_id"]}, {"$pull": {OUTBOX: {"event_key": {"$in": keys}}}})
    return {**document, OUTBOX: [queued for queued in document[OUTBOX] if queued["event_key"] not in keys]}


def change_and_flush(audit: AuditLog, collection: Collection, query: dict, update: dict, audit_event: dict) -> dict | None:
    """`change`, then `flush` the winner's document. Returns it, or None when the change lost."""
    return flush(audit, collection, change(collection, query, update, audit_event))


def waiting(collection: Collection, states: tuple[str, ...] | None = None, limit: int = FLUSH_BATCH_MAX) -> list[dict]:
    """Documents whose outbox still holds events (a crash came between a change and its
    flush), only those in one of `states` when given. Served by the sparse index on the
    outbox's event keys (`<collection>: audit_outbox.event_key`), which holds only the
    documents with an event waiting: the read examines what it returns, however many
    documents the collection holds (a filter on `state`, or `audit_outbox.0` exists, would
    walk every document of those states)."""
    query: dict = {f"{OUTBOX}.event_key": {"$gt": ""}}  # event keys are non-empty text: the range is every waiting event
    if states is not None:
        query["state"] = {"$in": list(states)}
    return collection.find(query, limit=limit)


ERROR_TEXT_MAX = 300


@dataclass
class SweepReport:
    """What a sweep (timeouts, expiries, resumes, recovery) did, item by item: one item's
    failure never stops the others; it is recorded here with its error and the sweep goes
    on. (A crash of the process itself is not an `Exception` and still stops it.)"""

    done: list[str] = field(default_factory=list)
    failed: dict[str, dict] = field(default_factory=dict)  # item id → {"error": code, "message": text}

    def run(self, item_id: str, action: Callable[[], Any]) -> Any:
        """Run `action` for one item; record success or the failure. Returns its result or None."""
        try:
            result = action()
        except LedgerError as error:
            self.failed[item_id] = {"error": error.code, "message": error.message[:ERROR_TEXT_MAX]}
            return None
        except Exception as error:  # noqa: BLE001 - an unexpected failure of one item is reported, not fatal
            logger.warning("sweep item %s failed unexpectedly; the sweep goes on", item_id, exc_info=True)
            self.failed[item_id] = {"error": type(error).__name__, "message": str(error)[:ERROR_TEXT_MAX]}
            return None
        self.done.append(item_id)
        return result

    def merge(self, other: SweepReport) -> SweepReport:
        self.done += other.done
        self.failed.update(other.failed)
        return self

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {"done": list(self.done), "failed": dict(self.failed)}
