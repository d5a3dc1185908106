"""Integrity: run the platform check from the page; findings name the person and balance,
show decimal amounts with the asset and the full message, and link to the user; history
and an integer-count trend appear; an unknown user is refused with no run stored."""

from __future__ import annotations

import json

from core.ledger import accounts as acct
from tests.pages.conftest import frame_with, open_page, platform_of, signed_in


def run_platform_check(at):
    at.button(key="integrity_run_platform").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_integrity_platform_run_is_stored_and_shown():
    at = open_page(signed_in("support"), "integrity")
    platform = platform_of()
    runs_before = platform.store.collection("integrity_runs").count_documents({})
    run_platform_check(at)
    assert any(s.value.startswith("Run: platform at ") and " UTC by Sam Support (support) — OK" in s.value for s in at.subheader)
    assert any("No findings" in s.value for s in at.success)
    assert platform.store.collection("integrity_runs").count_documents({}) == runs_before + 1
    history = frame_with(at, "Scope")
    assert len(history) >= 1 and history["Result"].iloc[0] == "OK"
    assert history["Started"].iloc[0].endswith(" UTC") and history["By"].iloc[0] == "Sam Support (support)"  # a name, as elsewhere


def test_integrity_trend_counts_on_a_whole_number_axis_from_zero():
    at = run_platform_check(open_page(signed_in("admin"), "integrity"))
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "Findings per platform run" in spec["layout"]["title"]["text"]
    axis = spec["layout"]["yaxis"]
    assert axis["tickformat"] == "d" and axis["range"][0] == 0
    assert axis.get("dtick") in (1, None)  # whole steps: 1 for small counts, plotly's round steps above ten
    assert {trace["name"] for trace in spec["data"]} >= {"critical", "warning", "clean run"}
    assert "OK" in spec["data"][-1]["text"]  # the latest (clean) run is visible as such


def test_integrity_finding_names_the_user_with_decimal_amounts_full_message_and_link():
    """The issue's finding: `user.available:<id>:BTC`, 87916478197 vs 87916478198 minor units."""
    at = open_page(signed_in("support"), "integrity")
    platform = platform_of()
    person = platform.store.collection("users").find_one({"user_id": "u0003"})
    account = acct.user_available("u0003", "BTC").id
    at.session_state["integrity_report"] = {
        "run_id": "run_x", "ok": False, "severity": "critical", "scope": "platform", "started_at": platform.clock.now(),
        "duration_ms": 5, "counts": {"critical": 1, "warning": 0, "info": 0, "findings": 1, "entries_checked": 9,
                                     "accounts_checked": 3, "by_kind": {"projection_mismatch": 1}},
        "findings": [{"kind": "projection_mismatch", "severity": "critical", "subject": account,
                      "message": f"{account} holds 87916478198 at version 1, the journal says 87916478197 " + "(detail) " * 30,
                      "asset": "BTC", "expected": 87916478197, "actual": 87916478198, "difference": 1,
                      "account": account, "user": "u0003", "collection": None, "field": None}],
    }
    at.run()
    assert not at.exception
    row = frame_with(at, "Severity").iloc[0]
    assert row["Account"] == f"{person['name']} (u0003) · available BTC"
    assert (row["Expected"], row["Actual"], row["Difference"]) == ("879.16478197 BTC", "879.16478198 BTC", "0.00000001 BTC")
    assert row["Message"].startswith(f"{person['name']} (u0003) · available BTC holds 879.16478198 BTC at version 1, "
                                     "the journal says 879.16478197 BTC")  # a version number stays a number
    assert row["Message"].endswith("(detail) ")  # the whole message, not cut
    assert row["Open user"] == "/user_lookup?user=u0003"
    assert any(person["name"] in m.value for m in at.markdown)  # the full messages list
    options = at.selectbox(key="integrity_repair_account")
    assert options.options == [f"{person['name']} (u0003) · available BTC"]


def test_integrity_unknown_user_is_refused_and_no_run_is_stored():
    at = open_page(signed_in("admin"), "integrity")
    platform = platform_of()
    runs_before = platform.store.collection("integrity_runs").count_documents({})
    for text in ("no such user!", "u9999"):
        at.text_input(key="integrity_user").input(text)
        at.run()
        at.button(key="integrity_run_user").click()
        at.run()
        assert not at.exception
        assert at.error and not at.success, text  # never a green "no findings"
        assert at.text_input(key="integrity_user").value == text  # the input is kept
    assert "there is no user u9999" in at.error[0].value.lower()
    assert platform.store.collection("integrity_runs").count_documents({}) == runs_before


def test_integrity_legacy_reconcile_shows_the_planted_drift():
    at = open_page(signed_in("support"), "integrity")
    platform = platform_of()
    assert platform.legacy is not None  # the demo store carries a dirty legacy database
    from core.legacy.reconcile import reconcile

    expected = reconcile(platform.store, platform.legacy, platform.registry)
    assert expected.drift  # the demo plants drift, so the page has something true to show
    at.button(key="integrity_reconcile").click()
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Drift"] == f"{len(expected.drift):,}"
    assert metrics["Float noise (< 1 smallest unit)"] == f"{len(expected.noise):,}"
    table = frame_with(at, "Collection")
    shown = set(zip(table["Open user"], table["Currency"], table["Collection"], table["Field"]))
    assert shown == {(f"/user_lookup?user={d['user']}", d["currency"], d["collection"], d["field"]) for d in expected.drift[:200]}
    assert all(text.endswith(" " + currency) for text, currency in zip(table["Expected"], table["Currency"]))


def test_integrity_legacy_reconcile_needs_a_permission():
    import pytest

    from core.errors import PermissionDeniedError
    from core.legacy import reconcile_platform
    from core.permissions import Principal, Role

    open_page(signed_in("admin"), "integrity")
    with pytest.raises(PermissionDeniedError):
        reconcile_platform(platform_of(), Principal(name="qa", role=Role.QA))
