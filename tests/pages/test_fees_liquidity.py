"""Fees & liquidity: the fee wallet equals the fee account's ledger balance, beside (never
added to) the liquidity float; revenue by flow; sweep requests go to the approval queue."""

from __future__ import annotations

import json

from core.ledger import accounts as acct
from tests.pages.conftest import frame_with, open_page, platform_of, signed_in


def test_fees_liquidity_fee_wallet_equals_the_fee_account_balance():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    side_by_side = frame_with(at, "Liquidity total")
    assert len(side_by_side) >= 1
    for row in side_by_side.to_dict("records"):
        asset = row["Asset"]
        assert row["Fee wallet"] == platform.ledger.balance(acct.fees(asset)).text()
        free = platform.ledger.balance(acct.liquidity(asset))
        reserved = platform.ledger.balance(acct.liquidity_reserved(asset))
        assert row["Liquidity (free)"] == free.text() and row["Liquidity total"] == (free + reserved).text()
    assert any(platform.ledger.balance(acct.fees(a)).minor > 0 for a in side_by_side["Asset"])


def test_fees_liquidity_chart_shows_fee_wallet_and_float_as_separate_bars():
    at = open_page(signed_in("admin"), "fees_liquidity")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["x"] == ["Fee wallet", "Liquidity (free)", "Liquidity (reserved)"]


def test_fees_liquidity_revenue_by_flow_lists_income_and_payouts():
    at = open_page(signed_in("admin"), "fees_liquidity")
    by_flow = frame_with(at, "Entry type")
    assert {"income"} <= set(by_flow["Kind"])
    assert "treasury.liquidity_topup" not in set(by_flow["Entry type"])  # the float is never revenue


def test_fees_liquidity_sweep_request_waits_for_approval_and_moves_nothing():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    asset = next(a for a in frame_with(at, "Liquidity total")["Asset"] if platform.ledger.balance(acct.fees(a)).minor > 0)
    before = platform.ledger.balance(acct.fees(asset))
    pending = platform.store.collection("approvals").count_documents({"state": "pending"})
    at.selectbox(key="fees_request_asset").select(asset)
    at.text_input(key="fees_request_amount").input(before.text())
    at.text_input(key="fees_request_reason").input("monthly sweep")
    submit = next(b for b in at.get("form_submit_button") if b.proto.label == "Submit request")
    submit.click()
    at.run()
    assert not at.exception
    assert any("waiting for" in s.value for s in at.success), [e.value for e in at.error]
    assert platform.ledger.balance(acct.fees(asset)) == before
    assert platform.store.collection("approvals").count_documents({"state": "pending"}) == pending + 1


def test_fees_liquidity_refuses_bad_amounts_with_a_message():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    pending = platform.store.collection("approvals").count_documents({"state": "pending"})
    for text in ("-5", "0.123456789123", "abc", "0", "", "NaN", "1" * 30):
        at.text_input(key="fees_request_amount").input(text)
        at.text_input(key="fees_request_reason").input("try")
        next(b for b in at.get("form_submit_button") if b.proto.label == "Submit request").click()
        at.run()
        assert not at.exception
        assert at.error, text
    assert platform.store.collection("approvals").count_documents({"state": "pending"}) == pending
