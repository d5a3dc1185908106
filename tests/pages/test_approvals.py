"""Approvals: approving on the page changes the ledger and the audit trail; refusals
(reject without a reason) show a message and change nothing; Approve is disabled on your
own request with the reason shown; decided requests show who decided, when and why; details
are readable with a link to the user; too few eligible approvers are flagged."""

from __future__ import annotations

from core.ledger import accounts as acct
from tests.helpers import snapshot
from tests.pages.conftest import frame_with, open_page, platform_of, signed_in

WATCHED = ("entries", "balances", "approvals")


def pending(kind: str) -> dict:
    documents = platform_of().store.collection("approvals").find({"state": "pending", "kind": kind}, limit=5)
    assert documents, f"the demo has a pending {kind}"
    return documents[0]


def request_topup(at, amount: str = "1000", reason: str = "float is low"):
    open_page(at, "fees_liquidity")
    at.selectbox(key="fees_request_kind").select("Liquidity top-up (treasury → float)")
    at.selectbox(key="fees_request_asset").select("USDT")
    at.text_input(key="fees_request_amount").input(amount)
    at.text_input(key="fees_request_reason").input(reason)
    at.button(key="fees_submit").click()
    at.run()
    assert not at.exception
    return platform_of().store.collection("approvals").find({"state": "pending", "requested_by": "admin"},
                                                            sort=[("requested_at", -1)], limit=1)[0]


def test_approvals_queue_lists_pending_requests_of_every_kind_with_names_and_a_total():
    at = open_page(signed_in("admin"), "approvals")
    table = frame_with(at, "Kind")
    assert set(table["State"]) == {"pending"}
    assert {"deposit.manual", "adjustment", "treasury.fee_sweep", "treasury.liquidity_topup",
            "treasury.liquidity_withdrawal", "legacy.rebuild"} <= set(table["Kind"])
    assert all(when.endswith(" UTC") for when in table["Requested (UTC)"])
    assert all(text == "" or text.split()[-1].isupper() for text in table["Amount"])  # "1,000.000000 USDT"
    assert any(c.value.startswith(f"rows 1–{len(table)} of {len(table)}") for c in at.caption)
    deposit = table[table["Kind"] == "deposit.manual"].iloc[0]
    assert deposit["Open user"].startswith("/user_lookup?user=")


def test_approvals_details_are_readable_with_a_link_to_the_user():
    at = open_page(signed_in("admin"), "approvals")
    request = pending("deposit.manual")
    assert not at.code  # no raw JSON
    expander = next(e for e in at.expander if request["_id"] in e.label)
    frame = next(t.value for t in expander.table if "Value" in t.value.columns)
    fields = dict(zip(frame.index, frame["Value"]))
    assert fields["Amount"].endswith(" " + request["asset"]) and "." in fields["Amount"]
    assert fields["User"] == request["payload"]["user_id"]
    links = [link.proto for link in expander.get("page_link")]
    user_id = request["payload"]["user_id"]
    name = platform_of().store.collection("users").find_one({"user_id": user_id})["name"]
    assert [(link.label, link.query_string) for link in links] == [(f"Open {name} ({user_id}) in User lookup", f"user={user_id}")]


def test_approvals_approve_changes_the_ledger_and_the_audit_trail():
    at = open_page(signed_in("admin"), "approvals")
    platform = platform_of()
    request = pending("deposit.manual")
    user, asset = request["payload"]["user_id"], request["asset"]
    before = platform.ledger.balance(acct.user_available(user, asset))
    at.text_input(key=f"approvals_reason_{request['_id']}").input("statement line matches")
    at.button(key=f"approvals_approve_{request['_id']}").click()
    at.run()
    assert not at.exception
    assert any("approved" in s.value for s in at.success), [e.value for e in at.error]
    after = platform.ledger.balance(acct.user_available(user, asset))
    assert after.minor - before.minor == request["amount_minor"]
    events = platform.store.collection("audit").find({"target": request["_id"]}, sort=[("seq", 1)], limit=10)
    assert any(e["type"] == "approval.approved" and e["actor"] == "admin" and e["role"] == "admin" for e in events)
    assert platform.store.collection("approvals").find_one({"_id": request["_id"]})["state"] == "approved"
    assert request["_id"] not in set(frame_with(at, "Kind")["Id"])  # left the pending queue
    at.selectbox(key="approvals_state").select("approved")
    at.run()
    row = frame_with(at, "Kind").set_index("Id").loc[request["_id"]]
    assert row["Decided by"] == "Ada Admin (admin)" and row["Decided at"].endswith(" UTC")
    assert row["Decision reason"] == "statement line matches" and row["Approvals"] == "1/1 — Ada Admin (admin)"


