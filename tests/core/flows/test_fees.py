"""Fees are booked once over a mixed workload; the float never holds fee revenue; every
flow read is served by a declared index."""

from __future__ import annotations

from datetime import timedelta

from core.ledger import accounts as acct
from core import approvals
from core.ledger.accounts import AccountKind
from core.flows import instant, p2p, recovery, swap, treasury, withdrawal
from core.flowtests.sandbox import CHECKER, MAKER, Sandbox, fee_accounting, fees_booked_once
from core.base.permissions import SYSTEM
from core.ledger.selfcheck import scan, self_check
from core.ledger.store import uncovered


def _workload(platform, clock):
    box = Sandbox(platform=platform, clock=clock)
    platform.store.collection("user_accounts").insert_many(
        [
            {"user_id": "alice", "referred_by": "gus", "referral_tier": "golden"},
            {"user_id": "sam", "referred_by": "ray", "referral_tier": "standard"},
        ]
    )
    box.fund("alice", "BTC", "2")
    box.fund("alice", "GBP", "3000")
    box.fund("sam", "BTC", "1")
    box.top_up("ETH", "40")
    box.top_up("BTC", "1")
    box.top_up("GBP", "20000")
    withdrawal.request_withdrawal(
        platform, SYSTEM, user_id="alice", asset="BTC", amount="0.3", destination="x", idempotency_key="w1"
    )
    quote = swap.quote_swap(
        platform, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.2", idempotency_key="s1"
    )
    swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], user_id="alice")
    buy = instant.quote_instant_buy(
        platform, SYSTEM, user_id="alice", asset="BTC", pay_asset="GBP", spend="999.99", idempotency_key="b1"
    )
    instant.execute_instant(platform, SYSTEM, quote_id=buy["_id"], user_id="alice")
    sell = instant.quote_instant_sell(
        platform, SYSTEM, user_id="alice", asset="BTC", receive_asset="GBP", amount="0.12345678", idempotency_key="x1"
    )
    instant.execute_instant(platform, SYSTEM, quote_id=sell["_id"], user_id="alice")
    trade = p2p.open_trade(
        platform, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.33333333", idempotency_key="p1"
    )
    p2p.mark_paid(platform, SYSTEM, trade_id=trade["_id"], buyer="bea")
    p2p.release_trade(platform, SYSTEM, trade_id=trade["_id"], seller="sam")
    expired = swap.quote_swap(
        platform, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1", idempotency_key="s2"
    )
    clock.advance(timedelta(minutes=5))
    quotes_expired = swap.quotes.expire_due_quotes(platform, SYSTEM)
    assert quotes_expired.done == [expired["_id"]] and quotes_expired.ok
    sweep = treasury.request_fee_sweep(
        platform, MAKER, asset="BTC", amount="0.001", reason="revenue", idempotency_key="sw1"
    )
    approvals.approve(platform, CHECKER, sweep["_id"])
    recovery.resume_all(platform, SYSTEM)
    return box


def test_fees_booked_once_over_mixed_workload(platform, clock):
    _workload(platform, clock)
    rows = fee_accounting(platform.store)
    assert fees_booked_once(platform.store) == []
    assert rows["BTC"]["credits"] > 0 and rows["BTC"]["referral"] > 0 and rows["BTC"]["sweeps"] == 100_000
    assert rows["GBP"]["credits"] > 0 and rows["GBP"]["referral"] > 0
    for asset, row in rows.items():
        assert row["wallet"] == row["credits"] - row["referral"] - row["sweeps"], asset
        assert row["other"] == 0
    assert self_check(platform.store, clock.now()).ok


def test_fees_never_reach_the_float(platform, clock):
    _workload(platform, clock)
    for entry in scan(platform.store.collection("entries"), {"state": "applied"}):
        fee = entry["metadata"].get("fee_minor")
        kinds = {p["kind"] for p in entry["postings"] if p["amount_minor"] > 0}
        if fee:
            fee_postings = [p for p in entry["postings"] if p["kind"] == AccountKind.FEES.value]
            assert [p["amount_minor"] for p in fee_postings] == [fee], entry["type"]
        if AccountKind.LIQUIDITY.value in kinds:
            assert AccountKind.FEES.value not in {p["kind"] for p in entry["postings"] if p["amount_minor"] < 0}
    # independently of the postings: the float is exactly its top-ups plus what users paid
    # into it minus what it paid out — the fee parts never enter it
    expected = {"BTC": 100_000_000, "ETH": 4_000_000_000, "GBP": 2_000_000}  # the top-ups
    for quote in scan(platform.store.collection("quotes")):
        if quote["state"] == "executed":
            assert quote["pay_to_liquidity_minor"] == quote["pay_minor"] - quote["pay_fee_minor"]
            expected[quote["pay_asset"]] += quote["pay_to_liquidity_minor"]
            expected[quote["receive_asset"]] -= quote["reserved_minor"]
    for asset, minor in expected.items():
        total = sum(platform.ledger.balance(a).minor for a in (acct.liquidity(asset), acct.liquidity_reserved(asset)))
        assert total == minor, asset


def test_flow_reads_are_served_by_indexes(platform, clock):
    platform.store.log.reset()
    _workload(platform, clock)
    assert uncovered(platform.store.log.records) == []
