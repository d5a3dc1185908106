"""Fees & liquidity: the fee wallet equals the fee account's ledger balance, beside (never
added to) the liquidity float, each on its own chart panel; revenue by flow; sweep requests
go to the approval queue; the request form keeps its input after a refusal and warns when a
request could never complete."""

from __future__ import annotations

import json
import re

from core.ledger import accounts as acct
from tests.pages.conftest import frame_with, open_page, platform_of, signed_in
from console.frame import PEOPLE_KEY  # noqa: F401  (the frame fills it; the warnings read it)

FORM = ("fees_request_kind", "fees_request_asset", "fees_request_amount", "fees_request_reason")


def grouped(amount) -> str:
    """The page's text of an exact amount: thousands separators, all decimals."""
    whole, _, fraction = amount.text().lstrip("-").partition(".")
    return ("-" if amount.minor < 0 else "") + f"{int(whole):,}" + (f".{fraction}" if fraction else "")


def submit(at, kind: str | None = None, asset: str | None = None, amount: str = "", reason: str = ""):
    if kind:
        at.selectbox(key="fees_request_kind").select(kind)
    if asset:
        at.selectbox(key="fees_request_asset").select(asset)
    at.text_input(key="fees_request_amount").input(amount)
    at.text_input(key="fees_request_reason").input(reason)
    at.button(key="fees_submit").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_fees_liquidity_fee_wallet_equals_the_fee_account_balance():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    side_by_side = frame_with(at, "Liquidity total")
    assert len(side_by_side) >= 1
    for row in side_by_side.to_dict("records"):
        asset = row["Asset"]
        assert row["Fee wallet"] == grouped(platform.ledger.balance(acct.fees(asset)))
        free = platform.ledger.balance(acct.liquidity(asset))
        reserved = platform.ledger.balance(acct.liquidity_reserved(asset))
        assert row["Liquidity (free)"] == grouped(free) and row["Liquidity total"] == grouped(free + reserved)
    assert any(platform.ledger.balance(acct.fees(a)).minor > 0 for a in side_by_side["Asset"])
    assert any("," in text for text in side_by_side["Liquidity (free)"])  # thousands separators


def test_fees_liquidity_chart_gives_each_balance_its_own_panel_and_axis():
    """A 0.01 BTC fee wallet must stay visible beside a 40 BTC float: separate panels."""
    at = open_page(signed_in("admin"), "fees_liquidity")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [trace["x"] for trace in spec["data"]] == [["Fee wallet"], ["Liquidity free"], ["Liquidity reserved"]]
    assert [trace.get("yaxis", "y") for trace in spec["data"]] == ["y", "y2", "y3"]  # one scale each
    assert len({trace["marker"]["color"] for trace in spec["data"]}) == 3
    titles = [annotation["text"] for annotation in spec["layout"]["annotations"]]  # the panel titles
    assert len(titles) == 3 and all(re.search(r"<br><b>[\d,]+\.\d+</b>$", title) for title in titles)  # each with its exact amount


def test_fees_liquidity_revenue_by_flow_and_recent_moves_carry_their_asset():
    at = open_page(signed_in("admin"), "fees_liquidity")
    by_flow = frame_with(at, "Entry type")
    assert {"income"} <= set(by_flow["Kind"])
    assert "treasury.liquidity_topup" not in set(by_flow["Entry type"])  # the float is never revenue
    assert all(text.endswith(" " + asset) for text, asset in zip(by_flow["Amount"], by_flow["Asset"]))
    recent = frame_with(at, "When (UTC)")
    assert {"Asset", "Amount", "Approved by"} <= set(recent.columns)
    assert all(when.endswith(" UTC") for when in recent["When (UTC)"])
    assert all(amount.endswith(" " + asset) for amount, asset in zip(recent["Amount"], recent["Asset"]))


def test_fees_liquidity_sweep_request_waits_for_approval_and_moves_nothing():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    asset = next(a for a in frame_with(at, "Liquidity total")["Asset"] if platform.ledger.balance(acct.fees(a)).minor > 0)
    before = platform.ledger.balance(acct.fees(asset))
    pending = platform.store.collection("approvals").count_documents({"state": "pending"})
    submit(at, asset=asset, amount=before.text(), reason="monthly sweep")
    assert any("waiting for" in s.value for s in at.success), [e.value for e in at.error]
    assert platform.ledger.balance(acct.fees(asset)) == before
    assert platform.store.collection("approvals").count_documents({"state": "pending"}) == pending + 1
    assert at.text_input(key="fees_request_amount").value == ""  # a success clears the form for the next request


def test_fees_liquidity_refused_request_keeps_the_form_and_the_fix_is_the_intended_request():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    kind, asset = "Liquidity top-up (treasury → float)", "BTC"
    submit(at, kind, asset, "0.123456789", "float is low")  # 9 decimals: BTC has 8
    assert at.error and "8 decimals" in at.error[0].value
    assert [at.selectbox(key=FORM[0]).value, at.selectbox(key=FORM[1]).value, at.text_input(key=FORM[2]).value,
            at.text_input(key=FORM[3]).value] == [kind, asset, "0.123456789", "float is low"]
    submit(at, amount="0.12345678", reason="float is low")
    assert any("waiting for" in s.value for s in at.success), [e.value for e in at.error]
    made = platform.store.collection("approvals").find({"requested_by": "admin", "state": "pending"}, sort=[("requested_at", -1)], limit=1)[0]
    assert (made["kind"], made["asset"], made["amount_minor"], made["reason"]) == ("treasury.liquidity_topup", "BTC", 12_345_678, "float is low")


def test_fees_liquidity_refuses_bad_amounts_in_plain_words():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    pending = platform.store.collection("approvals").count_documents({"state": "pending"})
    for text in ("-5", "0.123456789123", "abc", "0", "", "NaN", "1" * 30):
        submit(at, amount=text, reason="try")
        assert at.error, text
        assert not any(word in at.error[0].value for word in ("int64", "minor units")), at.error[0].value
    assert platform.store.collection("approvals").count_documents({"state": "pending"}) == pending


def test_fees_liquidity_warns_when_a_request_could_never_complete():
    """A sweep far above the fee wallet: the wallet holds less, and the amount needs two
    approvers while only one other admin exists (the demo has admin and admin2)."""
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    asset = "USDT"
    held = platform.ledger.balance(acct.fees(asset))
    assert held.minor > 0
    at.selectbox(key="fees_request_kind").select("Fee sweep (fee wallet → treasury)")
    at.selectbox(key="fees_request_asset").select(asset)
    at.text_input(key="fees_request_amount").input("1000000")
    at.run()
    warnings = " ".join(w.value for w in at.warning)
    assert f"The fee wallet holds {grouped(held)} {asset}" in warnings and "1,000,000.000000 USDT" in warnings
    assert "needs 2 approver(s)" in warnings and "Alan Checker (admin2)" in warnings
    at.text_input(key="fees_request_amount").input("0.000001")
    at.run()
    assert not at.warning
