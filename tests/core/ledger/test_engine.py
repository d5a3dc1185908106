from datetime import timedelta

import pytest

from core.ledger import accounts as acct
from core.ledger.accounts import AccountKind
from core.ledger.entries import POSTINGS_PER_ENTRY_MAX, make_request
from core.base.errors import (
    EntryNotFoundError,
    HoldClosedError,
    HoldNotFoundError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAccountError,
    InvalidArgumentError,
    InvalidEntryError,
    NonPositiveAmountError,
    UnbalancedEntryError,
    UnknownAssetError,
)
from core.ledger.engine import EntryFilter, Ledger
from core.ledger.money import amount
from core.ledger.selfcheck import self_check
from core.ledger.store import uncovered
from tests.helpers import deposit, snapshot, transfer_request

ALICE, BOB = "alice", "bob"


def posting(account, value):
    return {"account": account, "amount": amount(value, account.asset)}


def test_post_applies_both_legs(ledger):
    entry = deposit(ledger, ALICE, "1.5")
    assert entry.state == "applied"
    assert ledger.balance(acct.user_available(ALICE, "BTC")).minor == 150_000_000
    assert ledger.balance(acct.external("BTC")).minor == -150_000_000
    assert ledger.user_balances(ALICE)["BTC"].total == amount("1.5", "BTC")


def test_post_replay_returns_original_without_new_entry(ledger, store):
    first = deposit(ledger, ALICE, "1", key="pay-1")
    before = snapshot(store)
    again = deposit(ledger, ALICE, "1", key="pay-1")
    assert again.id == first.id
    assert snapshot(store) == before


def test_post_same_key_different_request_conflicts_naming_key(ledger, store):
    deposit(ledger, ALICE, "1", key="pay-1")
    before = snapshot(store)
    with pytest.raises(IdempotencyConflictError) as error:
        deposit(ledger, ALICE, "2", key="pay-1")
    assert "pay-1" in str(error.value) and error.value.details["key"] == "pay-1"
    assert snapshot(store) == before


def invalid_requests():
    a, b = acct.user_available(ALICE, "BTC"), acct.external("BTC")
    return {
        "unbalanced": (UnbalancedEntryError, dict(postings=(posting(b, "-1"), posting(a, "0.9")))),
        "mixed asset sums": (UnbalancedEntryError, dict(postings=(posting(acct.external("ETH"), "-1"), posting(a, "1")))),
        "one posting": (InvalidEntryError, dict(postings=(posting(a, "1"),))),
        "no postings": (InvalidEntryError, dict(postings=())),
        "too many postings": (InvalidEntryError, dict(postings=tuple(
            posting(acct.user_available(f"u{i}", "BTC"), "1") for i in range(POSTINGS_PER_ENTRY_MAX)) + (posting(b, str(-POSTINGS_PER_ENTRY_MAX)),))),
        "zero posting": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1"), posting(acct.fees("BTC"), "0")))),
        "account twice": (InvalidEntryError, dict(postings=(posting(a, "-1"), posting(a, "1")))),
        "asset of amount differs from account": (InvalidEntryError, dict(postings=(
            {"account": b, "amount": amount("-1", "ETH")}, {"account": a, "amount": amount("1", "ETH")}))),
        "unknown asset account": (UnknownAssetError, dict(postings=(
            {"account": acct.external("DOGE"), "amount": amount("-1", "BTC")}, posting(a, "1")))),
        "float in metadata": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1")), metadata={"price": 0.1})),
        "operator as metadata key": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1")), metadata={"$set": "x"})),
        "bad idempotency key": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1")), idempotency_key="has space")),
        "dict as idempotency key": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1")), idempotency_key={"$ne": None})),
        "bad entry type": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1")), type="Deposit!")),
        "hold id without action": (InvalidEntryError, dict(postings=(posting(b, "-1"), posting(a, "1")), hold_id="h1")),
        "bad actor": (InvalidAccountError, dict(postings=(posting(b, "-1"), posting(a, "1")), actor="$where")),
    }


@pytest.mark.parametrize("case", sorted(invalid_requests()))
def test_post_invalid_request_refused_and_changes_nothing(ledger, store, case):
    deposit(ledger, ALICE, "5")
    before = snapshot(store)
    error_type, fields = invalid_requests()[case]
    base = dict(idempotency_key="k-1", type="test.transfer", actor="system")
    with pytest.raises(error_type):
        ledger.post(make_request(**{**base, **fields}))
    assert snapshot(store) == before


