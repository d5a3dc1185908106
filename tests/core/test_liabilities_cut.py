"""The consistent cut: a posting during the read forces a retry, a half-projected entry is
never half in the cut, continuous movement ends in a named error, negatives are refused."""

from __future__ import annotations

import pytest

from core import liabilities
from core.errors import NegativeLiabilityError, SnapshotContendedError
from core.ledger import accounts as acct
from core.liabilities.cut import read_cut
from tests.core.test_liabilities_snapshot import ADMIN, fund
from tests.helpers import Crash, deposit


def test_cut_of_a_quiet_ledger_takes_one_attempt_and_covers_every_user_posting(platform):
    fund(platform)
    cut = read_cut(platform.store)
    assert cut.attempts == 1
    assert cut.liabilities["BTC"] == {"alice": 150_000_000, "bob": 200_000_000}
    # deposits: alice, bob x2, carol, dave = 5 user postings; the hold adds 2 more
    assert cut.versions_total == 7
    assert cut.newest_entry_id == platform.store.collection("entries").find_one({}, sort=[("created_at", -1)])["_id"]


def test_cut_retries_when_a_posting_lands_between_the_two_reads(platform):
    fund(platform)
    posted = []

    def post_once(phase, collection, operation):
        if phase == "before" and collection == "entries" and operation == "find" and not posted:
            posted.append(True)
            platform.store.fault_hook = None
            deposit(platform.ledger, "alice", "0.25", "BTC", key="during-the-cut")
            platform.store.fault_hook = post_once

    platform.store.fault_hook = post_once
    cut = read_cut(platform.store)
    platform.store.fault_hook = None
    assert cut.attempts == 2
    assert cut.liabilities["BTC"]["alice"] == 175_000_000  # the whole of the new entry, never half


def test_cut_gives_up_with_a_named_error_when_balances_never_stop_moving(platform):
    fund(platform)
    count = [0]

    def post_always(phase, collection, operation):
        if phase == "before" and collection == "entries" and operation == "find":
            count[0] += 1
            platform.store.fault_hook = None
            deposit(platform.ledger, "bob", "0.01", "BTC", key=f"busy-{count[0]}")
            platform.store.fault_hook = post_always

    platform.store.fault_hook = post_always
    with pytest.raises(SnapshotContendedError) as raised:
        liabilities.take_snapshot(platform, ADMIN)
    platform.store.fault_hook = None
    assert raised.value.details["attempts"] == liabilities.CUT_ATTEMPTS_MAX and raised.value.details["accounts_moved"] >= 1
    assert platform.store.collection("liabilities_snapshots").count_documents({}) == 0


def test_cut_never_takes_a_hold_half_projected(platform):
    """A crash between the hold's two projections leaves available debited and locked not yet
    credited: the user's total would look 0.5 BTC short. The cut refuses it until recovery."""
    fund(platform, {"alice": {"BTC": "1"}})
    updates = [0]

    def crash_between_legs(phase, collection, operation):
        if phase == "before" and collection == "balances" and operation == "update_one":
            updates[0] += 1
            if updates[0] == 2:
                raise Crash("died between the two legs")

    platform.store.fault_hook = crash_between_legs
    with pytest.raises(Crash):
        platform.ledger.place_user_hold(hold_id="h", user_id="alice", asset="BTC", amount="0.5", actor="system")
    platform.store.fault_hook = None
    available = platform.ledger.balance(acct.user_available("alice", "BTC")).minor
    locked = platform.ledger.balance(acct.user_locked("alice", "BTC")).minor
    assert available + locked != 100_000_000, "the crash left the hold half projected"
    with pytest.raises(SnapshotContendedError) as raised:
        read_cut(platform.store)
    assert raised.value.details["entries_half_projected"] == 1 and "half projected" in raised.value.message
    platform.ledger.recover()
    assert read_cut(platform.store).liabilities["BTC"] == {"alice": 100_000_000}


def test_cut_accepts_an_entry_not_yet_projected_anywhere(platform):
    """Journaled but projected on no account: wholly after the cut, which is consistent."""
    fund(platform, {"alice": {"BTC": "1"}})

    def crash_before_projecting(phase, collection, operation):
        if phase == "before" and collection == "balances" and operation == "update_one":
            raise Crash("died right after the commit point")

    platform.store.fault_hook = crash_before_projecting
    with pytest.raises(Crash):
        deposit(platform.ledger, "alice", "2", "BTC", key="unprojected")
    platform.store.fault_hook = None
    assert read_cut(platform.store).liabilities["BTC"] == {"alice": 100_000_000}


def test_cut_refuses_a_negative_user_balance(platform):
    fund(platform, {"alice": {"BTC": "1"}})
    platform.store.raw("balances").update_one({"_id": acct.user_available("alice", "BTC").id}, {"$set": {"balance_minor": -5}})
    with pytest.raises(NegativeLiabilityError):
        read_cut(platform.store)


def test_cut_leaves_zero_balances_out_of_the_tree(platform):
    fund(platform, {"alice": {"BTC": "1"}, "bob": {"ETH": "1"}})
    platform.ledger.place_user_hold(hold_id="all", user_id="bob", asset="ETH", amount="1", actor="system")
    platform.ledger.consume_hold(hold_id="all", actor="system", destinations=[(acct.external("ETH"), platform.ledger.balance(acct.user_locked("bob", "ETH")))])
    cut = read_cut(platform.store)
    assert cut.liabilities == {"BTC": {"alice": 100_000_000}}
    assert cut.zero_balances == 1
