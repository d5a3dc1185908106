"""Drive real API calls from several threads in an interleaving chosen by a seed.

Built on the simulator's gatekeeper: each call runs in its own thread, one store
operation at a time, the next thread picked by the seeded generator; the engine's
invariants are checked after every write. Running a handful of seeds covers the
interleavings that matter (e.g. a second driver running while the first is paused
between its journal insert and its projections) without depending on timing.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime

from core.base.errors import LedgerError
from core.ledger.simulation.invariants import JournalView, check_state
from core.ledger.simulation import ActorContext, ManualBase, run_actors
from core.ledger.store import Store

CALL_OPERATIONS_MAX = 100_000  # far more than any interleaved call needs


def run_interleaved(store: Store, seed: int, calls: list[Callable[[], object]]) -> list[object]:
    """Run every call concurrently under the seeded scheduler; return each one's result or
    the LedgerError it raised. Fails (AssertionError) on any invariant violation."""
    results: list[object] = [None] * len(calls)
    view = JournalView(store)

    def script_for(index: int) -> Callable[[ActorContext], None]:
        def script(_context: ActorContext) -> None:
            try:
                results[index] = calls[index]()
            except LedgerError as error:
                results[index] = error
        return script

    gate = run_actors(store, random.Random(seed), [(f"call-{i}", script_for(i)) for i in range(len(calls))],
                      base=ManualBase(datetime(2026, 6, 1)), crash_rate=0.0, steps=CALL_OPERATIONS_MAX, skew_minutes=0,
                      after_write=lambda: check_state(view))
    assert gate.failure is None, f"seed {seed}: {gate.failure}\n" + "\n".join(t.text() for t in gate.trace[-40:])
    return results


class PauseAfter:
    """A fault hook that stops the calling thread after its n-th store operation until
    `release()` is called — to hold a first driver mid-protocol while a second one runs."""

    def __init__(self, thread_name: str, operations: int) -> None:
        self.thread_name, self.operations, self.seen = thread_name, operations, 0
        self.paused, self._released = threading.Event(), threading.Event()

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if phase != "after" or threading.current_thread().name != self.thread_name:
            return
        self.seen += 1
        if self.seen == self.operations:
            self.paused.set()
            assert self._released.wait(60), "the paused driver was never released"

    def release(self) -> None:
        self._released.set()
