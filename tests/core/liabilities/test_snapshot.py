"""Snapshots: totals equal the ledger exactly, every proof verifies, the tree names no one,
the action is admin-only, audited and idempotent, and a stored snapshot can be re-checked."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from core import liabilities, reports
from core.base.errors import (
    InvalidAccountError,
    LedgerError,
    PermissionDeniedError,
    ProofNotFoundError,
    SnapshotNotFoundError,
    SnapshotTamperedError,
)
from core.ledger import uncovered
from core.liabilities.snapshot import split_balance
from core.base.permissions import Principal, Role
from tests.helpers import HOLDERS, Crash, deposit, fund_holders
from tests.principals import ADMIN, QA, SUPPORT

def ledger_liabilities(platform) -> dict[str, int]:
    return {row.asset: row.user_liabilities for row in reports.platform_totals(platform, ADMIN) if row.user_liabilities}


def test_snapshot_totals_equal_the_ledgers_user_liabilities(platform):
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    assert {a["asset"]: a["total"] for a in snapshot["assets"]} == ledger_liabilities(platform)
    assert snapshot["taken_by"] == ADMIN.name and snapshot["state"] == "published" and snapshot["format"] == 2
    assert snapshot["cut"]["attempts"] == 1 and snapshot["cut"]["accounts"] == 6  # alice has available and locked


def test_snapshot_every_users_proof_verifies_against_the_published_root(platform):
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN, split_parts=3)
    published = {a["asset"]: a for a in snapshot["assets"]}
    for user, assets in HOLDERS.items():
        bundle = liabilities.user_proof_bundle(platform, SUPPORT, user)
        assert sorted(p["asset"] for p in bundle["proofs"]) == sorted(assets)
        for proof in bundle["proofs"]:
            check = liabilities.verify_proof(proof, published[proof["asset"]]["root"], published[proof["asset"]]["total"])
            assert check.ok, check.reason
            assert proof["balance"] == platform.ledger.user_balances(user)[proof["asset"]].total.text()
    alice = liabilities.user_proof_bundle(platform, SUPPORT, "alice", asset="BTC")["proofs"][0]
    assert alice["balance_minor"] == 150_000_000  # 1.0 available + 0.5 locked


def test_snapshot_split_cuts_each_balance_into_parts_that_add_up(platform):
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN, split_parts=4, rng=random.Random(7))
    proof = liabilities.user_proof_bundle(platform, ADMIN, "bob", asset="USDT")["proofs"][0]
    assert len(proof["leaves"]) == 4 and sum(leaf["sum"] for leaf in proof["leaves"]) == 100_000_000
    assert snapshot["split_parts"] == 4
    assert split_balance(1, 4, random.Random(1)) == [1]  # fewer minor units than parts: one leaf
    parts = split_balance(10**15, 8, random.Random(2))
    assert len(parts) == 8 and sum(parts) == 10**15 and min(parts) >= 0


@pytest.mark.parametrize("parts", [0, 9, True, "2", 1.0])
def test_snapshot_refuses_a_bad_split(platform, parts):
    with pytest.raises(LedgerError):  # InvalidFlowInputError, or the validation boundary's error for a non-integer
        liabilities.take_snapshot(platform, ADMIN, split_parts=parts)


@pytest.mark.parametrize("snapshot_id", ["", "a b", "x" * 65, {"$gt": ""}, "../etc"])
def test_snapshot_refuses_a_malformed_id(platform, snapshot_id):
    with pytest.raises(LedgerError):  # InvalidFlowInputError, or the validation boundary's InvalidIdentifierError
        liabilities.take_snapshot(platform, ADMIN, snapshot_id=snapshot_id)


@pytest.mark.parametrize("who", [SUPPORT, QA, "admin"])
def test_snapshot_is_admin_only_and_a_refusal_writes_nothing(platform, who):
    fund_holders(platform)
    with pytest.raises(PermissionDeniedError):
        liabilities.take_snapshot(platform, who)
    assert platform.store.collection("liabilities_snapshots").count_documents({}) == 0
    assert platform.store.collection("audit").count_documents({"type": "liabilities.snapshot"}) == 0


def test_snapshot_is_audited_once_and_idempotent_by_id(platform):
    fund_holders(platform)
    first = liabilities.take_snapshot(platform, ADMIN, snapshot_id="eom-2026-01")
    deposit(platform.ledger, "erin", "1", "BTC")  # the replay must return the first cut, not a new one
    again = liabilities.take_snapshot(platform, ADMIN, snapshot_id="eom-2026-01")
    assert again["assets"] == first["assets"]
    events = platform.store.collection("audit").find({"type": "liabilities.snapshot"})
    assert len(events) == 1 and events[0]["event_key"] == "liabilities:snapshot:eom-2026-01"
    assert events[0]["actor"] == ADMIN.name and events[0]["after"]["roots"]["BTC"]["root"] == first["assets"][0]["root"]
    assert "users" not in events[0]["after"] and events[0]["after"]["public_key"] == first["public_key"]
    assert platform.ledger.audit.verify().ok


def test_snapshot_after_a_crash_before_publishing_is_retried_cleanly(platform):
    fund_holders(platform)

    def crash_on_publish(phase, collection, operation):
        if phase == "before" and collection == "liabilities_snapshots" and operation == "insert_one":
            raise Crash("died before publishing")

    platform.store.fault_hook = crash_on_publish
    with pytest.raises(Crash):
        liabilities.take_snapshot(platform, ADMIN, snapshot_id="s1")
    platform.store.fault_hook = None
    with pytest.raises(SnapshotNotFoundError):  # nothing half-written is visible
        liabilities.user_proof_bundle(platform, SUPPORT, "alice")
    liabilities.take_snapshot(platform, ADMIN, snapshot_id="s1")
    assert platform.store.collection("liabilities_users").count_documents({"snapshot_id": "s1"}) == 4
    assert liabilities.verify_snapshot(platform, ADMIN, "s1").ok


def test_snapshot_stored_tree_names_no_one(platform):
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    public = repr(snapshot) + repr(platform.store.raw("liabilities_leaves").find_one())
    assert not any(user in public for user in HOLDERS)


def test_snapshot_reads_are_index_covered_and_bounded(platform):
    fund_holders(platform)
    platform.ledger.recover()
    platform.store.log.reset()
    platform.ledger.recover()  # what take_snapshot's own recovery costs on this state
    recovery_ops = Counter((r.collection, r.operation) for r in platform.store.log.records)
    platform.store.log.reset()
    liabilities.take_snapshot(platform, ADMIN)
    records = platform.store.log.records
    recovery = [r for r in records if r.collection == "entries" and r.filter_fields == ("unprojected",) and r.sort_fields]
    assert [r for r in uncovered(records) if r not in recovery] == []  # recovery's own read is the engine's business
    by_collection = Counter((r.collection, r.operation) for r in records) - recovery_ops
    # recovery first; two collects (one _id range per user kind each), one flagged-entry read, the newest entry,
    # one leaf batch per asset, the re-issued secret generations, users, publish, audit
    assert by_collection[("balances", "find")] == 4
    assert by_collection[("liabilities_leaves", "insert_many")] == 3
    assert by_collection[("liabilities_user_secrets", "find")] == 1
    assert by_collection[("liabilities_users", "insert_many")] == 1
    assert sum(by_collection.values()) <= 17


def test_snapshot_of_an_empty_ledger_has_no_assets_and_no_proofs(platform):
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    assert snapshot["assets"] == [] and "users" not in snapshot
    with pytest.raises(ProofNotFoundError):
        liabilities.user_proof_bundle(platform, SUPPORT, "alice")


def test_proof_refuses_unknown_and_malformed_users_and_snapshots(platform):
    fund_holders(platform)
    liabilities.take_snapshot(platform, ADMIN)
    with pytest.raises(ProofNotFoundError):
        liabilities.user_proof_bundle(platform, SUPPORT, "nobody")
    with pytest.raises(ProofNotFoundError):
        liabilities.user_proof_bundle(platform, SUPPORT, "carol", asset="BTC")
    for bad in ({"$ne": None}, "a b", "", None):
        with pytest.raises((InvalidAccountError, LedgerError)):
            liabilities.user_proof_bundle(platform, SUPPORT, bad)
    with pytest.raises(SnapshotNotFoundError):
        liabilities.user_proof_bundle(platform, SUPPORT, "alice", snapshot_id="missing")
    with pytest.raises(LedgerError):  # never a query operator
        liabilities.user_proof_bundle(platform, SUPPORT, "alice", snapshot_id={"$gt": ""})
    with pytest.raises(PermissionDeniedError):
        liabilities.user_proof_bundle(platform, QA, "alice")


def test_proof_export_is_audited_with_the_user(platform):
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    liabilities.user_proof_bundle(platform, SUPPORT, "bob")
    event = platform.store.collection("audit").find_one({"type": "liabilities.proof_exported"})
    assert event["actor"] == SUPPORT.name and event["user"] == "bob" and event["target"] == snapshot["_id"]
    assert event["data"]["assets"] == ["BTC", "USDT"]


def test_verify_snapshot_finds_a_tampered_leaf_and_proofs_refuse_it(platform):
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    assert liabilities.verify_snapshot(platform, ADMIN).ok
    raw = platform.store.raw("liabilities_leaves")
    chunk = raw.find_one({"asset": "BTC"})
    sums = list(chunk["sums"])
    position = next(i for i, value in enumerate(sums) if value > 0)
    sums[position] -= 1  # the custodian shaves one satoshi off someone
    raw.update_one({"_id": chunk["_id"]}, {"$set": {"sums": sums}})
    check = liabilities.verify_snapshot(platform, ADMIN, snapshot["_id"])
    assert not check.ok and any("BTC" in problem for problem in check.problems)
    with pytest.raises(SnapshotTamperedError):
        for user in ("alice", "bob"):
            liabilities.user_proof_bundle(platform, SUPPORT, user, asset="BTC")


def test_published_roots_newest_first_and_as_csv(platform, clock):
    from datetime import timedelta

    fund_holders(platform)
    first = liabilities.take_snapshot(platform, ADMIN)
    clock.advance(timedelta(days=1))
    deposit(platform.ledger, "erin", "1", "BTC")
    second = liabilities.take_snapshot(platform, ADMIN)
    rows = liabilities.published_roots(platform, ADMIN)
    assert [r["snapshot_id"] for r in rows][:1] == [second["_id"]] and rows[-1]["snapshot_id"] == first["_id"]
    csv = liabilities.roots_csv(rows).splitlines()
    assert csv[0] == "snapshot_id,taken_at,asset,scale,root,total,leaf_count,public_key,bundle_sha256" and len(csv) == len(rows) + 1
    assert all(set(row) == set(liabilities.snapshot.ROOT_FIELDS) for row in rows)  # issue 21: no user count published
    assert [s["_id"] for s in liabilities.list_snapshots(platform, ADMIN)] == [second["_id"], first["_id"]]
    with pytest.raises(PermissionDeniedError):
        liabilities.published_roots(platform, SUPPORT)


def test_proof_of_a_leaf_chunk_tampered_to_a_negative_sum_is_a_named_refusal(platform):
    fund_holders(platform)
    liabilities.take_snapshot(platform, ADMIN)
    raw = platform.store.raw("liabilities_leaves")
    chunk = raw.find_one({"asset": "ETH"})
    raw.update_one({"_id": chunk["_id"]}, {"$set": {"sums": [-1 for _ in chunk["sums"]]}})
    with pytest.raises(SnapshotTamperedError):
        liabilities.user_proof_bundle(platform, SUPPORT, "dave")
    assert not liabilities.verify_snapshot(platform, ADMIN).ok


def test_snapshot_two_admins_publishing_the_same_id_leave_one_intact_snapshot(platform):
    fund_holders(platform)
    other = Principal(name="alan", role=Role.ADMIN)
    raced = []

    def the_other_admin_publishes_first(phase, collection, operation):
        if phase == "before" and collection == "liabilities_snapshots" and operation == "insert_one" and not raced:
            raced.append(True)
            platform.store.fault_hook = None
            liabilities.take_snapshot(platform, other, snapshot_id="eom")

    platform.store.fault_hook = the_other_admin_publishes_first
    returned = liabilities.take_snapshot(platform, ADMIN, snapshot_id="eom")
    platform.store.fault_hook = None
    assert raced and returned["taken_by"] == "alan"  # the first to publish stands; the loser gets it back
    assert platform.store.collection("liabilities_users").count_documents({"snapshot_id": "eom"}) == 4  # the loser's are gone
    assert liabilities.verify_snapshot(platform, ADMIN, "eom").ok
    proof = liabilities.user_proof_bundle(platform, SUPPORT, "bob", snapshot_id="eom")["proofs"][0]
    assert liabilities.verify_proof(proof, returned["assets"][0]["root"], returned["assets"][0]["total"]).ok
    assert platform.store.collection("audit").count_documents({"type": "liabilities.snapshot"}) == 1
