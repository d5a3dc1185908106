"""core.legacy.bridge: every document read whatever its `_id` type; hostile BSON types are
dirt, never a crash and never a query; the duplicate that states an amount is the primary."""

from __future__ import annotations

from datetime import datetime

import pytest
from bson import ObjectId

from core.base.errors import ContentionError
from core.ledger import scan
from core.ledger.money import DEFAULT_REGISTRY
from core.ledger.store import Collection
from core.legacy import bridge
from core.legacy.bridge import read_legacy, read_user, scan_documents
from core.legacy.reconcile import reconcile

PROJECTION = {"user_id": 1}



def _mixed_wallets(count: int = 12) -> list[dict]:
    """Wallets whose `_id`s are, in turn, ObjectIds, strings, ints and embedded documents."""
    documents = []
    for number in range(count):
        ids = (ObjectId(f"{number:024x}"), f"w-{number:03d}", number, {"legacy": number})
        documents.append({"_id": ids[number % 4], "user_id": f"user-{number:03d}", "currency": "BTC",
                          "available_balance": 1.0, "locked_balance": 0.0, "total_balance": 1.0})
    return documents


def test_scan_reads_every_document_whatever_its_id_type(legacy, monkeypatch):
    documents = _mixed_wallets()
    legacy.collection("wallets").insert_many(documents)
    keyset = list(scan(legacy.collection("wallets"), {}, batch_size=3, projection=PROJECTION))
    assert len(keyset) < len(documents)  # why the bridge has its own scan: `$gt` stays in one BSON type
    for batch_size in (1, 2, 3, 4, 5, 11, 12, 13, 1_000):
        read = scan_documents(legacy.collection("wallets"), PROJECTION, batch_size)
        assert sorted(d["user_id"] for d in read) == sorted(d["user_id"] for d in documents), batch_size
    monkeypatch.setattr(bridge, "LEGACY_SCAN_BATCH", 3)
    view = read_legacy(legacy, DEFAULT_REGISTRY)
    assert view.documents_read == len(documents) and len(view.groups) == len(documents)
    assert not [d for d in view.dirt if d.kind == "duplicate"]


@pytest.mark.parametrize("tolerance", [2, 64])
def test_scan_finds_its_place_when_the_collection_shifts_under_it(legacy, monkeypatch, tolerance):
    monkeypatch.setattr(bridge, "SCAN_SHIFT_TOLERANCE", tolerance)  # 2: the step's window starts past the deletion
    documents = _mixed_wallets(20)
    legacy.collection("wallets").insert_many(documents)
    first_in_order = legacy.raw("wallets").find({}, sort=[("_id", 1)]).limit(1)[0]["_id"]
    fired = []

    def delete_behind_the_scan(phase, collection, operation):
        if phase == "after" and collection == "wallets" and operation == "find" and not fired:
            fired.append(True)
            legacy.raw("wallets").delete_one({"_id": {"$eq": first_in_order}})  # every later document moves up one

    passes, original = [], bridge._scan_once
    monkeypatch.setattr(bridge, "_scan_once", lambda *args: passes.append(1) or original(*args))
    legacy.fault_hook = delete_behind_the_scan
    read = [d["user_id"] for d in scan_documents(legacy.collection("wallets"), PROJECTION, 3)]
    assert fired and len(passes) == 1  # found its place again: no restart
    assert len(read) == len(set(read))  # nothing read twice
    present_throughout = {d["user_id"] for d in documents if d["_id"] != first_in_order}
    assert present_throughout <= set(read) <= {d["user_id"] for d in documents}  # nothing skipped


def test_scan_gives_up_by_name_when_the_collection_never_settles(legacy, monkeypatch):
    legacy.collection("wallets").insert_many(_mixed_wallets(10))
    original, steps = Collection.find, [0]

    def find_after_a_burst_of_inserts(self, query, **kwargs):  # more writes before the position than the window
        if "skip" in kwargs:  # a positional step
            steps[0] += 1
            legacy.raw("wallets").insert_many(
                [{"_id": -(steps[0] * 1_000 + n), "user_id": f"new-{steps[0]}-{n}", "currency": "BTC"}
                 for n in range(2 * bridge.SCAN_SHIFT_TOLERANCE + 3 + 2)]  # past the window (batch 3)
            )
        return original(self, query, **kwargs)

    monkeypatch.setattr(Collection, "find", find_after_a_burst_of_inserts)
    monkeypatch.setattr(bridge, "SCAN_SHIFT_TOLERANCE", 1)  # a window of a few documents
    with pytest.raises(ContentionError) as refused:
        scan_documents(legacy.collection("wallets"), PROJECTION, 3)
    assert refused.value.details["collection"] == "wallets"
    assert steps[0] == bridge.SCAN_RESTARTS_MAX + 1  # one failed step per pass: bounded work


HOSTILE = [
    {"user_id": {"$gt": ""}, "currency": "BTC", "available_balance": 1.0},
    {"user_id": ["u-list"], "currency": "BTC", "available_balance": 1.0},
    {"user_id": 42, "currency": "BTC", "available_balance": 1.0},
    {"user_id": None, "currency": "BTC", "available_balance": 1.0},
    {"user_id": "u-cur-doc", "currency": {"code": "BTC"}, "available_balance": 1.0},
    {"user_id": "u-cur-int", "currency": 7, "available_balance": 1.0},
    {"user_id": "u-money", "currency": "ETH", "available_balance": {"$gt": 1}, "locked_balance": [1],
     "total_balance": True, "last_updated": {"at": 1}},
    {"_id": {"nested": "id"}, "user_id": "u-nested-id", "currency": "BTC", "available_balance": 2.0,
     "locked_balance": 0.0, "total_balance": 2.0},
]


