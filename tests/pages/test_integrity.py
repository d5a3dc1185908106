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

    from core.base.errors import PermissionDeniedError
    from core.legacy import reconcile_platform
    from core.base.permissions import Principal, Role

    open_page(signed_in("admin"), "integrity")
    with pytest.raises(PermissionDeniedError):
        reconcile_platform(platform_of(), Principal(name="qa", role=Role.QA))


# -- issue 22 ----------------------------------------------------------------------------------
def plant_drift_and_check_as_support() -> str:
    """Support's platform check finds a balance edited behind the ledger's back (a stored,
    critical run); returns the run id and leaves the drift in place."""
    from core import integrity
    from core.base.permissions import Principal, Role

    platform = platform_of()
    account = acct.user_available("u0003", "BTC").id
    platform.store.raw("balances").update_one({"_id": account}, {"$inc": {"balance_minor": 1}})
    report = integrity.check_platform(platform, Principal(name="support", role=Role.SUPPORT), full=True)
    assert not report.ok and report.run_id
    return report.run_id


def test_integrity_any_stored_run_opens_from_the_history():
    at = open_page(signed_in("admin"), "integrity")
    run_id = plant_drift_and_check_as_support()
    at.run()  # the admin's page, before the admin ran anything: the run is in the history
    assert not at.exception
    picker = at.selectbox(key="integrity_history_open")
    assert any(option.endswith("· platform · critical (1 finding)") for option in picker.options), picker.options
    picker.set_value(run_id)
    at.run()
    assert not at.exception
    assert any(s.value.startswith("Run: platform at ") and "by Sam Support (support) — CRITICAL" in s.value for s in at.subheader)
    row = frame_with(at, "Severity").iloc[0]
    assert "(u0003) · available BTC" in row["Account"] and row["Difference"] == "0.00000001 BTC"


def test_integrity_a_link_opens_that_run():
    run_id = plant_drift_and_check_as_support()
    at = signed_in("admin")
    at.query_params["run"] = run_id
    open_page(at, "integrity")
    assert any(run_id in c.value for c in at.caption)
    assert "(u0003) · available BTC" in frame_with(at, "Severity").iloc[0]["Account"]


def test_integrity_trend_has_one_bar_per_run_even_within_a_minute():
    at = run_platform_check(open_page(signed_in("admin"), "integrity"))  # clean
    plant_drift_and_check_as_support()  # critical, the same minute
    at.run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    critical, clean = (next(t for t in spec["data"] if t["name"] == name) for name in ("critical", "clean run"))
    runs = critical["x"]
    assert len(runs) == len(set(runs)) >= 5  # three stored demo runs and two new ones, each its own slot
    assert critical["y"][-1] == 1 and clean["text"][-1] == ""  # the critical run carries no "OK"
    assert clean["text"][-2] == "OK" and critical["y"][-2] == 0


def test_integrity_incremental_run_says_what_it_covered_and_admins_can_run_a_full_check():
    at = run_platform_check(run_platform_check(open_page(signed_in("admin"), "integrity")))
    caption = next(c.value for c in at.caption if c.value.startswith(("Incremental check", "Full check")))
    assert caption.startswith("Incremental check: it verified only what changed since the last verified anchor")
    assert "Run a full check" in caption
    at.button(key="integrity_run_full").click()
    at.run()
    assert not at.exception
    caption = next(c.value for c in at.caption if c.value.startswith(("Incremental check", "Full check")))
    assert caption.startswith("Full check: the whole journal (") and "entries), " in caption
    history = frame_with(at, "Mode")
    assert list(history["Mode"])[:2] == ["full", "incremental"]
    support = open_page(signed_in("support"), "integrity")
    assert "integrity_run_full" not in [b.key for b in support.button]  # a full check is the admins' call


def test_integrity_user_field_accepts_what_user_lookup_accepts():
    at = open_page(signed_in("support"), "integrity")
    platform = platform_of()
    for typed in (" U0001 ", "u0001\t", "U0001"):
        at.text_input(key="integrity_user").input(typed)
        at.run()
        at.button(key="integrity_run_user").click()
        at.run()
        assert not at.exception and not at.error, typed
        assert any("user " in s.value and "(u0001) at " in s.value for s in at.subheader), typed
    person = platform.store.collection("users").find_one({"user_id": "u0002"})
    surname = person["name"].split()[-1]
    at.text_input(key="integrity_user").input(surname[:-1].upper())  # part of a name: the matches are offered
    at.run()
    choice = at.selectbox(key="integrity_user_choice")
    assert f"{person['name']} · u0002 · {person['email']}" in choice.options
    choice.set_value("u0002")
    at.run()
    at.button(key="integrity_run_user").click()
    at.run()
    assert not at.exception and any("(u0002) at " in s.value for s in at.subheader)


def test_integrity_findings_without_a_user_show_no_none_link():
    at = open_page(signed_in("admin"), "integrity")
    platform = platform_of()
    at.session_state["integrity_report"] = {
        "run_id": "run_x", "ok": False, "severity": "warning", "scope": "platform", "mode": "full",
        "started_at": platform.clock.now(), "duration_ms": 5,
        "counts": {"critical": 0, "warning": 2, "info": 0, "findings": 2, "entries_checked": 9, "accounts_checked": 3},
        "findings": [{"kind": "commission_owed", "severity": "warning", "subject": "wd_1", "message": "owed", "user": None},
                     {"kind": "commission_owed", "severity": "warning", "subject": "wd_2", "message": "owed", "user": "u0003"}],
    }
    at.run()
    table = frame_with(at, "Severity")
    assert list(table["Open user"]) == ["", "/user_lookup?user=u0003"]  # an empty cell, never a grey "None"
