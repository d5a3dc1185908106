"""No hold stranded behind a finished flow (core.flows.holds, issue 19).

The sequence of the issue, replayed with paused threads: a first call is refused (the
funds were spent) and fails the flow; a retry with the same key, which read the flow
before it failed, places the hold once the funds are back — and dies before it can
release it. On the old code that left 1 BTC locked behind a `failed` withdrawal (an
escrow behind a `cancelled` trade, a reservation behind a `failed` quote) that no check
reported and no recovery released. Now integrity reports it and recovery releases it,
exactly once however many recoveries run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from core import integrity
from core.base.clock import ManualClock
from core.base.errors import InsufficientFundsError, InsufficientLiquidityError, LedgerError
from core.flows.documents import Withdrawal
from core.flows import holds, p2p, recovery, swap, withdrawal
from core.ledger import accounts as acct
from core.ledger.engine import Ledger
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from core.flowtests.choreography import Choreography, HeldFlow, strand_sequence
from tests.helpers import deposit as credit, make_test_store, transfer_request
from tests.interleave import run_interleaved

BTC = 100_000_000
AUDITOR = Principal(name="auditor", role=Role.ADMIN)


@dataclass(frozen=True)
class Flow(HeldFlow):
    """A hold-bearing flow, the state its refusal leaves it in and its hold's source account."""

    refused: str = ""
    source: acct.Account | None = None


def _move(platform: Platform, key: str, source: acct.Account, destination: acct.Account, value: str) -> None:
    platform.ledger.post(transfer_request(key, source, destination, value))


def withdrawal_flow() -> Flow:
    alice, parking = acct.user_available("alice", "BTC"), acct.user_available("parking", "BTC")
    return Flow("withdrawals", lambda pf: withdrawal.request_withdrawal(
        pf, SYSTEM, user_id="alice", asset="BTC", amount="1", destination="bc1q", idempotency_key="wd-1"),
        lambda pf, key: _move(pf, key, alice, parking, "1"), lambda pf, key: _move(pf, key, parking, alice, "1"),
        refused="failed", source=alice)


def trade_flow() -> Flow:
    alice, parking = acct.user_available("alice", "BTC"), acct.user_available("parking", "BTC")
    return Flow("p2p_trades", lambda pf: p2p.open_trade(
        pf, SYSTEM, seller="alice", buyer="bob", asset="BTC", amount="1", idempotency_key="trade-1"),
        lambda pf, key: _move(pf, key, alice, parking, "1"), lambda pf, key: _move(pf, key, parking, alice, "1"),
        refused="cancelled", source=alice)


