"""core.platform.transitions: a state change and its audit event are one atomic update (outbox),
flushed idempotently; sweeps isolate failures per item."""

from __future__ import annotations

import pytest

from core.platform import transitions
from core.base.errors import InsufficientFundsError
from core.platform.transitions import SweepReport


def _event(key: str = "thing:t1:done", actor: str = "ann") -> dict:
    return transitions.event(key=key, type="thing.done", actor=actor, role="admin", target="t1",
                             before={"state": "new"}, after={"state": "done"}, data={"to": "done"})


class Crash(Exception):
    pass


def test_change_writes_the_event_into_the_document_then_flush_appends_it_once(platform):
    collection = platform.store.collection("p2p_trades")
    collection.insert_one({"_id": "t1", "state": "new"})
    changed = transitions.change(collection, {"_id": "t1", "state": "new"}, {"$set": {"state": "done"}}, _event())
    assert changed["state"] == "done" and changed[transitions.OUTBOX][0]["event_key"] == "thing:t1:done"
    assert platform.ledger.audit.by_key("thing:t1:done") is None  # not yet: a crash here loses nothing
    assert [d["_id"] for d in transitions.waiting(collection, ("new", "done"))] == ["t1"]
    flushed = transitions.flush(platform.ledger.audit, collection, changed)
    again = transitions.flush(platform.ledger.audit, collection, changed)  # a second flusher (stale copy)
    assert flushed[transitions.OUTBOX] == [] and again[transitions.OUTBOX] == []
    assert platform.store.raw("audit").count_documents({"event_key": "thing:t1:done"}) == 1
    assert platform.ledger.audit.by_key("thing:t1:done")["actor"] == "ann"
    assert transitions.waiting(collection, ("new", "done")) == []
    assert platform.ledger.audit.verify().ok


def test_a_change_that_loses_writes_neither_state_nor_event(platform):
    collection = platform.store.collection("p2p_trades")
    collection.insert_one({"_id": "t1", "state": "done"})
    assert transitions.change_and_flush(platform.ledger.audit, collection, {"_id": "t1", "state": "new"},
                                        {"$set": {"state": "done"}}, _event(actor="bob")) is None
    assert platform.store.raw("audit").count_documents({}) == 0
    assert transitions.OUTBOX not in platform.store.raw("p2p_trades").find_one({"_id": "t1"})


def test_crash_during_flush_leaves_the_event_for_the_next_flush(platform):
    collection = platform.store.collection("p2p_trades")
    collection.insert_one({"_id": "t1", "state": "new"})

    def crash(phase, name, operation):
        if (phase, name, operation) == ("after", "audit", "insert_one"):
            raise Crash("died after appending, before pulling the outbox")

    platform.store.fault_hook = crash
    with pytest.raises(Crash):
        transitions.change_and_flush(platform.ledger.audit, collection, {"_id": "t1", "state": "new"},
                                     {"$set": {"state": "done"}}, _event())
    platform.store.fault_hook = None
    waiting = transitions.waiting(collection, ("done",))
    assert len(waiting) == 1
    transitions.flush(platform.ledger.audit, collection, waiting[0])
    assert platform.store.raw("audit").count_documents({"event_key": "thing:t1:done"}) == 1
    assert transitions.waiting(collection, ("done",)) == []


def test_change_refuses_a_second_event_in_one_update(platform):
    collection = platform.store.collection("p2p_trades")
    with pytest.raises(AssertionError):
        transitions.change(collection, {"_id": "t1"}, {"$push": {transitions.OUTBOX: {}}}, _event())


def test_sweep_report_isolates_each_item():
    report = SweepReport()

    def refused():
        raise InsufficientFundsError("short", account="a")

    def broken():
        raise RuntimeError("bug")

    assert report.run("a", lambda: 1) == 1
    assert report.run("b", refused) is None and report.run("c", broken) is None
    assert report.run("d", lambda: None) is None
    assert report.done == ["a", "d"] and not report.ok
    assert report.failed == {"b": {"error": "insufficient_funds", "message": "short"},
                             "c": {"error": "RuntimeError", "message": "bug"}}
    assert report.merge(SweepReport(done=["e"])).as_dict()["done"] == ["a", "d", "e"]
