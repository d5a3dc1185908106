"""The index-coverage checker judges queries as a query planner would, and the operation
log counts documents read and what it drops beyond its bound."""

from __future__ import annotations

from core.ledger.store import OperationLog, OperationRecord, query_branches, uncovered


def shape(collection: str, query: dict, sort: list | None = None) -> OperationRecord:
    ordered = tuple(sort or ())
    return OperationRecord(collection, "find", tuple(sorted({k for k in query if not k.startswith("$")})),
                           tuple(k for k, _ in ordered), query_branches(query), ordered)


def covered(collection: str, query: dict, sort: list | None = None) -> bool:
    return uncovered([shape(collection, query, sort)]) == []


def test_coverage_judges_each_or_branch_alone():
    assert covered("balances", {"$or": [{"owner": "u1"}, {"kind": "user.available"}]})
    assert not covered("balances", {"$or": [{"owner": "u1"}, {"asset": "BTC"}]})  # the asset branch scans
    assert query_branches({"state": "open", "$or": [{"a": 1}, {"b": 2}]}) == (
        (("a", "eq"), ("state", "eq")), (("b", "eq"), ("state", "eq")))


def test_coverage_ranges_and_anchored_regexes_bound_a_leading_key():
    assert covered("entries", {"created_at": {"$gte": 1, "$lt": 2}}, [("created_at", -1), ("_id", -1)])
    assert covered("directory_search", {"keys": {"$regex": "^ali"}})
    assert covered("directory_search", {"keys": {"$regex": "^\\.x"}})  # an escaped literal start
    assert not covered("directory_search", {"keys": {"$regex": "ali"}})  # unanchored
    assert not covered("directory_search", {"keys": {"$regex": "^ali", "$options": "i"}})  # case-insensitive
    assert not covered("directory_search", {"keys": {"$regex": "^.li"}})
    assert not covered("entries", {"accounts": {"$ne": "x"}})
    assert not covered("entries", {"hold_id": {"$exists": True}})


def test_coverage_refuses_a_blocking_sort():
    assert covered("entries", {"accounts": "a"}, [("created_at", -1), ("_id", -1)])
    assert covered("entries", {"accounts": "a"}, [("created_at", 1), ("_id", 1)])  # the index walked backwards
    assert not covered("entries", {"accounts": "a"}, [("created_at", -1), ("_id", 1)])  # mixed directions
    assert not covered("entries", {"accounts": "a"}, [("memo", 1)])
    assert covered("entries", {"type": {"$in": ["a", "b"]}}, [("created_at", -1), ("_id", -1)])  # a merge of sorted runs
    assert not covered("quotes", {"expires_at": {"$lt": 1}}, [("_id", 1)])  # no index leads with expires_at
    assert covered("approvals", {}, [("requested_at", -1), ("_id", -1)])  # an index walk in order
    assert not covered("approvals", {}, [("amount_minor", -1)])  # no filter, no index order: a collection scan


def test_operation_log_counts_documents_and_what_it_drops(store):
    store.collection("quotes").insert_many([{"_id": f"q{n}", "user": f"u{n}"} for n in range(5)])
    store.log.reset()
    store.collection("quotes").find({"user": {"$in": ["u1", "u2", "u9"]}}, limit=10)
    store.collection("quotes").find_one({"_id": "q4"})
    assert [r.documents for r in store.log.records] == [2, 1] and store.log.documents == 3
    store.log.records_max = 2
    store.collection("quotes").find_one({"_id": "q3"})
    assert store.log.count == 3 and store.log.dropped == 1 and not store.log.complete
    store.log.reset()
    assert store.log.complete and store.log.count == 0


def test_operation_log_bound_is_explicit():
    log = OperationLog(records_max=1)
    log.append(OperationRecord("entries", "find", (), ()))
    log.append(OperationRecord("entries", "find", (), ()))
    assert (len(log.records), log.dropped, log.count) == (1, 1, 2)
