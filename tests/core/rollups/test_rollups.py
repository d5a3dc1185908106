"""Daily rollups: folded incrementally, exactly once under crashes and concurrent runners,
equal to a from-scratch recomputation of the journal."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import rollups
from core.rollups import fold
from core.base.clock import ManualClock
from core.base.errors import InsufficientFundsError, RollupChainError
from core.ledger import Ledger, accounts as acct
from core.ledger.store import uncovered
from tests.helpers import Crash, CrashAt, deposit, make_test_store, transfer_request

USERS = ("u1", "u2", "u3")


def journal_totals(store) -> dict:
    """Per (kind, asset) the projections' sum — what the rollup totals must equal."""
    totals: dict = defaultdict(int)
    for document in store.raw("balances").find():
        totals[(document["kind"], document["asset"])] += document["balance_minor"]
    return {k: v for k, v in totals.items()}


def nonzero(totals: dict) -> dict:
    return {k: v for k, v in totals.items() if v}


def assert_rollups_equal_journal(store) -> None:
    days, heads, totals = rollups.stored(store)
    expected_days, expected_heads, expected_totals = rollups.recompute(store)
    assert heads == expected_heads
    assert days == expected_days
    assert nonzero(totals) == nonzero(expected_totals)


def test_rollups_update_folds_days_types_and_closing(ledger, store, clock):
    deposit(ledger, "u1", "100", "USDT")
    clock.advance(timedelta(days=1))
    ledger.post(transfer_request("fee-1", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1.5", "swap"))
    ledger.post(transfer_request("ref-1", acct.fees("USDT"), acct.user_available("u2", "USDT"), "0.5", "referral.commission"))
    report = rollups.update(store)
    assert report.caught_up and report.passes == 1
    days, heads, totals = rollups.stored(store)
    fees = ledger.entry_by_key("fee-1").postings[1].account  # the fee wallet's stripe this writer uses (a stored account)
    assert ledger.entry_by_key("ref-1").postings[0].account == fees  # the payout is taken from the writer's own stripe
    assert days[(fees, "2026-01-02")] == {
        "types": [{"type": "referral.commission", "in_minor": 0, "out_minor": 500_000, "entries": 1},
                  {"type": "swap", "in_minor": 1_500_000, "out_minor": 0, "entries": 1}],
        "in_minor": 1_500_000, "out_minor": 500_000, "entries": 2, "closing_minor": 1_000_000, "closing_version": 2}
    assert heads[fees]["version"] == 2 and heads[fees]["balance_minor"] == 1_000_000
    assert totals[("platform.fees", "USDT")] == 1_000_000
    assert rollups.update(store).passes == 0  # nothing new: nothing written
    assert_rollups_equal_journal(store)


def test_rollups_readers_add_the_tail_after_the_watermark(ledger, store):
    deposit(ledger, "u1", "100", "USDT")
    rollups.update(store)
    ledger.post(transfer_request("fee-1", acct.user_available("u1", "USDT"), acct.fees("USDT"), "2", "swap"))
    assert rollups.class_totals(store)[("platform.fees", "USDT")] == 2_000_000  # not folded yet, read from the tail
    assert nonzero(rollups.class_totals(store)) == nonzero(journal_totals(store))
    rows = rollups.day_rows(store, [acct.fees("USDT").id], "2026-01-01", "2026-01-01")
    assert rows == [{"account": acct.fees("USDT").id, "asset": "USDT", "day": "2026-01-01", "type": "swap",
                     "in_minor": 2_000_000, "out_minor": 0}]
    assert rollups.day_rows(store, [acct.fees("USDT").id], "2026-02-01", "2026-02-02") == []


def test_rollups_reader_folds_first_when_the_tail_is_too_long(ledger, store, monkeypatch):
    monkeypatch.setattr("core.rollups.read.TAIL_READ_MAX", 3)
    for number in range(6):
        deposit(ledger, f"u{number}", "1", "USDT")
    assert nonzero(rollups.class_totals(store)) == nonzero(journal_totals(store))
    assert rollups.stored(store)[1]  # the reader helped: heads exist


def test_rollups_crash_at_every_operation_then_resume(clock):
    """Kill the runner at each store operation of a fold in turn; the next runner finishes
    the half-written pass and the result equals the journal, with readers exact throughout."""
    index = 0
    while True:
        store = make_test_store()
        ledger = Ledger(store, clock)
        deposit(ledger, "u1", "10", "USDT", key="a")
        deposit(ledger, "u2", "5", "USDT", key="b")
        ledger.post(transfer_request("t", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1", "swap"))
        store.fault_hook = CrashAt(index, "after")
        try:
            rollups.update(store)
            crashed = False
        except Crash:
            crashed = True
        store.fault_hook = None
        assert nonzero(rollups.class_totals(store)) == nonzero(journal_totals(store)), index
        rollups.update(store)
        assert_rollups_equal_journal(store)
        if not store.embedded:
            store.drop()
        if not crashed:
            break
        index += 1
    assert index > 5  # the fold really has that many steps


def test_rollups_stale_executor_is_a_no_op(ledger, store):
    """A runner that planned a pass, stalled, and wakes after others finished it (and the
    next pass) writes nothing: every write is guarded by `pass < k`."""
    deposit(ledger, "u1", "10", "USDT", key="a")
    generation = rollups.active_generation(store)
    state = fold._state(store, generation)
    plan, watermark = fold._plan_from_feed(store, generation, state)
    assert fold._start_pass(store, generation, state, plan, watermark)
    stale = fold._state(store, generation)
    rollups.update(store)  # another runner executes it
    ledger.post(transfer_request("t", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1", "swap"))
    rollups.update(store)
    before = {name: list(store.raw(name).find()) for name in (rollups.ROLLUPS, rollups.HEADS, rollups.TOTALS)}
    rollups.execute_pass(store, generation, stale)
    after = {name: list(store.raw(name).find()) for name in (rollups.ROLLUPS, rollups.HEADS, rollups.TOTALS)}
    assert before == after
    assert_rollups_equal_journal(store)


def test_rollups_concurrent_runners_fold_exactly_once(store, clock):
    ledger = Ledger(store, clock)
    failures = []

    def post_many() -> None:
        for number in range(30):
            deposit(ledger, f"u{number % 4}", "1", "USDT", key=f"d{number}")

    def runner() -> None:
        try:
            for _ in range(10):
                rollups.update(store)
        except Exception as error:  # noqa: BLE001 — collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=post_many)] + [threading.Thread(target=runner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rollups.update(store)
    assert_rollups_equal_journal(store)


def test_rollups_rebuild_switches_generation_and_drops_the_old(ledger, store):
    deposit(ledger, "u1", "10", "USDT")
    rollups.update(store)
    store.raw(rollups.TOTALS).update_many({}, {"$set": {"balance_minor": 999}})  # corrupt the derived data
    report = rollups.rebuild(store)
    assert report.generation == rollups.active_generation(store) == 2
    assert_rollups_equal_journal(store)
    assert store.raw(rollups.TOTALS).count_documents({"generation": 1}) == 0


def test_rollups_late_entry_is_folded_from_its_flag(ledger, store):
    """An entry whose id sorts before everything folded (a writer with a slow clock) is
    still folded: the feed is the `unfolded` flag, not an id range."""
    deposit(ledger, "u1", "10", "USDT", key="a")
    rollups.update(store)
    late = deposit(ledger, "u3", "1", "USDT", key="c")
    document = store.raw("entries").find_one({"_id": late.id})
    store.raw("entries").delete_one({"_id": late.id})
    store.raw("entries").insert_one({**document, "_id": "E00000000000000000late"})
    rollups.update(store)
    assert_rollups_equal_journal(store)
    assert store.raw("entries").count_documents({"unfolded": True}) == 0


def test_rollups_sweep_folds_entries_without_the_flag(ledger, store):
    """An entry journaled without the flag after the first fold (a bulk load) is found by
    `sweep` (projections ahead of the heads), not by the feed."""
    deposit(ledger, "u1", "10", "USDT", key="a")
    rollups.update(store)
    deposit(ledger, "u2", "10", "USDT", key="b")
    store.raw("entries").update_many({}, {"$unset": {"unfolded": ""}})
    assert rollups.update(store).passes == 0
    rollups.sweep(store)
    assert_rollups_equal_journal(store)


def test_rollups_a_journal_never_folded_is_folded_by_the_first_reader(ledger, store):
    """A store from before the rollups (entries without the flag, no rollup state): the first
    report folds it once from the balances' versions, then stays incremental."""
    deposit(ledger, "u1", "10", "USDT", key="a")
    deposit(ledger, "u2", "5", "USDT", key="b")
    store.raw("entries").update_many({}, {"$unset": {"unfolded": ""}})
    assert nonzero(rollups.class_totals(store)) == nonzero(journal_totals(store))
    assert_rollups_equal_journal(store)
    assert rollups.update(store).passes == 0


def test_rollups_hole_in_a_chain_is_refused(ledger, store):
    deposit(ledger, "u1", "10", "USDT", key="a")
    deposit(ledger, "u1", "10", "USDT", key="b")
    first = ledger.entry_by_key("a")
    store.raw("entries").delete_one({"_id": first.id})
    with pytest.raises(RollupChainError):
        rollups.update(store)


def test_rollups_queries_are_index_served(ledger, store):
    deposit(ledger, "u1", "10", "USDT")
    store.log.reset()
    rollups.update(store)
    rollups.class_totals(store)
    rollups.day_rows(store, [acct.fees("USDT").id], "2026-01-01", "2026-01-02")
    rollups.sweep(store)
    assert uncovered(store.log.records) == []


ACTIONS = st.lists(st.tuples(st.sampled_from(["post", "advance", "fold", "crash_fold", "read", "rebuild"]),
                             st.integers(0, 40)), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_rollups_random_history_with_crashes_equals_recomputation(actions):
    """Random postings across days, folds crashed at random operations, reads and rebuilds:
    readers always equal the journal, and at the end the rollups equal a from-scratch fold."""
    store, clock = make_test_store(), ManualClock()
    ledger = Ledger(store, clock)
    deposit(ledger, "seed", "1000", "USDT", key="seed")
    try:
        for number, (action, value) in enumerate(actions):
            if action == "post":
                source, target = USERS[value % 3], USERS[(value + 1) % 3]
                payer = acct.user_available("seed" if value % 2 else source, "USDT")
                try:
                    ledger.post(transfer_request(f"p{number}", payer, acct.user_available(target, "USDT"), str(value % 7 + 1), "swap"))
                except InsufficientFundsError:
                    pass
            elif action == "advance":
                clock.advance(timedelta(hours=value))
            elif action == "fold":
                rollups.update(store)
            elif action == "crash_fold":
                store.fault_hook = CrashAt(value, "after")
                try:
                    rollups.update(store)
                except Crash:
                    pass
                store.fault_hook = None
            elif action == "read":
                assert nonzero(rollups.class_totals(store)) == nonzero(journal_totals(store))
            else:
                rollups.rebuild(store)
        assert nonzero(rollups.class_totals(store)) == nonzero(journal_totals(store))
        rollups.update(store)
        assert_rollups_equal_journal(store)
    finally:
        store.fault_hook = None
        if not store.embedded:
            store.drop()


# -- under the deterministic simulator (core.ledger.simulation) ------------------------------------------
def _with_rollup_runners(workload_for, seen: dict, runners: int = 2):
    """The engine workload plus `runners` actors folding rollups beside the writers, crashed
    and restarted like them; at quiescence the rollups must equal a from-scratch fold."""
    from core.ledger.simulation import SimulatedCrash, Violation

    def build(rng):
        workload = workload_for(rng)
        store_ref = {}
        setup = workload.setup

        def capture(store, base):
            store_ref["store"] = store
            setup(store, base)

        def folder(context):
            while context.budget():
                try:
                    rollups.update(store_ref["store"], passes_max=3)
                except SimulatedCrash:
                    context.restart()

        def rollups_equal_the_journal(store):
            store.fault_hook = None
            seen["passes"] = seen.get("passes", 0) + store.raw(rollups.PASSES).count_documents({})  # folded mid-run
            rollups.update(store)
            days, heads, totals = rollups.stored(store)
            expected_days, expected_heads, expected_totals = rollups.recompute(store)
            if (days, heads, nonzero(totals)) != (expected_days, expected_heads, nonzero(expected_totals)):
                raise Violation("rollups differ from a from-scratch fold of the journal")
            if nonzero(rollups.class_totals(store)) != nonzero(journal_totals(store)):
                raise Violation("rollup totals differ from the projections after recovery")

        workload.setup = capture
        workload.scripts = workload.scripts + [(f"rollups-{n}", folder) for n in range(runners)]
        workload.at_quiescence = workload.at_quiescence + [rollups_equal_the_journal]
        return workload

    return build


def test_rollups_equal_recomputation_after_a_simulator_run():
    from core.ledger.simulation import ledger_workload, run_simulation

    seen: dict = {}
    for seed in (1, 2, 3):
        result = run_simulation(seed, _with_rollup_runners(ledger_workload(4), seen), steps=400, crash_rate=0.03, skew_minutes=5)
        assert result.ok, result.report()
        assert result.operations > 100
    assert seen["passes"] > 0  # the runners really folded (and crashed) mid-run


def test_rollups_bulk_load_equals_the_fold(ledger, store, clock):
    deposit(ledger, "u1", "10", "USDT", key="a")
    clock.advance(timedelta(days=1))
    ledger.post(transfer_request("t", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1", "swap"))
    assert rollups.bulk_load(store) == 3
    assert_rollups_equal_journal(store)
    assert store.raw("entries").count_documents({"unfolded": True}) == 0
    deposit(ledger, "u2", "1", "USDT", key="b")
    rollups.update(store)
    assert_rollups_equal_journal(store)


def test_rollups_cli_update_and_rebuild(ledger, store, monkeypatch, capsys):
    import json

    from core.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.rollups_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: store)
    deposit(ledger, "u1", "10", "USDT", key="a")
    assert cli.main(["rollups", "update", "--json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["passes"] == 1
    assert cli.main(["rollups", "update", "--sweep"]) == cli.EXIT_OK
    capsys.readouterr()
    assert cli.main(["rollups", "rebuild", "--json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["generation"] == 2
    assert rollups.active_generation(store) == 2
    assert_rollups_equal_journal(store)
    assert cli.main(["rollups", "fold"]) == cli.EXIT_USAGE


def test_rollups_cli_refuses_the_embedded_store(monkeypatch):
    from core.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.rollups_cli])
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert cli.main(["rollups", "update"]) == cli.EXIT_USAGE
