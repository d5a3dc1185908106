"""Audit trail: types and actors picked from the trail's own values, prefix filters,
server-side pages with a total, chain verification, names and links beside user ids, and a
CSV that belongs to the filter shown."""

from __future__ import annotations

import re

from tests.pages.conftest import frame_with, open_page, platform_of, signed_in


def test_audit_trail_pages_with_a_total_and_verifies():
    at = open_page(signed_in("support"), "audit_trail")
    table = frame_with(at, "Event")  # "stream/seq": each stream is its own chain
    assert len(table) == 25 and list(table["At (UTC)"]) == sorted(table["At (UTC)"], reverse=True)  # newest first
    assert all(text.endswith(" UTC") for text in table["At (UTC)"])
    assert any(c.value.startswith("rows 1–25 of ") and " · page 1 of " in c.value for c in at.caption)
    at.button(key="audit_events_next").click()
    at.run()
    assert not at.exception
    assert frame_with(at, "Event")["At (UTC)"].max() <= table["At (UTC)"].min()
    at.button(key="audit_verify").click()
    at.run()
    assert any("Chain verified" in s.value for s in at.success)


def test_audit_trail_event_types_are_a_list_of_the_trails_own_types_with_families():
    at = open_page(signed_in("admin"), "audit_trail")
    platform = platform_of()
    stored = {d["type"] for d in platform.store.collection("audit").find({}, sort=[("seq", 1)], projection={"type": 1})}
    options = at.selectbox(key="audit_type").options
    assert stored <= set(options) and "approval.*" in options and options[0] == "(any)"
    at.selectbox(key="audit_type").select("approval.*")
    at.run()
    assert not at.exception
    shown = set(frame_with(at, "Type")["Type"])
    assert len(shown) > 1 and all(t.startswith("approval.") for t in shown)
    actors = at.selectbox(key="audit_actor").options
    assert "system" in actors and len(actors) > 2


def test_audit_trail_user_rows_carry_a_name_and_a_link_to_the_user():
    at = open_page(signed_in("admin"), "audit_trail")
    at.text_input(key="audit_user").input("u00*")
    at.run()
    assert not at.exception
    table = frame_with(at, "Event")
    assert len(table) and all(row["Open user"] == f"/user_lookup?user={row['User'].rsplit('(', 1)[1][:-1]}"
                              for row in table.to_dict("records"))
    assert all("(" in name for name in table["User"])  # "Name (u0001)"


def test_audit_trail_csv_belongs_to_the_filter_shown():
    at = open_page(signed_in("admin"), "audit_trail")
    first, other = [a for a in at.selectbox(key="audit_actor").options if a != "(any)"][:2]
    at.selectbox(key="audit_actor").select(first)
    at.run()
    at.button(key="audit_prepare").click()
    at.run()
    assert not at.exception
    prepared = at.session_state["audit_csv"]
    filter_seen, csv_text = prepared["filter"], prepared["csv"]
    assert filter_seen[0] == first
    assert {line.split(",")[3] for line in csv_text.splitlines()[1:]} == {first}
    assert at.get("download_button") and "password" not in csv_text.lower()
    at.selectbox(key="audit_actor").select(other)
    at.run()
    assert not at.exception
    assert not at.get("download_button")  # the admin file is not offered for another actor's filter
    assert any("filter changed" in w.value for w in at.warning)
    exports = platform_of().store.collection("audit").find({"type": "audit.export"}, limit=5)
    assert [(e["actor"], e["data"]["filter"]) for e in exports] == [("admin", {"actor": first})]


def test_audit_trail_operator_text_matches_nothing():
    at = open_page(signed_in("admin"), "audit_trail")
    for text in ('{"$ne": null}', ".*", "^a*"):
        at.text_input(key="audit_target").input(text)
        at.run()
        assert not at.exception
        assert any("No events match" in i.value for i in at.info), text


def test_audit_trail_data_shows_amounts_in_decimals_with_the_asset():
    at = open_page(signed_in("admin"), "audit_trail")
    at.selectbox(key="audit_type").select("approval.requested")
    at.run()
    assert not at.exception
    data = list(frame_with(at, "Event")["Data"])
    assert data and all("amount_minor" not in text for text in data)
    assert any(re.search(r"amount: [\d,]+\.\d+ [A-Z]{3,4}", text) for text in data), data


