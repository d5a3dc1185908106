import threading

import pytest

from core.base.errors import StoreError
from core.ledger.store import EMBEDDED_LOCK, INDEXES, DuplicateKeyStoreError, OperationRecord, Store, filter_fields, uncovered


def test_duplicate_key_is_translated(store):
    entries = store.collection("entries")
    entries.insert_one({"_id": "e1", "idempotency_key": "k"})
    with pytest.raises(DuplicateKeyStoreError):
        entries.insert_one({"_id": "e2", "idempotency_key": "k"})
    assert entries.count_documents({}) == 1


def test_ensure_indexes_is_idempotent_and_complete(store):
    store.ensure_indexes()
    store.ensure_indexes()
    for collection, specs in INDEXES.items():
        names = set(store.raw(collection).index_information())
        assert {spec.name for spec in specs} <= names, collection


def test_unreachable_server_is_a_store_error_without_the_uri():
    with pytest.raises(StoreError) as error:
        Store.from_uri("mongodb://user:s3cret@127.0.0.1:1/?directConnection=true", "x", timeout_ms=200)
    assert "s3cret" not in str(error.value)
    with pytest.raises(StoreError):
        Store.from_uri("not a uri", "x", timeout_ms=200)


def test_operation_log_counts_and_records_query_fields(store):
    balances = store.collection("balances")
    store.log.reset()
    balances.find({"owner": "alice", "kind": {"$in": ["user.available"]}})
    balances.find_one({"$or": [{"owner": "a"}, {"asset": "BTC"}]})
    assert store.log.count == 2
    assert store.log.records[0].filter_fields == ("kind", "owner")
    assert filter_fields({"$or": [{"owner": "a"}, {"asset": "BTC"}]}) == ("asset", "owner")


def test_uncovered_flags_queries_no_index_serves():
    records = [
        OperationRecord("entries", "find", ("memo",), ()),
        OperationRecord("entries", "find", (), ()),
        OperationRecord("entries", "find", ("user_ids", "memo"), ()),
        OperationRecord("entries", "find", (), ("created_at",)),
        OperationRecord("balances", "find_one", ("_id",), ()),
        OperationRecord("entries", "insert_one", (), ()),
    ]
    assert [(r.filter_fields, r.sort_fields) for r in uncovered(records)] == [((), ()), (("memo",), ())]


def test_fault_hook_sees_every_operation_before_and_after(store):
    seen = []
    store.fault_hook = lambda phase, collection, operation: seen.append((phase, collection, operation))
    store.collection("entries").insert_one({"_id": "e", "idempotency_key": "k"})
    store.collection("entries").find_one({"_id": "e"})
    store.fault_hook = None
    assert seen == [("before", "entries", "insert_one"), ("after", "entries", "insert_one"),
                    ("before", "entries", "find_one"), ("after", "entries", "find_one")]


def test_embedded_operations_hold_the_process_wide_lock():
    store = Store.embedded_store()
    holder = []

    def observe(phase, collection, operation):
        if phase == "before":
            holder.append(EMBEDDED_LOCK._is_owned())  # not yet inside the lock

    store.fault_hook = observe
    acquired = []
    store.collection("balances").find({"owner": "x"})
    with EMBEDDED_LOCK:  # another thread cannot run an operation while the lock is held
        worker = threading.Thread(target=lambda: acquired.append(store.collection("balances").find({"owner": "x"})))
        worker.start()
        worker.join(timeout=0.3)
        assert worker.is_alive()
    worker.join()
    assert acquired == [[]] and holder == [False, False]
