"""Tamper evidence without a global bottleneck: per-account hash chains, anchors of every
account head in the audit trail, and the witness file that catches tail truncation.
Also: recovery isolates an entry it cannot project, balances stay inside int64, and the
replica-set settings reach pymongo."""

from datetime import timedelta

import pytest

from core.base.clock import ManualClock
from core.base.errors import BalanceOverflowError, StoreError
from core.ledger import accounts as acct
from core.ledger import store as store_module
from core.ledger.anchor import take_anchor, verify_anchor
from core.ledger.engine import Ledger
from core.ledger.entries import make_request
from core.ledger.money import INT64_MAX, from_minor
from core.ledger.selfcheck import self_check
from core.ledger.store import CLIENT_OPTIONS, Store
from core.ledger.witness import Witness
from tests.helpers import Crash, CrashAt, deposit, snapshot, transfer_request

ALICE, BOB = "alice", "bob"


def history(ledger, transfers=4):
    deposit(ledger, ALICE, "1", key="d1")
    for n in range(transfers):
        ledger.post(transfer_request(f"t{n}", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "0.1"))


def findings(store, clock):
    return {f.kind for f in self_check(store, clock.now()).findings}


def test_chain_edit_of_an_amount_is_named(ledger, store, clock):
    history(ledger)
    store.raw("entries").update_one({"idempotency_key": "t1"}, {"$set": {"postings.1.amount_minor": 20_000_000}})
    assert {"entry_edited", "chain_broken"} <= findings(store, clock)


def test_chain_deleting_a_middle_entry_is_named(ledger, store, clock):
    history(ledger)
    store.raw("entries").delete_one({"idempotency_key": "t1"})
    report = self_check(store, clock.now())
    assert any(f.kind == "chain_broken" and f.subject == acct.user_available(BOB, "BTC").id for f in report.findings)


def test_chain_reordering_two_entries_is_named(ledger, store, clock):
    history(ledger)
    first = store.raw("entries").find_one({"idempotency_key": "t1"})
    second = store.raw("entries").find_one({"idempotency_key": "t2"})
    store.raw("entries").update_one({"_id": first["_id"]}, {"$set": {"claims": ["moving"]}})
    for document, other in ((second, first), (first, second)):
        store.raw("entries").update_one({"_id": document["_id"]}, {"$set": {"postings": other["postings"], "claims": other["claims"]}})
    assert "entry_edited" in findings(store, clock)


def test_anchor_catches_a_consistent_rewrite_of_the_newest_entry(ledger, store, clock):
    """Deleting an account's newest entry and rolling its projection back leaves a chain
    that is consistent by itself; the anchor taken before still names it."""
    history(ledger)
    take_anchor(store, ledger.audit, actor="system", role="system", anchor_id="run-1")
    assert verify_anchor(store, ledger.audit).ok
    newest = store.raw("entries").find_one({"idempotency_key": "t3"})
    store.raw("entries").delete_one({"_id": newest["_id"]})
    for posting in newest["postings"]:
        previous = store.raw("entries").find_one({"claims": f"{posting['account']}@{posting['version'] - 1}"})
        store.raw("balances").update_one({"_id": posting["account"]}, {"$set": {
            "version": posting["version"] - 1, "balance_minor": posting["balance_after"] - posting["amount_minor"],
            "head_hash": previous["entry_hash"]}})
    assert self_check(store, clock.now()).ok  # the chains alone cannot tell
    check = verify_anchor(store, ledger.audit)
    assert not check.ok and any("is gone" in p for p in check.problems)


def test_anchor_moves_on_with_new_entries(ledger, store):
    history(ledger)
    take_anchor(store, ledger.audit, actor="system", role="system", anchor_id="run-1")
    ledger.post(transfer_request("later", acct.user_available(BOB, "BTC"), acct.user_available(ALICE, "BTC"), "0.05"))
    check = verify_anchor(store, ledger.audit)
    assert check.ok and check.accounts_checked == 3  # external, alice, bob


@pytest.mark.parametrize("deleted", [1, 2, 3])
def test_witness_catches_tail_truncation(ledger, store, tmp_path, deleted):
    store.witness = Witness(tmp_path / "witness.log", store.name)
    for n in range(6):
        ledger.audit.append(type="console.action", actor="admin", target=f"t{n}")
    assert ledger.audit.verify().ok
    for seq in range(6, 6 - deleted, -1):
        store.raw("audit").delete_one({"seq": seq})
    result = ledger.audit.verify()
    assert not result.ok and result.first_bad_seq == 7 - deleted and "deleted" in result.problem


