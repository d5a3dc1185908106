"""Flow tests: every scenario is preselected; QA runs scenarios in a sandbox (the live ledger
is untouched, the run audited); evidence shows only changed accounts in decimals with the
asset and a change column; a failing scenario opens by itself with a decimal message."""

from __future__ import annotations

import re

from core.flowtests import runner
from tests.helpers import snapshot
from tests.pages.conftest import frame_with, open_page, platform_of, signed_in


def test_flow_tests_every_scenario_is_preselected():
    at = signed_in("qa")
    assert at.multiselect(key="flows_chosen").value == runner.list_scenarios()


def test_flow_tests_qa_runs_a_scenario_with_readable_evidence():
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
    assert list(frame_with(at, "Scenario")["Result"]) == ["PASS"]
    evidence = frame_with(at, "Change")
    assert list(evidence.columns) == ["Account", "Before", "After", "Change"]
    assert all(text != "" and text.split()[-1].isupper() for text in evidence["After"])  # "0.50000000 BTC"
    assert all(before != after for before, after in zip(evidence["Before"], evidence["After"]))  # only changes
    assert snapshot(platform.store, ("entries", "balances")) == ledger_before  # sandboxed
    runs = platform.store.collection("audit").find({"type": "flows.run"}, limit=5)
    assert [(e["actor"], e["role"]) for e in runs] == [("qa", "qa")]


def failing_report() -> runner.RunReport:
    from core.flowtests.sandbox import StepRecord

    balances_before = {"user.available:alice:BTC": {"minor": 0, "text": "0.00000000"},
                       "platform.fees:platform:BTC": {"minor": 0, "text": "0.00000000"},
                       "user.available:bob:BTC": {"minor": 5, "text": "0.00000005"}}
    balances_after = {"user.available:alice:BTC": {"minor": 99_000_000, "text": "0.99000000"},
                      "platform.fees:platform:BTC": {"minor": 1_200_000, "text": "0.01200000"},
                      "user.available:bob:BTC": {"minor": 5, "text": "0.00000005"}}
    step = StepRecord(name="fee booked once", ok=False,
                      detail="key 'dep-1' at version 2: fees: expected (1000000, 99000000), got (1200000, 98800000)",
                      balances_before=balances_before, balances_after=balances_after, entries=[], fees_booked={},
                      self_check={"ok": True, "findings": []}, entries_written=1)
    good = runner.ScenarioReport(name="fine", ok=True, duration_ms=5, steps=[])
    bad = runner.ScenarioReport(name="broken", ok=False, duration_ms=7, steps=[step], error="step 'fee booked once' failed")
    return runner.RunReport(ok=False, scenarios=[good, bad], duration_ms=12)


def test_flow_tests_failure_is_expanded_in_decimals(monkeypatch):
    monkeypatch.setattr(runner, "run_scenarios", lambda *args, **kwargs: failing_report())
    at = signed_in("qa")
    at.button(key="flows_run").click()
    at.run()
    assert not at.exception
    assert any("1/2 scenarios passed" in e.value for e in at.error)
    expanders = {e.label: e for e in at.expander}
    assert expanders["FAIL · broken"].proto.expanded and not expanders["PASS · fine"].proto.expanded
    text = " ".join(m.value for m in at.markdown)
    assert ("key 'dep-1' at version 2: fees: expected (0.01000000 BTC, 0.99000000 BTC), got (0.01200000 BTC, 0.98800000 BTC)"
            in text)  # ids and other numbers stay as they are
    evidence = frame_with(at, "Change")
    assert list(evidence["Account"]) == ["fees BTC", "alice · available BTC"]  # bob did not change: hidden
    assert list(evidence["Change"]) == ["+0.01200000 BTC", "+0.99000000 BTC"]
    assert any("1 watched account(s) unchanged" in c.value for c in at.caption)


# -- issue 22 ----------------------------------------------------------------------------------
def test_flow_tests_evidence_says_amounts_with_their_asset_and_times_with_their_zone():
    at = signed_in("qa")
    at.multiselect(key="flows_chosen").set_value(["withdrawal_two_approvers", "expired_quote", "chaos"])
    at.button(key="flows_run").click()
    at.run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "external +5.94 BTC, fees +0.06 BTC" in text
    assert re.search(r"expired at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    assert "minor units" not in text
    assert not re.search(r"(?<![\w.,])\d{7,}(?![\w.,])", text)  # no bare minor-unit numbers (chaos refusals too)
    assert re.search(r"holds \d+\.\d{8} BTC, the quote needs \d+\.\d{8} BTC", text)


def test_flow_tests_selection_count_and_the_last_report_survive_a_reload():
    names = runner.list_scenarios()
    at = signed_in("qa")
    assert any(c.value == f"All {len(names)} scenarios are selected; remove any you do not want." for c in at.caption)
    at.multiselect(key="flows_chosen").set_value(["deposit", "swap"])
    at.run()
    assert any(c.value == f"2 of {len(names)} scenarios selected." for c in at.caption)
    at.button(key="flows_run").click()
    at.run()
    assert any("2/2 scenarios passed" in s.value for s in at.success)
    reloaded = signed_in("qa")  # a reload: a new session of the same person
    assert reloaded.multiselect(key="flows_chosen").value == ["deposit", "swap"]
    assert any("2/2 scenarios passed" in s.value for s in reloaded.success)
    assert list(frame_with(reloaded, "Scenario")["Scenario"]) == ["deposit", "swap"]
    reloaded.button(key="flows_select_all").click()
    reloaded.run()
    assert reloaded.multiselect(key="flows_chosen").value == names
    other = open_page(signed_in("admin"), "flow_tests")
    assert "flows_report" not in other.session_state and not other.success  # another person's run is theirs alone


def test_flow_tests_selection_widget_default_always_equals_the_selection_held():
    """The browser draws the selection from the widget's default whenever it mounts it again
    (a value set through session state reaches it once): a default that differed from the
    selection the page holds once showed nothing selected above "All 22 scenarios are
    selected", and "Run selected" then ran nothing. On every run the two agree."""
    at = signed_in("qa")
    names = runner.list_scenarios()

    def default_and_value() -> tuple[list[str], list[str]]:
        widget = at.multiselect(key="flows_chosen")
        return [widget.options[i] for i in widget.proto.default], list(widget.value)

    for _ in range(2):  # the first run after login, and a rerun
        assert default_and_value() == (names, names)
        at.run()
    at.multiselect(key="flows_chosen").set_value(names[:2])
    at.run()
    assert default_and_value() == (names[:2], names[:2])
    at.button(key="flows_select_all").click()
    at.run()
    assert default_and_value() == (names, names)
