"""Flow tests: QA runs a scenario in a sandbox; the live ledger is untouched, the run audited."""

from __future__ import annotations

from core import runner
from tests.helpers import snapshot
from tests.pages.conftest import frame_with, platform_of, signed_in


def test_flow_tests_qa_runs_a_scenario_with_evidence():
    at = signed_in("qa")
    assert [t.value for t in at.title] == ["Flow tests"]
    platform = platform_of()
    ledger_before = snapshot(platform.store, ("entries", "balances"))
    name = "deposit" if "deposit" in runner.list_scenarios() else runner.list_scenarios()[0]
    at.multiselect(key="flows_chosen").set_value([name])
    at.button(key="flows_run").click()
    at.run()
    assert not at.exception
    assert any("1/1 scenarios passed" in s.value for s in at.success), [e.value for e in at.error]
    summary = frame_with(at, "Scenario")
    assert list(summary["Result"]) == ["PASS"]
    assert at.session_state["flows_report"]["scenarios"][0]["steps"]
    assert snapshot(platform.store, ("entries", "balances")) == ledger_before  # sandboxed
    runs = platform.store.collection("audit").find({"type": "flows.run"}, limit=5)
    assert [(e["actor"], e["role"]) for e in runs] == [("qa", "qa")]
