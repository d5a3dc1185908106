"""Swap and instant buy/sell: quote, reserve, execute, expire; guards; conservation."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.ledger import accounts as acct
from core.base.clock import ManualClock
from core.base.errors import (
    InvalidArgumentError,
    AmountTooSmallError,
    FlowStateError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InsufficientLiquidityError,
    InvalidFlowInputError,
    NotFlowPartyError,
    PermissionDeniedError,
    PriceUnavailableError,
    QuoteExpiredError,
    SlippageExceededError,
)
from core.flows import instant, quotes, swap
from core.flowtests.sandbox import Sandbox
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from core.platform.prices import DeterministicPriceSource
from core.ledger.selfcheck import scan, self_check
from core.ledger.store import Store
from tests.helpers import world_state


@pytest.fixture
def market(platform, clock):
    sandbox = Sandbox(platform=platform, clock=clock)
    sandbox.fund("alice", "BTC", "1")
    sandbox.fund("alice", "GBP", "1000")
    sandbox.top_up("ETH", "40")
    sandbox.top_up("BTC", "1")
    sandbox.top_up("GBP", "10000")
    return platform


def _minor(platform, account):
    return platform.ledger.balance(account).minor


def _quote(platform, amount="0.1", key="q1", user="alice"):
    return swap.quote_swap(
        platform, SYSTEM, user_id=user, from_asset="BTC", to_asset="ETH", amount=amount, idempotency_key=key
    )


def test_swap_happy_path(market):
    quote = _quote(market)
    assert quote["state"] == "open" and quote["receive_minor"] == 197_000_000 and quote["pay_fee_minor"] == 150_000
    assert _minor(market, acct.liquidity_reserved("ETH")) == 197_000_000
    done = swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice", min_receive_minor=197_000_000)
    assert done["state"] == "executed"
    assert _minor(market, acct.user_available("alice", "ETH")) == 197_000_000
    assert _minor(market, acct.user_available("alice", "BTC")) == 90_000_000
    assert _minor(market, acct.fees("BTC")) == 150_000
    assert _minor(market, acct.liquidity("BTC")) == 100_000_000 + 9_850_000
    assert _minor(market, acct.liquidity_reserved("ETH")) == 0
    pay = market.ledger.entry(done["pay_entry_id"])
    assert pay.metadata["fee_minor"] == 150_000 and pay.type == "swap.execute" and done["receive_entry_id"] == pay.id


def test_swap_replay_executes_once(market):
    quote = _quote(market)
    assert _quote(market)["_id"] == quote["_id"]
    swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    before = world_state(market.store)
    swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert world_state(market.store) == before
    with pytest.raises(IdempotencyConflictError):
        _quote(market, amount="0.2")


def test_swap_foreign_quote_refused(market):
    quote = _quote(market)
    before = world_state(market.store)
    with pytest.raises(NotFlowPartyError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="mallory")
    assert world_state(market.store) == before


def test_swap_expired_quote_refused_and_released(market, clock):
    quote = _quote(market)
    clock.advance(market.config.quote_ttl)
    with pytest.raises(QuoteExpiredError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert quotes.get_quote(market, quote["_id"])["state"] == "expired"
    assert _minor(market, acct.liquidity_reserved("ETH")) == 0
    assert _minor(market, acct.liquidity("ETH")) == 4_000_000_000
    assert _minor(market, acct.user_available("alice", "BTC")) == 100_000_000
    with pytest.raises(QuoteExpiredError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")


def test_expire_due_quotes_sweeps_only_due(market, clock):
    old = _quote(market, key="old")
    clock.advance(timedelta(seconds=20))
    young = _quote(market, key="young")
    clock.advance(timedelta(seconds=10))
    assert quotes.expire_due_quotes(market, SYSTEM).done == [old["_id"]]
    assert quotes.get_quote(market, young["_id"])["state"] == "open"
    with pytest.raises(FlowStateError):
        quotes.expire_quote(market, SYSTEM, young["_id"])


def test_swap_slippage_guards_change_nothing(market):
    quote = _quote(market)
    before = world_state(market.store)
    with pytest.raises(SlippageExceededError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice", min_receive_minor=197_000_001)
    market.prices.set_price("ETH", Decimal("3100"))  # ETH dearer: the quote would now overpay by 3.2%
    with pytest.raises(SlippageExceededError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert world_state(market.store) == before
    market.prices.set_price("ETH", Decimal("2900"))  # moved in the platform's favour: honoured
    assert swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")["state"] == "executed"


def test_swap_insufficient_funds_at_execution_changes_nothing(market):
    quote = _quote(market, amount="0.5")
    Sandbox(platform=market, clock=market.clock)  # no-op, keeps fixtures symmetrical
    from core.flows import withdrawal

    withdrawal.request_withdrawal(
        market, SYSTEM, user_id="alice", asset="BTC", amount="0.5", destination="x", idempotency_key="drain"
    )
    withdrawal.request_withdrawal(
        market, SYSTEM, user_id="alice", asset="BTC", amount="0.1", destination="x", idempotency_key="drain2"
    )
    before = world_state(market.store)
    with pytest.raises(InsufficientFundsError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert world_state(market.store) == before


def test_swap_insufficient_liquidity_changes_nothing(market):
    before = world_state(market.store)
    with pytest.raises(InsufficientLiquidityError):
        _quote(market, amount="3")
    assert world_state(market.store) == before


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"amount": "0.00000001"}, AmountTooSmallError),
        ({"amount": 0.1}, Exception),
        ({"to_asset": "BTC"}, InvalidFlowInputError),
        ({"to_asset": "NOPE"}, Exception),
    ],
)
def test_swap_invalid_quotes_change_nothing(market, kwargs, error):
    fields = dict(user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1", idempotency_key="bad")
    fields.update(kwargs)
    before = world_state(market.store)
    with pytest.raises(error) as info:
        swap.quote_swap(market, SYSTEM, **fields)
    assert info.type.__module__ == "core.base.errors"
    assert world_state(market.store) == before


def test_swap_needs_move_money(market):
    with pytest.raises(PermissionDeniedError):
        swap.quote_swap(
            market,
            Principal(name="ann", role=Role.ADMIN),
            user_id="alice",
            from_asset="BTC",
            to_asset="ETH",
            amount="0.1",
            idempotency_key="k",
        )


def test_swap_unknown_price_refused(market):
    market.prices = DeterministicPriceSource({"BTC": Decimal(1)})
    with pytest.raises(PriceUnavailableError):
        _quote(market)


def test_instant_buy_fee_and_spread_booked_separately(market):
    quote = instant.quote_instant_buy(
        market, SYSTEM, user_id="alice", asset="BTC", pay_asset="GBP", spend="1000", idempotency_key="b1"
    )
    assert (quote["pay_fee_minor"], quote["pay_to_liquidity_minor"], quote["receive_minor"]) == (
        1_000,
        99_000,
        2_002_427,
    )
    instant.execute_instant(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert _minor(market, acct.fees("GBP")) == 1_000
    assert _minor(market, acct.liquidity("GBP")) == 1_000_000 + 99_000
    assert _minor(market, acct.user_available("alice", "BTC")) == 100_000_000 + 2_002_427
    pay = market.ledger.entry(quotes.get_quote(market, quote["_id"])["pay_entry_id"])
    # 2 002 427 sat at 48 000 GBP/BTC cost the float 961.17 GBP (rounded up): 990.00 − 961.17 = 28.83 spread
    assert pay.metadata["spread_minor"] == 2_883 and pay.metadata["fee_minor"] == 1_000


def test_instant_sell_fee_paid_from_payout(market):
    quote = instant.quote_instant_sell(
        market, SYSTEM, user_id="alice", asset="BTC", receive_asset="GBP", amount="0.1", idempotency_key="s1"
    )
    assert (quote["reserved_minor"], quote["receive_fee_minor"], quote["receive_minor"], quote["spread_minor"]) == (
        468_000,
        4_680,
        463_320,
        12_000,
    )
    instant.execute_instant(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert _minor(market, acct.user_available("alice", "GBP")) == 100_000 + 463_320
    assert _minor(market, acct.fees("GBP")) == 4_680
    assert _minor(market, acct.liquidity("GBP")) == 1_000_000 - 468_000
    assert _minor(market, acct.liquidity("BTC")) == 100_000_000 + 10_000_000


def test_instant_same_asset_refused(market):
    with pytest.raises(InvalidFlowInputError):
        instant.quote_instant_buy(
            market, SYSTEM, user_id="alice", asset="GBP", pay_asset="GBP", spend="1", idempotency_key="x"
        )


def test_quote_crash_mid_execution_is_resumed(market):
    quote = _quote(market)
    state = {"writes": 0}

    def crash(phase, collection, operation):
        if phase == "after" and collection == "quotes" and operation == "find_one_and_update":
            state["writes"] += 1
            if state["writes"] == 1:  # right after open → executing
                raise RuntimeError("crash")

    market.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice")
    market.store.fault_hook = None
    assert quotes.get_quote(market, quote["_id"])["state"] == "executing"
    assert quotes.resume_quote(market, SYSTEM, quote["_id"])["state"] == "executed"
    assert _minor(market, acct.user_available("alice", "ETH")) == 197_000_000


def _conservation(platform, before_entries):
    """Per asset, every entry written balances and all accounts sum to zero."""
    totals = defaultdict(int)
    for balance in scan(platform.store.collection("balances")):
        totals[balance["asset"]] += balance["balance_minor"]
    assert all(total == 0 for total in totals.values()), totals
    for entry in scan(platform.store.collection("entries")):
        sums = defaultdict(int)
        for posting in entry["postings"]:
            sums[posting["asset"]] += posting["amount_minor"]
        assert all(v == 0 for v in sums.values()), entry["_id"]
    assert self_check(platform.store, platform.clock.now()).ok


PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2)
AMOUNTS = st.integers(min_value=1, max_value=10**9)


def _fresh(usd_btc: Decimal, usd_eth: Decimal) -> tuple[Platform, Sandbox]:
    clock = ManualClock()
    platform = Platform.open(
        Store.embedded_store("prop"),
        clock,
        prices=DeterministicPriceSource({"BTC": usd_btc, "ETH": usd_eth, "GBP": Decimal("1.25")}),
    )
    sandbox = Sandbox(platform=platform, clock=clock)
    return platform, sandbox


def _user_loss_is_platform_gain(platform, user, assets):
    for asset in assets:
        user_side = _minor(platform, acct.user_available(user, asset)) + _minor(platform, acct.user_locked(user, asset))
        platform_side = sum(
            _minor(platform, a) for a in (acct.fees(asset), acct.liquidity(asset), acct.liquidity_reserved(asset))
        )
        outside = _minor(platform, acct.external(asset)) + _minor(platform, acct.external(asset, "treasury"))
        assert user_side + platform_side + outside == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usd_btc=PRICES, usd_eth=PRICES, pay_minor=AMOUNTS)
def test_swap_conserves_money_property(usd_btc, usd_eth, pay_minor):
    platform, sandbox = _fresh(usd_btc, usd_eth)
    sandbox.fund("alice", "BTC", "10")
    sandbox.top_up("ETH", "1000000")
    try:
        quote = swap.quote_swap(
            platform,
            SYSTEM,
            user_id="alice",
            from_asset="BTC",
            to_asset="ETH",
            amount=Decimal(pay_minor).scaleb(-8),
            idempotency_key="p",
        )
    except (AmountTooSmallError, InsufficientLiquidityError):
        return
    swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], user_id="alice")
    assert quote["pay_fee_minor"] >= pay_minor * 15 // 1000  # the fee is never rounded down
    assert _minor(platform, acct.user_available("alice", "ETH")) == quote["receive_minor"]
    _conservation(platform, 0)
    _user_loss_is_platform_gain(platform, "alice", ("BTC", "ETH"))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usd_btc=PRICES, spend_minor=st.integers(min_value=1, max_value=10**7), sell_minor=AMOUNTS)
def test_instant_buy_and_sell_conserve_money_property(usd_btc, spend_minor, sell_minor):
    platform, sandbox = _fresh(usd_btc, Decimal(1))
    sandbox.fund("alice", "GBP", "100000")
    sandbox.fund("alice", "BTC", "10")
    sandbox.top_up("BTC", "1000000")
    sandbox.top_up("GBP", "10000000")
    for _name, make in (
        (
            "buy",
            lambda: instant.quote_instant_buy(
                platform,
                SYSTEM,
                user_id="alice",
                asset="BTC",
                pay_asset="GBP",
                spend=Decimal(spend_minor).scaleb(-2),
                idempotency_key="buy",
            ),
        ),
        (
            "sell",
            lambda: instant.quote_instant_sell(
                platform,
                SYSTEM,
                user_id="alice",
                asset="BTC",
                receive_asset="GBP",
                amount=Decimal(sell_minor).scaleb(-8),
                idempotency_key="sell",
            ),
        ),
    ):
        try:
            quote = make()
        except (AmountTooSmallError, InsufficientLiquidityError):
            continue
        fees_before = _minor(platform, acct.fees("GBP"))
        instant.execute_instant(platform, SYSTEM, quote_id=quote["_id"], user_id="alice")
        assert _minor(platform, acct.fees("GBP")) - fees_before == quote["pay_fee_minor"] + quote["receive_fee_minor"]
        assert quote["spread_minor"] >= 0
    _conservation(platform, 0)
    _user_loss_is_platform_gain(platform, "alice", ("BTC", "GBP"))


@pytest.mark.parametrize("bad", [1.5, "100", True])
def test_swap_bad_min_receive_refused(market, bad):
    quote = _quote(market)
    before = world_state(market.store)
    with pytest.raises(InvalidArgumentError):
        swap.execute_swap(market, SYSTEM, quote_id=quote["_id"], user_id="alice", min_receive_minor=bad)
    assert world_state(market.store) == before


def test_swap_execute_needs_move_money_and_existing_quote(market):
    quote = _quote(market)
    with pytest.raises(PermissionDeniedError):
        swap.execute_swap(market, Principal(name="ann", role=Role.ADMIN), quote_id=quote["_id"], user_id="alice")
    from core.base.errors import FlowNotFoundError

    for bad in ("q_nope", {"$ne": None}):
        with pytest.raises(FlowNotFoundError):
            swap.execute_swap(market, SYSTEM, quote_id=bad, user_id="alice")