def test_account_refuses_operator_like_owner():
    for owner in ({"$gt": ""}, "a:b", "", "x" * 200, "$where", None):
        with pytest.raises(InvalidAccountError):
            acct.user_available(owner, "BTC")
    with pytest.raises(InvalidAccountError):
        acct.account("user.bogus", "alice", "BTC")


def test_post_insufficient_funds_rejects_and_moves_nothing(ledger, store):
    deposit(ledger, ALICE, "1")
    before = snapshot(store)
    with pytest.raises(InsufficientFundsError) as error:
        ledger.post(transfer_request("t-1", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "1.00000001"))
    assert error.value.details["available_minor"] == 100_000_000
    assert snapshot(store) == before
    assert ledger.entry_by_key("t-1") is None  # a refused request journals nothing
    with pytest.raises(InsufficientFundsError):  # a retry gives the same answer
        ledger.post(transfer_request("t-1", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "1.00000001"))
    deposit(ledger, ALICE, "0.00000001", key="top-up")  # once the funds are there, the same key goes through
    ledger.post(transfer_request("t-1", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "1.00000001"))
    assert ledger.balance(acct.user_available(BOB, "BTC")).minor == 100_000_001
    assert self_check(store, ledger.clock.now()).ok


def test_post_refusal_of_a_multi_leg_entry_moves_no_leg(ledger, store):
    deposit(ledger, ALICE, "1")
    deposit(ledger, BOB, "0.5")
    request = make_request(idempotency_key="multi", type="test.multi", actor="system", postings=(
        posting(acct.user_available(ALICE, "BTC"), "-1"),
        posting(acct.user_available(BOB, "BTC"), "-1"),  # fails after Alice's debit went in
        posting(acct.fees("BTC"), "2"),
    ))
    with pytest.raises(InsufficientFundsError):
        ledger.post(request)
    assert ledger.balance(acct.user_available(ALICE, "BTC")).minor == 100_000_000
    assert ledger.balance(acct.user_available(BOB, "BTC")).minor == 50_000_000
    assert ledger.balance(acct.fees("BTC")).minor == 0
    assert self_check(store, ledger.clock.now()).ok


def test_counterparty_accounts_may_go_negative_others_never(ledger):
    for kind in AccountKind:
        assert acct.account(kind, "x", "BTC").may_go_negative == (kind in {AccountKind.EXTERNAL, AccountKind.ADJUSTMENTS, AccountKind.OPENING})
    with pytest.raises(InsufficientFundsError):
        ledger.post(transfer_request("fee-out", acct.fees("BTC"), acct.external("BTC"), "1"))


def test_hold_place_release_consume(ledger, store):
    deposit(ledger, ALICE, "2")
    ledger.place_user_hold(hold_id="w1", user_id=ALICE, asset="BTC", amount="1.5", actor="system")
    balance = ledger.user_balances(ALICE)["BTC"]
    assert (balance.available.minor, balance.locked.minor, balance.total.minor) == (50_000_000, 150_000_000, 200_000_000)
    ledger.release_hold(hold_id="w1", actor="system")
    assert ledger.user_balances(ALICE)["BTC"].locked.minor == 0
    with pytest.raises(HoldClosedError):
        ledger.consume_hold(hold_id="w1", actor="system", destinations=[(acct.external("BTC"), amount("1.5", "BTC"))])
    ledger.place_user_hold(hold_id="w2", user_id=ALICE, asset="BTC", amount="1", actor="system")
    ledger.consume_hold(hold_id="w2", actor="system", entry_type="withdrawal.settle",
                        destinations=[(acct.external("BTC"), amount("0.99", "BTC")), (acct.fees("BTC"), amount("0.01", "BTC"))])
    assert ledger.balance(acct.fees("BTC")).minor == 1_000_000
    assert ledger.user_balances(ALICE)["BTC"].total.minor == 100_000_000
    place, close = ledger.hold("w2")
    assert close is not None and close.hold_action == "consume"
    assert self_check(store, ledger.clock.now()).ok


def test_hold_refusals_change_nothing(ledger, store):
    deposit(ledger, ALICE, "1")
    ledger.place_user_hold(hold_id="w1", user_id=ALICE, asset="BTC", amount="1", actor="system")
    before = snapshot(store)
    with pytest.raises(HoldNotFoundError):
        ledger.release_hold(hold_id="nope", actor="system")
    with pytest.raises(NonPositiveAmountError):
        ledger.place_user_hold(hold_id="w2", user_id=ALICE, asset="BTC", amount="0", actor="system")
    with pytest.raises(UnbalancedEntryError):
        ledger.consume_hold(hold_id="w1", actor="system", destinations=[(acct.external("BTC"), amount("0.5", "BTC"))])
    assert snapshot(store) == before
    with pytest.raises(InsufficientFundsError):
        ledger.place_user_hold(hold_id="w3", user_id=ALICE, asset="BTC", amount="0.1", actor="system")
    with pytest.raises(HoldNotFoundError):  # a rejected placement is not a hold
        ledger.release_hold(hold_id="w3", actor="system")


