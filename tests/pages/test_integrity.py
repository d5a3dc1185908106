"""Integrity: run the platform check from the page; findings, history and trend appear."""

from __future__ import annotations

import json

from tests.pages.conftest import frame_with, open_page, platform_of, signed_in


def test_integrity_platform_run_is_stored_and_shown():
    at = open_page(signed_in("support"), "integrity")
    platform = platform_of()
    runs_before = platform.store.collection("integrity_runs").count_documents({})
    at.button(key="integrity_run_platform").click()
    at.run()
    assert not at.exception
    assert any("Latest run: platform" in s.value for s in at.subheader)
    assert any("No findings" in s.value for s in at.success)
    assert platform.store.collection("integrity_runs").count_documents({}) == runs_before + 1
    history = frame_with(at, "Scope")
    assert len(history) >= 1 and history["Result"].iloc[0] == "OK"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "Findings per platform run" in spec["layout"]["title"]["text"]


def test_integrity_user_check_with_unknown_user_is_a_clear_message():
    at = open_page(signed_in("admin"), "integrity")
    at.text_input(key="integrity_user").input("no such user!")
    at.run()
    at.button(key="integrity_run_user").click()
    at.run()
    assert not at.exception
    assert at.error  # an invalid id is refused by core, shown as a message


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
    assert metrics["Drift"] == str(len(expected.drift))
    assert metrics["Float noise (< 1 minor unit)"] == str(len(expected.noise))
    table = frame_with(at, "Collection")
    shown = set(zip(table["User"], table["Currency"], table["Collection"], table["Field"]))
    assert shown == {(d["user"], d["currency"], d["collection"], d["field"]) for d in expected.drift[:200]}


def test_integrity_legacy_reconcile_needs_a_permission():
    import pytest

    from core.errors import PermissionDeniedError
    from core.legacy import reconcile_platform
    from core.permissions import Principal, Role

    open_page(signed_in("admin"), "integrity")
    with pytest.raises(PermissionDeniedError):
        reconcile_platform(platform_of(), Principal(name="qa", role=Role.QA))
