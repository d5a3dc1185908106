"""Flow-test scenarios: swap, instant buy/sell, quote expiry and P2P trades."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from core.ledger import accounts as acct
from core.base.errors import (
    FlowStateError,
    NotFlowPartyError,
    QuoteExpiredError,
    TradeClosedError,
)
from core.flows import instant, p2p, quotes, swap
from core.flowtests.sandbox import CHECKER, Sandbox, expect, expect_equal, platform_accounts, user_accounts
from core.flowtests.scenarios import available_minor, scenario
from core.ledger import Account, from_minor
from core.base.permissions import SYSTEM


def _desk(sb: Sandbox, holds: tuple[str, str], float_holds: tuple[str, str], *assets: str) -> list[Account]:
    """Alice holds `holds` and the float `float_holds` (asset, amount each); returns the
    accounts a quoted trade between `assets` moves: alice's and the platform's."""
    sb.fund("alice", *holds)
    sb.top_up(*float_holds)
    return user_accounts("alice", *assets) + platform_accounts(*assets)


def _quote(
    sb: Sandbox,
    what: str,
    make: Callable[..., dict],
    terms: dict[str, str],
    figures: dict[str, int],
    reserved: tuple[Account, int] | None = None,
) -> Callable[[], dict]:
    """The action of a quote step (it returns the quote): alice asks `make` for a quote on
    `terms`; the step fails unless the quote's `figures` (field → minor units, worked out by
    hand; `what` names them) and the float's reservation, if any, are as expected."""

    def quote() -> dict:
        document = make(sb.platform, SYSTEM, user_id="alice", **terms)
        expect_equal(tuple(document[field] for field in figures), tuple(figures.values()), what)
        if reserved is not None:
            account, minor = reserved
            expect_equal(sb.minor(account), minor, f"reserved {account.asset}")
        return document

    return quote


@scenario("swap")
def swap_scenario(sb: Sandbox) -> None:
    pf, seen = sb.platform, _desk(sb, ("BTC", "1"), ("ETH", "100"), "BTC", "ETH")
    terms = {"from_asset": "BTC", "to_asset": "ETH", "amount": "0.1", "idempotency_key": "swap-1"}
    # fee ⌈0.1 × 1.5%⌉ = 0.0015 BTC; (0.1 − 0.0015) × 20 ETH/BTC = 1.97 ETH
    figures = {"pay_fee_minor": 150_000, "receive_minor": 197_000_000}
    quote = _quote(sb, "fee and output", swap.quote_swap, terms, figures, (acct.liquidity_reserved("ETH"), 197_000_000))
    document = sb.step("quote 0.1 BTC → ETH (reserves 1.97 ETH)", seen, quote)
    sb.refuse(
        "foreign user executes the quote",
        seen,
        lambda: swap.execute_swap(pf, SYSTEM, quote_id=document["_id"], user_id="mallory"),
        NotFlowPartyError,
    )

    def execute() -> str:
        swap.execute_swap(pf, SYSTEM, quote_id=document["_id"], user_id="alice", min_receive_minor=197_000_000)
        expect_equal(available_minor(sb, "alice", "BTC"), 90_000_000, "alice's BTC")
        expect_equal(available_minor(sb, "alice", "ETH"), 197_000_000, "alice's ETH")
        expect_equal(sb.minor(acct.fees("BTC")), 150_000, "fee wallet BTC")
        expect_equal(sb.minor(acct.liquidity("BTC")), 9_850_000, "float BTC (no fee in it)")
        expect_equal(sb.minor(acct.liquidity_reserved("ETH")), 0, "reserved ETH")
        return "alice −0.1 BTC → float +0.0985 BTC, fees +0.0015 BTC; reserved 1.97 ETH → alice"

    sb.step("execute", seen, execute)


