"""Deterministic interleavings of real calls with paused threads (issue 19's stranded-hold
sequence, for the flow-test scenario and the tests).

A `Choreography` is a store fault hook: per thread, it pauses after a named operation until
released, and kills a thread (raises `ChoreographedCrash`, which nothing catches) before a
named operation once that thread has journaled an entry. No timing decides anything: each
pause waits for its release, and the order is the caller's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core.base.errors import LedgerError
from core.platform import Platform

PAUSE_TIMEOUT_SECONDS = 60  # a pause never released is a bug of the choreography: it fails instead of hanging


class ChoreographedCrash(Exception):
    """A thread 'died' here (not a LedgerError: nothing in core catches it)."""


@dataclass
class _Pause:
    collection: str
    operation: str
    left: int
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class Choreography:
    """Pauses and crashes per thread name (see the module doc)."""

    def __init__(self) -> None:
        self._pauses: dict[str, _Pause] = {}
        self._crashes: dict[str, tuple[str, str]] = {}
        self._journaled: set[str] = set()

    def pause(self, thread: str, collection: str, operation: str, nth: int = 1) -> threading.Event:
        """Pause `thread` after its `nth` `operation` on `collection`. Returns the event set
        when it is paused there."""
        self._pauses[thread] = _Pause(collection, operation, nth)
        return self._pauses[thread].reached

    def release(self, thread: str) -> None:
        self._pauses.pop(thread).released.set()

    def crash(self, thread: str, collection: str, operation: str) -> None:
        """Kill `thread` before its next `operation` on `collection` after it journaled an entry."""
        self._crashes[thread] = (collection, operation)

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        name = threading.current_thread().name
        if phase == "after" and (collection, operation) == ("entries", "insert_one"):
            self._journaled.add(name)
        if phase == "before" and self._crashes.get(name) == (collection, operation) and name in self._journaled:
            raise ChoreographedCrash(f"{name} died before {collection}.{operation}")
        pause = self._pauses.get(name)
        if phase == "after" and pause and (pause.collection, pause.operation) == (collection, operation) \
                and not pause.reached.is_set():
            pause.left -= 1
            if pause.left == 0:
                pause.reached.set()
                if not pause.released.wait(PAUSE_TIMEOUT_SECONDS):
                    raise ChoreographedCrash(f"{name} was never released")


@dataclass(frozen=True)
class HeldFlow:
    """A flow that places a hold, and how to take its hold's funds away and bring them back."""

    collection: str
    start: Callable[[Platform], dict]  # the call a client sends (and retries with the same key)
    spend: Callable[[Platform, str], object]  # takes the hold's funds away (argument: a fresh key)
    receive: Callable[[Platform, str], object]  # brings them back


def strand_sequence(platform: Platform, flow: HeldFlow, *, registered: bool = True) -> dict[str, object]:
    """Issue 19's sequence: a first call writes the flow and pauses; a retry with the same
    key reads the flow and pauses — after loading it (its second `find_one`), or with
    `registered` after naming itself a placer of the hold (core.flows.holds); the funds are
    spent; the first call goes on, is refused and fails the flow; the funds come back; the
    retry goes on and dies after placing the hold, if it places it.
    Returns each call's result or error ("first", "retry")."""
    script, outer = Choreography(), platform.store.fault_hook

    def hook(phase: str, collection: str, operation: str) -> None:
        script(phase, collection, operation)
        if outer is not None:
            outer(phase, collection, operation)  # e.g. the sandbox's entry-order clock

    platform.store.fault_hook = hook
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = flow.start(platform)
        except (LedgerError, ChoreographedCrash) as error:
            outcomes[name] = error

    try:
        first_wrote = script.pause("first", flow.collection, "insert_one")
        first = threading.Thread(target=call, args=("first",), name="first")
        first.start()
        first_wrote.wait(PAUSE_TIMEOUT_SECONDS)
        retry_read = (script.pause("retry", flow.collection, "find_one_and_update") if registered
                      else script.pause("retry", flow.collection, "find_one", nth=2))
        retry = threading.Thread(target=call, args=("retry",), name="retry")
        retry.start()
        retry_read.wait(PAUSE_TIMEOUT_SECONDS)
        flow.spend(platform, "stranded-spent")
        script.release("first")
        first.join(PAUSE_TIMEOUT_SECONDS)
        flow.receive(platform, "stranded-received-again")
        script.crash("retry", flow.collection, "find_one_and_update")  # after placing, before its next step
        script.release("retry")
        retry.join(PAUSE_TIMEOUT_SECONDS)
    finally:
        platform.store.fault_hook = outer
    return outcomes