def test_entries_filters_and_server_side_pages(ledger, clock):
    for i in range(5):
        deposit(ledger, ALICE, str(i + 1), key=f"a{i}")
        clock.advance(timedelta(minutes=1))
    deposit(ledger, BOB, "1", asset="ETH", key="b0")
    everything = ledger.entries(EntryFilter(user=ALICE), page_size=2)
    assert len(everything.items) == 2 and everything.has_more
    assert everything.items[0].idempotency_key == "a4"  # newest first
    last = ledger.entries(EntryFilter(user=ALICE), page=2, page_size=2)
    assert [e.idempotency_key for e in last.items] == ["a0"] and not last.has_more
    assert [e.idempotency_key for e in ledger.entries(EntryFilter(account="user.available:bob:ETH")).items] == ["b0"]
    assert len(ledger.entries(EntryFilter(type="deposit", state="applied")).items) == 6
    start = ledger.entry_by_key("a1").created_at
    window = ledger.entries(EntryFilter(since=start, until=start + timedelta(minutes=2)))
    assert [e.idempotency_key for e in window.items] == ["a2", "a1"]
    with pytest.raises(InvalidArgumentError):
        ledger.entries(EntryFilter(user={"$ne": None}))  # an operator never reaches the store
    with pytest.raises(InvalidEntryError):
        ledger.entries(page_size=10_000)
    with pytest.raises(EntryNotFoundError):
        ledger.entry("missing")


def test_two_leg_entry_costs_four_round_trips_and_a_replay_three(ledger, store):
    deposit(ledger, ALICE, "1", key="warm-up")  # accounts exist
    store.log.reset()
    deposit(ledger, ALICE, "1", key="measured")
    operations = [(r.collection, r.operation) for r in store.log.records]
    assert operations == [  # its tamper-evident record (per-account hash chain) included
        ("balances", "find"),
        ("entries", "insert_one"),
        ("balances", "update_one"), ("balances", "update_one"),
    ]
    store.log.reset()
    deposit(ledger, ALICE, "1", key="measured")
    assert [(r.collection, r.operation) for r in store.log.records] == [
        ("balances", "find"), ("entries", "insert_one"), ("entries", "find_one")]


def test_writer_clears_its_own_flags_in_batches(ledger, store, clock):
    """A writer clears the `unprojected` flags of the entries it projected: one update per
    FLAG_BATCH_MAX entries (4 + 1/64 operations per two-leg entry), or at its next posting
    once the oldest waits longer than FLAG_FLUSH_AFTER — never before projecting."""
    from core.ledger.flags import FLAG_BATCH_MAX, FLAG_FLUSH_AFTER

    store.log.reset()
    for number in range(FLAG_BATCH_MAX):
        deposit(ledger, f"u{number}", "1", key=f"batch{number}")
    operations = [(r.collection, r.operation) for r in store.log.records]
    assert len(operations) == 4 * FLAG_BATCH_MAX + 1 and operations[-1] == ("entries", "update_many")
    assert store.log.records[-1].documents == FLAG_BATCH_MAX
    assert store.raw("entries").count_documents({"unprojected": True}) == 0
    deposit(ledger, "late", "1", key="late")
    assert store.raw("entries").count_documents({"unprojected": True}) == 1  # in flight: waiting in the batch
    clock.advance(FLAG_FLUSH_AFTER)
    store.log.reset()
    deposit(ledger, "later", "1", key="later")
    assert [(r.collection, r.operation) for r in store.log.records][-1] == ("entries", "update_many")
    assert store.raw("entries").count_documents({"unprojected": True}) == 0
    deposit(ledger, "last", "1", key="last")
    ledger.flush()
    assert store.raw("entries").count_documents({"unprojected": True}) == 0


def test_a_crash_losing_the_flag_batch_leaves_entries_for_recovery(store, clock):
    writer = Ledger(store, clock)
    for number in range(5):
        deposit(writer, f"u{number}", "1", key=f"lost{number}")
    del writer  # the process dies with its batch
    assert store.raw("entries").count_documents({"unprojected": True}) == 5
    report = Ledger(store, clock).recover()
    assert len(report.entries_projected) == 5 and not report.poisoned
    assert store.raw("entries").count_documents({"unprojected": True}) == 0