def quote_flow() -> Flow:
    float_eth, outside = acct.liquidity("ETH"), acct.external("ETH")
    return Flow("quotes", lambda pf: swap.quote_swap(
        pf, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.05", idempotency_key="q-1"),
        lambda pf, key: _move(pf, key, float_eth, outside, "100"), lambda pf, key: _move(pf, key, outside, float_eth, "100"),
        refused="failed", source=float_eth)


FLOWS = {"withdrawal": withdrawal_flow, "trade": trade_flow, "quote": quote_flow}


def funded() -> Platform:
    platform = Platform.open(make_test_store(), ManualClock())
    credit(platform.ledger, "alice", "1")
    platform.ledger.post(transfer_request("float", acct.external("ETH"), acct.liquidity("ETH"), "100"))
    return platform


def strand(platform: Platform, flow: Flow, *, registered: bool = True) -> dict:
    """Issue 19's sequence (core.flowtests.choreography.strand_sequence). Returns the flow,
    refused by the first call."""
    outcomes = strand_sequence(platform, flow, registered=registered)
    assert isinstance(outcomes["first"], (InsufficientFundsError, InsufficientLiquidityError)), outcomes
    document = platform.store.collection(flow.collection).find_one({})
    assert document["state"] == flow.refused
    return document


def stranded(platform: Platform, document: dict) -> bool:
    try:
        return platform.ledger.hold(document["_id"])[1] is None
    except LedgerError:
        return False  # no hold at all


def stranded_findings(platform: Platform, **options) -> list:
    report = integrity.check_platform(platform, AUDITOR, stuck_after=timedelta(0), record=False, **options)
    return [f for f in report.findings if f.kind == "stranded_hold"]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_retry_that_read_the_flow_before_it_failed_leaves_no_money_behind_it(name):
    """The issue's sequence exactly: the retry read the flow while it could still be held,
    acts after it failed and the funds came back, and dies after placing the hold if it
    places one (the old code did, and nothing ever released it). Now it places nothing."""
    flow, platform = FLOWS[name](), funded()
    source_before = platform.ledger.balance(flow.source).minor
    document = strand(platform, flow, registered=False)
    recovery.resume_all(platform, SYSTEM)
    assert not stranded(platform, document)
    assert platform.ledger.balance(flow.source).minor == source_before
    assert stranded_findings(platform, full=True) == []


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_release_stranded_frees_a_hold_placed_after_its_flow_was_refused(name):
    flow, platform = FLOWS[name](), funded()
    source_before = platform.ledger.balance(flow.source).minor
    document = strand(platform, flow)
    assert stranded(platform, document) and platform.ledger.balance(flow.source).minor < source_before
    found = stranded_findings(platform, full=True)
    assert [f.subject for f in found] == [document["_id"]] and found[0].severity == "critical"
    assert document["state"] in found[0].message
    report = recovery.resume_all(platform, SYSTEM)
    assert report.holds_released == [document["_id"]] and report.ok
    assert platform.ledger.balance(flow.source).minor == source_before
    closing = platform.ledger.entry_by_key(f"hold:{document['_id']}:close")
    assert closing is not None and closing.type == holds.RELEASE_TYPE
    assert platform.store.collection(flow.collection).find_one({"_id": document["_id"]})[holds.PLACERS] == []
    assert stranded_findings(platform, full=True) == [] and stranded_findings(platform) == []
    again = recovery.resume_all(platform, SYSTEM)
    assert again.holds_released == [] and again.holds_awaiting_placer == []


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_integrity_reports_a_stranded_hold_once_in_every_kind_of_run(name):
    flow, platform = FLOWS[name](), funded()
    integrity.check_platform(platform, AUDITOR, full=True)  # an anchor: the next run is incremental
    document = strand(platform, flow)
    assert stranded(platform, document)
    incremental = integrity.check_platform(platform, AUDITOR, stuck_after=timedelta(0), record=False)
    assert incremental.mode == "incremental"
    assert [(f.kind, f.subject) for f in incremental.findings if f.subject == document["_id"]] == [
        ("stranded_hold", document["_id"])]  # not also closed_trade_escrow or a reservation mismatch
    full = integrity.check_platform(platform, AUDITOR, full=True, stuck_after=timedelta(0), record=False)
    assert [f.kind for f in full.findings if f.kind in ("stranded_hold", "closed_trade_escrow", "reservation_mismatch")] == [
        "stranded_hold"]
    young = integrity.check_platform(platform, AUDITOR, full=True, stuck_after=timedelta(hours=1), record=False)
    assert not [f for f in young.findings if f.kind == "stranded_hold"]  # its placer may still be releasing it


def test_per_user_check_reports_the_users_stranded_withdrawal():
    platform = funded()
    document = strand(platform, withdrawal_flow())
    report = integrity.check_user(platform, AUDITOR, "alice", stuck_after=timedelta(0), record=False)
    assert [f.subject for f in report.findings if f.kind == "stranded_hold"] == [document["_id"]]
    other = integrity.check_user(platform, AUDITOR, "parking", stuck_after=timedelta(0), record=False)
    assert not [f for f in other.findings if f.kind == "stranded_hold"]


@pytest.mark.parametrize("seed", range(6))
def test_recoveries_and_a_late_release_racing_release_the_stranded_hold_once(seed):
    platform = funded()
    document = strand(platform, withdrawal_flow())
    collection = platform.store.collection("withdrawals")
    others = [Platform.open(platform.store, platform.clock) for _ in range(2)]
    run_interleaved(platform.store, seed, [
        lambda: recovery.resume_all(others[0], SYSTEM), lambda: recovery.resume_all(others[1], SYSTEM),
        lambda: holds.release_behind(platform, SYSTEM, collection, document["_id"])])
    assert platform.store.raw("entries").count_documents({"hold_id": document["_id"]}) == 2  # placed, closed once
    assert platform.ledger.user_balances("alice")["BTC"].available.minor == BTC
    assert platform.ledger.user_balances("alice")["BTC"].locked.minor == 0


def test_a_caller_holding_a_stale_copy_places_nothing_behind_a_finished_flow():
    """A caller read the withdrawal while it was `requested`; by the time it acts the flow
    has failed and the funds are back. It must not place the hold (the old code placed it,
    found the flow failed, and released it again: two entries moving nothing, and a crash
    between them stranded the money)."""
    platform, flow = funded(), withdrawal_flow()
    script = Choreography()
    platform.store.fault_hook = script
    inserted = script.pause("first", "withdrawals", "insert_one")
    box: dict = {}
    first = threading.Thread(target=lambda: box.setdefault("r", _try(lambda: flow.start(platform))), name="first")
    first.start()
    assert inserted.wait(30)
    stale = platform.store.collection("withdrawals").find_one({})
    flow.spend(platform, "spent")
    script.release("first")
    first.join(30)
    platform.store.fault_hook = None
    assert isinstance(box["r"], InsufficientFundsError)
    flow.receive(platform, "received-again")
    assert stale["state"] == "requested"
    assert withdrawal._drive(platform, SYSTEM, Withdrawal.from_document(stale)).state == "failed"
    assert platform.ledger.entry_by_key(f"hold:{stale['_id']}:place") is None
    assert platform.store.collection("withdrawals").find_one({})[holds.PLACERS] == []  # the refuser took its name out


def _try(action: Callable[[], object]) -> object:
    try:
        return action()
    except LedgerError as error:
        return error


def test_a_named_placer_that_has_not_placed_yet_is_left_waiting():
    """Recovery does not clear the name of a placer still on its way: when it places the
    hold later, its own step finds the flow refused and releases it."""
    platform = funded()
    collection = platform.store.collection("withdrawals")
    script = Choreography()
    platform.store.fault_hook = script
    first_inserted = script.pause("first", "withdrawals", "insert_one")
    first = threading.Thread(target=lambda: _try(lambda: withdrawal_flow().start(platform)), name="first")
    first.start()
    assert first_inserted.wait(30)
    registered = script.pause("retry", "withdrawals", "find_one_and_update")
    box: dict = {}
    retry = threading.Thread(target=lambda: box.setdefault("r", _try(lambda: withdrawal_flow().start(platform))),
                             name="retry")
    retry.start()
    assert registered.wait(30)
    withdrawal_flow().spend(platform, "spent")
    script.release("first")
    first.join(30)
    report = recovery.resume_all(platform, SYSTEM)  # the retry is named, has placed nothing yet
    assert report.holds_awaiting_placer == [collection.find_one({})["_id"]] and report.holds_released == []
    withdrawal_flow().receive(platform, "received-again")
    script.release("retry")
    retry.join(30)
    platform.store.fault_hook = None
    assert isinstance(box["r"], dict) and box["r"]["state"] == "failed"  # it placed, found the flow failed, released
    document = collection.find_one({})
    assert document[holds.PLACERS] == [] and platform.ledger.hold(document["_id"])[1] is not None
    assert platform.ledger.user_balances("alice")["BTC"].available.minor == BTC
    assert recovery.resume_all(platform, SYSTEM).holds_awaiting_placer == []


@pytest.mark.parametrize("seed", range(8))
def test_retries_spends_and_recoveries_interleaved_leave_no_hold_behind_a_finished_flow(seed):
    platform = funded()
    ledgers = [Ledger(platform.store, platform.clock) for _ in range(2)]

    def shuffle() -> None:
        ledgers[0].post(transfer_request("out", acct.user_available("alice", "BTC"),
                                         acct.user_available("parking", "BTC"), "1"))
        ledgers[1].post(transfer_request("in", acct.user_available("parking", "BTC"),
                                         acct.user_available("alice", "BTC"), "1"))

    calls = [lambda: withdrawal_flow().start(Platform.open(platform.store, platform.clock)) for _ in range(3)]
    calls += [shuffle, lambda: recovery.resume_all(Platform.open(platform.store, platform.clock), SYSTEM)]
    run_interleaved(platform.store, seed, calls)
    recovery.resume_all(platform, SYSTEM)
    document = platform.store.collection("withdrawals").find_one({})
    balances = platform.ledger.user_balances("alice")["BTC"]
    if document is None or document["state"] == "failed":  # refused by the pre-check (nothing written) or the hold
        assert (balances.available.minor, balances.locked.minor) == (BTC, 0)
    else:  # 1 BTC is above the approval threshold: the hold stays for the checker
        assert document["state"] == "awaiting_approval" and (balances.available.minor, balances.locked.minor) == (0, BTC)
    assert not stranded_findings(platform, full=True)
