"""The flow-test scenarios, part 2: idempotent replay of every flow, a crash at every
write of a flow then recovery, concurrent double-spends, and a seeded chaos run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from core.ledger import accounts as acct
from core import approvals
from core.flows import adjustment, deposit, instant, p2p, recovery, swap, treasury, withdrawal
from core.flowtests.sandbox import CHECKER, MAKER, Sandbox, expect, expect_equal, fees_booked_once
from core.flowtests.sandbox import platform_accounts, user_accounts
from core.flowtests.scenarios import scenario
from core.base.permissions import SYSTEM, Principal
from core.platform import Platform

WRITE_OPERATIONS = frozenset({"insert_one", "insert_many", "find_one_and_update", "update_one", "update_many"})


class SimulatedCrash(Exception):
    """Raised by the fault hook: the 'process' died at this store operation."""


class CrashAt:
    """A fault hook that crashes at the n-th write (before or after it reaches the store)."""

    def __init__(self, nth: int, phase: str) -> None:
        self.nth, self.phase, self.writes, self.fired = nth, phase, 0, False

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if operation not in WRITE_OPERATIONS or self.fired:
            return
        if phase == "before":
            self.writes += 1
        if self.writes == self.nth and phase == self.phase:
            self.fired = True
            raise SimulatedCrash(f"crash {phase} write #{self.nth} ({operation} on {collection})")


class WriteCounter:
    def __init__(self) -> None:
        self.writes = 0

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if phase == "before" and operation in WRITE_OPERATIONS:
            self.writes += 1


# -- idempotent replay ------------------------------------------------------------------------
def _replay(sb: Sandbox, name: str, accounts: list, call: Callable[..., object], principal: Principal = SYSTEM, /,
            **terms: object) -> object:
    """Two steps: `call(platform, principal, **terms)`, then the same call again, which must
    write no entry and move nothing. Returns the first call's result."""
    action = partial(call, sb.platform, principal, **terms)
    result = sb.step(f"{name}: first call", accounts, action)

    def again() -> str:
        before = sb.balances(accounts)
        action()
        expect_equal(sb.balances(accounts), before, f"{name}: balances after the replay")
        return "same key again: same result, nothing moved"

    sb.step(f"{name}: replayed", accounts, again)
    expect_equal(sb.steps[-1].entries_written, 0, f"{name}: entries written by the replay")
    return result


@scenario("idempotent_replay")
def idempotent_replay_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    pf.store.collection("user_accounts").insert_one(
        {"user_id": "alice", "referred_by": "gus", "referral_tier": "standard"}
    )
    for asset, value in (("ETH", "50"), ("BTC", "2"), ("GBP", "50000")):
        sb.top_up(asset, value)
    seen = user_accounts("alice", "BTC", "ETH", "GBP") + platform_accounts("BTC", "ETH", "GBP")
    _replay_payments(sb, seen)
    _replay_trading(sb, seen)
    _replay_admin(sb, seen)
    _replay(sb, "flow recovery sweep", seen, recovery.resume_all)
    expect(not fees_booked_once(pf.store), f"fee identity: {fees_booked_once(pf.store)}")


def _replay_payments(sb: Sandbox, seen: list) -> None:
    alice = {"user_id": "alice", "asset": "BTC"}
    _replay(sb, "deposit", seen, deposit.record_deposit, **alice, amount="3", provider="chain", payment_id="tx1:0",
            confirmations=2, idempotency_key="rep-dep")
    _replay(sb, "withdrawal", seen, withdrawal.request_withdrawal, **alice, amount="0.1", destination="bc1q",
            idempotency_key="rep-wd")


def _replay_trading(sb: Sandbox, seen: list) -> None:
    quote = _replay(sb, "swap quote", seen, swap.quote_swap, user_id="alice", from_asset="BTC", to_asset="ETH",
                    amount="0.2", idempotency_key="rep-swap")
    _replay(sb, "swap execute", seen, swap.execute_swap, quote_id=quote["_id"], user_id="alice")
    for kind, quote_instant, terms in (
        ("instant sell", instant.quote_instant_sell, {"asset": "BTC", "receive_asset": "GBP", "amount": "0.1",
                                                       "idempotency_key": "rep-sell"}),
        ("instant buy", instant.quote_instant_buy, {"asset": "ETH", "pay_asset": "GBP", "spend": "100",
                                                     "idempotency_key": "rep-buy"}),
    ):
        quote = _replay(sb, f"{kind} quote", seen, quote_instant, user_id="alice", **terms)
        _replay(sb, f"{kind} execute", seen, instant.execute_instant, quote_id=quote["_id"], user_id="alice")
    trade = _replay(sb, "p2p open", seen, p2p.open_trade, seller="alice", buyer="bea", asset="BTC", amount="0.1",
                    idempotency_key="rep-p2p")
    _replay(sb, "p2p mark paid", seen, p2p.mark_paid, trade_id=trade["_id"], buyer="bea")
    _replay(sb, "p2p release", seen, p2p.release_trade, trade_id=trade["_id"], seller="alice")


