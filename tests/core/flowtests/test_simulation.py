"""The flows in the deterministic simulator (core.flowtests.simulation, issue 10): its
budget of seeds holds every quiescence check, it is deterministic, the races and crashes
really happen, and it has teeth (the dispute bug — a transition that ignores the
intended target — is caught within a bounded number of seeds, with seed and trace)."""

from __future__ import annotations

import pytest

from core.flowtests.simulation import DEFAULT_ACTORS, FLOW_MUTANTS, ROLES, STRANDED_ROLES, simulate_flows

CI_SEEDS = 60  # the suite's budget for flows: every role, crashes, clocks skewed by minutes
BLOCKS = 6
MUTANT_SEEDS_MAX = 10
RACE_SEEDS = 4


@pytest.mark.parametrize("block", range(BLOCKS))
def test_flow_simulation_holds_every_invariant(block):
    """11 or 20 actors, crash rate 3% or 8%, skew ±2 or ±30 minutes, varying with the seed."""
    for seed in range(block * CI_SEEDS // BLOCKS, (block + 1) * CI_SEEDS // BLOCKS):
        result = simulate_flows(seed, actors=len(ROLES) if seed % 2 else DEFAULT_ACTORS, steps=500,
                                crash_rate=0.08 if seed % 5 == 0 else 0.03, skew_minutes=30 if seed % 3 == 0 else 2)
        assert result.ok, result.report()
        assert result.operations >= 500


def test_flow_simulation_same_seed_same_run():
    first, second = simulate_flows(7, steps=300), simulate_flows(7, steps=300)
    assert first.trace == second.trace and first.stats == second.stats and first.operations == second.operations
    assert simulate_flows(8, steps=300).trace != first.trace


OWED_SEEDS_MAX = 40  # seeds searched for a commission owed after a sweep drained the wallet


def test_flow_simulation_races_and_crashes_really_happen():
    outcomes: dict[str, int] = {}
    for seed in range(RACE_SEEDS):
        result = simulate_flows(seed, actors=len(ROLES), steps=800, crash_rate=0.05)
        assert result.ok, result.report()
        for name, count in result.stats["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + count
    assert outcomes["crashes"] > 0
    assert outcomes.get("resolver-buyer: trade_decision_conflict", 0) + outcomes.get(
        "resolver-seller: trade_decision_conflict", 0) > 0  # opposite resolutions lost to each other
    assert outcomes.get("resolver-buyer: ok", 0) and outcomes.get("resolver-seller: ok", 0)
    assert outcomes.get("executor: ok", 0) > 1  # many executors of the same quotes
    assert any(name.startswith("approver: approval_") for name in outcomes)  # approvers raced each other
    assert outcomes["journal: referral commissions"] > 0 and outcomes["journal: fee sweeps"] > 0
    # A sweep landing between a fee and its commission is rarer (about one seed in ten, before
    # and after fee sweeps were checked against the wallet when requested, issue 22): look
    # further for it, deterministically, instead of trusting the first four seeds to hold one.
    owed = outcomes["audit: referral owed"]
    for seed in range(RACE_SEEDS, OWED_SEEDS_MAX):
        if owed:
            break
        result = simulate_flows(seed, actors=len(ROLES), steps=800, crash_rate=0.05)
        assert result.ok, result.report()
        owed = result.stats["outcomes"]["audit: referral owed"]
    assert owed > 0, f"no sweep landed between a fee and its commission in {OWED_SEEDS_MAX} seeds"


STRANDED_SEEDS, STRANDED_SEEDS_MAX = 12, 48


def test_flow_simulation_runs_the_stranded_hold_sequence():
    """Retriers of ria's withdrawal, trade and quote keys while her funds (and the float)
    go and come back (issue 19): flows are refused after their document was written, a
    retry places the hold late — and releases it, or dies and recovery releases it. Every
    run ends with no hold open behind a finished flow (a quiescence check). The late
    placement needs a narrow interleaving (about one seed in ten): the first STRANDED_SEEDS
    always run, then the search goes on, deterministically, until both endings were seen."""
    outcomes: dict[str, int] = {}
    for seed in range(STRANDED_SEEDS_MAX):
        if seed >= STRANDED_SEEDS and outcomes.get("journal: holds released behind refused flows") \
                and outcomes.get("recovery: stranded holds released"):
            break
        result = simulate_flows(seed, actors=len(STRANDED_ROLES), steps=400, crash_rate=0.03, roles=STRANDED_ROLES)
        assert result.ok, result.report()
        for name, count in result.stats["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + count
    assert outcomes.get("retrier: insufficient_funds", 0) and outcomes.get("retrier: ok", 0)
    assert outcomes["journal: holds released behind refused flows"] > 0  # a hold placed after its flow was refused
    assert outcomes.get("recovery: stranded holds released", 0) > 0  # ... and its placer died before releasing it


@pytest.mark.parametrize("mutant", sorted(FLOW_MUTANTS))
def test_flow_simulation_catches_the_transition_that_ignores_its_target(mutant):
    for seed in range(MUTANT_SEEDS_MAX):
        result = simulate_flows(seed, steps=500, mutant=mutant)
        if not result.ok:
            report = result.report()
            print(report)  # the seed and the interleaving that breaks it
            assert f"seed {seed}" in report and f"mutant={mutant!r}" in report
            assert "last" in report and "operations" in report
            return
    pytest.fail(f"{mutant} survived {MUTANT_SEEDS_MAX} seeds")
