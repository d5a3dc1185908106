"""The planner model (core.ledger.planner): which index a real server would use, whether it
must sort in memory, and how many index keys and documents it would examine — the figure
that tells a read bounded by what it returns from one that grows with history."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.ledger import planner
from core.ledger.planner import MULTIKEY_FIELDS, examine, query_branches, uncovered
from core.ledger.store import INDEXES, OperationRecord, Store

T0 = datetime(2026, 1, 1)


def shape(collection: str, query: dict, sort: list | None = None) -> OperationRecord:
    ordered = tuple(sort or ())
    return OperationRecord(collection, "find", planner.filter_fields(query), tuple(k for k, _ in ordered),
                           query_branches(query), ordered)


def covered(collection: str, query: dict, sort: list | None = None) -> bool:
    return uncovered([shape(collection, query, sort)]) == []


def test_planner_refuses_a_sort_on_a_multikey_field_the_filter_bounds():
    """SERVER-31898: a multikey index scan with bounds on the array field gives no order on it."""
    assert not covered("directory_search", {"keys": {"$regex": "^ali"}}, [("keys", 1), ("_id", 1)])
    assert not covered("directory_search", {"keys": {"$regex": "^ali"}}, [("_id", 1)])  # after a range: never
    assert covered("directory_search", {"keys": "alice"}, [("_id", 1)])  # equality on the array, order on _id
    assert covered("entries", {"accounts": "a"}, [("created_at", -1), ("_id", -1)])  # the array is not sorted on
    assert covered("entries", {"accounts": {"$in": ["a", "b"]}}, [("created_at", -1), ("_id", -1)])
    reason = planner.uncovered_reasons([shape("directory_search", {"keys": {"$regex": "^a"}}, [("keys", 1), ("_id", 1)])])
    assert "multikey ['keys']" in reason[0]


def test_planner_equality_on_null_cannot_use_a_sparse_index():
    assert query_branches({"result": None}) == ((("result", "null"),),)
    assert query_branches({"result": {"$eq": None}}) == ((("result", "null"),),)
    assert covered("entries", {"unprojected": True}, [("_id", 1)])
    assert not covered("entries", {"unprojected": None})  # the sparse index has no key for "missing"
    assert covered("approvals", {"state": "approved", "result": None})


def test_planner_judges_each_or_branch_and_unanchored_regexes_alone():
    assert not covered("audit", {"$or": [{"actor": "a"}, {"data": 1}]})
    assert not covered("audit", {"target": {"$regex": "wd_"}})  # unanchored: the whole index at best
    assert covered("audit", {"target": {"$regex": "^wd_"}}, [("target", 1), ("order", 1)]) is False  # against the index's order
    assert covered("audit", {"target": {"$regex": "^wd_"}}, [("target", 1), ("order", -1)])  # a range, then newest first per target
    assert covered("audit", {"target": "wd_1"}, [("order", -1)])


@pytest.fixture
def history(store: Store):
    """A collection with a long history and a little live work: 300 settled withdrawals and
    3 waiting ones, each in its own state."""
    documents = [{"_id": f"wd_{n:04d}", "state": "settled", "created_at": T0 + timedelta(minutes=n), "user": f"u{n % 7}",
                  "referral_done": True} for n in range(300)]
    documents += [{"_id": f"wd_9{n}", "state": "requested", "created_at": T0 + timedelta(days=1, minutes=n),
                   "user": "u1", "referral_done": False} for n in range(3)]
    store.raw("withdrawals").insert_many(documents)
    return store.raw("withdrawals")


def test_examine_counts_only_the_keys_inside_the_bounds(history):
    found = examine(history, "withdrawals", "find", {"state": "requested"})
    assert (found.keys, found.documents) == (3, 3) and found.index.startswith("state_1")
    whole = examine(history, "withdrawals", "find", {"state": {"$in": ["requested", "settled"]}, "destination": "x"})
    assert whole.keys == 303 and whole.documents == 303  # no index has the field: every key of both states is read
    owed = examine(history, "withdrawals", "find", {"state": {"$in": ["requested", "settled"]}, "referral_done": False})
    assert (owed.keys, owed.documents) == (3, 3) and owed.index == "state_1_referral_done_1"


def test_examine_stops_at_the_limit_when_the_index_gives_the_order(history):
    page = examine(history, "withdrawals", "find", {"user": "u3"}, [("created_at", -1)], limit=5)
    assert (page.keys, page.documents) == (5, 5)
    blocking = examine(history, "withdrawals", "find", {"user": "u3"}, [("amount", -1)], limit=5)
    assert blocking.documents == 43  # a blocking sort reads every key in the bounds first
    first = examine(history, "withdrawals", "find_one", {"state": "settled", "user": "u3"})
    assert first.documents <= 7  # walks the settled keys until the first of u3


def test_examine_scans_the_collection_without_a_usable_index(history):
    found = examine(history, "withdrawals", "find", {"destination": "x"})
    assert found.index == "COLLSCAN" and found.documents == 303 and found.keys == 0
    either = examine(history, "withdrawals", "find", {"$or": [{"state": "requested"}, {"destination": "x"}]})
    assert either.index == "COLLSCAN" and either.documents == 303  # one branch without an index scans for all
    both = examine(history, "withdrawals", "find", {"$or": [{"state": "requested"}, {"user": "u0"}]})
    assert both.keys == 3 + 43 and "+" in both.index
    assert examine(history, "withdrawals", "insert_one", None).documents == 0


def test_examine_counts_a_covered_count_without_fetching(history):
    counted = examine(history, "withdrawals", "count_documents", {"state": "settled"}, limit=1_000)
    assert (counted.keys, counted.documents) == (300, 0)
    capped = examine(history, "withdrawals", "count_documents", {"state": "settled"}, limit=50)
    assert capped.keys == 50  # a count with a limit stops there


def test_examine_counts_one_key_per_array_element_in_the_bounds(store):
    store.raw("directory_search").insert_many([{"_id": f"p{n}", "keys": ["alice", "alina", "bob", f"x{n}"]}
                                               for n in range(10)])
    found = examine(store.raw("directory_search"), "directory_search", "find", {"keys": {"$regex": "^ali"}})
    assert (found.keys, found.documents) == (20, 10)
    exact = examine(store.raw("directory_search"), "directory_search", "find", {"keys": "bob"})
    assert (exact.keys, exact.documents) == (10, 10)


def test_examine_reads_a_sparse_flag_index_only_for_flagged_documents(store):
    store.raw("entries").insert_many([{"_id": f"e{n:03d}", "idempotency_key": f"k{n}", "claims": [f"c{n}"], **({"unprojected": True} if n < 4 else {})}
                                      for n in range(200)])
    found = examine(store.raw("entries"), "entries", "find", {"unprojected": True}, [("_id", 1)], limit=1_000)
    assert (found.keys, found.documents) == (4, 4) and found.index == "unprojected_1__id_1"


def test_store_records_what_was_examined_only_when_asked(store, history):
    collection = store.collection("withdrawals")
    store.log.reset()
    collection.find({"state": "requested"})
    assert store.log.records[-1].keys_examined is None
    store.log.examine = True
    collection.find({"state": "requested"}, limit=2)
    collection.count_documents({"state": "settled"})
    record, count = store.log.records[-2:]
    assert (record.keys_examined, record.documents_examined, record.documents) == (2, 2, 2)
    assert (count.keys_examined, count.documents_examined) == (300, 0)
    assert record == shape("withdrawals", {"state": "requested"}) or record.filter_fields == ("state",)


def test_multikey_table_names_every_indexed_array_field_of_the_demo_data():
    """The planner's list of array fields agrees with real data: every field an index names
    that holds an array in some document of the demo snapshot is declared multikey."""
    from core.demo import SNAPSHOT_PATH, load_snapshot

    store = Store.embedded_store("planner-demo")
    load_snapshot(store, SNAPSHOT_PATH)
    missing = []
    for collection, specs in INDEXES.items():
        fields = {name for spec in specs for name, _ in spec.keys}
        for document in store.raw(collection).find({}).limit(2_000):
            for name in fields:
                top = document.get(name.split(".")[0])
                if isinstance(top, list) and top and name not in MULTIKEY_FIELDS.get(collection, ()):
                    missing.append((collection, name))
    assert sorted(set(missing)) == []


def test_planner_models_a_distinct_scan_for_the_heads_of_every_stream(store):
    """`$sort` on (stream, seq) then `$group` by stream with `$first`: a server walks one key
    per stream (DISTINCT_SCAN), not every event — the audit streams' heads read costs the
    same however long the trail."""
    from core.base.clock import ManualClock
    from core.ledger.audit import AuditLog
    from core.ledger.planner import distinct_scan_key

    log = AuditLog(store, ManualClock(), streams=3)
    for stream in range(3):
        log._affinity.stream = stream
        for _ in range(20):
            log.append(type="t.x", actor="a")
    store.log.examine = True
    store.log.reset()
    assert len(log.heads()) == 3
    record = store.log.records[-1]
    assert (record.keys_examined, record.documents_examined) == (4, 3)
    assert distinct_scan_key([{"$sort": {"stream": -1}}, {"$group": {"_id": "$stream", "n": {"$sum": 1}}}]) is None
    assert distinct_scan_key([{"$sort": {"stream": -1}}, {"$group": {"_id": "$seq", "x": {"$first": "$x"}}}]) is None