def _replay_admin(sb: Sandbox, seen: list) -> None:
    pf = sb.platform
    request = _replay(sb, "adjustment request", seen, adjustment.request_adjustment, MAKER, user_id="alice",
                      asset="GBP", amount="5", reason="goodwill", idempotency_key="rep-adj")
    sb.step("adjustment approve", seen, partial(approvals.approve, pf, CHECKER, request["_id"]))
    _replay(sb, "approval resume", seen, approvals.resume_approved)
    sweep = _replay(sb, "fee sweep request", seen, treasury.request_fee_sweep, MAKER, asset="BTC", amount="0.0001",
                    reason="revenue", idempotency_key="rep-sweep")
    sb.step("fee sweep approve", seen, partial(approvals.approve, pf, CHECKER, sweep["_id"]))


# -- crash at every write, then recovery --------------------------------------------------------
def _crash_withdraw(pf: Platform, tag: str) -> None:
    withdrawal.request_withdrawal(
        pf, SYSTEM, user_id="alice", asset="BTC", amount="0.01", destination="bc1q", idempotency_key=f"crash-wd-{tag}"
    )


def _crash_approved_withdraw(pf: Platform, tag: str) -> None:
    document = withdrawal.request_withdrawal(pf, SYSTEM, user_id="alice", asset="BTC", amount="0.6",
                                             destination="bc1q", idempotency_key=f"crash-wd-approved-{tag}")
    if document["approval_id"]:
        request = approvals.get_approval(pf, CHECKER, document["approval_id"])
        unexecuted = request["state"] == "approved" and request["result"] is None
        if (request["state"] == "pending" and not request["approvals"]) or unexecuted:
            approvals.approve(pf, CHECKER, request["_id"], "checked")  # a retry finishes an interrupted execution


def _crash_swap(pf: Platform, tag: str) -> None:
    quote = swap.quote_swap(pf, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.01",
                            idempotency_key=f"crash-swap-{tag}")
    swap.execute_swap(pf, SYSTEM, quote_id=quote["_id"], user_id="alice")


def _crash_trade(pf: Platform, tag: str) -> None:
    trade = p2p.open_trade(
        pf, SYSTEM, seller="alice", buyer="bea", asset="BTC", amount="0.01", idempotency_key=f"crash-p2p-{tag}"
    )
    if trade["state"] == "open":  # a retrying client skips what already happened
        p2p.mark_paid(pf, SYSTEM, trade_id=trade["_id"], buyer="bea")
    p2p.release_trade(pf, SYSTEM, trade_id=trade["_id"], seller="alice")


def _moved(*pairs: tuple[acct.Account, int]) -> dict[str, int]:
    return {account.id: minor for account, minor in pairs}


def _crash_flows() -> dict[str, tuple[Callable[[Platform, str], None], dict[str, int]]]:
    """name → (run the whole flow with keys derived from a tag, the balance changes it must make once)."""
    alice_btc, fees_btc = acct.user_available("alice", "BTC"), acct.fees("BTC")
    return {
        "withdrawal": (_crash_withdraw, _moved((alice_btc, -1_000_000), (fees_btc, 10_000))),
        "approved withdrawal": (
            _crash_approved_withdraw,
            _moved((alice_btc, -60_000_000), (acct.user_locked("alice", "BTC"), 0), (fees_btc, 600_000)),
        ),
        "swap": (
            _crash_swap,
            _moved(
                (alice_btc, -1_000_000),
                (fees_btc, 15_000),
                (acct.user_available("alice", "ETH"), 19_700_000),
                (acct.liquidity_reserved("ETH"), 0),
            ),
        ),
        "p2p": (
            _crash_trade,
            _moved((alice_btc, -1_000_000), (fees_btc, 10_000), (acct.user_available("bea", "BTC"), 990_000)),
        ),
    }


@scenario("crash_recovery")
def crash_recovery_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    sb.fund("alice", "BTC", "100")
    sb.top_up("ETH", "40")
    for name, (run, expected) in _crash_flows().items():
        counter = WriteCounter()
        pf.store.fault_hook = counter
        try:
            run(pf, "reference")
        finally:
            pf.store.fault_hook = None
        for nth in range(1, counter.writes + 1):
            _crash_once(sb, name, partial(run, pf), expected, nth)


def _crash_once(sb: Sandbox, name: str, run: Callable[[str], None], expected: dict[str, int], nth: int) -> None:
    pf = sb.platform
    phase = "after" if nth % 2 else "before"
    accounts = [acct.parse_account_id(a) for a in expected]
    # no execution claim, no staleness: an interrupted approval is finished by the retry too
    via = "resume_all" if nth % 3 == 0 else "retry"

    def crash_and_recover() -> str:
        before = {a.id: sb.minor(a) for a in accounts}
        hook = CrashAt(nth, phase)
        pf.store.fault_hook = hook
        try:
            run(f"{nth}")
        except SimulatedCrash:
            pass
        finally:
            pf.store.fault_hook = None
        expect(hook.fired, f"the crash at write #{nth} never fired")
        if via == "resume_all":
            recovery.resume_all(pf, SYSTEM, stale_after=timedelta(0))
        run(f"{nth}")  # the client retries with the same keys
        after = {a.id: sb.minor(a) - before[a.id] for a in accounts}
        expect_equal(after, expected, f"{name}: balance changes after a crash {phase} write #{nth} and recovery")
        return f"crashed {phase} write #{nth}; recovered by {via}; moved exactly once"

    sb.step(f"{name}: crash {phase} write #{nth}, recover by {via}", accounts, crash_and_recover)