def test_witness_catches_a_rewritten_chain(ledger, store, tmp_path):
    store.witness = Witness(tmp_path / "witness.log", store.name)
    for n in range(4):
        ledger.audit.append(type="console.action", actor="admin", target=f"t{n}")
    witnessed = Witness(tmp_path / "witness.log", store.name).lines()[0]
    store.raw("audit").delete_many({})
    other = Ledger(store, ledger.clock)
    store.witness = None  # the attacker rebuilds a valid chain without the witness
    for n in range(4):
        other.audit.append(type="console.action", actor="admin", target=f"forged{n}")
    store.witness = Witness(tmp_path / "witness.log", store.name)
    assert len(witnessed) == 4
    result = ledger.audit.verify()
    assert not result.ok and result.first_bad_seq == 1


def test_witness_ignores_other_databases_and_reports_unreadable_lines(ledger, store, tmp_path):
    path = tmp_path / "witness.log"
    Witness(path, "sandbox").record(0, 1, "f" * 64)
    store.witness = Witness(path, store.name)
    ledger.audit.append(type="console.action", actor="admin")
    assert ledger.audit.verify().ok
    with path.open("a") as stream:
        stream.write("not json\n")
    assert "unreadable" in ledger.audit.verify().problem


def test_postings_no_longer_touch_the_audit_chain(ledger, store):
    history(ledger)
    assert store.raw("audit").count_documents({}) == 0


def test_recover_isolates_an_entry_it_cannot_project(ledger, store, clock):
    deposit(ledger, ALICE, "1", key="d1")
    deposit(ledger, "carol", "1", key="d2")
    for key, source, destination in (("bad", ALICE, BOB), ("good", "carol", "dave")):
        store.fault_hook = CrashAt(1, "after")  # journaled, not projected
        with pytest.raises(Crash):
            ledger.post(transfer_request(key, acct.user_available(source, "BTC"), acct.user_available(destination, "BTC"), "0.1"))
        store.fault_hook = None
    # alice's projection is corrupted behind the engine's back: "bad" can no longer land
    store.raw("balances").update_one({"_id": acct.user_available(ALICE, "BTC").id}, {"$set": {"version": "corrupted"}})
    report = ledger.recover()
    bad = ledger.entry_by_key("bad").id
    assert set(report.poisoned) == {bad}  # d1 was projected and its flag cleared by its writer before the corruption
    assert "behind" in report.poisoned[bad]
    assert ledger.entry_by_key("good").id in report.entries_projected
    assert ledger.balance(acct.user_available("carol", "BTC")).minor == 90_000_000
    assert store.raw("entries").count_documents({"unprojected": True}) == 1  # still flagged: reported again until repaired


def test_post_refuses_a_balance_outside_int64_and_writes_nothing(ledger, store):
    big = from_minor(INT64_MAX, "BTC")
    ledger.post(make_request(idempotency_key="max", type="opening", actor="system", postings=(
        {"account": acct.opening("BTC"), "amount": -big}, {"account": acct.user_available(ALICE, "BTC"), "amount": big})))
    before = snapshot(store)
    with pytest.raises(BalanceOverflowError) as error:
        deposit(ledger, ALICE, "0.00000001", key="one-more")
    assert error.value.details["account"] == acct.user_available(ALICE, "BTC").id
    assert snapshot(store) == before


def test_embedded_store_enforces_a_unique_array_index_per_element(ledger, store):
    deposit(ledger, ALICE, "1", key="d1")
    entry = store.raw("entries").find_one({"idempotency_key": "d1"})
    forged = dict(entry, _id="forged", idempotency_key="forged", claims=[entry["claims"][0], "user.available:zed:BTC@1"])
    with pytest.raises(store_module.DuplicateKeyStoreError):
        store.collection("entries").insert_one(forged)


