"""Run one seeded simulation: set up a store, start the actors under the gatekeeper,
check invariants after every write, recover at quiescence, check again, report."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.ledger.ids import seeded_ids
from core.ledger.simulation.invariants import JournalView, check_quiescent, check_state
from core.ledger.simulation.scheduler import TRACE_TAIL, Actor, ActorContext, Gatekeeper, ManualBase, Violation
from core.ledger.store import Store

SIMULATION_START = datetime(2026, 6, 1, 12, 0, 0)

Script = Callable[[ActorContext], None]


@dataclass
class SimulationResult:
    """One run. `violation` is None when every invariant held."""

    seed: int
    actors: int
    operations: int
    violation: str | None = None
    trace: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    command: str = ""  # how to repeat this run

    @property
    def ok(self) -> bool:
        return self.violation is None

    def report(self) -> str:
        """What a failure prints: the seed to repeat it and the interleaving that broke it."""
        if self.ok:
            return f"seed {self.seed}: ok ({self.operations} operations, {self.actors} actors)"
        lines = [f"seed {self.seed}: VIOLATION after {self.operations} operations: {self.violation}",
                 f"repeat with: {self.command or f'seed {self.seed}'}",
                 f"last {min(TRACE_TAIL, len(self.trace))} operations (step, actor, operation):"]
        return "\n".join(lines + self.trace[-TRACE_TAIL:])

    def as_dict(self) -> dict:
        return {"seed": self.seed, "actors": self.actors, "operations": self.operations, "ok": self.ok,
                "violation": self.violation, "command": self.command, "trace": self.trace[-TRACE_TAIL:] if not self.ok else [], "stats": self.stats}


@dataclass
class Workload:
    """What a simulation runs: `setup(store, clock)` before the gate opens, one script per
    actor, extra checks after every write and at quiescence, and `finish(store, clock)`
    (the final recovery) before the quiescence checks. `stats()` adds figures to the result."""

    setup: Callable[[Store, ManualBase], None]
    scripts: list[tuple[str, Script]]
    finish: Callable[[Store, ManualBase], None]
    after_write: list[Callable[[Store], None]] = field(default_factory=list)
    at_quiescence: list[Callable[[Store], None]] = field(default_factory=list)
    stats: Callable[[], dict] = dict


def run_actors(store: Store, rng: random.Random, scripts: list[tuple[str, Script]], *, base: ManualBase, crash_rate: float,
               steps: int, skew_minutes: int, after_write: Callable[[], None]) -> Gatekeeper:
    """Run `scripts` as actors on `store` under a gatekeeper seeded from `rng`: one store
    operation at a time, `after_write` after each write, until every script ends or `steps`
    operations were admitted. Returns the gatekeeper (operations, failure, trace)."""
    gate = Gatekeeper(random.Random(rng.getrandbits(64)), crash_rate, after_write, base)
    actors = []
    for name, script in scripts:
        context = ActorContext(name, random.Random(rng.getrandbits(64)), base, skew_minutes,
                               budget=lambda: gate.failure is None and gate.operations < steps)
        context.restart()
        actors.append(Actor(name, script, context))
    store.fault_hook = gate.hook
    try:
        gate.run(actors)
    finally:
        store.fault_hook = None
    return gate


def run_simulation(seed: int, workload_for: Callable[[random.Random], Workload], *, steps: int, crash_rate: float,
                   skew_minutes: int) -> SimulationResult:
    """Run `workload_for(rng)` on a fresh embedded store under the seeded scheduler.
    Same seed, same arguments → same run."""
    rng = random.Random(seed)
    with seeded_ids(rng.getrandbits(64)):
        store = Store.embedded_store("simulation")
        base = ManualBase(SIMULATION_START)
        workload = workload_for(random.Random(rng.getrandbits(64)))
        workload.setup(store, base)
        view = JournalView(store)

        def after_write() -> None:
            check_state(view)
            for check in workload.after_write:
                check(store)

        gate = run_actors(store, rng, workload.scripts, base=base, crash_rate=crash_rate, steps=steps,
                          skew_minutes=skew_minutes, after_write=after_write)
        result = SimulationResult(seed, len(workload.scripts), gate.operations, gate.failure, [t.text() for t in gate.trace])
        if result.ok:
            try:
                workload.finish(store, base)
                check_quiescent(view)
                for check in workload.at_quiescence:
                    check(store)
            except Violation as violation:
                result.violation = f"at quiescence: {violation}"
        result.stats = {"steps": steps, "crash_rate": crash_rate, "skew_minutes": skew_minutes, **workload.stats()}
        return result