@scenario("instant_buy")
def instant_buy_scenario(sb: Sandbox) -> None:
    pf, seen = sb.platform, _desk(sb, ("GBP", "1000"), ("BTC", "1"), "GBP", "BTC")
    terms = {"asset": "BTC", "pay_asset": "GBP", "spend": "1000", "idempotency_key": "buy-1"}
    # market 48000 GBP/BTC, buy at 48000 × 1.03 = 49440; fee 10.00 GBP; 990 / 49440 = 0.02002427 BTC (down)
    figures = {"pay_fee_minor": 1_000, "receive_minor": 2_002_427}
    quote = _quote(sb, "fee and BTC out", instant.quote_instant_buy, terms, figures)
    document = sb.step("quote: spend 1000 GBP on BTC at market +3%", seen, quote)

    def execute() -> str:
        instant.execute_instant(pf, SYSTEM, quote_id=document["_id"], user_id="alice")
        expect_equal(sb.minor(acct.fees("GBP")), 1_000, "fee wallet GBP (fee only)")
        expect_equal(sb.minor(acct.liquidity("GBP")), 99_000, "float GBP (990.00 incl. spread profit)")
        expect_equal(available_minor(sb, "alice", "BTC"), 2_002_427, "alice's BTC")
        entry = pf.ledger.entry(quotes.get_quote(pf, document["_id"])["pay_entry_id"])  # the one execution entry
        expect(
            entry.metadata["spread_minor"] > 0 and entry.metadata["fee_minor"] == 1_000,
            "spread and fee recorded separately",
        )
        spread = from_minor(entry.metadata["spread_minor"], "GBP", pf.registry).text()
        return f"fee 10.00 GBP → fees; spread profit {spread} GBP stays in the float"

    sb.step("execute", seen, execute)


@scenario("instant_sell")
def instant_sell_scenario(sb: Sandbox) -> None:
    pf, seen = sb.platform, _desk(sb, ("BTC", "0.1"), ("GBP", "10000"), "GBP", "BTC")
    terms = {"asset": "BTC", "receive_asset": "GBP", "amount": "0.1", "idempotency_key": "sell-1"}
    # 0.1 × 48000 × 0.975 = 4680.00 GBP gross; fee 46.80; alice gets 4633.20
    figures = {"reserved_minor": 468_000, "receive_fee_minor": 4_680, "receive_minor": 463_320}
    quote = _quote(sb, "gross, fee, net", instant.quote_instant_sell, terms, figures)
    document = sb.step("quote: sell 0.1 BTC at market −2.5%", seen, quote)

    def execute() -> str:
        instant.execute_instant(pf, SYSTEM, quote_id=document["_id"], user_id="alice")
        expect_equal(available_minor(sb, "alice", "GBP"), 463_320, "alice's GBP")
        expect_equal(sb.minor(acct.fees("GBP")), 4_680, "fee wallet GBP")
        expect_equal(sb.minor(acct.liquidity("BTC")), 10_000_000, "float BTC")
        expect_equal(sb.minor(acct.liquidity("GBP")), 1_000_000 - 468_000, "float GBP")
        return "alice −0.1 BTC → float; float −4680.00 GBP → alice 4633.20 GBP + fees 46.80 GBP; spread 120.00 GBP in the float"

    sb.step("execute", seen, execute)


@scenario("expired_quote")
def expired_quote_scenario(sb: Sandbox) -> None:
    sb.fund("alice", "BTC", "1")
    sb.top_up("ETH", "10")
    pf = sb.platform
    seen = user_accounts("alice", "BTC", "ETH") + platform_accounts("ETH")
    document = sb.step(
        "quote 0.1 BTC → ETH",
        seen,
        lambda: swap.quote_swap(
            pf, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1", idempotency_key="swap-late"
        ),
    )
    sb.step("time passes beyond the TTL", seen, lambda: sb.advance(pf.config.quote_ttl + timedelta(seconds=1)))
    sb.step(
        "execute after expiry is refused",
        seen,
        lambda: swap.execute_swap(pf, SYSTEM, quote_id=document["_id"], user_id="alice"),
        expect_error=QuoteExpiredError,
    )

    def released() -> str:
        expect_equal(swap.quotes.get_quote(pf, document["_id"])["state"], "expired", "quote state")
        expect_equal(
            (sb.minor(acct.liquidity("ETH")), sb.minor(acct.liquidity_reserved("ETH"))), (1_000_000_000, 0), "float"
        )
        expect_equal(available_minor(sb, "alice", "BTC"), 100_000_000, "alice's BTC untouched")
        return "reservation released, nothing paid"

    sb.step("reservation back in the float", seen, released)


def _trade(sb: Sandbox, key: str) -> dict:
    sb.fund("sam", "BTC", "1")
    return p2p.open_trade(
        sb.platform,
        SYSTEM,
        seller="sam",
        buyer="bea",
        asset="BTC",
        amount="0.5",
        fiat_amount="24000 GBP",
        idempotency_key=key,
    )


def _on(sb: Sandbox, trade: dict, action: Callable[..., object], **party: str) -> Callable[[], object]:
    """`action` on `trade` by a party (`seller=`, `buyer=` or `user_id=`), run as the system
    principal when a step calls it."""
    return partial(action, sb.platform, SYSTEM, trade_id=trade["_id"], **party)