def test_hostile_bson_types_are_dirt_never_a_crash(legacy):
    legacy.collection("wallets").insert_many([dict(d) for d in HOSTILE])
    legacy.collection("trader_balances").insert_one({"trader_id": {"$ne": None}, "currency": "BTC", "total_balance": 1.0})
    report = reconcile(None, legacy, DEFAULT_REGISTRY)
    kinds = [d.kind for d in report.dirt]
    assert kinds.count("invalid_owner") == 4 and kinds.count("null_owner") == 1  # dict, list, int, trader dict; None
    assert kinds.count("unknown_currency") == 2
    assert any("dict" in d.message and "$gt" in d.message for d in report.dirt if d.kind == "invalid_owner")
    assert {"u-money"} == {d.owner for d in report.dirt if d.kind == "malformed_value"}
    assert [h["document"] for h in report.held if h["user"] == "u-money"]  # unreadable: held for a human
    assert report.as_dict()["counts"]["dirt"] == len(report.dirt)  # JSON-able
    view = read_legacy(legacy, DEFAULT_REGISTRY)
    assert view.groups[("u-nested-id", "BTC")]["wallets"][0].document == "dict({'nested': 'id'})"


def test_primary_is_the_duplicate_that_states_an_amount_and_the_choice_is_reported(legacy):
    legacy.collection("trader_balances").insert_many([
        {"trader_id": "u-sol", "currency": "SOL", "available_balance": 80.73912638, "locked_balance": 0.0,
         "total_balance": 80.73912638, "updated_at": datetime(2025, 1, 1)},
        {"trader_id": "u-sol", "currency": "SOL", "updated_at": datetime(2025, 6, 1)},  # newer, no amounts
        {"trader_id": "u-two", "currency": "BTC", "available_balance": 1.0, "updated_at": datetime(2025, 1, 1)},
        {"trader_id": "u-two", "currency": "BTC", "available_balance": 2.0, "updated_at": "2025-06-01T12:00:00+00:00"},
    ])
    view = read_legacy(legacy, DEFAULT_REGISTRY)
    sol = view.groups[("u-sol", "SOL")]["trader_balances"]
    assert str(sol[0].values["available"]) == "80.73912638"
    choices = {(c["user"], c["collection"]): c for c in view.choices}
    assert "states an amount" in choices[("u-sol", "trader_balances")]["reason"]
    assert choices[("u-sol", "trader_balances")]["primary"] == sol[0].document
    assert len(choices[("u-sol", "trader_balances")]["documents"]) == 2
    two = view.groups[("u-two", "BTC")]["trader_balances"]
    assert str(two[0].values["available"]) == "2.0" and "newest" in choices[("u-two", "trader_balances")]["reason"]


def test_primary_choice_survives_timestamps_at_the_ends_of_time(legacy):
    legacy.collection("wallets").insert_many([
        {"user_id": "u-old", "currency": "BTC", "available_balance": 1.0, "last_updated": "0001-01-01T00:00:00"},
        {"user_id": "u-old", "currency": "BTC", "available_balance": 3.0, "last_updated": datetime(9999, 12, 31)},
        {"user_id": "u-old", "currency": "BTC", "available_balance": 2.0},  # no timestamp: last
    ])
    view = read_legacy(legacy, DEFAULT_REGISTRY)  # year 1 once made `datetime.timestamp()` raise
    assert [str(r.values["available"]) for r in view.groups[("u-old", "BTC")]["wallets"]] == ["3.0", "1.0", "2.0"]


def test_no_stored_value_is_ever_used_as_a_query(legacy, platform, monkeypatch):
    from core import approvals
    from core.legacy.opening import import_balances
    from core.legacy.rebuild import request_rebuild
    from core.base.permissions import Principal, Role

    legacy.collection("wallets").insert_many([dict(d) for d in HOSTILE])
    legacy.collection("wallets").insert_one({"user_id": "u-nested-id", "currency": "BTC", "available_balance": 1.0,
                                             "last_updated": datetime(2025, 6, 1)})  # newer: the dict-id copy goes
    queries: list[tuple[str, str, dict]] = []
    for operation in ("find", "find_one", "update_one", "delete_many", "count_documents"):
        original = getattr(Collection, operation)

        def spy(self, query, *args, _original=original, _operation=operation, **kwargs):
            if self._store is legacy:
                queries.append((self.name, _operation, query))
            return _original(self, query, *args, **kwargs)

        monkeypatch.setattr(Collection, operation, spy)
    reconcile(None, legacy, DEFAULT_REGISTRY)
    reconcile(platform.store, legacy, DEFAULT_REGISTRY)  # with a ledger: the unhashable owner once crashed here
    read_user(legacy, "u-money", DEFAULT_REGISTRY)
    admin, other = Principal(name="alice", role=Role.ADMIN), Principal(name="bob", role=Role.ADMIN)
    assert import_balances(platform, admin, legacy).imported == ["legacy-import:u-nested-id:BTC"]
    platform.legacy = legacy
    request = request_rebuild(platform, admin, legacy, "rewrite")  # deletes the duplicate whose _id is a document
    assert approvals.approve(platform, other, request["_id"])["result"]["ok"]
    assert [type(d["_id"]) for d in legacy.raw("wallets").find({"user_id": "u-nested-id"})] == [ObjectId]
    assert {"update_one", "delete_many"} <= {operation for _, operation, _ in queries}
    for _, _, query in queries:  # a full scan, or one value compared with $eq: never an operator from the data
        assert query == {} or all(list(value) == ["$eq"] for value in query.values()), query
