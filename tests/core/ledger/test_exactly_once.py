"""The first protocol's double-application bugs, each replayed on the real API with a
second driver of the same entry running while the first is paused or interleaved with it.
Every one ends with each leg applied exactly once, nothing negative, the self-check clean.
(On the marker protocol these tests failed: the second driver re-applied the legs.)"""

import threading
from datetime import timedelta

import pytest

from core.base.clock import ManualClock
from core.base.errors import InsufficientFundsError, LedgerError
from core.flows import deposit, swap, withdrawal
from core.ledger import accounts as acct
from core.ledger.engine import Ledger
from core.ledger.entries import make_request
from core.ledger.money import amount
from core.ledger.selfcheck import self_check
from core.base.permissions import SYSTEM
from core.platform import Platform
from tests.helpers import Crash, CrashAt, deposit as credit, make_test_store, transfer_request
from tests.interleave import PauseAfter, run_interleaved

SEEDS = range(12)
BTC = 100_000_000


@pytest.fixture
def new_platform():
    opened = []

    def build():
        store = make_test_store()
        opened.append(store)
        return Platform.open(store, ManualClock())

    yield build
    for store in opened:
        if not store.embedded:
            store.drop()


def minor(platform, account):
    return platform.ledger.balance(account).minor


def assert_clean(platform):
    platform.ledger.recover()
    report = self_check(platform.store, platform.clock.now())
    assert report.ok and not report.in_flight, report.findings


@pytest.mark.parametrize("seed", SEEDS)
def test_two_recoveries_at_once_move_a_crashed_transfer_once(new_platform, seed):
    platform = new_platform()
    credit(platform.ledger, "alice", "1")
    platform.store.fault_hook = CrashAt(1, "after")  # journaled, then the process died
    with pytest.raises(Crash):
        platform.ledger.post(transfer_request("t", acct.user_available("alice", "BTC"), acct.user_available("bob", "BTC"), "0.3"))
    platform.store.fault_hook = None
    platform.clock.advance(timedelta(minutes=2))
    first, second = Ledger(platform.store, platform.clock), Ledger(platform.store, platform.clock)  # two processes starting
    run_interleaved(platform.store, seed, [first.recover, second.recover])
    assert minor(platform, acct.user_available("bob", "BTC")) == 30_000_000
    assert minor(platform, acct.user_available("alice", "BTC")) == 70_000_000
    assert_clean(platform)


def test_client_retry_while_the_first_call_is_paused_after_its_insert(new_platform):
    platform = new_platform()
    credit(platform.ledger, "alice", "2")
    request = transfer_request("pay-1", acct.user_available("alice", "BTC"), acct.user_available("bob", "BTC"), "1")
    pause = PauseAfter("first-call", operations=2)  # balances.find, entries.insert_one: committed, unprojected
    platform.store.fault_hook = pause
    first = threading.Thread(target=platform.ledger.post, args=(request,), name="first-call")
    first.start()
    assert pause.paused.wait(30)
    retried = Ledger(platform.store, platform.clock).post(request)  # the client's retry, same key
    pause.release()
    first.join(30)
    platform.store.fault_hook = None
    assert minor(platform, acct.user_available("bob", "BTC")) == BTC
    assert minor(platform, acct.user_available("alice", "BTC")) == BTC
    assert platform.ledger.entry_by_key("pay-1").id == retried.id
    assert_clean(platform)


@pytest.mark.parametrize("seed", SEEDS)
def test_client_retries_of_one_key_interleaved(new_platform, seed):
    platform = new_platform()
    credit(platform.ledger, "alice", "2")
    request = transfer_request("pay-1", acct.user_available("alice", "BTC"), acct.user_available("bob", "BTC"), "1")
    ledgers = [Ledger(platform.store, platform.clock) for _ in range(3)]
    results = run_interleaved(platform.store, seed, [lambda ledger=ledger: ledger.post(request) for ledger in ledgers])
    assert len({r.id for r in results}) == 1
    assert minor(platform, acct.user_available("bob", "BTC")) == BTC
    assert_clean(platform)


def notice(platform):
    return deposit.record_deposit(platform, SYSTEM, user_id="alice", asset="BTC", amount="0.5", provider="chain",
                                  payment_id="txid-1:0", confirmations=6, idempotency_key="txid-1:0")


