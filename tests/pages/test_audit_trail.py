"""Audit trail: filters, server-side pages, chain verification and a CSV without secrets."""

from __future__ import annotations

from tests.pages.conftest import frame_with, open_page, platform_of, signed_in


def test_audit_trail_pages_filters_and_verifies():
    at = open_page(signed_in("support"), "audit_trail")
    table = frame_with(at, "Seq")
    assert len(table) == 25 and list(table["Seq"]) == sorted(table["Seq"], reverse=True)
    at.button(key="audit_events_next").click()
    at.run()
    assert not at.exception
    assert frame_with(at, "Seq")["Seq"].max() < table["Seq"].min()
    at.button(key="audit_verify").click()
    at.run()
    assert any("Chain verified" in s.value for s in at.success)


def test_audit_trail_filter_by_type_and_export_csv():
    at = open_page(signed_in("admin"), "audit_trail")
    at.text_input(key="audit_type").input("approval.approved")
    next(b for b in at.get("form_submit_button") if b.proto.label == "Apply").click()
    at.run()
    assert not at.exception
    assert set(frame_with(at, "Type")["Type"]) == {"approval.approved"}
    at.button(key="audit_prepare").click()
    at.run()
    assert not at.exception
    csv_text = at.session_state["audit_csv"]
    assert csv_text.splitlines()[0].startswith("seq,") and "approval.approved" in csv_text
    assert "password" not in csv_text.lower()
    exports = platform_of().store.collection("audit").find({"type": "audit.export"}, limit=5)
    assert [e["actor"] for e in exports] == ["admin"]


def test_audit_trail_operator_text_matches_nothing():
    at = open_page(signed_in("admin"), "audit_trail")
    at.text_input(key="audit_actor").input('{"$ne": null}')
    next(b for b in at.get("form_submit_button") if b.proto.label == "Apply").click()
    at.run()
    assert not at.exception
    assert any("No events match" in i.value for i in at.info)
