"""The console refuses exponent, over-precise and non-finite amount text (issue 11): "1e3"
was once accepted as 1000 BTC. Refused in plain words, nothing requested, no traceback."""

from __future__ import annotations

from tests.pages.conftest import open_page, platform_of, signed_in

HOSTILE_AMOUNTS = ("1e3", "1E3", "1e-999999999", "1e999999999", "1.000000000000000000000000000001", "Infinity",
                   "0x10", "1_000")


def _submit(at, amount: str) -> None:
    at.selectbox(key="fees_request_kind").select("Liquidity top-up (treasury → float)")
    at.selectbox(key="fees_request_asset").select("BTC")
    at.text_input(key="fees_request_amount").input(amount)
    at.text_input(key="fees_request_reason").input("hostile amount")
    at.button(key="fees_submit").click()
    at.run()


def test_console_refuses_exponent_amount_1e3():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    pending = platform.store.collection("approvals").count_documents({})
    _submit(at, "1e3")
    assert not at.exception, [e.value for e in at.exception]
    assert at.error, "1e3 must be refused"
    assert "exponent" in at.error[0].value.lower() or "plain decimal" in at.error[0].value.lower(), at.error[0].value
    assert not at.success
    assert platform.store.collection("approvals").count_documents({}) == pending  # nothing was requested


def test_console_refuses_hostile_amount_text_without_a_traceback():
    at = open_page(signed_in("admin"), "fees_liquidity")
    platform = platform_of()
    pending = platform.store.collection("approvals").count_documents({})
    for text in HOSTILE_AMOUNTS:
        _submit(at, text)
        assert not at.exception, (text, [e.value for e in at.exception])
        assert at.error, text
        assert not any(word in at.error[0].value for word in ("Traceback", "decimal.", "Overflow")), at.error[0].value
        assert not at.success, text
    assert platform.store.collection("approvals").count_documents({}) == pending
