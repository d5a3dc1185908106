"""Approvals: approving on the page changes the ledger and the audit trail; refusals
(reject without a reason, approving your own request) show a message and change nothing."""

from __future__ import annotations

from core.ledger import accounts as acct
from tests.helpers import snapshot
from tests.pages.conftest import frame_with, open_page, platform_of, signed_in

WATCHED = ("entries", "balances", "approvals")


def pending(kind: str) -> dict:
    documents = platform_of().store.collection("approvals").find({"state": "pending", "kind": kind}, limit=5)
    assert documents, f"the demo has a pending {kind}"
    return documents[0]


def test_approvals_queue_lists_pending_requests_of_every_kind():
    at = open_page(signed_in("admin"), "approvals")
    table = frame_with(at, "Kind")
    assert set(table["State"]) == {"pending"}
    assert {"deposit.manual", "adjustment", "treasury.fee_sweep", "treasury.liquidity_topup",
            "treasury.liquidity_withdrawal", "legacy.rebuild"} <= set(table["Kind"])


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


def test_approvals_reject_needs_a_reason_and_changes_nothing_without_one():
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


def test_approvals_requester_cannot_approve_their_own_request():
    """A request made on the Fees page by admin cannot be approved by admin; admin2 can."""
    platform = platform_of()  # noqa: F841 — created by the first run below
    at = open_page(signed_in("admin"), "fees_liquidity")
    at.selectbox(key="fees_request_kind").select("Liquidity top-up (treasury → float)")
    at.selectbox(key="fees_request_asset").select("USDT")
    at.text_input(key="fees_request_amount").input("1000")
    at.text_input(key="fees_request_reason").input("float is low")
    next(b for b in at.get("form_submit_button") if b.proto.label == "Submit request").click()
    at.run()
    platform = platform_of()
    mine = platform.store.collection("approvals").find({"state": "pending", "requested_by": "admin"}, limit=5)[0]
    float_before = platform.ledger.balance(acct.liquidity("USDT"))
    before = snapshot(platform.store, WATCHED)
    open_page(at, "approvals")
    at.button(key=f"approvals_approve_{mine['_id']}").click()
    at.run()
    assert not at.exception
    assert any("may not approve" in e.value for e in at.error), [e.value for e in at.error]
    assert snapshot(platform.store, WATCHED) == before
    other = open_page(signed_in("admin2"), "approvals")
    other.button(key=f"approvals_approve_{mine['_id']}").click()
    other.run()
    assert not other.exception
    assert platform.ledger.balance(acct.liquidity("USDT")).minor - float_before.minor == mine["amount_minor"]
