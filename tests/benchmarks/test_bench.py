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
from core.cli import main as cli
from tests.helpers import REPO


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
    # the directory search sorts on its multikey `keys` while bounding them (a blocking sort the
    # planner model names since issue 19; the search's rework is another change of issue 19)
    assert [s for s in result["index_coverage"]["uncovered"] if s["collection"] != "directory_search"] == []


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


def test_bench_reports_documents_read_for_every_page_and_check(result):
    base, scaled = result["labels"]
    assert result["page_labels"] == [base, scaled, f"{base}x{bench.PAGE_SCALE_FACTOR}"]
    for name, series in result["checks"].items():
        assert set(series["documents"]) == set(result["page_labels"]), name
        assert all(isinstance(v, int) and v >= 0 for v in series["documents"].values()), name
    for stem, page in result["pages"].items():
        assert set(page["documents"]) == set(result["page_labels"]), stem
    assert result["data_sets"][result["page_labels"][2]]["entries"] == bench.PAGE_SCALE_FACTOR * result["data_sets"][base]["entries"]


def test_bench_reports_read_rollups_so_their_pages_read_flat(result):
    """Overview and Fees & liquidity read rollups plus the unfolded tail: the documents they
    fetch do not grow from 1x to 10x to 50x (issue 15)."""
    from benchmarks.report import flat

    for stem in ("overview", "fees_liquidity"):
        documents = result["pages"][stem]["documents"]
        assert flat([documents[label] for label in result["page_labels"]]), (stem, documents)


def test_bench_incremental_check_reads_what_changed(result):
    from benchmarks.report import flat

    base, scaled = result["labels"]
    budget = next(b for b in result["budgets"] if b["budget"].startswith("incremental platform check"))
    assert budget["met"], budget
    for label in (base, scaled):
        run = result["integrity_findings"][label]["incremental"]
        assert run["mode"] == "incremental" and run["ok"]
        assert run["entries_checked"] >= bench.NEW_ENTRIES
    documents = result["checks"]["integrity.platform.incremental"]["documents"]
    operations = result["checks"]["integrity.platform.incremental"]["ops"]
    assert operations[base] == operations[scaled]  # the same change costs the same at 10x the journal
    # ... and reads the same documents, within the tolerance: the audit streams' heads are one row per
    # stream in use (at most AUDIT_STREAMS_DEFAULT, whatever the journal's length)
    assert flat([documents[base], documents[scaled]]), documents
    full = result["checks"]["integrity.platform"]["documents"]
    assert full[scaled] > 5 * full[base]  # the full check does grow with the journal (that is why it is scheduled)


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


def _documented_flow_rows(path: str, heading: str) -> dict[str, list[str]]:
    """The flow table under `heading` in a Markdown file: flow → its four figure cells."""
    text = (REPO / path).read_text(encoding="utf-8")
    table = text.split(heading, 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("path,heading", [("docs/performance.md", "### Store round trips per flow"),
                                          ("README.md", "#### Store round trips per flow")])
def test_bench_documented_flow_costs_match_the_code(result, path, heading):
    """Issue 22 item 22: the docs said swap and instant-buy execute cost 24 store operations
    while the code did 21. Every flow's figures (ours at both sizes — each flow costs the same
    at every size — legacy, ratio) must equal what the benchmark measures now."""
    documented = _documented_flow_rows(path, heading)
    base = result["labels"][0]
    measured = {row["flow"]: [str(row["ops"][base])] * 2 + [
        "—" if row["legacy_ops"] is None else str(row["legacy_ops"]),
        "—" if row["ratio"] is None else f"{row['ratio']:.2f}"] for row in result["flows"]}
    assert documented == measured, {flow: (documented.get(flow), figures) for flow, figures in measured.items()
                                    if documented.get(flow) != figures}


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
        "balances": [{"_id": "user.locked:u00001:USDT", "owner": "u00001", "balance_minor": 5}],
    }
    first, second = dataset.copy_of(original, 1, 50), dataset.copy_of(original, 2, 50)
    withdrawal = first["withdrawals"][0]
    assert withdrawal["user"] == "u00051" and second["withdrawals"][0]["user"] == "u00101"
    assert withdrawal["_id"].startswith("wd_")
    assert withdrawal["_id"] not in ("wd_" + "0" * 24, second["withdrawals"][0]["_id"])
    assert withdrawal["hold_entry_id"] not in (entry_id, second["withdrawals"][0]["hold_entry_id"])
    assert "balances" not in first  # projections are the heads of the re-threaded chains, never copied