def test_recover_reports_a_projection_edited_ahead_of_its_journal(store, clock):
    """An edit that moves a projection past its journal is poisoned, not silently unflagged."""
    writer = Ledger(store, clock)
    deposit(writer, ALICE, "1", key="d1")
    store.raw("balances").update_one({"_id": acct.user_available(ALICE, "BTC").id}, {"$set": {"version": 7, "balance_minor": 10**9}})
    report = Ledger(store, clock).recover()
    entry = writer.entry_by_key("d1").id
    assert entry in report.poisoned and "ahead of its journal" in report.poisoned[entry]
    assert store.raw("entries").count_documents({"unprojected": True}) == 1  # reported again until repaired
    store.raw("balances").update_one({"_id": acct.user_available(ALICE, "BTC").id}, {"$set": {"version": 1, "balance_minor": 5}})
    report = Ledger(store, clock).recover()
    assert "edited" in report.poisoned[entry]


def test_every_engine_query_is_index_covered(ledger, store, clock):
    store.log.reset()
    deposit(ledger, ALICE, "2")
    deposit(ledger, ALICE, "2")  # replay
    with pytest.raises(IdempotencyConflictError):
        deposit(ledger, ALICE, "3", key="deposit:alice:BTC:2")
    with pytest.raises(InsufficientFundsError):
        ledger.post(transfer_request("t", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "9"))
    ledger.place_user_hold(hold_id="h", user_id=ALICE, asset="BTC", amount="1", actor="system")
    ledger.release_hold(hold_id="h", actor="system")
    ledger.user_balances(ALICE)
    ledger.balances_of_kind(AccountKind.USER_AVAILABLE)
    for entry_filter in (EntryFilter(user=ALICE), EntryFilter(account="x"), EntryFilter(type="deposit"), EntryFilter(state="applied"),
                         EntryFilter(since=clock.now()), EntryFilter(hold_id="h"), EntryFilter(flow_ref="f")):
        ledger.entries(entry_filter)
    clock.advance(timedelta(hours=1))
    ledger.recover()
    ledger.audit.verify()
    self_check(store, clock.now())
    assert store.log.count > 20
    assert uncovered(store.log.records) == []


def walk(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
    else:
        yield value


def test_no_float_in_stored_documents(ledger, store):
    deposit(ledger, ALICE, "0.00153")
    ledger.place_user_hold(hold_id="h", user_id=ALICE, asset="BTC", amount="0.0001", actor="system")
    with pytest.raises(InsufficientFundsError):
        ledger.post(transfer_request("t", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "9"))
    for name in store.collection_names():
        for document in store.raw(name).find():
            assert not any(isinstance(value, float) for value in walk(document)), (name, document)
    stored = store.raw("balances").find_one({"_id": "user.available:alice:BTC"})
    assert stored["balance_minor"] == 143_000 and type(stored["balance_minor"]) is int


def test_ledger_is_reusable_across_instances(store, clock):
    deposit(Ledger(store, clock), ALICE, "1", key="k")
    assert deposit(Ledger(store, clock), ALICE, "1", key="k").state == "applied"
    assert Ledger(store, clock).balance(acct.user_available(ALICE, "BTC")).minor == 100_000_000


def test_open_holds_lists_only_unclosed_holds_in_two_queries(ledger, store, clock):
    deposit(ledger, ALICE, "5")
    for number in range(4):
        clock.advance(timedelta(seconds=1))
        ledger.place_user_hold(hold_id=f"h{number}", user_id=ALICE, asset="BTC", amount="1", actor="system")
    ledger.release_hold(hold_id="h1", actor="system")
    ledger.consume_hold(hold_id="h2", actor="system", destinations=[(acct.external("BTC"), amount("1", "BTC"))])
    store.log.reset()
    assert [e.hold_id for e in ledger.open_holds(ALICE)] == ["h3", "h0"]
    assert store.log.count == 2 and uncovered(store.log.records) == []
    assert ledger.open_holds("nobody") == []


@pytest.mark.parametrize("junk", [None, {"idempotency_key": {"$gt": ""}}, "k", 7, ["postings"], b"x"])
def test_post_refuses_anything_but_an_entry_request_and_writes_nothing(ledger, store, junk):
    deposit(ledger, ALICE, "1")
    before = snapshot(store)
    with pytest.raises(InvalidEntryError):
        ledger.post(junk)
    assert snapshot(store) == before


@pytest.mark.parametrize("junk", ["x", -1, None, {"$gt": 0}, timedelta(seconds=-1)])
def test_recover_refuses_a_bad_stale_after(ledger, junk):
    with pytest.raises(InvalidEntryError):
        ledger.recover(stale_after=junk)