def test_replica_set_settings_reach_pymongo(monkeypatch):
    import pymongo

    client = pymongo.MongoClient("mongodb://127.0.0.1:1", connect=False, **CLIENT_OPTIONS)
    assert client.write_concern.document == {"w": "majority", "j": True}
    assert client.read_concern.level == "majority" and client.options.retry_writes
    seen = {}

    class Refusing:
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            raise store_module.PyMongoError("no server here")

    monkeypatch.setattr(store_module.pymongo, "MongoClient", Refusing)
    with pytest.raises(StoreError):
        Store.from_uri("mongodb://127.0.0.1:1", "ledger", timeout_ms=10)
    assert {key: seen[key] for key in CLIENT_OPTIONS} == {"w": "majority", "journal": True, "readConcernLevel": "majority", "retryWrites": True}


def test_recover_skew_cannot_make_helping_unsafe(store):
    """A recoverer whose clock runs an hour ahead helps an entry its writer is still
    driving: the writer's own projections then match nothing."""
    writer_clock, fast = ManualClock(), ManualClock()
    fast.advance(timedelta(hours=1))
    writer = Ledger(store, writer_clock)
    deposit(writer, ALICE, "1", key="d1")
    store.fault_hook = CrashAt(2, "before")
    with pytest.raises(Crash):
        writer.post(transfer_request("t", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "0.4"))
    store.fault_hook = None
    Ledger(store, fast).recover(stale_after=timedelta(minutes=1))
    writer.post(transfer_request("t", acct.user_available(ALICE, "BTC"), acct.user_available(BOB, "BTC"), "0.4"))
    writer.recover()
    assert writer.balance(acct.user_available(BOB, "BTC")).minor == 40_000_000
    assert self_check(store, writer_clock.now()).ok


def test_incremental_integrity_check_catches_a_truncated_audit_tail(tmp_path):
    from core import integrity
    from core.base.permissions import Principal, Role
    from core.platform import Platform
    from tests.helpers import make_test_store

    store = make_test_store()
    try:
        store.witness = Witness(tmp_path / "witness.log", store.name)
        platform = Platform.open(store, ManualClock())
        admin = Principal(name="ann", role=Role.ADMIN)
        deposit(platform.ledger, ALICE, "1", key="d1")
        assert integrity.check_platform(platform, admin).ok  # full: sets the anchors
        platform.ledger.audit.append(type="console.action", actor="ann", target="x")
        newest = store.raw("audit").find_one(sort=[("seq", -1)])
        store.raw("audit").delete_one({"_id": newest["_id"]})
        report = integrity.check_platform(platform, admin)
        assert any(f.kind == "audit_chain_broken" and "deleted" in f.message for f in report.findings), report.findings
    finally:
        if not store.embedded:
            store.drop()


def test_delta_anchors_chain_to_the_full_one_and_catch_a_rewrite(ledger, store, clock):
    history(ledger)
    take_anchor(store, ledger.audit, actor="system", role="system", anchor_id="full-1")
    ledger.post(transfer_request("later", acct.user_available(BOB, "BTC"), acct.user_available("carol", "BTC"), "0.05"))
    event = take_anchor(store, ledger.audit, actor="system", role="system", anchor_id="delta-1",
                        accounts=[acct.user_available(BOB, "BTC").id, acct.user_available("carol", "BTC").id])
    assert event["data"]["kind"] == "delta" and event["data"]["base"] == "full-1" and event["data"]["accounts"] == 2
    check = verify_anchor(store, ledger.audit)
    assert check.ok and check.accounts_checked == 4  # external and alice from the full anchor, bob and carol from the delta
    store.raw("ledger_anchors").update_one({"_id": "delta-1:0"}, {"$set": {"heads.0.1": 1}})  # someone edits an anchored head
    assert not verify_anchor(store, ledger.audit).ok


def test_integrity_runs_anchor_every_time_at_the_cost_of_what_changed(ledger, store, clock):
    from core import integrity
    from core.base.permissions import Principal, Role
    from core.platform import Platform

    platform = Platform.open(store, clock)
    admin = Principal(name="ann", role=Role.ADMIN)
    history(platform.ledger)
    integrity.check_platform(platform, admin, full=True)
    platform.ledger.post(transfer_request("later", acct.user_available(BOB, "BTC"), acct.user_available("carol", "BTC"), "0.05"))
    report = integrity.check_platform(platform, admin)
    anchors = list(store.raw("audit").find({"type": "ledger.anchor"}).sort("seq", 1))
    assert report.mode == "incremental" and len(anchors) == 2
    assert anchors[0]["data"]["kind"] == "full" and anchors[1]["data"]["kind"] == "delta"
    assert anchors[1]["data"]["accounts"] == 2 and report.heads_digest == anchors[1]["data"]["root"]