def test_dataset_copies_thread_every_account_chain_through_the_copies(store, ledger, clock):
    """Shared accounts (the outside world here) run one chain through every copy: the copied
    journal passes the self-check and the rollups equal a from-scratch fold."""
    from core import rollups
    from core.ledger import Store, self_check
    from tests.helpers import deposit

    deposit(ledger, "u00001", "1", "USDT", key="pay-u00001")  # keys carry the user id: renamed per copy
    deposit(ledger, "u00002", "2", "USDT", key="pay-u00002")
    target = Store.embedded_store("copies")
    dataset.build_copies(dataset.dump(store), 3, 2, target)
    assert target.collection("entries").count_documents({}) == 6
    assert self_check(target, clock.now()).ok
    world = [d for d in target.raw("balances").find({"kind": "external", "asset": "USDT"})]  # the stripes the writer used
    assert sum(d["version"] for d in world) == 6 and sum(d["balance_minor"] for d in world) == -9_000_000
    assert rollups.stored(target) == rollups.recompute(target)


def test_bench_contention_runs_both_workloads_and_the_flows_with_exact_books(monkeypatch):
    """The contention bench at a tiny size (its figures are the bench's business, never a
    test's): hot and unshared trades and both flows run on both write paths, nothing fails,
    duplicate-key inserts are counted, and every logical balance is exact afterwards."""
    from benchmarks import contention

    monkeypatch.setattr(contention, "DURATION_SECONDS", 0.3)
    monkeypatch.setattr(contention, "BUDGET_WRITERS", 3)
    monkeypatch.setattr(contention, "HOT_RETRY_SEEDS", 1)
    monkeypatch.setattr(contention, "HOT_RETRY_STEPS", 80)
    result = contention.run_contention_benchmark(writers=(3,))
    assert [(row["engine"], row["writers"]) for row in result["rows"]] == [("striped", 3), ("previous", 3)]
    for row in result["rows"]:
        for figures in (row["hot"], row["unshared"], *row["flows"].values()):
            assert figures["failed"] == 0 and figures["books_exact"], figures
        assert row["hot"]["postings"] > 0 and row["flows"]["deposits"]["flows"] > 0 and row["flows"]["withdrawals"]["flows"] > 0
    assert set(result["budgets"]) and "duplicate-key inserts per flow" in contention.text(result)
    assert result["hot_retries"]["1x8"]["retries_per_post"] > result["hot_retries"]["64x8"]["retries_per_post"]


def test_bench_reports_what_a_real_server_would_examine(result):
    """Issue 19: keys and documents examined (planner model) for every page and every check
    but the full one, at 1×, 10× and 50×, also after entries were posted without a fold or
    a recovery; the incremental check and recovery examine as much at every size."""
    labels = result["page_labels"]
    assert result["dirty_entries"] > 0
    for stem, page in result["pages"].items():
        assert set(page["keys_examined"]) == set(labels) and set(page["documents_examined"]) == set(labels), stem
    assert any(stem.endswith(bench.DIRTY) for stem in result["pages"])
    from benchmarks.report import examined_flat

    for name in ("integrity.platform.incremental", f"integrity.platform.incremental{bench.DIRTY}", "recovery",
                 f"recovery{bench.DIRTY}", "two_leg_entry", "user_balances", "integrity.user"):
        series = result["checks"][name]
        assert examined_flat(series), (name, series["keys_examined"], series["documents_examined"])
    budgets = [b for b in result["budgets"] if "examined flat" in b["budget"]]
    assert {b["budget"].split(":")[0] for b in budgets} >= {f"page {stem}" for stem in result["pages"]}
    assert all(b["met"] or b["measured"]["growing"] for b in budgets)  # a miss names the shapes that grow
    assert "keys" in markdown(result) and "flat (±10%)" in markdown(result)
