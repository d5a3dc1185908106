"""The integrity engine's full and per-user checks: exact findings on a known book, tampering
behind the engine, per-user cost, refusals that change nothing, run history and trend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import integrity
from core.base.errors import (
    IntegrityRunNotFoundError,
    InvalidAccountError,
    InvalidArgumentError,
    PermissionDeniedError,
)
from core.integrity import check_platform, check_user, history, trend
from core.ledger import accounts as acct
from core.ledger import logical_id
from core.ledger.entries import entry_hash
from core.ledger.store import uncovered
from tests.core.integrity.books import healthy_platform, kinds, plant_corruptions
from tests.helpers import deposit, snapshot, transfer_request
from tests.principals import ADMIN, QA, SUPPORT


# -- clean ---------------------------------------------------------------------------------
def test_check_platform_clean_store_reports_clean(platform):
    healthy_platform(platform)
    report = check_platform(platform, ADMIN)
    assert report.findings == [] and report.ok and report.severity == "ok"
    assert report.counts["critical"] == 0 and report.counts["entries_checked"] > 10
    assert report.run_id and platform.store.raw("integrity_runs").count_documents({"_id": report.run_id}) == 1


def test_check_user_clean(platform):
    healthy_platform(platform)
    for user in ("u1", "u2"):
        report = check_user(platform, SUPPORT, user)
        assert report.findings == [], report.findings
        assert report.scope == f"user:{user}"


def test_check_platform_empty_store_clean(platform):
    assert check_platform(platform, ADMIN).ok


# -- exactness -----------------------------------------------------------------------------


def test_check_platform_lists_exactly_the_planted_corruptions(platform):
    healthy_platform(platform)
    plant_corruptions(platform)
    report = check_platform(platform, ADMIN)
    stuck = platform.store.raw("entries").find_one({"idempotency_key": "stuck-1"})
    assert kinds(report) == sorted(
        [
            ("projection_mismatch", "user.available:u1:BTC"),
            ("stuck_entry", stuck["_id"]),
            ("expired_reservation", "q-old"),
            ("closed_trade_escrow", "t-bad"),
            ("fee_revenue_drift", "platform.fees:platform:USDT"),
        ]
    )
    by_kind = {f.kind: f for f in report.findings}
    off = by_kind["projection_mismatch"]
    assert (off.expected, off.actual, off.difference, off.account, off.user, off.asset) == (
        115_000_000,
        115_000_001,
        1,
        "user.available:u1:BTC",
        "u1",
        "BTC",
    )
    fee = by_kind["fee_revenue_drift"]
    double = platform.store.raw("entries").find_one({"idempotency_key": "swap-double"})
    assert (fee.expected, fee.difference) == (fee.actual - 700_000, 700_000) and double["_id"] in fee.message
    assert by_kind["expired_reservation"].actual == 25_000_000 and by_kind["expired_reservation"].collection == "quotes"
    assert (
        by_kind["closed_trade_escrow"].account == "escrow:t-bad:USDT"
        and by_kind["closed_trade_escrow"].actual == 10_000_000
    )
    assert not report.ok and report.severity == "critical" and report.counts["critical"] == 5
    stored = platform.store.raw("integrity_runs").find_one({"_id": report.run_id})
    assert stored["counts"]["critical"] == 5 and len(stored["findings"]) == 5 and stored["ok"] is False
    for finding in stored["findings"]:
        assert set(finding) >= {
            "kind",
            "severity",
            "subject",
            "account",
            "user",
            "asset",
            "collection",
            "field",
            "expected",
            "actual",
            "difference",
            "message",
        }


def test_check_user_names_the_off_projection_only(platform):
    healthy_platform(platform)
    plant_corruptions(platform)
    report = check_user(platform, SUPPORT, "u1")
    assert kinds(report) == [("projection_mismatch", "user.available:u1:BTC")]
    stuck = platform.store.raw("entries").find_one({"idempotency_key": "stuck-1"})
    assert kinds(check_user(platform, SUPPORT, "u2")) == [("stuck_entry", stuck["_id"])]


def test_check_platform_reservation_mismatch_when_quote_closed_but_still_held(platform):
    healthy_platform(platform)
    platform.store.raw("quotes").update_one({"_id": "q-live"}, {"$set": {"state": "expired"}})
    report = check_platform(platform, ADMIN)
    assert kinds(report) == [("reservation_mismatch", "platform.liquidity_reserved:platform:USDT")]
    assert report.findings[0].expected == 0 and report.findings[0].actual == 40_000_000


def test_check_locked_without_hold_is_named(platform):
    healthy_platform(platform)
    platform.ledger.post(
        transfer_request("lock-direct", acct.external("BTC"), acct.user_locked("u2", "BTC"), "0.5", "test.lock")
    )
    expected = [("locked_hold_mismatch", "user.locked:u2:BTC")]
    assert kinds(check_platform(platform, ADMIN)) == expected
    finding = check_user(platform, SUPPORT, "u2").findings[0]
    assert (finding.kind, finding.expected, finding.actual, finding.user) == (
        "locked_hold_mismatch",
        0,
        50_000_000,
        "u2",
    )


def test_check_fee_account_touched_by_other_entry_type(platform):
    healthy_platform(platform)
    platform.ledger.post(
        transfer_request("fee-raid", acct.fees("USDT"), acct.liquidity("USDT"), "0.1", "treasury.liquidity_top_up")
    )
    report = check_platform(platform, ADMIN)
    assert kinds(report) == [("fee_revenue_drift", "platform.fees:platform:USDT")]
    assert report.findings[0].difference == -100_000


# -- tampering -------------------------------------------------------------------------------
def test_check_names_entry_edited_behind_the_engine(platform):
    healthy_platform(platform)
    target = platform.store.raw("entries").find_one({"idempotency_key": "deposit:u1:BTC:1.5"})
    platform.store.raw("entries").update_one({"_id": target["_id"]}, {"$set": {"memo": "nothing to see"}})
    report = check_platform(platform, ADMIN)
    assert ("entry_edited", target["_id"]) in kinds(report)
    assert ("entry_edited", target["_id"]) in kinds(check_user(platform, SUPPORT, "u1"))


def test_check_names_entry_whose_amount_was_edited(platform):
    healthy_platform(platform)
    raw = platform.store.raw("entries")
    target = raw.find_one({"idempotency_key": "ref-1"})
    raw.update_one({"_id": target["_id"]}, {"$set": {"postings.1.amount_minor": 3_000_000}})
    report = check_platform(platform, ADMIN)
    assert ("entry_edited", target["_id"]) in kinds(report) and ("unbalanced_entry", target["_id"]) in kinds(report)
    assert not report.ok
    assert ("entry_edited", target["_id"]) in kinds(check_user(platform, SUPPORT, "u1"))


def test_check_names_entry_edited_and_rehashed(platform):
    """An entry edited *and* re-hashed breaks its accounts' chains: the next entry's
    prev_hash (or the projection's head_hash) no longer matches it."""
    healthy_platform(platform)
    raw = platform.store.raw("entries")
    target = raw.find_one({"idempotency_key": "deposit:u2:BTC:2"})
    edited = dict(target, memo="rewritten", actor="mallory")
    edited["entry_hash"] = entry_hash(edited)
    raw.replace_one({"_id": target["_id"]}, edited)
    report = check_platform(platform, ADMIN)
    assert not report.ok
    assert {f.kind for f in report.findings} <= {"chain_broken", "projection_mismatch"}
    assert {logical_id(f.account or f.subject) for f in report.findings} == {"external:world:BTC", "user.available:u2:BTC"}
    user_report = check_user(platform, SUPPORT, "u2")
    assert not user_report.ok and {f.account for f in user_report.findings} == {"user.available:u2:BTC"}


def test_check_names_deleted_entry_and_broken_audit_chain(platform):
    healthy_platform(platform)
    target = platform.store.raw("entries").find_one({"idempotency_key": "sweep-1"})
    platform.store.raw("entries").delete_one({"_id": target["_id"]})
    report = check_platform(platform, ADMIN, record=False)
    assert "chain_broken" in {k for k, _ in kinds(report)} or "projection_mismatch" in {k for k, _ in kinds(report)}
    assert not report.ok
    for number in range(3):
        platform.ledger.audit.append(type="test.action", actor="alice", role="admin", target=f"t{number}")
    edited = platform.store.raw("audit").find_one({"seq": 2})
    platform.store.raw("audit").update_one({"_id": edited["_id"]}, {"$set": {"actor": "mallory"}})
    report = check_platform(platform, ADMIN, record=False)
    assert ("audit_chain_broken", f"audit stream {edited['stream']} seq 2") in kinds(report)


# -- cost and coverage -------------------------------------------------------------------------
def test_check_user_constant_queries_whatever_the_number_of_users(platform):
    deposit(platform.ledger, "target", "1", "BTC")
    platform.store.log.reset()
    check_user(platform, SUPPORT, "target", record=False)
    few = platform.store.log.count
    for index in range(30):
        deposit(platform.ledger, f"other{index}", "1", "BTC")
    platform.store.log.reset()
    check_user(platform, SUPPORT, "target", record=False)
    assert platform.store.log.count == few <= 5


def test_checks_served_by_declared_indexes(platform):
    healthy_platform(platform)
    platform.store.log.reset()
    check_platform(platform, ADMIN)
    check_user(platform, SUPPORT, "u1")
    history(platform, ADMIN)
    trend(platform, ADMIN)
    assert uncovered(platform.store.log.records) == []


# -- permissions and input ----------------------------------------------------------------------
def test_check_refusals_change_nothing(platform):
    healthy_platform(platform)
    before = snapshot(platform.store, ("entries", "balances", "audit", "integrity_runs"))
    with pytest.raises(PermissionDeniedError):
        check_platform(platform, QA)
    with pytest.raises(PermissionDeniedError):
        check_user(platform, QA, "u1")
    for bad in ("u1:x", {"$ne": 1}, "", "a" * 200, None):
        with pytest.raises(InvalidAccountError):
            check_user(platform, SUPPORT, bad)
    assert snapshot(platform.store, ("entries", "balances", "audit", "integrity_runs")) == before


def test_check_user_refuses_an_unknown_user_and_stores_no_run(platform):
    from core.base.errors import UnknownUserError

    healthy_platform(platform)
    before = snapshot(platform.store, ("audit", "integrity_runs"))
    with pytest.raises(UnknownUserError) as refused:
        check_user(platform, SUPPORT, "nobody-here")
    assert refused.value.details["user_id"] == "nobody-here"
    assert snapshot(platform.store, ("audit", "integrity_runs")) == before
    platform.store.collection("users").insert_one({"user_id": "fresh", "email": "f@example.com", "name": "New Person"})
    assert check_user(platform, SUPPORT, "fresh").ok  # in the directory, nothing booked yet: a clean user


# -- history and trend ------------------------------------------------------------------------------
def _platform_runs(platform, count: int) -> list[str]:
    """The healthy book checked `count` times, a minute apart: the run ids, oldest first."""
    healthy_platform(platform)
    ids = []
    for _ in range(count):
        ids.append(check_platform(platform, ADMIN).run_id)
        platform.clock.advance(timedelta(minutes=1))
    return ids


def test_history_pages_newest_first_and_trend(platform):
    ids = _platform_runs(platform, 3)
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})
    ids.append(check_user(platform, SUPPORT, "u1").run_id)
    first = history(platform, SUPPORT, 0, 2)
    assert [r["_id"] for r in first.items] == [ids[3], ids[2]] and first.has_more
    assert [r["_id"] for r in history(platform, SUPPORT, 1, 2).items] == [ids[1], ids[0]]
    assert [r["_id"] for r in history(platform, SUPPORT, scope="user:u1").items] == [ids[3]]
    points = trend(platform, ADMIN)
    assert [p["run_id"] for p in points] == ids and [p["ok"] for p in points] == [True, True, True, False]
    assert points[-1]["critical"] == 1
    assert integrity.get_run(platform, ADMIN, ids[0])["scope"] == "platform"
    with pytest.raises(IntegrityRunNotFoundError):
        integrity.get_run(platform, ADMIN, "run_nope")
    for page, size in ((-1, 5), (0, 0), (0, 201), (0, True)):
        with pytest.raises(InvalidArgumentError):  # the boundary's count rule, or the history's own (InvalidFilterError)
            history(platform, ADMIN, page, size)
    with pytest.raises(InvalidArgumentError):
        history(platform, ADMIN, scope={"$ne": ""})
    with pytest.raises(InvalidArgumentError):
        trend(platform, ADMIN, points=0)
    with pytest.raises(PermissionDeniedError):
        history(platform, QA)
    events = platform.store.raw("audit").find({"type": "integrity.check"})
    assert sorted(e["target"] for e in events) == sorted(ids)


def test_run_history_is_bounded_and_index_served(platform):
    from core.integrity import prune_history

    ids = _platform_runs(platform, 5)
    platform.store.log.reset()
    assert prune_history(platform.store, kept_max=2) == 3
    assert uncovered(platform.store.log.records) == []
    assert [r["_id"] for r in history(platform, ADMIN).items] == [ids[4], ids[3]]
    assert prune_history(platform.store, kept_max=2) == 0
    events = platform.store.raw("audit").count_documents({"type": "integrity.check"})
    assert events == 5  # every run's summary stays in the audit trail
