"""Issue 19, "done when": a checker looping beside 8 posting writers reports nothing on a
clean ledger, and a tamper planted during the same run is still found — under the
deterministic scheduler (one store operation at a time, a fixed seed), so the run is the
same every time and its interleavings are the ones the seed chooses, not the machine's.
The same workload with real threads is the bench (`python -m core bench --checks-under-load`)."""

from __future__ import annotations

import pytest

from benchmarks import checks_under_load as load


@pytest.fixture(scope="module")
def run() -> load.LoadResult:
    return load.run_scheduled(seed=load.SEED, steps=load.STEPS, writers=8, tamper_after=12)


def test_checker_beside_eight_writers_reports_nothing_on_a_clean_ledger(run):
    assert run.failure is None, run.failure
    clean = run.before_tamper()
    assert {r.reader for r in clean} == set(load.READERS) and len(clean) >= 12
    assert [(r.reader, r.findings) for r in clean if r.findings] == []
    assert run.cut_problems == [] and len(run.cuts) >= 2  # every liabilities cut is the journal's sum at its position
    assert run.entries > 300  # the writers really posted meanwhile


def test_checker_saw_entries_in_flight(run):
    """Teeth: the readers really ran while entries were between their commit point and their
    projections (otherwise a clean result would prove nothing)."""
    assert sum(r.in_flight for r in run.rounds if r.reader == "self_check") > 0


def test_planted_tamper_is_found_and_nothing_else(run):
    assert run.tampered_entry is not None
    assert run.false_findings() == []
    assert {"self_check", "full"} <= run.tamper_found_by()


def test_same_seed_same_run(run):
    """Deterministic: a shorter run with the same seed repeats the same interleaving."""
    first = load.run_scheduled(seed=load.SEED, steps=3_000, writers=8, tamper_after=100)
    second = load.run_scheduled(seed=load.SEED, steps=3_000, writers=8, tamper_after=100)
    assert (first.entries, first.operations) == (second.entries, second.operations)
    assert [(r.reader, r.findings, r.in_flight) for r in first.rounds] == [(r.reader, r.findings, r.in_flight) for r in second.rounds]
