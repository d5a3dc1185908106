"""The deterministic simulator: its budget of seeds passes on the real engine, it is
deterministic, and it has teeth (every known-bad engine is caught within a few seeds)."""

import pytest

from core.cli import main as cli
from core.ledger.simulation import MUTANTS, simulate

CI_SEEDS = 300  # the suite's budget; the README reports a long run
MUTANT_SEEDS_MAX = 20


@pytest.mark.parametrize("block", range(6))
def test_simulate_real_engine_holds_every_invariant(block):
    """300 seeds in six blocks, 2–8 actors, crashes and ±5 min clock skew on."""
    for seed in range(block * CI_SEEDS // 6, (block + 1) * CI_SEEDS // 6):
        result = simulate(seed, actors=2 + seed % 7, steps=250)
        assert result.ok, result.report()
        assert result.operations >= 250


def test_simulate_same_seed_same_run():
    first, second = simulate(42, actors=6, steps=300), simulate(42, actors=6, steps=300)
    assert first.trace == second.trace and first.stats == second.stats and first.operations == second.operations


def test_simulate_different_seeds_differ():
    assert simulate(1, actors=4, steps=200).trace != simulate(2, actors=4, steps=200).trace


def test_simulate_crashes_happen_and_recovery_finishes_them():
    traces = [simulate(seed, actors=4, steps=300, crash_rate=0.05) for seed in range(5)]
    assert all(t.ok for t in traces), [t.report() for t in traces if not t.ok]
    assert sum(line.count("✗ crash") for t in traces for line in t.trace) > 0


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_simulate_catches_known_bad_engine(mutant):
    """Every planted bug — of the exactly-once protocol, the hot-account stripes, the flag
    batches, the audit streams, replays and holds — is caught within a few seeds, at the
    default crash rate and skew."""
    for seed in range(MUTANT_SEEDS_MAX):
        result = simulate(seed, actors=6, steps=300, mutant=mutant)
        if not result.ok:
            report = result.report()
            assert f"seed {seed}" in report and f"--mutant {mutant}" in report  # how to repeat it
            assert "last" in report and "operations" in report  # the interleaving
            return
    pytest.fail(f"{mutant} survived {MUTANT_SEEDS_MAX} seeds")


def test_simulate_hot_account_retries_grow_with_writers_unless_striped():
    """One fee wallet every writer pays: unstriped, retries per posting grow with the writers;
    in 64 stripes the writers spread out (affinity) and retries stay low."""
    means = {}
    for stripes in (1, 64):
        for writers in (2, 4, 8):
            runs = [simulate(seed, actors=writers, steps=300, hot=True, crash_rate=0, stripes=stripes) for seed in range(3)]
            assert all(r.ok for r in runs), [r.report() for r in runs if not r.ok]
            means[(stripes, writers)] = sum(r.stats["retries_per_post"] for r in runs) / len(runs)
    assert 0 < means[(1, 2)] < means[(1, 4)] < means[(1, 8)]
    assert means[(64, 8)] <= 0.25 < means[(1, 8)]


def test_simulate_workload_really_splits_collides_and_races():
    """The hot-account workload does what it is for: debits split across stripes, several
    stripes and both audit streams in use, keys retried with a different body refused."""
    runs = [simulate(seed, actors=8, steps=400) for seed in range(4)]
    assert all(r.ok for r in runs), [r.report() for r in runs if not r.ok]
    assert sum(r.stats["split_debits"] for r in runs) > 0
    assert min(r.stats["stripes_used"] for r in runs) >= 2
    assert max(r.stats["audit_streams_used"] for r in runs) == 2
    assert sum(r.stats["claim_attempts"] - r.stats["posts"] for r in runs) > 0  # writers lost claims and helped


def test_simulate_cli_exit_codes(capsys):
    assert cli.main(["simulate", "--seed", "3", "--seeds", "2", "--steps", "120"]) == 0
    assert "0 violations" in capsys.readouterr().out
    assert cli.main(["simulate", "--seed", "0", "--mutant", "debit_without_funds_check"]) == 1
    assert "VIOLATION" in capsys.readouterr().out
    assert cli.main(["simulate", "--actors", "0"]) == 2
