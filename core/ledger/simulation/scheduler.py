"""The deterministic scheduler: real code, one store operation at a time, seeded choices.

Every actor runs in its own thread, but only one runs at any moment. The store's fault
hook is the gate: before each operation an actor stops and waits for the scheduler,
which picks the next actor with a seeded random generator. Between two gates an actor
runs alone, so the whole run — the interleaving, every crash, every clock reading — is a
function of the seed. At a gate the scheduler may also crash the actor (before the
operation, or after it, losing its result); the actor then "restarts" as a new process
with a new clock skew, and its script decides how it carries on (typically: recover,
then retry the same request).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.base.clock import to_millis

GATE_TIMEOUT_SECONDS = 60.0  # an actor that neither reaches a gate nor ends is reported as stalled
TRACE_TAIL = 60  # operations printed with a failure


class SimulatedCrash(BaseException):
    """The process dies here. A BaseException, so no `except Exception` in product code
    can swallow it — exactly like a killed process."""


class Violation(Exception):
    """An invariant broke; carries the message the run reports."""


class SkewedClock:
    """An actor's clock: the simulation's time plus this process's skew."""

    def __init__(self, base: ManualBase, skew: timedelta) -> None:
        self.base, self.skew = base, skew

    def now(self) -> datetime:
        return to_millis(self.base.now() + self.skew)


class ManualBase:
    """Simulated time; moves a few hundred milliseconds per operation."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now = to_millis(self._now + delta)


@dataclass
class TraceLine:
    step: int
    actor: str
    event: str

    def text(self) -> str:
        return f"{self.step:>7} {self.actor:<14} {self.event}"


@dataclass
class Gatekeeper:
    """Admits one store operation at a time; decides crashes; checks after each write."""

    rng: random.Random
    crash_rate: float
    after_write: Callable[[], None]
    base: ManualBase
    operations: int = 0
    trace: list[TraceLine] = field(default_factory=list)
    failure: str | None = None
    _cv: threading.Condition = field(default_factory=threading.Condition)
    _waiting: set[str] = field(default_factory=set)
    _running: str | None = None
    _crash_after: str | None = None
    _local: threading.local = field(default_factory=threading.local)
    crashes_enabled: bool = True

    # -- actor side (called from the store's fault hook in the actor's thread) --------------
    def hook(self, phase: str, collection: str, operation: str) -> None:
        name = getattr(self._local, "actor", None)
        if name is None:
            return  # the checker and set-up code pass freely
        if phase == "before":
            self._gate(name)
            if self.failure is not None:
                raise SimulatedCrash("run aborted")
            crash = self.crashes_enabled and self.rng.random() < self.crash_rate
            where = self.rng.choice(("before", "after")) if crash else None
            self._log(name, f"{collection}.{operation}" + (f"  ✗ crash {where}" if crash else ""))
            if where == "before":
                raise SimulatedCrash(f"{name} crashed before {collection}.{operation}")
            self._crash_after = name if where == "after" else None
            return
        self.operations += 1
        self.base.advance(timedelta(milliseconds=self.rng.randint(1, 3_000)))
        if operation not in ("find", "find_one", "count_documents", "aggregate"):
            try:
                self.after_write()
            except Violation as violation:
                self.fail(str(violation))
                raise SimulatedCrash("invariant violated") from None
        if self._crash_after == name:
            self._crash_after = None
            raise SimulatedCrash(f"{name} crashed after {collection}.{operation}")

    def _gate(self, name: str) -> None:
        with self._cv:
            self._waiting.add(name)
            if self._running == name:
                self._running = None
            self._cv.notify_all()
            if not self._cv.wait_for(lambda: self._running == name or self.failure is not None, GATE_TIMEOUT_SECONDS):
                self.failure = self.failure or f"{name} was never admitted (scheduler stalled)"

    def _log(self, actor: str, event: str) -> None:
        self.trace.append(TraceLine(self.operations, actor, event))
        if len(self.trace) > 4 * TRACE_TAIL:
            del self.trace[:-TRACE_TAIL]

    def fail(self, message: str) -> None:
        with self._cv:
            if self.failure is None:
                self.failure = message
            self._cv.notify_all()

    # -- scheduler side (main thread) ------------------------------------------------------
    def run(self, actors: list[Actor]) -> None:
        """Start actors one at a time (each runs alone to its first gate), then admit one
        waiting actor at a time, chosen by the seeded generator, until all have ended."""
        for actor in actors:
            actor.thread = threading.Thread(target=actor.main, args=(self,), name=actor.name, daemon=True)
            with self._cv:
                self._running = actor.name
            actor.thread.start()
            self._await_quiet(actor)
        while self.failure is None:
            with self._cv:
                ready = sorted(self._waiting)
                if not ready:
                    break
                chosen = self.rng.choice(ready)
                self._waiting.discard(chosen)
                self._running = chosen
                self._cv.notify_all()
            self._await_quiet(next(a for a in actors if a.name == chosen))
        with self._cv:
            self._running = None
            self._cv.notify_all()
        for actor in actors:
            actor.thread.join(GATE_TIMEOUT_SECONDS)

    def _await_quiet(self, actor: Actor) -> None:
        """Wait until `actor` stops at its next gate or ends."""
        with self._cv:
            quiet = self._cv.wait_for(lambda: actor.name in self._waiting or actor.ended or self.failure is not None,
                                      GATE_TIMEOUT_SECONDS)
        if not quiet:
            self.fail(f"{actor.name} neither reached a store operation nor ended (stalled)")

    def bind(self, actor_name: str) -> None:
        self._local.actor = actor_name

    def ended(self, actor: Actor) -> None:
        with self._cv:
            actor.ended = True
            if self._running == actor.name:
                self._running = None
            self._cv.notify_all()


@dataclass
class Actor:
    """One simulated process: `script(context)` runs until the run's budget is spent."""

    name: str
    script: Callable[[ActorContext], None]
    context: ActorContext
    thread: threading.Thread | None = None
    ended: bool = False
    error: str | None = None

    def main(self, gate: Gatekeeper) -> None:
        gate.bind(self.name)
        try:
            self.script(self.context)
        except SimulatedCrash:
            pass
        except BaseException as error:  # noqa: BLE001 - an unexpected error is a finding, reported with the seed
            gate.fail(f"{self.name} raised {type(error).__name__}: {error}")
        finally:
            gate.ended(self)


@dataclass
class ActorContext:
    """What a script sees: its own seeded generator, its clock, the shared budget, and a
    way to (re)build its process-local objects after a crash."""

    name: str
    rng: random.Random
    base: ManualBase
    skew_minutes: int
    budget: Callable[[], bool]  # True while the run still wants work
    incarnation: int = 0
    clock: SkewedClock | None = None
    state: dict = field(default_factory=dict)

    def restart(self) -> None:
        """A new process: a new clock skew (up to ± skew_minutes)."""
        self.incarnation += 1
        skew = self.rng.randint(-self.skew_minutes * 60, self.skew_minutes * 60) if self.skew_minutes else 0
        self.clock = SkewedClock(self.base, timedelta(seconds=skew))
