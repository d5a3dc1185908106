"""The audit trail: chain, tamper detection, concurrency, queries, CSV, CLI."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta

import pytest

from core.cli import main as cli
from core.audit import GENESIS_HASH, AuditFilter, event_hash, export_audit_csv, search_audit, verify_audit
from core.ledger.audit import order_key
from core.base.errors import InvalidArgumentError, InvalidFilterError, PermissionDeniedError
from tests.principals import ADMIN, QA, SUPPORT


def _fill(platform, count: int = 6) -> None:
    log = platform.ledger.audit
    for index in range(count):
        log.append(
            type="test.event" if index % 2 else "test.other",
            actor="alice" if index % 3 else "bob",
            role="admin",
            target=f"t{index % 2}",
            user=f"u{index % 3}",
            before={"n": index},
            after={"n": index + 1},
            data={"amount_minor": 100 * index},
        )
        platform.clock.advance(timedelta(minutes=1))


def _run_cli(monkeypatch, platform, argv):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.audit_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    return cli.main(argv)


# -- chain ---------------------------------------------------------------------------------
def test_append_chain_links_and_verifies(platform):
    _fill(platform, 5)
    events = sorted(platform.store.raw("audit").find(), key=lambda e: e["seq"])
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[0]["prev_hash"] == GENESIS_HASH
    for previous, event in zip(events, events[1:], strict=False):
        assert event["prev_hash"] == previous["hash"]
        assert event_hash(event, previous["hash"]) == event["hash"]
    result = verify_audit(platform, SUPPORT)
    assert result.ok and result.events_checked == 5 and result.first_bad_seq is None


def test_append_event_key_once(platform):
    log = platform.ledger.audit
    first, created = log.append(type="x.y", actor="a", event_key="k:1")
    again, created_again = log.append(type="x.z", actor="b", event_key="k:1")
    assert created and not created_again and again["seq"] == first["seq"] == 1
    assert platform.store.raw("audit").count_documents({}) == 1


def test_append_concurrent_threads_one_unbroken_chain(platform):
    log = platform.ledger.audit
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            barrier.wait()
            for index in range(25):
                log.append(type="thread.event", actor=f"w{number}", data={"index": index})
        except BaseException as error:  # noqa: BLE001 - surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    streams: dict[int, list[int]] = {}
    for event in platform.store.raw("audit").find():
        streams.setdefault(event["stream"], []).append(event["seq"])
    assert sum(len(seqs) for seqs in streams.values()) == 200
    assert all(sorted(seqs) == list(range(1, len(seqs) + 1)) for seqs in streams.values())  # per stream: no gaps, no duplicates
    result = log.verify()
    assert result.ok and result.events_checked == 200


def test_append_crash_before_insert_leaves_no_gap(platform):
    _fill(platform, 2)

    def crash(phase, collection, operation):
        if collection == "audit" and operation == "insert_one" and phase == "before":
            raise RuntimeError("process died")

    platform.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        platform.ledger.audit.append(type="t.x", actor="a")
    platform.store.fault_hook = None
    event, _ = platform.ledger.audit.append(type="t.y", actor="a")
    assert event["seq"] == 3 and platform.ledger.audit.verify().ok


# -- tamper detection ------------------------------------------------------------------------
def test_verify_edited_amount_names_seq(platform, monkeypatch):
    _fill(platform, 6)
    platform.store.raw("audit").update_one({"seq": 4}, {"$set": {"data.amount_minor": 999}})
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 4 and "edited" in result.problem
    assert result.events_checked == 3
    assert _run_cli(monkeypatch, platform, ["audit", "verify"]) == 1


def test_verify_deleted_event_names_seq(platform, monkeypatch):
    _fill(platform, 6)
    platform.store.raw("audit").delete_one({"seq": 3})
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 3 and "missing" in result.problem
    assert _run_cli(monkeypatch, platform, ["audit", "verify", "--json"]) == 1


def test_verify_deleted_last_event_is_invisible_without_anchor_but_deleted_first_is_not(platform):
    _fill(platform, 3)
    platform.store.raw("audit").delete_one({"seq": 1})
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 1


def _forged(previous: dict, event_type: str) -> dict:
    """An event by "mallory" that claims seq 3, linked to the real event 2."""
    return {
        "stream": previous["stream"], "seq": 3, "event_key": "evt:forged", "type": event_type, "actor": "mallory",
        "role": "admin", "at": previous["at"], "user": None, "before": None, "after": None, "data": None,
        "prev_hash": previous["hash"],
    }


def _slip_in_at_seq_3(platform, forge) -> None:
    """The forger shifts events 3.. up by one and slips `forge(event 2)` in at seq 3."""
    raw = platform.store.raw("audit")
    originals = sorted(raw.find({"seq": {"$gte": 3}}), key=lambda e: e["seq"])
    raw.delete_many({"seq": {"$gte": 3}})
    raw.insert_one(forge(raw.find_one({"seq": 2})))
    for event in originals:
        raw.insert_one(dict(event, seq=event["seq"] + 1, order=order_key(event["at"], event["stream"], event["seq"] + 1)))


def test_verify_forged_event_inserted_names_seq(platform, monkeypatch):
    _fill(platform, 5)
    _slip_in_at_seq_3(platform, lambda previous: dict(_forged(previous, "approval.approved"), target="A1", hash="f" * 64))
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 3
    assert _run_cli(monkeypatch, platform, ["audit", "verify"]) == 1


def test_verify_forged_event_with_recomputed_hash_breaks_the_next_link(platform):
    _fill(platform, 5)

    def forge(previous):
        forged = dict(_forged(previous, "x"), target="", order=order_key(previous["at"], previous["stream"], 3))
        forged["family"] = None  # "x" has no family
        forged["hash"] = event_hash(forged, previous["hash"])
        return forged

    _slip_in_at_seq_3(platform, forge)
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 4  # the first real event no longer follows


def test_verify_forged_event_with_float_does_not_crash(platform):
    _fill(platform, 2)
    head = platform.ledger.audit.head()
    platform.store.raw("audit").insert_one(
        {
            "stream": head["stream"],
            "seq": 3,
            "event_key": "evt:f",
            "type": "x",
            "actor": "m",
            "role": "admin",
            "at": head["at"],
            "data": {"amount": 0.1},
            "prev_hash": head["hash"],
            "hash": "0" * 64,
        }
    )
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 3


def test_verify_swapped_events_names_first_seq(platform, monkeypatch):
    _fill(platform, 6)
    raw = platform.store.raw("audit")
    two, five = raw.find_one({"seq": 2}), raw.find_one({"seq": 5})
    raw.delete_many({"seq": {"$in": [2, 5]}})
    raw.insert_one(dict(two, seq=5))
    raw.insert_one(dict(five, seq=2))
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 2
    assert _run_cli(monkeypatch, platform, ["audit", "verify"]) == 1


def test_verify_cli_clean_exits_zero(platform, monkeypatch, capsys):
    _fill(platform, 3)
    assert _run_cli(monkeypatch, platform, ["audit", "verify", "--json"]) == 0
    assert '"ok": true' in capsys.readouterr().out


def test_verify_cli_refuses_embedded_store(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.audit_cli])
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert cli.main(["audit", "verify"]) == 2
    assert "MONGODB_URI" in capsys.readouterr().err


# -- queries ------------------------------------------------------------------------------
def test_search_filters_and_pages(platform):
    _fill(platform, 9)
    page = search_audit(platform, SUPPORT, AuditFilter(actor="alice"), page=0, page_size=2)
    assert [e["seq"] for e in page.items] == [9, 8] and page.has_more
    all_alice = [e["seq"] for e in search_audit(platform, SUPPORT, AuditFilter(actor="alice"), page_size=50).items]
    assert all_alice == [9, 8, 6, 5, 3, 2]
    last = search_audit(platform, SUPPORT, AuditFilter(actor="alice"), page=2, page_size=2)
    assert [e["seq"] for e in last.items] == [3, 2] and not last.has_more
    assert [e["seq"] for e in search_audit(platform, SUPPORT, AuditFilter(type="test.event", user="u1")).items] == [
        8,
        2,
    ]
    assert [e["seq"] for e in search_audit(platform, SUPPORT, AuditFilter(target="t0", actor="bob")).items] == [7, 1]
    assert "_id" not in page.items[0]


def test_search_time_range(platform):
    start = platform.clock.now()
    _fill(platform, 6)
    window = AuditFilter(since=start + timedelta(minutes=2), until=start + timedelta(minutes=4))
    assert [e["seq"] for e in search_audit(platform, ADMIN, window).items] == [4, 3]


def test_search_served_by_indexes(platform):
    from core.ledger.store import uncovered

    _fill(platform, 3)
    platform.store.log.reset()
    for audit_filter in (
        AuditFilter(),
        AuditFilter(actor="a"),
        AuditFilter(user="u"),
        AuditFilter(type="t"),
        AuditFilter(target="x"),
        AuditFilter(since=platform.clock.now()),
    ):
        search_audit(platform, ADMIN, audit_filter)
    export_audit_csv(platform, ADMIN, AuditFilter(actor="alice"))
    assert uncovered(platform.store.log.records) == []


@pytest.mark.parametrize(
    "bad", [{"actor": {"$ne": None}}, {"user": ["a"]}, {"type": 5}, {"target": "x" * 201}, {"since": "2026-01-01"}]
)
def test_search_refuses_operator_or_non_text_filters(platform, bad):
    _fill(platform, 2)
    with pytest.raises(InvalidArgumentError):  # the boundary's form checks (InvalidFilterError for the filter's own rules)
        search_audit(platform, ADMIN, AuditFilter(**bad))


def test_search_refuses_bad_pages_and_window(platform):
    now = platform.clock.now()
    for page, page_size in ((-1, 10), (0, 0), (0, 201), (0, True), ("1", 10)):
        with pytest.raises(InvalidArgumentError):
            search_audit(platform, ADMIN, page=page, page_size=page_size)
    with pytest.raises(InvalidFilterError):
        search_audit(platform, ADMIN, AuditFilter(since=now, until=now))


def test_search_regex_text_is_literal(platform):
    _fill(platform, 3)
    assert search_audit(platform, ADMIN, AuditFilter(actor=".*")).items == []


def test_search_and_export_need_read_audit(platform):
    _fill(platform, 2)
    before = list(platform.store.raw("audit").find())
    with pytest.raises(PermissionDeniedError):
        search_audit(platform, QA)
    with pytest.raises(PermissionDeniedError):
        export_audit_csv(platform, QA)
    with pytest.raises(PermissionDeniedError):
        verify_audit(platform, QA)
    assert list(platform.store.raw("audit").find()) == before


# -- CSV ---------------------------------------------------------------------------------
def test_export_csv_rows_and_audited(platform):
    _fill(platform, 4)
    platform.ledger.audit.append(type="test.event", actor='=HYPERLINK("x")', target="-2+3")
    text = export_audit_csv(platform, SUPPORT, AuditFilter(type="test.event"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["seq"]) for r in rows] == [2, 4, 5]
    assert rows[0]["data"] == '{"amount_minor": 100}' and rows[0]["at"].endswith("Z")
    assert rows[2]["actor"].startswith("'=") and rows[2]["target"] == "'-2+3"
    exported = platform.ledger.audit.head()
    assert exported["type"] == "audit.export" and exported["actor"] == "sam" and exported["data"]["rows"] == 3
    assert platform.ledger.audit.verify().ok


def test_export_csv_row_limit(platform):
    _fill(platform, 5)
    rows = list(csv.DictReader(io.StringIO(export_audit_csv(platform, ADMIN, rows_max=3))))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3]
    for bad in (0, 50_001, 2.0):
        with pytest.raises(InvalidArgumentError):
            export_audit_csv(platform, ADMIN, rows_max=bad)


def test_export_cli_writes_csv(platform, monkeypatch, capsys):
    _fill(platform, 3)
    assert _run_cli(monkeypatch, platform, ["audit", "export", "--actor", "alice"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["seq"]) for r in rows] == [2, 3]
    assert _run_cli(monkeypatch, platform, ["audit", "export", "--since", "yesterday"]) == 2


# -- streams (HOT_ACCOUNTS.md: no single audit head) -------------------------------------------
def _stream_events(store, stream: int) -> list[dict]:
    return sorted(store.raw("audit").find({"stream": stream}), key=lambda e: e["seq"])


def test_streams_concurrent_writers_spread_over_streams(platform):
    """Writers keep the stream they last won and move at random when they lose one, so they
    do not all wait on one head; every stream stays one unbroken chain."""
    log = platform.ledger.audit
    barrier = threading.Barrier(6)

    def worker(number: int) -> None:
        barrier.wait()
        for index in range(10):
            log.append(type="thread.event", actor=f"w{number}", data={"index": index})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(platform.store.raw("audit").distinct("stream")) > 1
    assert log.verify().ok and log.verify().events_checked == 60


def test_streams_a_lost_sequence_number_moves_the_writer_to_another_stream(store, clock):
    from core.ledger.audit import AuditLog

    first, second = AuditLog(store, clock, streams=2), AuditLog(store, clock, streams=2)
    first._affinity.stream = second._affinity.stream = 0
    reads = []

    def race(phase, collection, operation):  # the second writer inserts seq 1 of stream 0 between the first's read and insert
        if phase == "after" and collection == "audit" and operation == "find_one" and not reads:
            reads.append(1)
            second.append(type="x", actor="b")
    store.fault_hook = race
    event, created = first.append(type="y", actor="a")
    store.fault_hook = None
    assert created and event["stream"] == 1 and event["seq"] == 1  # lost stream 0's seq 1, took stream 1
    assert [e["seq"] for e in _stream_events(store, 0)] == [1] and store.log.duplicate_keys >= 1


def test_streams_verify_names_the_stream_of_the_first_bad_event(platform):
    _fill(platform, 4)
    event = platform.store.raw("audit").find_one({"seq": 3})
    platform.store.raw("audit").update_one({"_id": event["_id"]}, {"$set": {"actor": "mallory"}})
    result = verify_audit(platform, ADMIN)
    assert not result.ok and (result.first_bad_stream, result.first_bad_seq) == (event["stream"], 3)
    assert result.first_bad == f"stream {event['stream']} seq 3"


def test_streams_an_event_moved_in_the_display_order_is_caught(platform):
    _fill(platform, 3)
    event = platform.store.raw("audit").find_one({"seq": 2})
    platform.store.raw("audit").update_one({"_id": event["_id"]}, {"$set": {"order": "0"}})  # shown first, chain untouched
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 2 and "order" in result.problem


def test_streams_witness_catches_the_deleted_tail_of_any_stream(store, clock, tmp_path):
    from core.ledger.audit import AuditLog
    from core.ledger.witness import Witness

    store.witness = Witness(tmp_path / "witness.log", store.name)
    log = AuditLog(store, clock, streams=4)
    for stream in range(3):
        log._affinity.stream = stream
        for number in range(3):
            log.append(type="console.action", actor="admin", target=f"s{stream}n{number}")
    assert log.verify().ok and log.check_witness_tail().ok
    store.raw("audit").delete_one({"stream": 1, "seq": 3})  # not the newest event overall: the newest of stream 1
    for result in (log.verify(), log.check_witness_tail()):
        assert not result.ok and (result.first_bad_stream, result.first_bad_seq) == (1, 3) and "deleted" in result.problem


def test_streams_verify_since_checks_only_what_came_after_the_anchored_heads(store, clock):
    from core.ledger.audit import AuditLog

    log = AuditLog(store, clock, streams=2)
    for stream in (0, 1):
        log._affinity.stream = stream
        log.append(type="before", actor="a")
    anchored = log.heads()
    assert log.verify_since(anchored).ok and log.verify_since(anchored).events_checked == 0
    log._affinity.stream = 1
    for _ in range(3):
        log.append(type="after", actor="a")
    assert log.verify_since(anchored).events_checked == 3
    store.raw("audit").update_one({"stream": 1, "seq": 3}, {"$set": {"actor": "mallory"}})
    result = log.verify_since(anchored)
    assert not result.ok and (result.first_bad_stream, result.first_bad_seq) == (1, 3)
    store.raw("audit").delete_many({"stream": 0})  # a whole stream gone behind the anchor
    assert not log.verify_since(anchored).ok


@pytest.mark.parametrize("streams", [0, 257, True, "4", None])
def test_streams_count_is_validated(store, clock, streams):
    from core.base.errors import ConfigurationError
    from core.ledger.audit import AuditLog

    with pytest.raises(ConfigurationError):
        AuditLog(store, clock, streams=streams)


def test_family_filter_is_an_index_equality_in_time_order(platform):
    """"approval.*" reads the stored family (an index equality), so the page is newest first
    and a planner reads only the page; other prefixes group by value (an index range)."""
    from core.audit import display_order
    from core.ledger.store import uncovered

    _fill(platform, 6)
    platform.ledger.audit.append(type="test", actor="alice")  # a type without a family dot is its own family
    query = AuditFilter(type="test.*").query()
    assert query == {"family": "test"} and display_order(query) == [("order", -1)]
    page = search_audit(platform, ADMIN, AuditFilter(type="test.*"))
    assert [e["type"] for e in page.items] and all(e["type"].startswith("test.") for e in page.items)
    assert [e["order"] for e in page.items] == sorted((e["order"] for e in page.items), reverse=True)
    prefix = AuditFilter(target="t*").query()
    assert display_order(prefix) == [("target", 1), ("order", -1)]
    platform.store.log.reset()
    search_audit(platform, ADMIN, AuditFilter(target="t*"))
    search_audit(platform, ADMIN, AuditFilter(actor="alice", since=platform.clock.now() - timedelta(hours=1)))
    assert uncovered(platform.store.log.records) == []


def test_event_hidden_from_its_family_is_caught(platform):
    _fill(platform, 3)
    event = platform.store.raw("audit").find_one({"seq": 2})
    platform.store.raw("audit").update_one({"_id": event["_id"]}, {"$set": {"family": "other"}})
    result = verify_audit(platform, ADMIN)
    assert not result.ok and result.first_bad_seq == 2 and "family" in result.problem
