"""The books the integrity tests check: a small, varied, consistent one, and the same with
one of each kind of corruption planted in it. Shared by the integrity test files (and the
consistent-observer tests), so every finding is asserted against the same known book."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.ledger import accounts as acct
from core.ledger.entries import make_request
from core.ledger.money import Amount, amount
from tests.helpers import deposit, stuck_in_flight, transfer_request


def fee_entry(ledger, key: str, fee_minor: int, booked_minor: int | None = None, asset: str = "USDT"):
    """A flow-like entry: liquidity pays a fee into the fee wallet, metadata fee_minor."""
    booked = fee_minor if booked_minor is None else booked_minor
    return ledger.post(
        make_request(
            idempotency_key=key,
            type="swap.execute",
            actor="system",
            metadata={"fee_minor": fee_minor},
            postings=(
                {"account": acct.liquidity(asset), "amount": -Amount(asset=asset, minor=booked, scale=6)},
                {"account": acct.fees(asset), "amount": Amount(asset=asset, minor=booked, scale=6)},
            ),
        )
    )


def reserve_quote(platform, quote_id: str, kind: str, user: str, value: str, expires_at: datetime) -> None:
    """An open quote and its USDT liquidity reservation, as the quote flow leaves them."""
    platform.ledger.place_hold(hold_id=quote_id, source=acct.liquidity("USDT"), held=acct.liquidity_reserved("USDT"),
                               amount=value, actor="system")
    platform.store.collection("quotes").insert_one({
        "_id": quote_id, "kind": kind, "user": user, "state": "open", "created_at": platform.clock.now(),
        "expires_at": expires_at, "reserved_asset": "USDT", "reserved_minor": amount(value, "USDT").minor,
    })


def escrow_trade(platform, trade_id: str, value: str, state: str) -> None:
    """A P2P trade of u2's USDT to u1 in `state`, with its escrow hold placed."""
    platform.ledger.place_hold(hold_id=trade_id, source=acct.user_available("u2", "USDT"),
                               held=acct.escrow(trade_id, "USDT"), amount=value, actor="system")
    platform.store.collection("p2p_trades").insert_one({
        "_id": trade_id, "seller": "u2", "buyer": "u1", "asset": "USDT", "amount_minor": amount(value, "USDT").minor,
        "state": state,
    })


def healthy_platform(platform) -> dict:
    """A small but varied, consistent book: deposits, user holds (open and closed), an open
    quote reservation, P2P trades (open and released), fees, a referral payout and a sweep."""
    ledger, now = platform.ledger, platform.clock.now()
    deposit(ledger, "u1", "1.5", "BTC")
    deposit(ledger, "u2", "2", "BTC")
    deposit(ledger, "u2", "500", "USDT")
    ledger.post(
        transfer_request("seed-liq", acct.external("USDT"), acct.liquidity("USDT"), "10000", "treasury.liquidity_top_up")
    )
    ledger.place_user_hold(hold_id="w-open", user_id="u1", asset="BTC", amount="0.25", actor="system")
    ledger.place_user_hold(hold_id="w-done", user_id="u1", asset="BTC", amount="0.1", actor="system")
    ledger.consume_hold(hold_id="w-done", actor="system", destinations=[(acct.external("BTC"), amount("0.1", "BTC"))])
    ledger.place_user_hold(hold_id="w-back", user_id="u2", asset="BTC", amount="0.3", actor="system")
    ledger.release_hold(hold_id="w-back", actor="system")
    reserve_quote(platform, "q-live", "swap", "u2", "40", now + timedelta(days=3650))
    escrow_trade(platform, "t-open", "50", "paid")
    escrow_trade(platform, "t-done", "20", "released")
    ledger.consume_hold(
        hold_id="t-done",
        actor="system",
        destinations=[
            (acct.user_available("u1", "USDT"), amount("19.8", "USDT")),
            (acct.fees("USDT"), amount("0.2", "USDT")),
        ],
        entry_type="p2p.release",
        metadata={"fee_minor": 200_000},
    )
    fee_entry(ledger, "swap-1", 1_500_000)
    ledger.post(
        transfer_request("ref-1", acct.fees("USDT"), acct.user_available("u1", "USDT"), "0.3", "referral.commission")
    )
    ledger.post(transfer_request("sweep-1", acct.fees("USDT"), acct.external("USDT"), "1", "treasury.fee_sweep"))
    return {"now": now}


def plant_corruptions(platform) -> None:
    """One of each platform-wide problem, on top of `healthy_platform`."""
    ledger, store, now = platform.ledger, platform.store, platform.clock.now()
    # 1. a projection off by one minor unit
    store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})

    # 2. an entry stuck in flight: the process dies right after the journal insert
    stuck_in_flight(store, lambda: deposit(ledger, "u2", "0.01", "BTC", key="stuck-1"))
    # 3. an expired reservation still held
    reserve_quote(platform, "q-old", "instant_buy", "u1", "25", now - timedelta(hours=1))
    # 4. a closed trade whose escrow still holds money
    escrow_trade(platform, "t-bad", "10", "cancelled")
    # 5. fee wallet drift: a fee booked twice (posting 2× the fee the flow recorded)
    fee_entry(ledger, "swap-double", 700_000, booked_minor=1_400_000)
    platform.clock.advance(timedelta(minutes=10))


def broken_platform(platform) -> None:
    """The healthy book with one projection 7 minor units short: what a repair fixes."""
    healthy_platform(platform)
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": -7}})


def kinds(report) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)
