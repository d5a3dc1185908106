"""What one benchmark run collects (shared by the runner, benchmarks.bench, and the
report, benchmarks.report)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.ledger import OperationRecord, Store


@dataclass
class Measurement:
    ops: int
    seconds: float
    breakdown: dict[str, int]
    documents: int = 0  # documents the operations returned or matched
    keys_examined: int | None = None  # what a real server would examine (planner model), when measured
    documents_examined: int | None = None
    examined_by_shape: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    """Everything one benchmark run collects."""

    shapes: set[OperationRecord] = field(default_factory=set)
    data_sets: dict[str, dict] = field(default_factory=dict)
    flows: dict[str, dict[str, Measurement]] = field(default_factory=dict)      # flow -> data set -> measurement
    checks: dict[str, dict[str, Measurement]] = field(default_factory=dict)     # two_leg_entry, user_balances, ...
    integrity_ok: dict[str, dict] = field(default_factory=dict)
    pages: dict[str, dict[str, dict]] = field(default_factory=dict)             # page -> data set -> result
    legacy: dict[str, Measurement] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)                        # step -> what went wrong

    def fold(self, store: Store) -> None:
        """Keep the query shapes the store recorded so far (for the coverage check) and reset its log."""
        self.shapes.update(store.log.records)
        store.log.reset()
