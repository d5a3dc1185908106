"""Read models: per-asset totals, fee movements by day and flow, alerts — all aggregates in the store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.ledger import accounts as acct
from core import reports
from core.base.errors import InvalidStateError, PermissionDeniedError
from core.ledger.store import uncovered
from tests.helpers import deposit, transfer_request, stuck_in_flight
from tests.principals import ADMIN, SUPPORT


@pytest.fixture
def books(platform, clock):
    ledger = platform.ledger
    deposit(ledger, "u1", "100", "USDT")
    deposit(ledger, "u2", "0.5", "BTC")
    ledger.post(transfer_request("top-up", acct.external("USDT"), acct.liquidity("USDT"), "1000", "treasury.liquidity_topup"))
    clock.advance(timedelta(days=1))
    ledger.post(transfer_request("fee-1", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1.5", "swap", metadata={"fee_minor": 1_500_000}))
    ledger.post(transfer_request("fee-2", acct.user_available("u2", "BTC"), acct.fees("BTC"), "0.001", "withdrawal"))
    clock.advance(timedelta(days=1))
    ledger.post(transfer_request("ref-1", acct.fees("USDT"), acct.user_available("u3", "USDT"), "0.3", "referral.commission"))
    ledger.post(transfer_request("sweep-1", acct.fees("USDT"), acct.external("USDT"), "1", "treasury.fee_sweep"))
    ledger.place_hold(hold_id="q1", source=acct.liquidity("USDT"), held=acct.liquidity_reserved("USDT"), amount="50", actor="system")
    return platform


def test_platform_totals_match_ledger_balances(books):
    totals = {row.asset: row for row in reports.platform_totals(books, ADMIN)}
    usdt = totals["USDT"]
    assert usdt.fee_wallet == books.ledger.balance(acct.fees("USDT")).minor == 200_000
    assert usdt.liquidity_free == 950_000_000 and usdt.liquidity_reserved == 50_000_000 and usdt.liquidity_total == 1_000_000_000
    assert usdt.user_liabilities == 100_000_000 - 1_500_000 + 300_000
    assert usdt.external == -100_000_000 - 1_000_000_000 + 1_000_000
    assert usdt.zero_sum == 0 and totals["BTC"].zero_sum == 0
    assert totals["BTC"].fee_wallet == 100_000


def test_fee_movements_group_by_day_asset_and_flow(books, clock):
    now = clock.now()
    points = reports.fee_movements(books, ADMIN, now - timedelta(days=30), now + timedelta(seconds=1))
    by_flow = {(r["asset"], r["entry_type"]): r for r in reports.revenue_by_flow(points)}
    assert by_flow[("USDT", "swap")]["amount_minor"] == 1_500_000 and by_flow[("USDT", "swap")]["kind"] == "income"
    assert by_flow[("USDT", "referral.commission")] == {"asset": "USDT", "entry_type": "referral.commission", "amount_minor": -300_000, "kind": "payout"}
    assert by_flow[("USDT", "treasury.fee_sweep")]["amount_minor"] == -1_000_000
    assert ("USDT", "treasury.liquidity_topup") not in by_flow  # the float is never revenue
    daily = reports.daily_revenue(points, "USDT")
    assert sum(d["net_minor"] for d in daily) == books.ledger.balance(acct.fees("USDT")).minor
    assert [d["day"] for d in daily] == ["2026-01-02", "2026-01-03"]


def test_fee_movements_window_is_bounded(books, clock):
    now = clock.now()
    assert reports.fee_movements(books, ADMIN, now - timedelta(hours=1), now + timedelta(seconds=1)) != []
    assert reports.fee_movements(books, ADMIN, now - timedelta(days=30), now - timedelta(days=29)) == []
    for since, until in ((now, now), (now, now - timedelta(days=1)), (now - timedelta(days=400), now), ("yesterday", now)):
        with pytest.raises(InvalidStateError):
            reports.fee_movements(books, ADMIN, since, until)


def test_reports_refuse_roles_without_read_platform(books, clock):
    with pytest.raises(PermissionDeniedError):
        reports.platform_totals(books, SUPPORT)
    with pytest.raises(PermissionDeniedError):
        reports.fee_movements(books, SUPPORT, clock.now() - timedelta(days=1), clock.now())
    with pytest.raises(PermissionDeniedError):
        reports.alerts(books, SUPPORT)


def test_alerts_count_stuck_entries_and_pending_approvals(books, clock):
    alerts = reports.alerts(books, ADMIN)
    assert alerts.stuck_entries == 0 and alerts.pending_approvals == 0
    books.store.collection("approvals").insert_one({"_id": "a1", "state": "pending", "kind": "adjustment", "idempotency_key": "k1"})

    stuck_in_flight(books.store, lambda: books.ledger.post(
        transfer_request("stuck", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1", "swap")))
    assert reports.alerts(books, ADMIN).stuck_entries == 0  # younger than STUCK_AFTER: still in flight
    clock.advance(timedelta(hours=1))
    alerts = reports.alerts(books, ADMIN)
    assert alerts.pending_approvals == 1 and alerts.stuck_entries == 1
    assert any("stuck" in note for note in alerts.notes)
    books.ledger.recover()
    assert reports.alerts(books, ADMIN).stuck_entries == 0


def test_stuck_entries_alert_stays_right_with_many_entries_in_flight(books, clock, monkeypatch):
    """With writers clearing their own flags in batches, the flagged set is mostly young
    entries in flight (projected, flag not yet cleared). The alert reads only flagged
    entries older than STUCK_AFTER — an index range of `_id` — so a crowd of young ones can
    neither hide an old stuck entry from its bounded scan nor be counted as stuck."""
    monkeypatch.setattr(reports, "STUCK_SCAN_MAX", 3)
    stuck_in_flight(books.store, lambda: books.ledger.post(
        transfer_request("stuck", acct.user_available("u1", "USDT"), acct.fees("USDT"), "1", "swap")))
    clock.advance(timedelta(hours=1))
    for number in range(12):  # in flight: projected, flags waiting in the writer's batch
        deposit(books.ledger, f"crowd{number}", "1", "USDT", key=f"crowd-{number}")
    assert books.store.raw("entries").count_documents({"unprojected": True}) >= 10  # more than the scan may read
    books.store.log.reset()
    assert reports.stuck_entries(books, clock.now()) == 1
    scan = next(r for r in books.store.log.records if r.collection == "entries")
    assert ("_id", "range") in scan.branches[0] and ("unprojected", "eq") in scan.branches[0]
    assert scan.documents == 1  # the old one only: what a planner walks on (unprojected, _id) within the range
    assert uncovered(books.store.log.records) == []


def test_reports_issue_a_constant_number_of_indexed_queries(books, clock):
    def cost() -> int:
        books.store.log.reset()
        reports.platform_totals(books, ADMIN)
        reports.fee_movements(books, ADMIN, clock.now() - timedelta(days=30), clock.now())
        reports.alerts(books, ADMIN)
        reports.treasury_entries(books, ADMIN)
        return books.store.log.count

    first = cost()
    assert uncovered(books.store.log.records) == []
    for index in range(20):
        books.ledger.post(transfer_request(f"more-{index}", acct.user_available("u1", "USDT"), acct.fees("USDT"), "0.01", "swap"))
    assert cost() == first


def test_alerts_report_the_last_platform_integrity_run(books, clock):
    from core import integrity

    assert reports.alerts(books, ADMIN).last_integrity is None
    first = integrity.check_platform(books, ADMIN)
    last = reports.alerts(books, ADMIN).last_integrity
    assert last["ok"] is first.ok and last["findings"] == first.counts["critical"] + first.counts["warning"]
    books.store.raw("balances").update_one({"_id": acct.user_available("u2", "BTC").id}, {"$inc": {"balance_minor": 7}})  # tamper
    clock.advance(timedelta(minutes=1))  # runs are ordered by their start time
    second = integrity.check_platform(books, ADMIN)
    alerts = reports.alerts(books, ADMIN)
    assert alerts.last_integrity["ok"] is False and alerts.last_integrity["findings"] > last["findings"]
    assert second.counts["critical"] > first.counts["critical"]
    assert any("integrity" in note for note in alerts.notes)


def test_a_report_reads_the_rollup_generation_and_its_state_in_one_round_trip(books, clock):
    """Overview and Fees & liquidity stay within the page budget: each rollup read asks the
    state collection once (the active generation and its state together, after the unfolded
    tail: issue 19), also after a rebuild."""
    from core import rollups

    expected = reports.platform_totals(books, ADMIN)
    rollups.update(books.store)  # a fold ran (before any, a reader also asks whether one is needed)
    for rebuilt in (False, True):
        if rebuilt:
            rollups.rebuild(books.store)
            assert rollups.active_generation(books.store) > 1
        books.store.log.reset()
        assert reports.platform_totals(books, ADMIN) == expected
        reports.fee_movements(books, ADMIN, clock.now() - timedelta(days=30), clock.now())
        state_reads = [r for r in books.store.log.records if r.collection == rollups.STATE]
        assert [r.operation for r in state_reads] == ["find", "find"], rebuilt  # one per report
        assert books.store.log.count == 8  # per report: the unfolded tail, state, its heads, the rollups
        assert uncovered(books.store.log.records) == []


def test_audit_pick_lists_fold_in_only_the_events_appended_since(books, clock):
    """The pick lists' values come from a vocabulary kept per audit stream behind a
    watermark: a read examines the new events only, never the whole trail."""
    log = books.ledger.audit
    for number in range(30):
        log.append(type=f"test.kind{number % 3}", actor=f"actor{number % 4}")
    assert {"test.kind0", "test.kind1", "test.kind2"} <= set(reports.audit_field_values(books, ADMIN, "type"))
    assert {f"actor{n}" for n in range(4)} <= set(reports.audit_field_values(books, ADMIN, "actor"))
    log.append(type="late.arrival", actor="newcomer")
    books.store.log.reset()
    assert "late.arrival" in reports.audit_field_values(books, ADMIN, "type")
    reads = [r for r in books.store.log.records if r.collection == "audit"]
    assert sum(r.documents for r in reads if r.operation == "find") == 1  # the one new event
    assert uncovered(books.store.log.records) == []
    books.store.log.reset()
    assert "newcomer" in reports.audit_field_values(books, ADMIN, "actor")
    assert not [r for r in books.store.log.records if r.collection == "audit" and r.operation == "find"]  # nothing new


def test_audit_pick_lists_catch_up_a_backlog_in_bounded_steps(books, monkeypatch):
    monkeypatch.setattr(reports, "VOCABULARY_SYNC_MAX", 4)
    for number in range(10):
        books.ledger.audit.append(type=f"backlog.t{number}", actor="a")
    first = reports.audit_field_values(books, ADMIN, "type")
    assert len([t for t in first if t.startswith("backlog.")]) < 10  # one bounded step
    for _ in range(3):
        values = reports.audit_field_values(books, ADMIN, "type")
    assert {f"backlog.t{n}" for n in range(10)} <= set(values)
