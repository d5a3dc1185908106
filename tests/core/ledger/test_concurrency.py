"""Concurrent double-spend attempts: the conditional debit is the only guard needed."""

import threading

from core.ledger import accounts as acct
from core.base.errors import InsufficientFundsError
from core.ledger.selfcheck import self_check
from tests.helpers import deposit, transfer_request

THREADS = 8
ATTEMPTS_PER_THREAD = 25


def run_threads(target):
    threads = [threading.Thread(target=target, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_eight_threads_spending_one_balance(ledger, store):
    deposit(ledger, "alice", "0.0000005", key="seed")  # 50 satoshi: room for exactly 50 debits of 1
    successes, refusals, errors = [], [], []

    def spend(thread):
        for attempt in range(ATTEMPTS_PER_THREAD):
            request = transfer_request(f"spend-{thread}-{attempt}", acct.user_available("alice", "BTC"), acct.user_available(f"shop{thread}", "BTC"), "0.00000001")
            try:
                ledger.post(request)
                successes.append(1)
            except InsufficientFundsError:
                refusals.append(1)
            except Exception as error:  # noqa: BLE001 - any other failure is a bug the test must show
                errors.append(error)

    run_threads(spend)
    assert errors == []
    assert len(successes) == 50 and len(refusals) == THREADS * ATTEMPTS_PER_THREAD - 50
    assert ledger.balance(acct.user_available("alice", "BTC")).minor == 0
    assert sum(ledger.balance(acct.user_available(f"shop{n}", "BTC")).minor for n in range(THREADS)) == 50
    assert self_check(store, ledger.clock.now()).ok
    assert ledger.audit.verify().ok


def test_eight_threads_replaying_one_key_write_one_entry(ledger, store):
    deposit(ledger, "alice", "1", key="seed")
    results = []

    def replay(_thread):
        results.append(ledger.post(transfer_request("same-key", acct.user_available("alice", "BTC"), acct.user_available("bob", "BTC"), "0.6")).id)

    run_threads(replay)
    assert len(set(results)) == 1 and len(results) == THREADS
    assert ledger.balance(acct.user_available("bob", "BTC")).minor == 60_000_000
    assert store.raw("entries").count_documents({"idempotency_key": "same-key"}) == 1
    assert self_check(store, ledger.clock.now()).ok


def test_eight_threads_competing_holds_never_overdraw(ledger, store):
    deposit(ledger, "alice", "0.0000001", key="seed")  # 10 satoshi
    placed = []

    def hold(thread):
        for attempt in range(5):
            try:
                ledger.place_user_hold(hold_id=f"h{thread}-{attempt}", user_id="alice", asset="BTC", amount="0.00000001", actor="system")
                placed.append(1)
            except InsufficientFundsError:
                pass

    run_threads(hold)
    balance = ledger.user_balances("alice")["BTC"]
    assert len(placed) == 10 and balance.available.minor == 0 and balance.locked.minor == 10
    assert self_check(store, ledger.clock.now()).ok
