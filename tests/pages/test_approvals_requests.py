"""Issue 22, items 12-14 in the console: an adjustment is requested from the Approvals page
and approved by a second admin there; an approver sees the balance each money request
would leave (and when approving would fail); a fee sweep beyond the fee wallet is refused
when requested; typed amounts follow one rule — "1,000" as the console shows it is
accepted, "0.000000001" is echoed as typed, an empty amount asks for one."""

from __future__ import annotations

from core.ledger import accounts as acct
from tests.pages.conftest import open_page, platform_of, signed_in

ADJUST = "approvals_adjust"


def count(query: dict | None = None) -> int:
    return platform_of().store.collection("approvals").count_documents(query or {})


def fill_adjustment(at, user: str, asset: str, value: str, reason: str = "goodwill after ticket 4411",
                    direction: str = "Credit the user"):
    at.text_input(key=f"{ADJUST}_user").input(user)
    at.selectbox(key=f"{ADJUST}_asset").select(asset)
    at.radio(key=f"{ADJUST}_direction").set_value(direction)
    at.text_input(key=f"{ADJUST}_amount").input(value)
    at.text_input(key=f"{ADJUST}_reason").input(reason)
    at.button(key=f"{ADJUST}_submit").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def expander_of(at, request_id: str):
    return next(e for e in at.expander if request_id in e.label)


def latest_adjustment_by(username: str) -> dict:
    return platform_of().store.collection("approvals").find({"kind": "adjustment", "requested_by": username},
                                                            sort=[("requested_at", -1)], limit=1)[0]


def test_adjustment_is_requested_on_the_approvals_page_and_approved_by_a_second_admin():
    """Item 12: there was no console form for an adjustment at all."""
    platform = platform_of()
    before = platform.ledger.balance(acct.user_available("u0001", "USDT")).minor
    at = open_page(signed_in("admin"), "approvals")
    assert any("Request an adjustment" in e.label for e in at.expander)
    fill_adjustment(at, " u0001 ", "USDT", "1,250.5")
    assert [s.value for s in at.success] and "1,250.500000 USDT" in at.success[0].value, [e.value for e in at.error]
    request = latest_adjustment_by("admin")
    assert request["state"] == "pending" and request["payload"] == {"user_id": "u0001", "asset": "USDT",
                                                                   "amount_minor": 1_250_500_000}
    assert at.text_input(key=f"{ADJUST}_amount").value == ""  # cleared after a success
    own = expander_of(at, request["_id"])
    assert own.button(key=f"approvals_approve_{request['_id']}").disabled  # never your own request
    assert platform.ledger.balance(acct.user_available("u0001", "USDT")).minor == before

    checker = open_page(signed_in("admin2"), "approvals")
    effect = " ".join(i.value for i in expander_of(checker, request["_id"]).info)
    assert "User u0001's available USDT holds" in effect and "approving leaves" in effect
    checker.button(key=f"approvals_approve_{request['_id']}").click()
    checker.run()
    assert not checker.exception
    assert platform.store.collection("approvals").find_one({"_id": request["_id"]})["result"]["ok"] is True
    assert platform.ledger.balance(acct.user_available("u0001", "USDT")).minor == before + 1_250_500_000


def test_adjustment_form_debits_and_refuses_in_plain_words_requesting_nothing():
    at = open_page(signed_in("admin"), "approvals")
    pending = count()
    refusals = {
        "nobody-here": ("5", "no user nobody-here"),
        "u0001": ("", "Enter an amount"),
    }
    for user, (value, expected) in refusals.items():
        fill_adjustment(at, user, "USDT", value)
        assert at.error and expected in at.error[0].value, (user, value, [e.value for e in at.error])
        assert not at.success
    for value, expected in (("-5", "without a sign"), ("1,00", "comma may only separate thousands"),
                            ("0.000000001", "0.000000001 has more than 8 decimals")):
        fill_adjustment(at, "u0001", "BTC", value)
        assert at.error and expected in at.error[0].value, (value, [e.value for e in at.error])
        assert "E-9" not in at.error[0].value
    assert count() == pending  # nothing was requested
    assert at.text_input(key=f"{ADJUST}_amount").value == "0.000000001"  # what was typed stays after a refusal
    fill_adjustment(at, "u0001", "BTC", "0.25", direction="Debit the user")
    assert at.success, [e.value for e in at.error]
    assert latest_adjustment_by("admin")["amount_minor"] == -25_000_000


