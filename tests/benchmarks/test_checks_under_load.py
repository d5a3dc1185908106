"""The checks-under-load bench (issue 19) runs end to end with real threads and reports its
figures; it is not a timed test: only what must hold whatever the machine is asserted."""

from __future__ import annotations

import json

import pytest

from benchmarks import checks_under_load as load


@pytest.fixture(scope="module")
def result() -> dict:
    return load.run_benchmark(duration_seconds=3.0)


def test_bench_reports_both_runs_with_no_false_finding(result):
    for name in ("all_readers", "snapshots_only"):
        figures = result[name]
        assert figures["failure"] is None, figures["failure"]
        assert figures["false_findings"] == 0, figures["false_findings_listed"]
        assert figures["cuts_equal_the_journal"] and figures["entries"] > 0
        assert set(figures) >= {"writers", "seconds", "entries_per_second", "readers", "snapshots_taken", "tamper_found_by", "ok"}
    assert result["snapshots_only"]["snapshots_taken"] >= 1 and set(result["snapshots_only"]["readers"]) == {"liabilities"}
    assert json.loads(json.dumps(result, default=str))["round_trip_ms"] == 2


def test_bench_text_names_every_reader(result):
    text = load.benchmark_text(result)
    for reader in load.READERS:
        assert reader in text
    assert "false findings: 0" in text


def test_bench_cli_flag(monkeypatch, tmp_path, capsys):
    from core.cli import bench

    monkeypatch.setattr(load, "run_benchmark", lambda: {"ok": True, "round_trip_ms": 2, "all_readers": {}, "snapshots_only": {}})
    monkeypatch.setattr(load, "benchmark_text", lambda result: "checks under load")
    parser_args = type("Args", (), {"checks_under_load": True, "contention": False, "out": str(tmp_path / "r.json"), "json": False})
    assert bench.cmd_bench(parser_args()) == bench.EXIT_OK
    assert "checks under load" in capsys.readouterr().out and json.loads((tmp_path / "r.json").read_text())["ok"] is True
