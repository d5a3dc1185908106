"""The benchmark at its smallest size, so `python -m core bench` cannot rot.

Checks the report's structure, the budgets' verdicts that do not depend on timing, and
that every query shape issued during the run is served by a declared index. Never
asserts a timing.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import bench, dataset
from benchmarks.report import FLOW_ROWS, markdown, text
from core import cli


@pytest.fixture(scope="module")
def result() -> dict:
    return bench.run_benchmark("tiny")


def test_bench_report_has_every_section(result):
    assert set(result) >= {"size", "labels", "data_sets", "flows", "checks", "pages", "legacy", "index_coverage",
                           "throughput", "budgets", "ok"}
    base, scaled = result["labels"]
    assert result["data_sets"][scaled]["entries"] == 10 * result["data_sets"][base]["entries"]
    assert result["data_sets"][scaled]["users"] == 10 * result["data_sets"][base]["users"]
    assert [row["flow"] for row in result["flows"]] == [name for name, *_ in FLOW_ROWS]
    for row in result["flows"]:
        assert set(row["ops"]) == {base, scaled} and all(isinstance(v, int) and v > 0 for v in row["ops"].values()), row
    assert "embedded store" in result["throughput"]["label"]
    assert result["throughput"]["one_thread"]["entries"] > 0 and result["throughput"]["four_threads"]["threads"] == 4
    assert result["throughput"]["one_thread"]["failures"] == result["throughput"]["four_threads"]["failures"] == []


def test_bench_index_coverage_has_no_uncovered_shape(result):
    assert result["index_coverage"]["query_shapes"] > 0
    assert result["index_coverage"]["uncovered"] == []


def test_bench_flows_cost_more_than_legacy_are_explained(result):
    for row in result["flows"]:
        if row["legacy_ops"] is not None and row["ops"][result["labels"][0]] > row["legacy_ops"]:
            assert row["explanation"] and row["ratio"] > 1, row
        assert row["constant_across_sizes"], row


def test_bench_budgets_are_judged(result):
    """Every budget has a verdict, and `ok` is their conjunction (the page budgets depend on
    the console's code, so their verdict is reported here, not asserted)."""
    assert len(result["budgets"]) >= 6
    assert all(b["met"] in (True, False) for b in result["budgets"]), result["budgets"]
    assert result["ok"] == all(b["met"] for b in result["budgets"])
    names = " ".join(b["budget"] for b in result["budgets"])
    expected = ("two-leg entry", "user-balance read", "per-user integrity", "platform integrity",
                "covering index", "page")
    assert all(name in names for name in expected), names


def test_bench_engine_budgets_are_met(result):
    """The budgets the ledger engine and the integrity checks own."""
    base, scaled = result["labels"]
    checks = result["checks"]
    assert all(v <= bench.TWO_LEG_ENTRY_OPS_MAX for v in checks["two_leg_entry"]["ops"].values())
    assert checks["user_balances"]["ops"][base] == checks["user_balances"]["ops"][scaled]
    assert checks["integrity.user"]["ops"][base] == checks["integrity.user"]["ops"][scaled]
    assert checks["integrity.platform"]["ops_ratio"] <= bench.PLATFORM_CHECK_RATIO_MAX


def test_bench_console_pages_render_without_errors(result):
    from benchmarks.pages import admin_pages

    assert set(admin_pages()) <= set(result["pages"])
    for stem, page in result["pages"].items():
        assert page["errors"] == [], (stem, page["errors"])


def test_bench_integrity_of_the_copied_data_set_is_clean(result):
    """The 10x set is made of renamed copies: it must pass the platform check like the original."""
    for label, found in result["integrity_findings"].items():
        assert found["platform"]["ok"], (label, found)
        assert found["user"]["ok"], (label, found)


def test_bench_text_and_results_file(result, tmp_path):
    assert result["errors"] == {}
    assert "| flow |" in markdown(result) and "| budget |" in markdown(result)
    table = text(result)
    assert "index coverage" in table and "budgets:" in table and "NOT a real-server figure" in table
    path = bench.write_results(result, tmp_path / "bench-results.json")
    assert json.loads(path.read_text())["ok"] == result["ok"]


def test_bench_cli_refuses_unknown_size(capsys):
    assert cli.main(["bench", "--size", "huge"]) == cli.EXIT_USAGE


# -- the legacy baseline model and the data-set copies ----------------------------------------------------------
def test_legacy_balance_change_reads_once_and_sets_every_copy(store):
    from benchmarks.legacy_write_path import BALANCE_COLLECTIONS, BALANCE_WRITE_OPS, LegacyPlatform

    legacy = LegacyPlatform(store, dataset.START)
    store.log.reset()
    legacy.change_balance("alice", "USDT", available_delta=0.1)
    legacy.change_balance("alice", "USDT", available_delta=0.2)
    assert store.log.count == 2 * BALANCE_WRITE_OPS == 10
    documents = [store.raw(name).find_one({legacy_owner(name): "alice"}) for name in BALANCE_COLLECTIONS]
    values = {document["available_balance"] for document in documents}
    assert values == {0.1 + 0.2}  # every copy holds the float drift the old platform stored: 0.30000000000000004


def legacy_owner(name: str) -> str:
    from benchmarks.legacy_write_path import OWNER_FIELD

    return OWNER_FIELD[name]


def test_legacy_swap_counts_the_fee_twice(store):
    from benchmarks.legacy_write_path import FEE_WALLET_OWNER, SWAP_FEE, LegacyPlatform

    legacy = LegacyPlatform(store, dataset.START)
    legacy.deposit("alice", "USDT", 1000.0, "p1")
    legacy.swap("alice", "USDT", "BTC", 1000.0, 1 / 60000)
    pool = store.raw("admin_liquidity_wallets").find_one({"currency": "USDT"})["balance"]
    fee_wallet = store.raw("wallets").find_one({"user_id": FEE_WALLET_OWNER, "currency": "USDT"})["available_balance"]
    assert pool == 1000.0 and fee_wallet == pytest.approx(1000.0 * SWAP_FEE)
    assert pool + fee_wallet > 1000.0  # the user paid 1000; the platform books 1015


def test_dataset_copy_renames_every_id_consistently():
    entry_id = "E20261001000000000" + "ab" * 5
    original = {
        "withdrawals": [{"_id": "wd_" + "0" * 24, "user": "u00001", "hold_entry_id": entry_id}],
        "balances": [{"_id": "user.locked:u00001:USDT", "owner": "u00001", "pending": [entry_id], "balance_minor": 5},
                     {"_id": "platform.fees:platform:USDT", "owner": "platform", "pending": [], "balance_minor": 7}],
    }
    first, second = dataset.copy_of(original, 1, 50), dataset.copy_of(original, 2, 50)
    withdrawal, locked = first["withdrawals"][0], first["balances"][0]
    assert withdrawal["user"] == "u00051" and second["withdrawals"][0]["user"] == "u00101"
    assert withdrawal["_id"].startswith("wd_")
    assert withdrawal["_id"] not in ("wd_" + "0" * 24, second["withdrawals"][0]["_id"])
    assert locked["_id"] == "user.locked:u00051:USDT"
    assert locked["pending"] == [withdrawal["hold_entry_id"]] != [entry_id]
    assert first["balances"][1]["_id"] == "platform.fees:platform:USDT"  # shared: summed, not copied