def test_approver_sees_the_balance_each_money_request_would_leave_and_when_it_would_fail():
    """Item 13: the approver saw no warning at all."""
    platform = platform_of()
    maker = open_page(signed_in("admin"), "approvals")
    held = platform.ledger.balance(acct.user_available("u0002", "USDT")).minor
    fill_adjustment(maker, "u0002", "USDT", f"{held // 1_000_000 + 10}", direction="Debit the user")
    debit = latest_adjustment_by("admin")
    checker = open_page(signed_in("admin2"), "approvals")
    warning = " ".join(w.value for w in expander_of(checker, debit["_id"]).warning)
    assert "User u0002's available USDT holds" in warning and "approving it would fail" in warning
    sweep = platform.store.collection("approvals").find({"kind": "treasury.fee_sweep", "state": "pending"}, limit=1)[0]
    fees = platform.ledger.balance(acct.fees(sweep["asset"])).minor
    info = " ".join(i.value for i in expander_of(checker, sweep["_id"]).info)
    from core.approvals.view import amount_text

    assert (f"The fee wallet ({sweep['asset']}) holds {amount_text(fees, sweep['asset'], platform.registry)} now; "
            f"approving leaves {amount_text(fees - sweep['amount_minor'], sweep['asset'], platform.registry)}.") in info


def _request_on_fees_page(at, kind: str, asset: str, value: str, reason: str = "typed amount"):
    at.selectbox(key="fees_request_kind").select(kind)
    at.selectbox(key="fees_request_asset").select(asset)
    at.text_input(key="fees_request_amount").input(value)
    at.text_input(key="fees_request_reason").input(reason)
    at.button(key="fees_submit").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_fee_sweep_beyond_the_fee_wallet_is_refused_on_the_fees_page():
    """Item 13: the 5 BTC sweep against a 0.012 BTC wallet was warned about, then queued."""
    at = open_page(signed_in("admin"), "fees_liquidity")
    pending = count()
    _request_on_fees_page(at, "Fee sweep (fee wallet → treasury)", "USDT", "1000000")
    assert at.error and "more than the fee wallet holds" in at.error[0].value, [e.value for e in at.error]
    assert not at.success and count() == pending


def test_typed_amounts_follow_one_rule_on_the_fees_page():
    """Item 14: "1,000" (the form the console displays) is accepted; "0.000000001" is echoed
    as typed, not as 1E-9; an empty amount asks for one; separators out of place are refused."""
    at = open_page(signed_in("admin"), "fees_liquidity")
    topup = "Liquidity top-up (treasury → float)"
    pending = count()
    _request_on_fees_page(at, topup, "BTC", "0.000000001")
    assert at.error and "0.000000001 has more than 8 decimals" in at.error[0].value and "E-9" not in at.error[0].value
    _request_on_fees_page(at, topup, "BTC", "")
    assert at.error and at.error[0].value.startswith("Enter an amount"), at.error[0].value
    _request_on_fees_page(at, topup, "USDT", "1,00")
    assert at.error and "comma may only separate thousands" in at.error[0].value
    assert count() == pending
    _request_on_fees_page(at, topup, "USDT", "1,000")
    assert at.success and "1,000.000000 USDT" in at.success[0].value, [e.value for e in at.error]
    assert count() == pending + 1


def test_declared_reserve_accepts_the_displayed_form_of_an_amount():
    """Item 14: the same rule where a reserve is typed (Proof of liabilities)."""
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    at.selectbox(key="pol_asset").select("GBP")
    at.text_input(key="pol_amount").input("1,234,567.89")
    at.text_input(key="pol_address").input("bank-statement-acct-01")
    at.text_input(key="pol_evidence").input("statement 2026-11")
    at.button(key="FormSubmitter:pol_declare-Declare reserve").click()
    at.run()
    assert not at.exception and at.success, [e.value for e in at.error]
    declared = platform_of().store.collection("liabilities_reserves").find({}, limit=5)
    assert [d["amount_minor"] for d in declared] == [123_456_789]
