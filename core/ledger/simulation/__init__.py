"""The deterministic simulator of the real engine (EXACTLY_ONCE.md): seeded scheduling of
one store operation at a time, crashes at operation boundaries, skewed clocks, invariants
after every write and at quiescence. `python -m core simulate` runs it.

Flows plug in their own `Workload` (actors, checks) through `run_simulation`.
"""

from core.ledger.simulation.ledger_workload import CountingLedger, ledger_workload
from core.ledger.simulation.mutants import MUTANTS
from core.ledger.simulation.runner import SimulationResult, Workload, run_actors, run_simulation
from core.ledger.simulation.scheduler import ActorContext, ManualBase, SimulatedCrash, Violation

DEFAULT_CRASH_RATE = 0.02  # per store operation
DEFAULT_SKEW_MINUTES = 5


def simulate(seed: int, *, actors: int = 4, steps: int = 300, crash_rate: float = DEFAULT_CRASH_RATE,
             skew_minutes: int = DEFAULT_SKEW_MINUTES, mutant: str | None = None, hot: bool = False,
             stripes: int | None = None) -> SimulationResult:
    """One seeded run of the engine workload (optionally with a known-bad engine; `stripes`
    sets every hot kind's stripe count, by default a few each).
    Raises: KeyError for an unknown mutant name."""
    factory = MUTANTS[mutant] if mutant else CountingLedger
    result = run_simulation(seed, ledger_workload(actors, factory, hot, stripes), steps=steps, crash_rate=crash_rate,
                            skew_minutes=skew_minutes)
    options = (f" --crash-rate {crash_rate}" * (crash_rate != DEFAULT_CRASH_RATE) + f" --skew-minutes {skew_minutes}" * (skew_minutes != DEFAULT_SKEW_MINUTES)
               + f" --mutant {mutant}" * bool(mutant) + " --hot" * hot + (f" --stripes {stripes}" if stripes else ""))
    result.command = f"python -m core simulate --seed {seed} --actors {actors} --steps {steps}{options}"
    return result


__all__ = ["MUTANTS", "ActorContext", "CountingLedger", "ManualBase", "SimulatedCrash", "SimulationResult", "Violation",
           "Workload", "run_actors", "run_simulation", "simulate", "DEFAULT_CRASH_RATE", "DEFAULT_SKEW_MINUTES"]
