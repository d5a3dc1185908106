"""The consistent cut: a posting during the read is wholly in or wholly out, a
half-projected entry is never half in the cut (it is rolled forward from the journal),
continuous movement never stops a cut, negatives are refused."""

from __future__ import annotations

import pytest

from core import liabilities
from core.base.errors import CutNotClosedError, NegativeLiabilityError
from core.ledger import accounts as acct
from core.liabilities.cut import read_cut
from tests.helpers import fund_holders
from tests.principals import ADMIN
from tests.helpers import Crash, deposit


def test_cut_of_a_quiet_ledger_takes_one_attempt_and_covers_every_user_posting(platform):
    fund_holders(platform)
    cut = read_cut(platform.store)
    assert cut.attempts == 1
    assert cut.liabilities["BTC"] == {"alice": 150_000_000, "bob": 200_000_000}
    # deposits: alice, bob x2, carol, dave = 5 user postings; the hold adds 2 more
    assert cut.versions_total == 7
    assert cut.newest_entry_id == platform.store.collection("entries").find_one({}, sort=[("created_at", -1)])["_id"]


def journal_sum_at(store, versions: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per asset and user, the user legs of the entries claiming each user account's
    versions 1..v: the journal's sum at the position `versions`."""
    totals: dict[str, dict[str, int]] = {}
    for entry in store.raw("entries").find({}, {"postings": 1}):
        for posting in entry["postings"]:
            if posting["kind"] in ("user.available", "user.locked") and posting["version"] <= versions.get(posting["account"], 0):
                users = totals.setdefault(posting["asset"], {})
                users[posting["owner"]] = users.get(posting["owner"], 0) + posting["amount_minor"]
    return {asset: {u: v for u, v in users.items() if v} for asset, users in totals.items() if any(users.values())}


def test_cut_takes_a_posting_between_the_two_reads_whole_or_not_at_all(platform, monkeypatch):
    fund_holders(platform)
    posted = []

    def post_once(phase, collection, operation):
        if phase == "before" and collection == "entries" and operation == "find" and not posted:
            posted.append(True)
            platform.store.fault_hook = None
            deposit(platform.ledger, "alice", "0.25", "BTC", key="during-the-cut")
            platform.ledger.place_user_hold(hold_id="during", user_id="bob", asset="BTC", amount="0.5", actor="system")
            platform.store.fault_hook = post_once

    platform.store.fault_hook = post_once
    cut = read_cut(platform.store)
    platform.store.fault_hook = None
    assert cut.attempts == 1 and posted
    assert cut.liabilities["BTC"]["alice"] in (150_000_000, 175_000_000)  # the whole of the new entry, or none of it
    assert cut.liabilities["BTC"]["bob"] == 200_000_000  # a hold moves bob's money, never loses half of it
    assert cut.liabilities == journal_sum_at(platform.store, cut.versions)


def test_cut_finishes_while_balances_never_stop_moving(platform):
    """Every read of the journal or the balances is preceded by more postings (40 rounds of
    a deposit and a hold): the former double collect gave up (`SnapshotContendedError`); the
    cut closes itself and is the journal's sum at its position."""
    fund_holders(platform)
    count = [0]

    def post_always(phase, collection, operation):
        if phase == "before" and collection in ("entries", "balances") and count[0] < 40:
            count[0] += 1
            platform.store.fault_hook = None
            deposit(platform.ledger, "bob", "0.01", "BTC", key=f"busy-{count[0]}")
            platform.ledger.place_user_hold(hold_id=f"busy-{count[0]}", user_id="bob", asset="BTC", amount="0.01", actor="system")
            platform.store.fault_hook = post_always

    platform.store.fault_hook = post_always
    cut = read_cut(platform.store)
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    platform.store.fault_hook = None
    assert count[0] > 5 and snapshot["cut"]["attempts"] == 1
    assert platform.store.collection("liabilities_snapshots").count_documents({}) == 1
    assert cut.liabilities == journal_sum_at(platform.store, cut.versions)


def _hold_dies_between_its_legs(platform, hold_id: str, value: str) -> None:
    """Place a hold on alice's BTC and 'die' between its two balance updates."""
    updates = [0]

    def crash_between_legs(phase, collection, operation):
        if phase == "before" and collection == "balances" and operation == "update_one":
            updates[0] += 1
            if updates[0] == 2:
                raise Crash("died between the two legs")

    platform.store.fault_hook = crash_between_legs
    with pytest.raises(Crash):
        platform.ledger.place_user_hold(hold_id=hold_id, user_id="alice", asset="BTC", amount=value, actor="system")
    platform.store.fault_hook = None


def test_cut_never_takes_a_hold_half_projected(platform):
    """A crash between the hold's two projections leaves available debited and locked not yet
    credited: the user's total would look 0.5 BTC short. The cut takes the hold whole (the
    locked side rolled forward from the journal), before and after recovery alike."""
    fund_holders(platform, {"alice": {"BTC": "1"}})
    _hold_dies_between_its_legs(platform, "h", "0.5")
    available = platform.ledger.balance(acct.user_available("alice", "BTC")).minor
    locked = platform.ledger.balance(acct.user_locked("alice", "BTC")).minor
    assert available + locked != 100_000_000, "the crash left the hold half projected"
    cut = read_cut(platform.store)
    assert cut.liabilities["BTC"] == {"alice": 100_000_000} and cut.rolled_forward == 1
    assert cut.liabilities == journal_sum_at(platform.store, cut.versions)
    platform.ledger.recover()
    again = read_cut(platform.store)
    assert again.liabilities["BTC"] == {"alice": 100_000_000} and again.rolled_forward == 0
    assert again.versions_digest == cut.versions_digest  # the same position, read from the journal then from projections


def test_cut_refuses_a_journal_missing_a_version_it_needs(platform):
    """Rolling forward needs every version up to the straddling leg: a deleted entry there
    is a broken chain, refused by name (the integrity check names it)."""
    fund_holders(platform, {"alice": {"BTC": "1"}})
    platform.ledger.place_user_hold(hold_id="h0", user_id="alice", asset="BTC", amount="0.1", actor="system")
    _hold_dies_between_its_legs(platform, "h1", "0.2")
    locked = acct.user_locked("alice", "BTC").id
    platform.store.raw("balances").update_one({"_id": locked}, {"$set": {"version": 0, "balance_minor": 0}})
    platform.store.raw("entries").delete_one({"claims": f"{locked}@1"})
    with pytest.raises(CutNotClosedError) as refused:
        read_cut(platform.store)
    assert refused.value.details["reason"] == "gap"


def test_cut_accepts_an_entry_not_yet_projected_anywhere(platform):
    """Journaled but projected on no account: wholly after the cut, which is consistent."""
    fund_holders(platform, {"alice": {"BTC": "1"}})

    def crash_before_projecting(phase, collection, operation):
        if phase == "before" and collection == "balances" and operation == "update_one":
            raise Crash("died right after the commit point")

    platform.store.fault_hook = crash_before_projecting
    with pytest.raises(Crash):
        deposit(platform.ledger, "alice", "2", "BTC", key="unprojected")
    platform.store.fault_hook = None
    assert read_cut(platform.store).liabilities["BTC"] == {"alice": 100_000_000}


def test_cut_refuses_a_negative_user_balance(platform):
    fund_holders(platform, {"alice": {"BTC": "1"}})
    platform.store.raw("balances").update_one({"_id": acct.user_available("alice", "BTC").id}, {"$set": {"balance_minor": -5}})
    with pytest.raises(NegativeLiabilityError):
        read_cut(platform.store)


def test_cut_leaves_zero_balances_out_of_the_tree(platform):
    fund_holders(platform, {"alice": {"BTC": "1"}, "bob": {"ETH": "1"}})
    platform.ledger.place_user_hold(hold_id="all", user_id="bob", asset="ETH", amount="1", actor="system")
    platform.ledger.consume_hold(hold_id="all", actor="system", destinations=[(acct.external("ETH"), platform.ledger.balance(acct.user_locked("bob", "ETH")))])
    cut = read_cut(platform.store)
    assert cut.liabilities == {"BTC": {"alice": 100_000_000}}
    assert cut.zero_balances == 1