def _p2p_accounts(trade_id: str | None = None) -> list:
    accounts = user_accounts("sam", "BTC") + user_accounts("bea", "BTC") + [acct.fees("BTC")]
    return accounts + ([acct.escrow(trade_id, "BTC")] if trade_id else [])


@scenario("p2p_release")
def p2p_release_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    trade = sb.step("seller opens: 0.5 BTC → escrow", _p2p_accounts(), lambda: _trade(sb, "p2p-release"))
    seen = _p2p_accounts(trade["_id"])
    sb.step("buyer marks paid", seen, _on(sb, trade, p2p.mark_paid, buyer="bea"))
    sb.refuse("buyer tries to release", seen, _on(sb, trade, p2p.release_trade, seller="bea"), NotFlowPartyError)

    def release() -> str:
        p2p.release_trade(pf, SYSTEM, trade_id=trade["_id"], seller="sam")
        expect_equal(available_minor(sb, "bea", "BTC"), 49_500_000, "buyer's BTC (0.5 − 1%)")
        expect_equal(sb.minor(acct.fees("BTC")), 500_000, "fee wallet")
        expect_equal(sb.minor(acct.escrow(trade["_id"], "BTC")), 0, "escrow")
        return "escrow 0.5 BTC → buyer 0.495 BTC, fees 0.005 BTC"

    sb.step("seller releases", seen, release)
    dispute = _on(sb, trade, p2p.open_dispute, user_id="bea", reason="late")
    sb.refuse("dispute a completed trade", seen, dispute, TradeClosedError)


@scenario("p2p_cancel")
def p2p_cancel_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    trade = sb.step("seller opens", _p2p_accounts(), lambda: _trade(sb, "p2p-cancel"))
    seen = _p2p_accounts(trade["_id"])

    def cancel() -> str:
        p2p.cancel_trade(pf, SYSTEM, trade_id=trade["_id"], user_id="bea")
        expect_equal(available_minor(sb, "sam", "BTC"), 100_000_000, "seller's BTC back")
        return "buyer cancelled: escrow → seller, no fee"

    sb.step("buyer cancels", seen, cancel)
    sb.refuse("release a cancelled trade", seen, _on(sb, trade, p2p.release_trade, seller="sam"), TradeClosedError)
    second = sb.step("another trade, never paid", seen, lambda: _trade(sb, "p2p-timeout"))
    sb.advance(pf.config.p2p_payment_timeout)

    def timeout() -> str:
        cancelled = p2p.cancel_timed_out(pf, SYSTEM)
        expect(second["_id"] in cancelled.done and cancelled.ok, "the timed-out trade is cancelled")
        expect_equal(p2p.get_trade(pf, second["_id"])["state"], "cancelled", "state")
        return "payment window passed: escrow → seller"

    sb.step("payment timeout sweep", seen + [acct.escrow(second["_id"], "BTC")], timeout)


def _dispute(sb: Sandbox, to: str) -> None:
    pf = sb.platform
    trade = sb.step("seller opens", _p2p_accounts(), lambda: _trade(sb, f"p2p-dispute-{to}"))
    seen = _p2p_accounts(trade["_id"])
    sb.step("buyer marks paid", seen, _on(sb, trade, p2p.mark_paid, buyer="bea"))
    sb.step("buyer disputes", seen, _on(sb, trade, p2p.open_dispute, user_id="bea", reason="seller does not release"))
    release = _on(sb, trade, p2p.release_trade, seller="sam")
    sb.refuse("seller releases a disputed trade", seen, release, FlowStateError)

    def resolve() -> str:
        p2p.resolve_dispute(pf, CHECKER, trade_id=trade["_id"], to=to, reason="bank proof reviewed")
        expect_equal(sb.minor(acct.escrow(trade["_id"], "BTC")), 0, "escrow")
        if to == "buyer":
            expect_equal(available_minor(sb, "bea", "BTC"), 49_500_000, "buyer's BTC")
            return "resolved to buyer: escrow 0.5 BTC → buyer 0.495 BTC, fees 0.005 BTC"
        expect_equal(available_minor(sb, "sam", "BTC"), 100_000_000, "seller's BTC")
        return "resolved to seller: escrow → seller, no fee"

    sb.step(f"admin resolves to {to}", seen, resolve)


@scenario("p2p_dispute_buyer")
def p2p_dispute_buyer_scenario(sb: Sandbox) -> None:
    _dispute(sb, "buyer")


@scenario("p2p_dispute_seller")
def p2p_dispute_seller_scenario(sb: Sandbox) -> None:
    _dispute(sb, "seller")