def test_approvals_reject_needs_a_reason_and_the_history_shows_the_rejection_reason():
    at = open_page(signed_in("admin"), "approvals")
    platform = platform_of()
    request = pending("adjustment")
    before = snapshot(platform.store, WATCHED)
    at.button(key=f"approvals_reject_{request['_id']}").click()
    at.run()
    assert not at.exception and at.error
    assert snapshot(platform.store, WATCHED) == before
    at.text_input(key=f"approvals_reason_{request['_id']}").input("no ticket references this credit")
    at.button(key=f"approvals_reject_{request['_id']}").click()
    at.run()
    assert not at.exception
    assert platform.store.collection("approvals").find_one({"_id": request["_id"]})["state"] == "rejected"
    at.selectbox(key="approvals_state").select("rejected")
    at.run()
    row = frame_with(at, "Kind").set_index("Id").loc[request["_id"]]
    assert row["Decision reason"] == "no ticket references this credit"
    assert row["Request reason"] == request["reason"] and row["Decided by"] == "Ada Admin (admin)"
    history = [t.value for t in at.table if "What" in t.value.columns][-1]
    assert list(history["What"]) == ["requested", "rejected"]
    assert history["Why"].iloc[-1] == "no ticket references this credit"


def test_approvals_approve_is_disabled_on_your_own_request_and_another_admin_approves():
    """A request made on the Fees page by admin cannot be approved by admin (the button
    says why before anyone clicks); admin2 can."""
    at = signed_in("admin")
    mine = request_topup(at)
    platform = platform_of()
    float_before = platform.ledger.balance(acct.liquidity("USDT"))
    open_page(at, "approvals")
    button = at.button(key=f"approvals_approve_{mine['_id']}")
    assert button.disabled
    assert any("You requested this" in c.value for c in at.caption)
    other = open_page(signed_in("admin2"), "approvals")
    assert not other.button(key=f"approvals_approve_{mine['_id']}").disabled
    other.button(key=f"approvals_approve_{mine['_id']}").click()
    other.run()
    assert not other.exception
    assert platform.ledger.balance(acct.liquidity("USDT")).minor - float_before.minor == mine["amount_minor"]


def test_approvals_flags_a_request_that_can_never_gather_enough_approvers():
    at = signed_in("admin")
    big = request_topup(at, amount="10000000", reason="large float")
    assert big["approvals_required"] == 2  # above the second threshold: admin2 is the only other admin
    open_page(at, "approvals")
    assert any("only 1 enabled admin(s)" in w.value for w in at.warning)


def test_approvals_page_reads_the_names_of_all_its_requests_in_one_query():
    """One `users` read for the whole page, not one per pending request: the page costs the
    same round trips however long the queue is."""
    import streamlit as st

    at = signed_in("admin")
    st.cache_data.clear()
    store = platform_of().store
    store.log.reset()
    open_page(at, "approvals")
    linked = [e for e in at.expander if e.get("page_link")]
    assert len(linked) >= 2  # several pending requests name a user
    assert [r.operation for r in store.log.records if r.collection == "users"] == ["find"]
    request = pending("deposit.manual")
    name = store.collection("users").find_one({"user_id": request["payload"]["user_id"]})["name"]
    expander = next(e for e in at.expander if request["_id"] in e.label)
    assert expander.get("page_link")[0].proto.label.startswith(f"Open {name} (")
