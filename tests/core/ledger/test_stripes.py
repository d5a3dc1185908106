"""Hot accounts in stripes (core.ledger.stripes, HOT_ACCOUNTS.md): callers name logical
accounts; credits land on the writer's stripe; checked debits take a stripe that holds
enough or split across stripes in one entry; nothing is refused while the logical balance
suffices, and nothing is written when it does not."""

from __future__ import annotations

import threading

import pytest

from core.base.errors import BalanceOverflowError, ConfigurationError, InsufficientFundsError, InvalidAccountError
from core.ledger import accounts as acct
from core.ledger.accounts import AccountKind, parse_account_id
from core.ledger.engine import EntryFilter, Ledger
from core.ledger.money import amount, from_minor
from core.ledger.selfcheck import self_check
from core.ledger.store import uncovered
from core.ledger.stripes import PART_MINOR_MAX, STRIPABLE_KINDS, UNSTRIPED, logical_id, part_id, stripe_of, striping
from tests.helpers import snapshot, transfer_request

FLOAT = acct.liquidity("BTC")


def in_thread(action):
    """Run `action` in a new thread (a new writer: its own stripe) and return its result."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(value=action()))
    thread.start()
    thread.join()
    return result["value"]


def fund_stripe(ledger: Ledger, stripe: int, value: str, account: acct.Account = FLOAT) -> None:
    """Top up one chosen stripe of `account` (a writer whose stripe is `stripe`)."""
    ledger._affinity.stripe = stripe
    ledger.post(transfer_request(f"fund:{account.id}:{stripe}:{value}", acct.opening(account.asset), account, value, "treasury.liquidity_topup"))


def parts_of(store, account: acct.Account) -> dict[str, int]:
    return {d["_id"]: d["balance_minor"] for d in store.raw("balances").find({"kind": account.kind.value, "asset": account.asset})}


def test_stripes_credits_land_on_each_writers_stripe_and_reads_add_them_up(ledger, store):
    stripes = ledger.striping.count(AccountKind.FEES)
    for number in range(6):
        in_thread(lambda number=number: ledger.post(transfer_request(
            f"fee{number}", acct.opening("BTC"), acct.fees("BTC"), "0.1", "swap")))
    parts = parts_of(store, acct.fees("BTC"))
    assert len(parts) >= 2 and all(logical_id(part) == acct.fees("BTC").id and stripe_of(part) < stripes for part in parts)
    store.log.reset()
    assert ledger.balance(acct.fees("BTC")).minor == sum(parts.values()) == 60_000_000
    assert store.log.count == 1  # one read, whatever the number of stripes
    assert ledger.balances_of_kind(AccountKind.FEES) == {acct.fees("BTC").id: 60_000_000}
    found = ledger.entries(EntryFilter(account=acct.fees("BTC").id)).items
    assert len(found) == 6  # entries by the logical account, whichever stripe they landed on
    assert self_check(store, ledger.clock.now()).ok


def test_stripes_a_debit_larger_than_any_stripe_is_split_in_one_entry(ledger, store):
    for stripe, value in ((0, "1"), (1, "2"), (2, "3")):
        fund_stripe(ledger, stripe, value)
    ledger._affinity.stripe = 0
    entry = ledger.post(transfer_request("payout", FLOAT, acct.user_available("ann", "BTC"), "5.5"))
    debits = {p.account: p.amount_minor for p in entry.postings if p.amount_minor < 0}
    assert len(debits) >= 2 and sum(debits.values()) == -550_000_000  # split across stripes, one entry
    assert all(parse_account_id(part) == FLOAT for part in debits)
    assert ledger.balance(FLOAT).minor == 50_000_000
    assert all(balance >= 0 for balance in parts_of(store, FLOAT).values())  # no stored part below zero
    assert entry.amount_for(FLOAT.id, ledger.registry) == -amount("5.5", "BTC")
    assert self_check(store, ledger.clock.now()).ok


def test_stripes_a_debit_takes_the_writers_own_stripe_when_it_holds_enough(ledger, store):
    fund_stripe(ledger, 3, "1")
    fund_stripe(ledger, 5, "1")
    ledger._affinity.stripe = 5
    entry = ledger.post(transfer_request("own", FLOAT, acct.user_available("ann", "BTC"), "0.4"))
    assert [p.account for p in entry.postings if p.amount_minor < 0] == [part_id(FLOAT, 5)]


def test_stripes_refused_only_when_the_logical_balance_is_short_and_then_nothing_is_written(ledger, store):
    fund_stripe(ledger, 0, "1")
    fund_stripe(ledger, 7, "1")
    before = snapshot(store)
    with pytest.raises(InsufficientFundsError) as refusal:
        ledger.post(transfer_request("too-much", FLOAT, acct.user_available("ann", "BTC"), "2.00000001"))
    assert refusal.value.details["account"] == FLOAT.id  # the logical account, with its logical balance
    assert refusal.value.details["balance_minor"] == 200_000_000
    assert snapshot(store) == before
    ledger.post(transfer_request("all", FLOAT, acct.user_available("ann", "BTC"), "2"))
    assert ledger.balance(FLOAT).minor == 0


def test_stripes_keep_each_part_in_range_so_the_logical_sum_stays_in_int64(ledger, store):
    fund_stripe(ledger, 0, from_minor(PART_MINOR_MAX, "BTC").text())
    before = snapshot(store)
    with pytest.raises(BalanceOverflowError):
        fund_stripe(ledger, 0, "0.00000001")
    assert snapshot(store) == before


def test_stripes_holds_on_the_float_release_and_consume_exactly_what_they_placed(ledger, store):
    for stripe in range(3):
        fund_stripe(ledger, stripe, "1")
    ledger._affinity.stripe = 9
    place = ledger.place_hold(hold_id="q1", source=FLOAT, held=acct.liquidity_reserved("BTC"), amount="2.5", actor="system")
    assert sum(p.amount_minor for p in place.postings if p.amount_minor < 0) == -250_000_000
    ledger._affinity.stripe = 4  # released by another writer: its own stripe of the float, the reserved side split as needed
    ledger.release_hold(hold_id="q1", actor="system")
    assert ledger.balance(acct.liquidity_reserved("BTC")).minor == 0 and ledger.balance(FLOAT).minor == 300_000_000
    ledger.place_hold(hold_id="q2", source=FLOAT, held=acct.liquidity_reserved("BTC"), amount="1.2", actor="system")
    consume = ledger.consume_hold(hold_id="q2", actor="system", destinations=[(acct.user_available("ann", "BTC"), amount("1.2", "BTC"))])
    assert consume.amount_for(acct.liquidity_reserved("BTC").id, ledger.registry) == -amount("1.2", "BTC")
    assert ledger.balance(acct.liquidity_reserved("BTC")).minor == 0
    assert self_check(store, ledger.clock.now()).ok


def test_stripes_a_replay_from_another_writer_returns_the_original_entry(ledger, store):
    request = transfer_request("k1", acct.opening("BTC"), acct.fees("BTC"), "0.3", "swap")
    ledger._affinity.stripe = 1
    first = ledger.post(request)
    second = in_thread(lambda: (setattr(ledger._affinity, "stripe", 2), ledger.post(request))[1])
    assert second.id == first.id and store.raw("entries").count_documents({}) == 1
    assert ledger.balance(acct.fees("BTC")).minor == 30_000_000


def test_stripes_unstriped_ledger_stores_every_account_under_its_own_id(store, clock):
    ledger = Ledger(store, clock, striping=UNSTRIPED)
    for number in range(4):
        in_thread(lambda number=number: ledger.post(transfer_request(f"f{number}", acct.opening("BTC"), acct.fees("BTC"), "1", "swap")))
    assert list(parts_of(store, acct.fees("BTC"))) == [acct.fees("BTC").id]


def test_stripes_every_read_is_index_served(ledger, store):
    fund_stripe(ledger, 0, "1")
    fund_stripe(ledger, 1, "1")
    store.log.reset()
    ledger.post(transfer_request("split", FLOAT, acct.user_available("ann", "BTC"), "1.5"))
    ledger.balance(FLOAT)
    ledger.balances_of_kind(AccountKind.LIQUIDITY)
    assert uncovered(store.log.records) == []


@pytest.mark.parametrize("part", ["platform.fees:platform:BTC#0", "platform.fees:platform:BTC#128", "platform.fees:platform:BTC#01",
                                  "platform.fees:platform:BTC#x", "platform.fees:platform:BTC#", "platform.fees:platform:BTC#1#2",
                                  "platform.fees:platform:BTC#1\n"])
def test_stripes_malformed_part_ids_are_refused(part):
    with pytest.raises(InvalidAccountError):
        parse_account_id(part)


def test_stripes_part_ids_parse_to_their_logical_account():
    assert parse_account_id("platform.fees:platform:BTC#127") == acct.fees("BTC")
    assert part_id(acct.fees("BTC"), 0) == acct.fees("BTC").id and stripe_of(part_id(acct.fees("BTC"), 9)) == 9


@pytest.mark.parametrize("counts", [None, [], "64", {"user.available": 4}, {"platform.fees": 0}, {"platform.fees": 129},
                                    {"platform.fees": True}, {"platform.fees": 1.5}, {"platform.fees": "8"}, {1: 4},
                                    {"no.such.kind": 4}, {"$gt": 1}])
def test_stripes_configuration_is_validated_with_a_named_error(counts):
    with pytest.raises(ConfigurationError):
        striping(counts)


def test_stripes_configuration_accepts_kinds_by_name():
    configured = striping({"platform.fees": 8, "external": 1})
    assert configured.count(AccountKind.FEES) == 8 and configured.count(AccountKind.EXTERNAL) == 1
    assert configured.count(AccountKind.LIQUIDITY) == 1 and configured.count(AccountKind.USER_AVAILABLE) == 1
    assert STRIPABLE_KINDS == {AccountKind.FEES, AccountKind.LIQUIDITY, AccountKind.LIQUIDITY_RESERVED, AccountKind.EXTERNAL}


def test_stripes_ledger_refuses_a_striping_that_is_not_validated(store, clock):
    with pytest.raises(ConfigurationError):
        Ledger(store, clock, striping={"platform.fees": 4})


def test_stripes_balances_minor_reads_several_logical_accounts_at_once(ledger, store):
    fund_stripe(ledger, 0, "1")
    fund_stripe(ledger, 5, "2")
    ledger.post(transfer_request("u", acct.opening("BTC"), acct.user_available("ann", "BTC"), "0.5"))
    store.log.reset()
    assert ledger.balances_minor([FLOAT, acct.user_available("ann", "BTC"), acct.fees("BTC")]) == {
        FLOAT.id: 300_000_000, acct.user_available("ann", "BTC").id: 50_000_000, acct.fees("BTC").id: 0}
    assert store.log.count == 1 and uncovered(store.log.records) == []
