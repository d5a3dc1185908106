"""The integrity engine: exact findings, per-user cost, run history, approval-gated repairs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.ledger import logical_id

from core.ledger import accounts as acct
from core import approvals, cli, integrity
from core.ledger.entries import entry_hash, make_request
from core.base.errors import (
    ApprovalAlreadyExecutedError,
    IntegrityRunNotFoundError,
    InvalidAccountError,
    InvalidArgumentError,
    PermissionDeniedError,
    RepairNotNeededError,
    SelfApprovalError,
)
from core.integrity import check_platform, check_user, history, request_projection_repair, trend
from core.ledger.money import amount
from core.base.permissions import Principal, Role
from core.ledger.store import uncovered
from tests.helpers import Crash, deposit, snapshot, transfer_request

ADMIN = Principal(name="alice", role=Role.ADMIN)
ADMIN2 = Principal(name="bob", role=Role.ADMIN)
SUPPORT = Principal(name="sam", role=Role.SUPPORT)
QA = Principal(name="quinn", role=Role.QA)


def _fee_entry(ledger, key: str, fee_minor: int, booked_minor: int | None = None, asset: str = "USDT"):
    """A flow-like entry: liquidity pays a fee into the fee wallet, metadata fee_minor."""
    booked = fee_minor if booked_minor is None else booked_minor
    return ledger.post(
        make_request(
            idempotency_key=key,
            type="swap.execute",
            actor="system",
            metadata={"fee_minor": fee_minor},
            postings=(
                {
                    "account": acct.liquidity(asset),
                    "amount": -amount(booked, asset).__class__(asset=asset, minor=booked, scale=6),
                },
                {"account": acct.fees(asset), "amount": amount(0, asset).__class__(asset=asset, minor=booked, scale=6)},
            ),
        )
    )


def healthy_platform(platform) -> dict:
    """A small but varied, consistent book: deposits, user holds (open and closed), an open
    quote reservation, P2P trades (open and released), fees, a referral payout and a sweep."""
    ledger, store, now = platform.ledger, platform.store, platform.clock.now()
    deposit(ledger, "u1", "1.5", "BTC")
    deposit(ledger, "u2", "2", "BTC")
    deposit(ledger, "u2", "500", "USDT")
    ledger.post(
        transfer_request(
            "seed-liq", acct.external("USDT"), acct.liquidity("USDT"), "10000", "treasury.liquidity_top_up"
        )
    )
    ledger.place_user_hold(hold_id="w-open", user_id="u1", asset="BTC", amount="0.25", actor="system")
    ledger.place_user_hold(hold_id="w-done", user_id="u1", asset="BTC", amount="0.1", actor="system")
    ledger.consume_hold(hold_id="w-done", actor="system", destinations=[(acct.external("BTC"), amount("0.1", "BTC"))])
    ledger.place_user_hold(hold_id="w-back", user_id="u2", asset="BTC", amount="0.3", actor="system")
    ledger.release_hold(hold_id="w-back", actor="system")
    ledger.place_hold(
        hold_id="q-live",
        source=acct.liquidity("USDT"),
        held=acct.liquidity_reserved("USDT"),
        amount="40",
        actor="system",
    )
    store.collection("quotes").insert_one(
        {
            "_id": "q-live",
            "kind": "swap",
            "user": "u2",
            "state": "open",
            "created_at": now,
            "expires_at": now + timedelta(days=3650),
            "reserved_asset": "USDT",
            "reserved_minor": 40_000_000,
        }
    )
    ledger.place_hold(
        hold_id="t-open",
        source=acct.user_available("u2", "USDT"),
        held=acct.escrow("t-open", "USDT"),
        amount="50",
        actor="system",
    )
    store.collection("p2p_trades").insert_one(
        {"_id": "t-open", "seller": "u2", "buyer": "u1", "asset": "USDT", "amount_minor": 50_000_000, "state": "paid"}
    )
    ledger.place_hold(
        hold_id="t-done",
        source=acct.user_available("u2", "USDT"),
        held=acct.escrow("t-done", "USDT"),
        amount="20",
        actor="system",
    )
    ledger.consume_hold(
        hold_id="t-done",
        actor="system",
        destinations=[
            (acct.user_available("u1", "USDT"), amount("19.8", "USDT")),
            (acct.fees("USDT"), amount("0.2", "USDT")),
        ],
        entry_type="p2p.release",
        metadata={"fee_minor": 200_000},
    )
    store.collection("p2p_trades").insert_one(
        {
            "_id": "t-done",
            "seller": "u2",
            "buyer": "u1",
            "asset": "USDT",
            "amount_minor": 20_000_000,
            "state": "released",
        }
    )
    _fee_entry(ledger, "swap-1", 1_500_000)
    ledger.post(
        transfer_request("ref-1", acct.fees("USDT"), acct.user_available("u1", "USDT"), "0.3", "referral.commission")
    )
    ledger.post(transfer_request("sweep-1", acct.fees("USDT"), acct.external("USDT"), "1", "treasury.fee_sweep"))
    return {"now": now}


def _kinds(report) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)


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
def _plant_corruptions(platform) -> None:
    ledger, store, now = platform.ledger, platform.store, platform.clock.now()
    # 1. a projection off by one minor unit
    store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})

    # 2. an entry stuck in flight: the process dies right after the journal insert
    def die(phase, collection, operation):
        if phase == "after" and collection == "entries" and operation == "insert_one":
            raise Crash("died after commit point")

    store.fault_hook = die
    with pytest.raises(Crash):
        deposit(ledger, "u2", "0.01", "BTC", key="stuck-1")
    store.fault_hook = None
    # 3. an expired reservation still held
    ledger.place_hold(
        hold_id="q-old",
        source=acct.liquidity("USDT"),
        held=acct.liquidity_reserved("USDT"),
        amount="25",
        actor="system",
    )
    store.collection("quotes").insert_one(
        {
            "_id": "q-old",
            "kind": "instant_buy",
            "user": "u1",
            "state": "open",
            "created_at": now,
            "expires_at": now - timedelta(hours=1),
            "reserved_asset": "USDT",
            "reserved_minor": 25_000_000,
        }
    )
    # 4. a closed trade whose escrow still holds money
    ledger.place_hold(
        hold_id="t-bad",
        source=acct.user_available("u2", "USDT"),
        held=acct.escrow("t-bad", "USDT"),
        amount="10",
        actor="system",
    )
    store.collection("p2p_trades").insert_one(
        {
            "_id": "t-bad",
            "seller": "u2",
            "buyer": "u1",
            "asset": "USDT",
            "amount_minor": 10_000_000,
            "state": "cancelled",
        }
    )
    # 5. fee wallet drift: a fee booked twice (posting 2× the fee the flow recorded)
    _fee_entry(ledger, "swap-double", 700_000, booked_minor=1_400_000)
    platform.clock.advance(timedelta(minutes=10))


def test_check_platform_lists_exactly_the_planted_corruptions(platform):
    healthy_platform(platform)
    _plant_corruptions(platform)
    report = check_platform(platform, ADMIN)
    stuck = platform.store.raw("entries").find_one({"idempotency_key": "stuck-1"})
    assert _kinds(report) == sorted(
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
    _plant_corruptions(platform)
    report = check_user(platform, SUPPORT, "u1")
    assert _kinds(report) == [("projection_mismatch", "user.available:u1:BTC")]
    stuck = platform.store.raw("entries").find_one({"idempotency_key": "stuck-1"})
    assert _kinds(check_user(platform, SUPPORT, "u2")) == [("stuck_entry", stuck["_id"])]


def test_check_platform_reservation_mismatch_when_quote_closed_but_still_held(platform):
    healthy_platform(platform)
    platform.store.raw("quotes").update_one({"_id": "q-live"}, {"$set": {"state": "expired"}})
    report = check_platform(platform, ADMIN)
    assert _kinds(report) == [("reservation_mismatch", "platform.liquidity_reserved:platform:USDT")]
    assert report.findings[0].expected == 0 and report.findings[0].actual == 40_000_000


def test_check_locked_without_hold_is_named(platform):
    healthy_platform(platform)
    platform.ledger.post(
        transfer_request("lock-direct", acct.external("BTC"), acct.user_locked("u2", "BTC"), "0.5", "test.lock")
    )
    expected = [("locked_hold_mismatch", "user.locked:u2:BTC")]
    assert _kinds(check_platform(platform, ADMIN)) == expected
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
    assert _kinds(report) == [("fee_revenue_drift", "platform.fees:platform:USDT")]
    assert report.findings[0].difference == -100_000


# -- tampering -------------------------------------------------------------------------------
def test_check_names_entry_edited_behind_the_engine(platform):
    healthy_platform(platform)
    target = platform.store.raw("entries").find_one({"idempotency_key": "deposit:u1:BTC:1.5"})
    platform.store.raw("entries").update_one({"_id": target["_id"]}, {"$set": {"memo": "nothing to see"}})
    report = check_platform(platform, ADMIN)
    assert ("entry_edited", target["_id"]) in _kinds(report)
    assert ("entry_edited", target["_id"]) in _kinds(check_user(platform, SUPPORT, "u1"))


def test_check_names_entry_whose_amount_was_edited(platform):
    healthy_platform(platform)
    raw = platform.store.raw("entries")
    target = raw.find_one({"idempotency_key": "ref-1"})
    raw.update_one({"_id": target["_id"]}, {"$set": {"postings.1.amount_minor": 3_000_000}})
    report = check_platform(platform, ADMIN)
    assert ("entry_edited", target["_id"]) in _kinds(report) and ("unbalanced_entry", target["_id"]) in _kinds(report)
    assert not report.ok
    assert ("entry_edited", target["_id"]) in _kinds(check_user(platform, SUPPORT, "u1"))


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
    assert "chain_broken" in {k for k, _ in _kinds(report)} or "projection_mismatch" in {k for k, _ in _kinds(report)}
    assert not report.ok
    for number in range(3):
        platform.ledger.audit.append(type="test.action", actor="alice", role="admin", target=f"t{number}")
    edited = platform.store.raw("audit").find_one({"seq": 2})
    platform.store.raw("audit").update_one({"_id": edited["_id"]}, {"$set": {"actor": "mallory"}})
    report = check_platform(platform, ADMIN, record=False)
    assert ("audit_chain_broken", f"audit stream {edited['stream']} seq 2") in _kinds(report)


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
def test_history_pages_newest_first_and_trend(platform):
    healthy_platform(platform)
    ids = []
    for _ in range(3):
        ids.append(check_platform(platform, ADMIN).run_id)
        platform.clock.advance(timedelta(minutes=1))
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


# -- repairs ----------------------------------------------------------------------------------------
def _broken(platform) -> None:
    healthy_platform(platform)
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": -7}})


def test_repair_request_approve_executes_and_audits(platform):
    _broken(platform)
    request = request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "found by integrity run")
    assert request["state"] == "pending" and request["payload"] == {
        "account": "user.available:u1:BTC",
        "actual_minor": 114_999_993,
        "expected_minor": 115_000_000,
    }
    assert platform.ledger.balance(acct.user_available("u1", "BTC")).minor == 114_999_993  # nothing repaired yet
    done = approvals.approve(platform, ADMIN, request["_id"], "checked the journal")
    assert done["state"] == "approved" and done["result"]["ok"] and done["result"]["changed"]
    assert done["result"]["before_minor"] == 114_999_993 and done["result"]["after_minor"] == 115_000_000
    assert platform.ledger.balance(acct.user_available("u1", "BTC")).minor == 115_000_000
    event = platform.ledger.audit.by_key(f"repair:{request['_id']}")
    assert event["type"] == "repair.projection" and event["before"]["balance_minor"] == 114_999_993
    assert event["after"]["balance_minor"] == 115_000_000 and event["actor"] == "alice" and event["user"] == "u1"
    assert event["before"]["version"] == event["after"]["version"]  # only the balance was off
    assert check_platform(platform, ADMIN).ok
    with pytest.raises(ApprovalAlreadyExecutedError):
        approvals.approve(platform, ADMIN2, request["_id"])
    with pytest.raises(RepairNotNeededError):
        request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "again")


def test_repair_request_by_a_second_person_says_one_is_waiting(platform):
    from core.base.errors import RepairAlreadyRequestedError

    _broken(platform)
    first = request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "found by integrity run")
    assert request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "found by integrity run")["_id"] == first["_id"]
    before = snapshot(platform.store, ("approvals",))
    with pytest.raises(RepairAlreadyRequestedError) as refused:
        request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "mine too")
    assert refused.value.details["request_id"] == first["_id"] and refused.value.details["requested_by"] == "sam"
    assert snapshot(platform.store, ("approvals",)) == before
    approvals.reject(platform, ADMIN, first["_id"], "look again first")
    second = request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "mine")  # nothing waiting: admin's own
    assert second["_id"] != first["_id"] and second["requested_by"] == "alice" and second["state"] == "pending"


def test_repair_self_approval_refused_changes_nothing(platform):
    _broken(platform)
    request = request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "mine")
    before = snapshot(platform.store, ("entries", "balances", "approvals"))
    with pytest.raises(SelfApprovalError):
        approvals.approve(platform, ADMIN, request["_id"])
    with pytest.raises(PermissionDeniedError):
        request_projection_repair(platform, QA, "user.available:u1:BTC", "qa")
    with pytest.raises(InvalidAccountError):
        request_projection_repair(platform, SUPPORT, "nonsense", "bad")
    assert snapshot(platform.store, ("entries", "balances", "approvals")) == before


def test_repair_executor_idempotent_and_guarded(platform):
    _broken(platform)
    approval = {"_id": "apr_test", "payload": {"account": "user.available:u1:BTC"}}
    first = integrity.execute_projection_repair(platform, approval, ADMIN)
    again = integrity.execute_projection_repair(platform, approval, ADMIN)
    assert first["changed"] and not again["changed"] and again["after_minor"] == 115_000_000
    assert platform.store.raw("audit").count_documents({"type": "repair.projection"}) == 1
    # a missing projection document is rebuilt too
    platform.store.raw("balances").delete_one({"_id": "user.available:u2:BTC"})
    result = integrity.execute_projection_repair(
        platform, {"_id": "apr_2", "payload": {"account": "user.available:u2:BTC"}}, ADMIN
    )
    assert (
        result["changed"]
        and platform.ledger.balance(acct.user_available("u2", "BTC")).minor == result["after_minor"] > 0
    )
    assert check_platform(platform, ADMIN).ok


# -- CLI -----------------------------------------------------------------------------------------------
def _run_cli(monkeypatch, platform, argv):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.integrity_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.delenv("LEGACY_MONGODB_URI", raising=False)
    return cli.main(argv)


def test_cli_check_exit_codes(platform, monkeypatch, capsys):
    healthy_platform(platform)
    assert _run_cli(monkeypatch, platform, ["integrity", "check"]) == 0
    assert "OK" in capsys.readouterr().out
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--full", "--json"]) == 1
    out = capsys.readouterr().out
    assert '"kind": "projection_mismatch"' in out and '"ok": false' in out
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--user", "u2"]) == 0
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--user", "u1"]) == 1
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--user", "bad id!"]) == 2


def test_cli_check_refuses_embedded_store(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.integrity_cli])
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert cli.main(["integrity", "check"]) == 2


# -- incremental ----------------------------------------------------------------------------------------
def test_incremental_check_verifies_only_what_changed(platform):
    healthy_platform(platform)
    first = check_platform(platform, ADMIN)
    assert first.mode == "full" and first.ok and "no verified anchor yet" in first.notes[0]
    for number in range(3):
        deposit(platform.ledger, "u9", f"{number + 1}", "USDT", key=f"new-{number}")
    second = check_platform(platform, ADMIN)
    assert second.mode == "incremental" and second.ok, second.findings
    assert second.entries_checked == 3 + 1  # the new entries, plus each slice's verified starting link
    assert second.accounts_checked == 2  # u9's USDT and the outside world's
    quiet = check_platform(platform, ADMIN)
    assert quiet.mode == "incremental" and quiet.entries_checked == 0 and quiet.ok
    assert check_platform(platform, ADMIN, full=True).mode == "full"


def test_incremental_check_names_a_new_entry_edited_behind_the_engine(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    entry = deposit(platform.ledger, "u9", "5", "USDT", key="late-edit")
    platform.store.raw("entries").update_one({"_id": entry.id}, {"$set": {"memo": "nothing to see"}})
    report = check_platform(platform, ADMIN)
    assert report.mode == "incremental" and ("entry_edited", entry.id) in _kinds(report)
    again = check_platform(platform, ADMIN)  # a failing slice stays behind the anchor: reported again
    assert ("entry_edited", entry.id) in _kinds(again)


def test_incremental_check_names_the_projection_of_an_account_that_moved(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    deposit(platform.ledger, "u1", "1", "BTC", key="more-btc")
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 5}})
    report = check_platform(platform, ADMIN)
    assert report.mode == "incremental"
    assert _kinds(report) == [("projection_mismatch", "user.available:u1:BTC")]


def test_incremental_check_verifies_new_audit_events_from_the_anchor(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok  # appends its own integrity.check event
    for number in range(3):
        platform.ledger.audit.append(type="test.action", actor="alice", role="admin", target=f"t{number}")
    head = platform.store.raw("audit").find_one({"target": "t2"})  # the three appends share this thread's stream
    platform.store.raw("audit").update_one({"stream": head["stream"], "seq": head["seq"] - 1}, {"$set": {"actor": "mallory"}})
    report = check_platform(platform, ADMIN, record=False)
    assert report.mode == "incremental"
    assert ("audit_chain_broken", f"audit stream {head['stream']} seq {head['seq'] - 1}") in _kinds(report)


def test_incremental_check_names_a_chain_hole_in_new_entries(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    first = deposit(platform.ledger, "u9", "1", "USDT", key="hole-1")
    deposit(platform.ledger, "u9", "2", "USDT", key="hole-2")
    platform.store.raw("entries").delete_one({"_id": first.id})
    report = check_platform(platform, ADMIN, record=False)
    assert not report.ok and {"chain_broken", "rollup_stalled"} & {f.kind for f in report.findings}


def test_incremental_check_falls_back_to_full_after_a_rollup_rebuild(platform):
    from core import rollups

    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    rollups.rebuild(platform.store)
    report = check_platform(platform, ADMIN)
    assert report.mode == "full" and "rebuilt" in report.notes[0] and report.ok


def test_full_check_finds_rollups_that_disagree_with_the_journal(platform):
    from core import rollups

    healthy_platform(platform)
    rollups.update(platform.store)
    platform.store.raw(rollups.TOTALS).update_one({"kind": "platform.fees"}, {"$inc": {"balance_minor": 3}})
    report = check_platform(platform, ADMIN, full=True)
    assert ("rollup_mismatch", "platform.fees USDT") in _kinds(report)
    rollups.rebuild(platform.store)
    assert check_platform(platform, ADMIN, full=True).ok


def test_incremental_check_cost_grows_with_new_entries_not_the_journal(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok

    def cost_of_one_new_entry(key: str) -> tuple[int, int]:
        deposit(platform.ledger, "u9", "1", "USDT", key=key)
        platform.store.log.reset()
        report = check_platform(platform, ADMIN, record=False)
        assert report.mode == "incremental" and report.ok, report.findings
        assert uncovered(platform.store.log.records) == []
        return platform.store.log.count, report.entries_checked

    small = cost_of_one_new_entry("one-new")
    for number in range(40):
        deposit(platform.ledger, f"old{number}", "1", "USDT", key=f"old-{number}")
    check_platform(platform, ADMIN)
    assert cost_of_one_new_entry("another-new")[0] == small[0]


def test_run_history_is_bounded_and_index_served(platform):
    from core.integrity import prune_history

    healthy_platform(platform)
    ids = []
    for _ in range(5):
        ids.append(check_platform(platform, ADMIN).run_id)
        platform.clock.advance(timedelta(minutes=1))
    platform.store.log.reset()
    assert prune_history(platform.store, kept_max=2) == 3
    assert uncovered(platform.store.log.records) == []
    assert [r["_id"] for r in history(platform, ADMIN).items] == [ids[4], ids[3]]
    assert prune_history(platform.store, kept_max=2) == 0
    events = platform.store.raw("audit").count_documents({"type": "integrity.check"})
    assert events == 5  # every run's summary stays in the audit trail


def test_runs_anchor_the_account_heads_and_the_full_check_verifies_the_anchor(platform):
    healthy_platform(platform)
    last = deposit(platform.ledger, "u7", "1", "USDT", key="last-one")
    first = check_platform(platform, ADMIN)
    assert first.mode == "full" and first.heads_digest
    anchors = platform.store.raw("audit").count_documents({"type": "ledger.anchor"})
    quiet = check_platform(platform, ADMIN)  # incremental, nothing changed: a delta anchor of no account, chained
    assert quiet.mode == "incremental" and quiet.heads_digest and quiet.heads_digest != first.heads_digest
    assert platform.store.raw("audit").count_documents({"type": "ledger.anchor"}) == anchors + 1
    # a consistent rewrite of the newest entry and of its accounts' projections: every chain
    # still links, only the anchor shows it
    raw = platform.store.raw("entries")
    document = raw.find_one({"_id": last.id})
    rewritten = dict(document, memo="rewritten")
    rewritten["entry_hash"] = entry_hash(rewritten)
    raw.replace_one({"_id": last.id}, rewritten)
    for posting in document["postings"]:
        platform.store.raw("balances").update_one({"_id": posting["account"]}, {"$set": {"head_hash": rewritten["entry_hash"]}})
    report = check_platform(platform, ADMIN, full=True)
    assert "anchor_mismatch" in {f.kind for f in report.findings} and report.heads_digest is None


def test_rollup_pass_log_is_pruned_behind_the_anchor(platform, monkeypatch):
    from core import rollups
    from core.integrity import incremental

    monkeypatch.setattr(incremental, "PASS_LOG_KEPT_BEHIND", 1)
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    for number in range(3):
        deposit(platform.ledger, "u9", "1", "USDT", key=f"prune-{number}")
        assert check_platform(platform, ADMIN).ok
    passes = sorted(d["pass"] for d in platform.store.raw(rollups.PASSES).find())
    assert len(passes) <= 2 and passes[-1] == incremental.read_anchor(platform.store).pass_number


def test_a_projection_edited_behind_the_anchor_stays_reported_until_repaired(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok  # full, anchors
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})
    found = check_platform(platform, ADMIN, full=True)
    assert "projection_mismatch" in {f.kind for f in found.findings}
    again = check_platform(platform, ADMIN)  # nothing moved in the journal: an incremental run would see nothing
    assert again.mode == "full" and "projection_mismatch" in {f.kind for f in again.findings}
    assert any("critical problems" in note for note in again.notes)
    request = request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "legacy write")
    approvals.approve(platform, ADMIN2, request["_id"], "checked against the journal")
    assert check_platform(platform, ADMIN).ok  # full once more (the last run was critical), and clean
    assert check_platform(platform, ADMIN).mode == "incremental"


def test_repair_of_one_stripe_of_the_fee_wallet_touches_only_that_stripe(platform):
    """A hot account is stored in stripes: integrity names the stripe whose projection was
    edited, and its repair rebuilds that stripe from the journal, nothing else."""
    ledger = platform.ledger
    for stripe in (3, 4):
        ledger._affinity.stripe = stripe
        ledger.post(transfer_request(f"fee-{stripe}", acct.opening("USDT"), acct.fees("USDT"), "5", "swap",
                                     metadata={"fee_minor": 5_000_000}))
    ledger.flush()
    assert check_platform(platform, ADMIN, full=True).ok
    edited = "platform.fees:platform:USDT#3"
    platform.store.raw("balances").update_one({"_id": edited}, {"$inc": {"balance_minor": 7}})
    report = check_platform(platform, ADMIN, full=True)
    assert {f.account or f.subject for f in report.findings if f.kind == "projection_mismatch"} == {edited}
    request = request_projection_repair(platform, SUPPORT, edited, "stripe 3 edited outside the ledger")
    assert request["payload"]["account"] == edited
    done = approvals.approve(platform, ADMIN, request["_id"], "checked the journal")
    assert done["result"]["changed"] and done["result"]["account"] == edited
    assert ledger.balance(acct.fees("USDT")).minor == 10_000_000
    assert platform.store.raw("balances").find_one({"_id": "platform.fees:platform:USDT#4"})["balance_minor"] == 5_000_000
    assert check_platform(platform, ADMIN, full=True).ok
