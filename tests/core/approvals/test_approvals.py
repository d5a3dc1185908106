"""Maker-checker approvals: requester ≠ approver, two approvers above the second
threshold, expiry, reason to reject, execute once, every refusal changes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core import approvals
from core.base.errors import (
    ApprovalAlreadyExecutedError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    ApprovalRejectedError,
    DuplicateApprovalError,
    FloatAmountError,
    IdempotencyConflictError,
    InvalidArgumentError,
    InvalidEntryError,
    PermissionDeniedError,
    ReasonRequiredError,
    SelfApprovalError,
    UnknownApprovalKindError,
)
from core.base.permissions import SYSTEM, Principal, Role
from tests.principals import CHECKER, CHECKER_2, MAKER, QA, SUPPORT


CALLS: list[tuple[str, str]] = []


def _execute(platform, approval, principal):
    CALLS.append(("execute", approval.id))
    return {"done_by": principal.name}


def _close(platform, approval, principal):
    CALLS.append(("close", approval.id))


def _failing(platform, approval, principal):
    from core.base.errors import InsufficientFundsError

    raise InsufficientFundsError("no money")


approvals.register_executor("test.noop", _execute, on_close=_close)
approvals.register_executor("test.failing", _failing)


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def _request(platform, key="k1", amount_minor=100, asset="BTC", kind="test.noop", principal=MAKER):
    return approvals.request_approval(
        platform,
        principal,
        kind=kind,
        payload={"user_id": "u1", "note": "x"},
        asset=asset,
        amount_minor=amount_minor,
        idempotency_key=key,
        reason="because",
    )


def _snapshot(platform):
    return (
        [d for d in platform.store.raw("approvals").find({}, sort=[("_id", 1)])],
        platform.store.raw("entries").count_documents({}),
    )


def test_request_approval_creates_pending_document(platform):
    doc = _request(platform)
    assert doc["state"] == "pending" and doc["requested_by"] == "maker" and doc["approvals_required"] == 1
    assert doc["expires_at"] == platform.clock.now() + platform.config.approval_ttl
    assert platform.ledger.audit.by_key(f"approval:{doc['_id']}:requested")["type"] == "approval.requested"


def test_request_approval_replay_returns_original(platform):
    first = _request(platform)
    assert _request(platform)["_id"] == first["_id"]
    assert platform.store.raw("approvals").count_documents({}) == 1


def test_request_approval_conflicting_replay_refused(platform):
    _request(platform)
    before = _snapshot(platform)
    with pytest.raises(IdempotencyConflictError):
        _request(platform, amount_minor=101)
    assert _snapshot(platform) == before


@pytest.mark.parametrize(
    "bad",
    [
        dict(reason=""),
        dict(reason="   "),
        dict(payload={"x": 0.1}),
        dict(payload=["no"]),
        dict(kind="no.such.kind"),
        dict(idempotency_key="has space"),
        dict(amount_minor=1.5),
        dict(asset="DOGE2"),
    ],
)
def test_request_approval_invalid_input_refused(platform, bad):
    fields = dict(kind="test.noop", payload={"a": 1}, asset="BTC", amount_minor=1, idempotency_key="k", reason="r")
    fields.update(bad)
    with pytest.raises(
        (ReasonRequiredError, FloatAmountError, InvalidEntryError, UnknownApprovalKindError, Exception)
    ) as info:
        approvals.request_approval(platform, MAKER, **fields)
    assert info.type.__module__ == "core.base.errors"
    assert platform.store.raw("approvals").count_documents({}) == 0


@pytest.mark.parametrize("who", [SUPPORT, QA, SYSTEM])
def test_request_approval_needs_treasury_permission(platform, who):
    with pytest.raises(PermissionDeniedError):
        _request(platform, principal=who)
    assert platform.store.raw("approvals").count_documents({}) == 0


def test_approve_executes_once(platform):
    doc = _request(platform)
    done = approvals.approve(platform, CHECKER, doc["_id"], "ok")
    assert done["state"] == "approved" and done["result"] == {"ok": True, "done_by": "checker"}
    assert CALLS == [("execute", doc["_id"])]
    with pytest.raises(ApprovalAlreadyExecutedError):
        approvals.approve(platform, CHECKER_2, doc["_id"])
    assert CALLS == [("execute", doc["_id"])]
    assert platform.ledger.audit.by_key(f"approval:{doc['_id']}:executed") is not None


def test_approve_own_request_refused(platform):
    doc = _request(platform)
    before = _snapshot(platform)
    with pytest.raises(SelfApprovalError):
        approvals.approve(platform, MAKER, doc["_id"])
    assert _snapshot(platform) == before and CALLS == []


def test_approve_twice_by_same_approver_refused(platform):
    doc = _request(platform, amount_minor=10 * 10**8)  # above the BTC second threshold: two approvers
    first = approvals.approve(platform, CHECKER, doc["_id"])
    assert first["state"] == "pending" and len(first["approvals"]) == 1
    before = _snapshot(platform)
    with pytest.raises(DuplicateApprovalError):
        approvals.approve(platform, CHECKER, doc["_id"])
    assert _snapshot(platform) == before and CALLS == []
    done = approvals.approve(platform, CHECKER_2, doc["_id"])
    assert done["state"] == "approved" and CALLS == [("execute", doc["_id"])]
    assert [a["by"] for a in done["approvals"]] == ["checker", "checker2"]


def test_approvals_required_threshold_boundaries(platform):
    second = int(Decimal(platform.config.second_approval_threshold["BTC"]) * 10**8)
    assert approvals.approvals_required_for(platform, "BTC", second) == 1
    assert approvals.approvals_required_for(platform, "BTC", second + 1) == 2
    assert approvals.approvals_required_for(platform, "BTC", -(second + 1)) == 2
    assert approvals.approvals_required_for(platform, None, None) == 1


def test_approve_expired_request_refused_and_closed(platform, clock):
    doc = _request(platform)
    clock.advance(platform.config.approval_ttl)
    with pytest.raises(ApprovalExpiredError):
        approvals.approve(platform, CHECKER, doc["_id"])
    assert approvals.get_approval(platform, CHECKER, doc["_id"])["state"] == "expired"
    assert CALLS == [("close", doc["_id"])]
    with pytest.raises(ApprovalExpiredError):
        approvals.reject(platform, CHECKER, doc["_id"], "late")


def test_reject_needs_reason_and_runs_close_hook(platform):
    doc = _request(platform)
    before = _snapshot(platform)
    for reason in ("", "  ", None):
        with pytest.raises(ReasonRequiredError):
            approvals.reject(platform, CHECKER, doc["_id"], reason)
    assert _snapshot(platform) == before
    rejected = approvals.reject(platform, CHECKER, doc["_id"], "not justified")
    assert rejected["state"] == "rejected" and rejected["rejected_by"] == "checker"
    assert rejected["rejection_reason"] == "not justified" and CALLS == [("close", doc["_id"])]
    with pytest.raises(ApprovalRejectedError):
        approvals.approve(platform, CHECKER_2, doc["_id"])
    with pytest.raises(ApprovalRejectedError):
        approvals.reject(platform, CHECKER_2, doc["_id"], "again")


def test_reject_executed_request_refused(platform):
    doc = _request(platform)
    approvals.approve(platform, CHECKER, doc["_id"])
    with pytest.raises(ApprovalAlreadyExecutedError):
        approvals.reject(platform, CHECKER_2, doc["_id"], "too late")


@pytest.mark.parametrize("who", [SUPPORT, QA, SYSTEM])
def test_approve_and_reject_need_approve_permission(platform, who):
    doc = _request(platform)
    before = _snapshot(platform)
    with pytest.raises(PermissionDeniedError):
        approvals.approve(platform, who, doc["_id"])
    with pytest.raises(PermissionDeniedError):
        approvals.reject(platform, who, doc["_id"], "no")
    assert _snapshot(platform) == before


@pytest.mark.parametrize("bad_id", ["nope", {"$ne": None}, 5, None])
def test_approve_unknown_request_refused(platform, bad_id):
    with pytest.raises(ApprovalNotFoundError):
        approvals.approve(platform, CHECKER, bad_id)


def test_executor_failure_is_recorded_not_raised(platform):
    doc = _request(platform, kind="test.failing")
    done = approvals.approve(platform, CHECKER, doc["_id"])
    assert done["state"] == "approved" and done["result"]["ok"] is False
    assert done["result"]["error"] == "insufficient_funds"


def test_crash_before_execution_is_resumed(platform):
    doc = _request(platform)

    def crash(phase, collection, operation):
        if phase == "before" and collection == "approvals" and operation == "find_one_and_update":
            state["calls"] += 1
            if state["calls"] == 2:  # the result, after the executor ran
                raise RuntimeError("crash")

    state = {"calls": 0}
    platform.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        approvals.approve(platform, CHECKER, doc["_id"])
    platform.store.fault_hook = None
    assert approvals.get_approval(platform, CHECKER, doc["_id"])["state"] == "approved"  # vote + approval: one update
    assert approvals.get_approval(platform, CHECKER, doc["_id"])["result"] is None
    CALLS.clear()
    assert approvals.resume_approved(platform, SYSTEM).done == [doc["_id"]]
    assert approvals.get_approval(platform, CHECKER, doc["_id"])["result"]["ok"] is True
    assert CALLS == [("execute", doc["_id"])]


def test_list_approvals_pages_and_filters(platform, clock):
    for index in range(5):
        _request(platform, key=f"k{index}")
        clock.advance(timedelta(seconds=1))
    page = approvals.list_approvals(platform, CHECKER, page_size=2)
    assert len(page.items) == 2 and page.has_more and page.items[0]["idempotency_key"] == "k4"
    last = approvals.list_approvals(platform, CHECKER, page=2, page_size=2)
    assert [d["idempotency_key"] for d in last.items] == ["k0"] and not last.has_more
    approvals.approve(platform, CHECKER, page.items[0]["_id"])
    assert len(approvals.list_approvals(platform, CHECKER, state="approved").items) == 1
    assert len(approvals.list_approvals(platform, CHECKER, state=None, kind="test.noop").items) == 5
    for bad in ({"state": {"$ne": 1}}, {"state": "weird"}, {"kind": "$where"}, {"page_size": 0}, {"page": -1}):
        with pytest.raises(InvalidArgumentError):  # the boundary's form checks, or the read's own (InvalidEntryError)
            approvals.list_approvals(platform, CHECKER, **bad)
    with pytest.raises(PermissionDeniedError):
        approvals.list_approvals(platform, SUPPORT)


def test_expire_due_expires_only_overdue(platform, clock):
    old = _request(platform, key="old")
    clock.advance(timedelta(hours=23))
    young = _request(platform, key="young")
    clock.advance(timedelta(hours=1))
    assert approvals.expire_due(platform, SYSTEM).done == [old["_id"]]
    assert approvals.get_approval(platform, CHECKER, young["_id"])["state"] == "pending"


def test_approvals_reads_are_indexed(platform):
    from core.ledger.store import uncovered

    doc = _request(platform)
    approvals.list_approvals(platform, CHECKER, state=None)
    approvals.list_approvals(platform, CHECKER, kind="test.noop")
    approvals.approve(platform, CHECKER, doc["_id"])
    approvals.expire_due(platform, SYSTEM)
    approvals.resume_approved(platform, SYSTEM)
    assert uncovered(platform.store.log.records) == []


def test_concurrent_approvers_execute_once(platform):
    import threading

    from core.base.errors import ApprovalStateError

    doc = _request(platform)
    approvers = [Principal(name=f"admin{i}", role=Role.ADMIN) for i in range(6)]
    outcomes = []

    def attempt(principal):
        try:
            approvals.approve(platform, principal, doc["_id"])
            outcomes.append("ok")
        except ApprovalStateError as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = approvals.get_approval(platform, CHECKER, doc["_id"])
    assert len(final["approvals"]) == 1 and final["result"]["ok"] is True
    # executors are keyed by the request id, so a losing approver that finds the request approved
    # but not yet executed may run the executor again (a replay); the result is recorded once
    assert set(CALLS) == {("execute", doc["_id"])}
    executed = platform.store.raw("audit").count_documents({"target": doc["_id"], "type": "approval.executed"})
    assert executed == 1
    assert outcomes.count("ok") >= 1 and len(outcomes) == 6


def test_approval_audit_trail_records_each_action(platform):
    doc = _request(platform, amount_minor=10 * 10**8)
    approvals.approve(platform, CHECKER, doc["_id"], "one")
    approvals.approve(platform, CHECKER_2, doc["_id"], "two")
    types = [e["type"] for e in platform.store.raw("audit").find({"target": doc["_id"]}, sort=[("seq", 1)])]
    assert types == ["approval.requested", "approval.approved", "approval.approved", "approval.executed"]
    assert platform.ledger.audit.verify().ok


def test_crash_inside_executor_is_finished_at_once_without_any_claim(platform, clock):
    """No staleness threshold: the next caller finishes an interrupted execution right
    away (executors are keyed by the request id, so running one twice is a replay). On
    the claim-based code the second approver found a fresh claim and left it unexecuted."""
    state = {"crash": True}

    def crashing(platform_, approval, principal):
        CALLS.append(("execute", approval.id))
        if state["crash"]:
            raise RuntimeError("process died inside the executor")
        return {}

    approvals.register_executor("test.crashy", crashing)
    doc = _request(platform, kind="test.crashy")
    with pytest.raises(RuntimeError):
        approvals.approve(platform, CHECKER, doc["_id"])
    state["crash"] = False
    with pytest.raises(ApprovalAlreadyExecutedError):  # finishes it (no clock advance needed), then says so
        approvals.approve(platform, CHECKER_2, doc["_id"])
    finished = approvals.get_approval(platform, CHECKER, doc["_id"])
    assert finished["state"] == "approved" and finished["result"] == {"ok": True} and len(CALLS) == 2
    assert approvals.resume_approved(platform, SYSTEM).done == []
    assert len(CALLS) == 2
    executed = list(platform.store.raw("audit").find({"event_key": f"approval:{doc['_id']}:executed"}))
    assert len(executed) == 1 and executed[0]["actor"] == CHECKER_2.name


def test_close_hook_cut_short_by_crash_is_finished_by_sweep(platform):
    state = {"crash": True}

    def closing(platform_, approval, principal):
        CALLS.append(("close", approval.id))
        if state["crash"]:
            raise RuntimeError("died in the close hook")

    approvals.register_executor("test.closing", _execute, on_close=closing)
    doc = _request(platform, kind="test.closing")
    with pytest.raises(RuntimeError):
        approvals.reject(platform, CHECKER, doc["_id"], "no")
    state["crash"] = False
    assert approvals.get_approval(platform, CHECKER, doc["_id"])["close_done"] is False
    approvals.expire_due(platform, SYSTEM)
    assert approvals.get_approval(platform, CHECKER, doc["_id"])["close_done"] is True
    assert CALLS == [("close", doc["_id"]), ("close", doc["_id"])]
    approvals.expire_due(platform, SYSTEM)
    assert len(CALLS) == 2


def test_failed_result_is_corrected_when_the_entry_exists_after_all(platform):
    """A refusal is not durable: if a concurrent executor's entry went in after this one was
    refused, the failed result is corrected once, with its own audit event."""
    from core.flows import adjustment
    from core.ledger import accounts as acct
    from core.ledger import from_minor, make_request

    request = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="-1", reason="debit",
                                            idempotency_key="debit")
    refused = approvals.approve(platform, CHECKER, request["_id"], "ok")
    assert refused["result"]["ok"] is False and refused["result"]["error"] == "insufficient_funds"
    value = from_minor(100_000_000, "BTC")
    platform.ledger.post(make_request(idempotency_key="fund-uma", type="test.fund", actor="t", postings=(
        {"account": acct.external("BTC"), "amount": -value}, {"account": acct.user_available("uma", "BTC"), "amount": value})))
    platform.ledger.post(make_request(  # the concurrent executor's entry, landing after the refusal
        idempotency_key=approvals.execution_key(request["_id"]), type="adjustment.debit", actor=CHECKER_2.name,
        flow_ref=request["_id"], memo="debit", metadata={"approval_id": request["_id"], "requested_by": MAKER.name,
                                                         "approved_by": CHECKER.name},
        postings=({"account": acct.adjustments("BTC"), "amount": value},
                  {"account": acct.user_available("uma", "BTC"), "amount": -value})))
    assert approvals.resume_approved(platform, SYSTEM).done == [request["_id"]]
    corrected = approvals.get_approval(platform, CHECKER, request["_id"])["result"]
    assert corrected["ok"] is True and corrected["corrected_from"] == "insufficient_funds"
    assert approvals.resume_approved(platform, SYSTEM).done == []  # once
    assert platform.ledger.audit.by_key(f"approval:{request['_id']}:execution_corrected")["actor"] == SYSTEM.name
