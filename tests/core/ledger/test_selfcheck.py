from core.ledger import accounts as acct
from core.ledger.selfcheck import self_check
from tests.helpers import deposit, transfer_request


def kinds(report):
    return sorted(f.kind for f in report.findings)


def test_self_check_clean_ledger(ledger, store):
    deposit(ledger, "alice", "1")
    ledger.post(transfer_request("t", acct.user_available("alice", "BTC"), acct.user_available("bob", "BTC"), "0.25"))
    report = self_check(store, ledger.clock.now())
    assert report.ok and report.entries_checked == 2 and report.accounts_checked == 3


def test_self_check_projection_off_by_one(ledger, store):
    deposit(ledger, "alice", "1")
    store.raw("balances").update_one({"_id": "user.available:alice:BTC"}, {"$inc": {"balance_minor": -1}})
    report = self_check(store, ledger.clock.now())
    assert kinds(report) == ["asset_not_zero_sum", "projection_mismatch"]
    mismatch = next(f for f in report.findings if f.kind == "projection_mismatch")
    assert (mismatch.expected, mismatch.actual, mismatch.difference) == (100_000_000, 99_999_999, -1)


def test_self_check_entry_edited_behind_the_engine(ledger, store):
    entry = deposit(ledger, "alice", "1")
    store.raw("entries").update_one({"_id": entry.id}, {"$set": {"postings.1.amount_minor": 200_000_000}})
    report = self_check(store, ledger.clock.now())
    assert "entry_edited" in kinds(report) and "unbalanced_entry" in kinds(report)


def test_self_check_negative_constrained_balance(ledger, store):
    deposit(ledger, "alice", "1")
    store.raw("balances").update_one({"_id": "user.available:alice:BTC"}, {"$set": {"balance_minor": -5}})
    store.raw("balances").update_one({"_id": "external:world:BTC"}, {"$set": {"balance_minor": 5}})
    assert "negative_balance" in kinds(self_check(store, ledger.clock.now()))