@pytest.mark.parametrize("seed", SEEDS)
def test_duplicate_deposit_notice_during_a_slow_first_call_credits_once(new_platform, seed):
    platform = new_platform()
    results = run_interleaved(platform.store, seed, [lambda: notice(platform), lambda: notice(platform)])
    assert not any(isinstance(r, LedgerError) and not isinstance(r, type(results[0])) for r in results if isinstance(r, LedgerError))
    assert minor(platform, acct.user_available("alice", "BTC")) == 50_000_000
    assert_clean(platform)


def test_duplicate_deposit_notice_while_the_first_is_paused(new_platform):
    platform = new_platform()
    pause = PauseAfter("first-notice", operations=4)
    platform.store.fault_hook = pause
    first = threading.Thread(target=notice, args=(platform,), name="first-notice")
    first.start()
    assert pause.paused.wait(30)
    try:
        notice(platform)
    except LedgerError:
        pass  # the second notice may be told the first is in progress; it must not credit twice
    pause.release()
    first.join(30)
    platform.store.fault_hook = None
    notice(platform)  # the provider sends it once more, later
    assert minor(platform, acct.user_available("alice", "BTC")) == 50_000_000
    assert_clean(platform)


def funded_swap_platform(new_platform):
    platform = new_platform()
    credit(platform.ledger, "alice", "1")
    platform.ledger.post(transfer_request("float", acct.external("USDT"), acct.liquidity("USDT"), "1000000"))
    quote = swap.quote_swap(platform, SYSTEM, user_id="alice", from_asset="BTC", to_asset="USDT", amount="0.5",
                            idempotency_key="q-1")
    return platform, quote


@pytest.mark.parametrize("seed", range(4))
def test_ten_executors_of_one_swap_quote_execute_it_once(new_platform, seed):
    reference, quote = funded_swap_platform(new_platform)
    swap.execute_swap(reference, SYSTEM, quote_id=quote["_id"], user_id="alice")
    platform, quote = funded_swap_platform(new_platform)
    run_interleaved(platform.store, seed, [
        lambda: swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], user_id="alice") for _ in range(10)])
    for account in (acct.user_available("alice", "USDT"), acct.user_available("alice", "BTC"), acct.liquidity("USDT"),
                    acct.liquidity("BTC"), acct.fees("BTC"), acct.liquidity_reserved("USDT")):
        assert minor(platform, account) == minor(reference, account), account.id
    assert minor(platform, acct.user_available("alice", "USDT")) > 0
    assert_clean(platform)


def withdraw(platform):
    return withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount="0.101",
                                         destination="bc1qexample", idempotency_key="wd-1")


@pytest.mark.parametrize("seed", range(4))
def test_ten_threads_sending_one_withdrawal_key_withdraw_once(new_platform, seed):
    platform = new_platform()
    credit(platform.ledger, "alice", "1")
    results = run_interleaved(platform.store, seed, [lambda: withdraw(platform) for _ in range(10)])
    ids = {r["_id"] for r in results if isinstance(r, dict)}
    assert len(ids) == 1
    balances = platform.ledger.user_balances("alice")["BTC"]
    sent_out = minor(platform, acct.external("BTC")) + BTC  # external was debited 1 BTC by the deposit
    assert balances.available.minor + balances.locked.minor + sent_out + minor(platform, acct.fees("BTC")) == BTC  # nothing created
    assert balances.available.minor == BTC - 10_100_000
    assert_clean(platform)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_refused_entrys_credit_can_never_be_spent(new_platform, seed):
    platform = new_platform()
    credit(platform.ledger, "alice", "1")
    credit(platform.ledger, "bob", "0.5")
    three_legs = make_request(idempotency_key="multi", type="test.multi", actor="system", postings=(
        {"account": acct.user_available("alice", "BTC"), "amount": amount("-1", "BTC")},
        {"account": acct.user_available("bob", "BTC"), "amount": amount("-1", "BTC")},  # bob holds 0.5: refused
        {"account": acct.user_available("carol", "BTC"), "amount": amount("2", "BTC")},
    ))
    spend = transfer_request("carol-spends", acct.user_available("carol", "BTC"), acct.user_available("dave", "BTC"), "1")
    ledgers = [Ledger(platform.store, platform.clock) for _ in range(3)]
    results = run_interleaved(platform.store, seed, [
        lambda: ledgers[0].post(three_legs), lambda: ledgers[1].post(three_legs), lambda: ledgers[2].post(spend)])
    assert all(isinstance(r, InsufficientFundsError) for r in results)
    assert platform.ledger.entry_by_key("multi") is None and platform.ledger.entry_by_key("carol-spends") is None
    assert minor(platform, acct.user_available("carol", "BTC")) == 0
    assert minor(platform, acct.user_available("alice", "BTC")) == BTC
    assert_clean(platform)
