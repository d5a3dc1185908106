"""The proof-of-liabilities benchmark section at small sizes, and its place in `python -m core bench`.
Never asserts a timing: it checks proof sizes are logarithmic, totals exact, every proof
verifies, and every snapshot and proof query is served by a declared index."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import liabilities as section
from core.cli import bench as bench_command


@pytest.fixture(scope="module")
def result() -> dict:
    return section.run_liabilities_benchmark(tree_sizes=(1_000, 5_000), store_users=(20, 200))


def test_bench_liabilities_trees_are_exact_and_proofs_logarithmic(result):
    assert result["ok"]
    for row in result["trees"]:
        assert row["total_exact"] and row["proof_verifies"]
        assert row["leaf_count"] == 1 << (row["users"] - 1).bit_length()
        assert row["proof_steps"] == row["leaf_count"].bit_length() - 1
    small, large = result["trees"]
    assert large["proof_bytes"] < 2 * small["proof_bytes"]  # 5x the users, a few more steps


def test_bench_liabilities_bundles_are_padded_equal_records_and_the_tool_opens_one(result):
    for row in result["trees"]:
        bundle = row["bundle"]
        assert bundle["tool_ok"], bundle
        assert bundle["record_count"] == 1 << (row["users"] - 1).bit_length()  # one record per user, padded
        assert bundle["record_count"] * bundle["record_bytes"] < bundle["size_bytes"] < bundle["record_count"] * bundle["record_bytes"] + 2_000
        assert bundle["tool_seconds"] > bundle["lookup_and_verify_seconds"] > 0
    small, large = (row["bundle"] for row in result["trees"])
    assert large["record_bytes"] - small["record_bytes"] == 3 * 48  # 3 more path steps: a record grows by log2 of the users
    assert "public bundle" in section.text(result)


def test_bench_liabilities_snapshot_ops_are_index_covered_and_grow_by_batches(result):
    small, large = result["snapshots"]
    assert small["uncovered"] == [] and large["uncovered"] == []
    assert large["snapshot_ops"] - small["snapshot_ops"] <= 2  # 10x the users: batched inserts, same reads
    assert small["proof_ops"] == large["proof_ops"]
    assert "balances.find" in small["breakdown"] and "liabilities_users.insert_many" in small["breakdown"]
    assert "Merkle-sum tree build" in section.text(result)


def test_bench_command_includes_the_liabilities_section(monkeypatch, tmp_path, capsys):
    from benchmarks import bench, report

    monkeypatch.setattr(bench, "run_benchmark", lambda size, pages=True: {"ok": True})
    monkeypatch.setattr(bench, "write_results", lambda result, path: path)
    monkeypatch.setattr(report, "text", lambda result: "main benchmark")
    monkeypatch.setattr(section, "TREE_SIZES", (256,))
    monkeypatch.setattr(section.run_liabilities_benchmark, "__defaults__", ((256,), (10,), True))
    args = argparse.Namespace(size="small", skip_pages=True, out=str(tmp_path / "r.json"), json=False, markdown=False)
    assert bench_command.cmd_bench(args) == bench_command.EXIT_OK
    output = capsys.readouterr().out
    assert "main benchmark" in output and "Proof of liabilities" in output
