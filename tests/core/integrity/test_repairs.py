"""Projection repairs: requested by support or an admin, approved by another person, executed
once from the journal, touching only the account (or stripe) named."""

from __future__ import annotations


import pytest

from core import approvals, integrity
from core.approvals import ApprovalRequest
from core.base.errors import (
    ApprovalAlreadyExecutedError,
    InvalidAccountError,
    InvalidArgumentError,
    PermissionDeniedError,
    RepairNotNeededError,
    SelfApprovalError,
)
from core.integrity import check_platform, request_projection_repair
from core.ledger import accounts as acct
from tests.core.integrity.books import broken_platform
from tests.helpers import snapshot, transfer_request
from tests.principals import ADMIN, ADMIN_2, QA, SUPPORT


# -- repairs ----------------------------------------------------------------------------------------


def test_repair_request_approve_executes_and_audits(platform):
    broken_platform(platform)
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
    assert event["after"]["balance_minor"] == 115_000_000 and event["actor"] == ADMIN.name and event["user"] == "u1"
    assert event["before"]["version"] == event["after"]["version"]  # only the balance was off
    assert check_platform(platform, ADMIN).ok
    with pytest.raises(ApprovalAlreadyExecutedError):
        approvals.approve(platform, ADMIN_2, request["_id"])
    with pytest.raises(RepairNotNeededError):
        request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "again")


def test_repair_request_by_a_second_person_says_one_is_waiting(platform):
    from core.base.errors import RepairAlreadyRequestedError

    broken_platform(platform)
    first = request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "found by integrity run")
    assert request_projection_repair(platform, SUPPORT, "user.available:u1:BTC", "found by integrity run")["_id"] == first["_id"]
    before = snapshot(platform.store, ("approvals",))
    with pytest.raises(RepairAlreadyRequestedError) as refused:
        request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "mine too")
    assert refused.value.details["request_id"] == first["_id"] and refused.value.details["requested_by"] == SUPPORT.name
    assert snapshot(platform.store, ("approvals",)) == before
    approvals.reject(platform, ADMIN, first["_id"], "look again first")
    second = request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "mine")  # nothing waiting: admin's own
    assert second["_id"] != first["_id"] and second["requested_by"] == ADMIN.name and second["state"] == "pending"


def test_repair_self_approval_refused_changes_nothing(platform):
    broken_platform(platform)
    request = request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "mine")
    before = snapshot(platform.store, ("entries", "balances", "approvals"))
    with pytest.raises(SelfApprovalError):
        approvals.approve(platform, ADMIN, request["_id"])
    with pytest.raises(PermissionDeniedError):
        request_projection_repair(platform, QA, "user.available:u1:BTC", "qa")
    with pytest.raises(InvalidAccountError):
        request_projection_repair(platform, SUPPORT, "nonsense", "bad")
    assert snapshot(platform.store, ("entries", "balances", "approvals")) == before


def _requested(platform, account: str) -> ApprovalRequest:
    """A pending repair request, as the approvals hand it to the executor."""
    return ApprovalRequest.from_document(request_projection_repair(platform, SUPPORT, account, "found by a check"))


def test_repair_executor_idempotent_and_guarded(platform):
    broken_platform(platform)
    approval = _requested(platform, "user.available:u1:BTC")
    with pytest.raises(InvalidArgumentError):  # executors take the typed request, never a hand-made dict
        integrity.execute_projection_repair(platform, approval.to_document(), ADMIN)
    first = integrity.execute_projection_repair(platform, approval, ADMIN)
    again = integrity.execute_projection_repair(platform, approval, ADMIN)
    assert first["changed"] and not again["changed"] and again["after_minor"] == 115_000_000
    assert platform.store.raw("audit").count_documents({"type": "repair.projection"}) == 1
    # a missing projection document is rebuilt too
    platform.store.raw("balances").delete_one({"_id": "user.available:u2:BTC"})
    result = integrity.execute_projection_repair(platform, _requested(platform, "user.available:u2:BTC"), ADMIN)
    assert (
        result["changed"]
        and platform.ledger.balance(acct.user_available("u2", "BTC")).minor == result["after_minor"] > 0
    )
    assert check_platform(platform, ADMIN).ok


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
