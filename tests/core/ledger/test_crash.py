"""Crash injection at every step boundary of the posting protocol, then recovery."""

from datetime import timedelta

import pytest

from core.ledger import accounts as acct
from core.base.clock import ManualClock
from core.ledger.entries import TERMINAL_STATES, make_request
from core.base.errors import InsufficientFundsError
from core.ledger.engine import Ledger
from core.ledger.money import amount
from core.ledger.selfcheck import self_check
from core.ledger.store import Store
from tests.helpers import Crash, CrashAt, count_operations, deposit, make_test_store, transfer_request

ALICE, BOB = "alice", "bob"


@pytest.fixture
def stores():
    """Every store a test opens; server databases are dropped afterwards."""
    opened = []
    yield opened
    for store in opened:
        if not store.embedded:
            store.drop()


def fresh(clock, stores):
    store = make_test_store()
    stores.append(store)
    ledger = Ledger(store, clock)
    deposit(ledger, ALICE, "1", key="seed-alice")
    deposit(ledger, BOB, "0.2", key="seed-bob")
    return store, ledger


def applied_transfer(ledger):
    return ledger.post(transfer_request("x", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "0.4"))


def refused_three_legs(ledger):
    return ledger.post(make_request(idempotency_key="x", type="test.multi", actor="system", postings=(
        {"account": acct.user_available(ALICE, "BTC"), "amount": amount("-0.5", "BTC")},
        {"account": acct.user_available(BOB, "BTC"), "amount": amount("-0.5", "BTC")},
        {"account": acct.fees("BTC"), "amount": amount("1", "BTC")},
    )))


def new_account_credit(ledger):
    return ledger.post(transfer_request("x", acct.user_available(ALICE, "BTC"), acct.user_available("carol", "BTC"), "0.1"))


def hold_then_consume(ledger):
    ledger.place_user_hold(hold_id="w", user_id=ALICE, asset="BTC", amount="0.5", actor="system")
    return ledger.consume_hold(hold_id="w", actor="system", destinations=[
        (acct.external("BTC"), amount("0.495", "BTC")), (acct.fees("BTC"), amount("0.005", "BTC"))])


SCENARIOS = {
    "applied transfer": (applied_transfer, {ALICE: 60_000_000, BOB: 60_000_000}),
    "refused three legs": (refused_three_legs, {ALICE: 100_000_000, BOB: 20_000_000}),
    "credit to a new account": (new_account_credit, {ALICE: 90_000_000, "carol": 10_000_000}),
    "hold then consume": (hold_then_consume, {ALICE: 50_000_000}),
}


def crash_points():
    """Every (scenario, operation index, phase): counted once on an embedded store — the
    protocol issues the same operations on any store."""
    for name, (action, _) in SCENARIOS.items():
        ledger = Ledger(Store.embedded_store("count"), ManualClock())
        deposit(ledger, ALICE, "1", key="seed-alice")
        deposit(ledger, BOB, "0.2", key="seed-bob")
        total = count_operations(ledger.store, lambda: run_quietly(action, ledger))
        for index in range(total):
            for phase in ("before", "after"):
                yield name, index, phase


def run_quietly(action, ledger):
    try:
        action(ledger)
    except InsufficientFundsError:
        pass


def assert_recovered(store, ledger, expected):
    entries = list(store.raw("entries").find())
    assert all(e["state"] in TERMINAL_STATES for e in entries)
    assert not list(store.raw("entries").find({"unprojected": True}))  # recovery confirmed every entry
    for user, minor in expected.items():
        assert ledger.balance(acct.user_available(user, "BTC")).minor == minor, user
    report = self_check(store, ledger.clock.now())
    assert report.ok, report.findings
    assert not report.in_flight
    keys = [e["idempotency_key"] for e in entries]
    assert len(keys) == len(set(keys))  # each request journaled at most once


POINTS = list(crash_points())


@pytest.mark.parametrize("name,index,phase", POINTS, ids=[f"{n}-op{i}-{p}" for n, i, p in POINTS])
def test_crash_then_recover_then_retry(clock, stores, name, index, phase):
    action, expected = SCENARIOS[name]
    store, ledger = fresh(clock, stores)
    store.fault_hook = CrashAt(index, phase)
    try:
        run_quietly(action, ledger)
    except Crash:
        pass
    store.fault_hook = None
    clock.advance(timedelta(minutes=2))
    Ledger(store, clock).recover()  # a new process starts and sweeps
    run_quietly(action, Ledger(store, clock))  # the client retries with the same keys
    Ledger(store, clock).recover()
    assert_recovered(store, ledger, expected)


@pytest.mark.parametrize("index", range(0, 14, 2))
def test_crash_during_recovery_then_recover_again(clock, stores, index):
    store, ledger = fresh(clock, stores)
    store.fault_hook = CrashAt(3, "before")  # dies after the first leg is projected
    with pytest.raises(Crash):
        applied_transfer(ledger)
    clock.advance(timedelta(minutes=2))
    store.fault_hook = CrashAt(index, "after")
    try:
        ledger.recover()
    except Crash:
        pass
    store.fault_hook = None
    ledger.recover()
    assert_recovered(store, ledger, {ALICE: 60_000_000, BOB: 60_000_000})


def test_recover_may_wait_for_young_entries_but_helping_them_is_safe(clock, stores):
    store, ledger = fresh(clock, stores)
    store.fault_hook = CrashAt(2, "before")  # journaled (committed), nothing projected
    with pytest.raises(Crash):
        applied_transfer(ledger)
    store.fault_hook = None
    in_flight = self_check(store, clock.now())
    assert in_flight.ok and len(set(in_flight.in_flight)) == 1  # provably in flight, not a finding
    report = ledger.recover(stale_after=timedelta(minutes=1))  # time decides *when* to help...
    assert in_flight.in_flight[0] not in report.entries_projected
    clock.advance(timedelta(minutes=10))
    assert {f.kind for f in self_check(store, clock.now()).findings} == {"stuck_entry"}
    ledger.recover()  # ...never whether helping is safe: the default helps at once, twice is a no-op
    ledger.recover()
    assert_recovered(store, ledger, {ALICE: 60_000_000, BOB: 60_000_000})