def test_audit_trail_shows_the_witness_and_a_truncated_tail(tmp_path):
    from core.ledger import Witness

    at = open_page(signed_in("admin"), "audit_trail")
    assert any("No witness file" in c.value for c in at.caption)
    platform = platform_of()
    platform.store.witness = Witness(tmp_path / "witness.log", platform.store.name)
    try:
        platform.ledger.audit.append(type="console.action", actor="admin", target="witnessed")
        at.run()
        assert any("still in the chain" in c.value and "witness.log" in c.value for c in at.caption)
        platform.store.raw("audit").delete_one({"target": "witnessed"})  # someone deletes the newest event
        at.run()
        assert any("deleted" in e.value for e in at.error)
    finally:
        platform.store.witness = None


# -- issue 22 ----------------------------------------------------------------------------------
def csv_rows(text: str) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def test_audit_trail_prepared_csv_is_withdrawn_when_a_matching_event_arrives():
    at = open_page(signed_in("admin"), "audit_trail")
    platform = platform_of()
    at.text_input(key="audit_user").input("u0003")
    at.run()
    at.button(key="audit_prepare").click()
    at.run()
    assert not at.exception and at.get("download_button")
    prepared = at.session_state["audit_csv"]
    matching = platform.store.collection("audit").count_documents({"user": "u0003"})
    assert len(csv_rows(prepared["csv"])) == prepared["rows"] == matching
    platform.ledger.audit.append(type="console.note", actor="admin2", role="admin", target="note", user="u0003")  # another admin
    at.run()
    assert not at.exception
    assert not at.get("download_button")  # the 25-row file is not served beside a count of 26
    assert any("1 new matching event arrived since the CSV was prepared" in w.value for w in at.warning)
    at.button(key="audit_prepare").click()
    at.run()
    assert len(csv_rows(at.session_state["audit_csv"]["csv"])) == matching + 1 and at.get("download_button")
    assert not any("new matching event" in w.value for w in at.warning)
    platform.ledger.audit.append(type="console.note", actor="admin2", role="admin", target="note", user="u0004")
    at.run()
    assert at.get("download_button")  # an event for someone else leaves the file as it is


def test_audit_trail_csv_of_a_filter_its_own_export_matches_stays_ready():
    """The export is itself audited (target "audit"): for a filter that selects that event it
    is counted in, so the file is not withdrawn by its own export."""
    at = open_page(signed_in("admin"), "audit_trail")
    at.text_input(key="audit_target").input("audit")  # the target of every audit.export event
    at.run()
    at.button(key="audit_prepare").click()
    at.run()
    at.run()
    assert not at.exception and at.get("download_button")


def test_audit_trail_user_field_accepts_what_user_lookup_accepts():
    at = open_page(signed_in("support"), "audit_trail")
    platform = platform_of()
    for typed in (" U0003 ", "u0003 "):
        at.text_input(key="audit_user").input(typed)
        at.run()
        assert not at.exception
        users = set(frame_with(at, "Event")["User"])
        assert len(users) == 1 and users.pop().endswith("(u0003)"), typed
    person = platform.store.collection("users").find_one({"user_id": "u0003"})
    at.text_input(key="audit_user").input(person["email"][:6].upper())  # part of the email: pick the person
    at.run()
    choice = at.selectbox(key="audit_user_choice")
    assert f"{person['name']} · u0003 · {person['email']}" in choice.options
    choice.set_value("u0003")
    at.run()
    assert {name.rsplit("(", 1)[1] for name in frame_with(at, "Event")["User"]} == {"u0003)"}


def test_audit_trail_csv_amounts_carry_their_asset_and_decimals():
    at = open_page(signed_in("admin"), "audit_trail")
    at.selectbox(key="audit_type").select("approval.requested")
    at.run()
    at.button(key="audit_prepare").click()
    at.run()
    rows = csv_rows(at.session_state["audit_csv"]["csv"])
    data = [row["data"] for row in rows]
    assert rows and not any("_minor" in text for text in data), data[:2]
    with_amounts = [text for text in data if '"amount"' in text and '"amount": null' not in text]  # a rebuild moves no amount
    assert with_amounts and all(re.search(r'"amount": "\d+\.\d+ [A-Z]{3,4}"', text) for text in with_amounts), with_amounts[:2]
