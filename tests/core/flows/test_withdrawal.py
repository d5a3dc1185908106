"""Withdrawals: hold, maker-checker above the thresholds, settle with a 1% fee or release."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.ledger import accounts as acct
from core import approvals
from core.base.errors import (
    InvalidArgumentError,
    AmountTooSmallError,
    ApprovalAlreadyExecutedError,
    DuplicateApprovalError,
    FloatAmountError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidFlowInputError,
    PermissionDeniedError,
)
from core.flows import withdrawal
from core.flowtests.sandbox import Sandbox
from core.base.permissions import SYSTEM, Principal, Role
from tests.helpers import world_state
from tests.principals import ADMIN, ADMIN_2


@pytest.fixture
def funded(platform, clock):
    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "10")
    return platform


def _withdraw(platform, amount, key="w1", **changes):
    fields = dict(user_id="alice", asset="BTC", amount=amount, destination="bc1qxyz", idempotency_key=key)
    fields.update(changes)
    return withdrawal.request_withdrawal(platform, SYSTEM, **fields)


def _btc(platform, account):
    return platform.ledger.balance(account).minor


def test_withdrawal_below_threshold_settles_at_once(funded):
    document = _withdraw(funded, "0.5")
    assert document["state"] == "settled" and document["approval_id"] is None
    assert (document["fee_minor"], document["net_minor"]) == (500_000, 49_500_000)
    assert _btc(funded, acct.user_available("alice", "BTC")) == 950_000_000
    assert _btc(funded, acct.user_locked("alice", "BTC")) == 0
    assert _btc(funded, acct.fees("BTC")) == 500_000
    settle = funded.ledger.entry(document["settle_entry_id"])
    assert settle.type == "withdrawal.settle" and settle.metadata["fee_minor"] == 500_000
    assert sorted(p.amount_minor for p in settle.postings) == [-50_000_000, 500_000, 49_500_000]


def test_withdrawal_above_threshold_waits_for_one_approver(funded):
    document = _withdraw(funded, "0.6")
    assert document["state"] == "awaiting_approval"
    assert _btc(funded, acct.user_locked("alice", "BTC")) == 60_000_000
    request = approvals.get_approval(funded, ADMIN, document["approval_id"])
    assert request["approvals_required"] == 1 and request["requested_by"] == "system"
    approvals.approve(funded, ADMIN, document["approval_id"], "ok")
    assert withdrawal.get_withdrawal(funded, document["_id"])["state"] == "settled"
    assert _btc(funded, acct.fees("BTC")) == 600_000 and _btc(funded, acct.user_locked("alice", "BTC")) == 0


def test_withdrawal_above_second_threshold_needs_two_distinct_approvers(funded):
    document = _withdraw(funded, "5.5")
    approvals.approve(funded, ADMIN, document["approval_id"])
    assert withdrawal.get_withdrawal(funded, document["_id"])["state"] == "awaiting_approval"
    before = world_state(funded.store)
    with pytest.raises(DuplicateApprovalError):
        approvals.approve(funded, ADMIN, document["approval_id"])
    assert world_state(funded.store) == before
    approvals.approve(funded, ADMIN_2, document["approval_id"])
    assert withdrawal.get_withdrawal(funded, document["_id"])["state"] == "settled"
    with pytest.raises(ApprovalAlreadyExecutedError):
        approvals.approve(funded, Principal(name="cat", role=Role.ADMIN), document["approval_id"])


def test_withdrawal_rejected_releases_hold_without_fee(funded):
    document = _withdraw(funded, "1")
    approvals.reject(funded, ADMIN, document["approval_id"], "suspicious destination")
    current = withdrawal.get_withdrawal(funded, document["_id"])
    assert current["state"] == "rejected"
    assert _btc(funded, acct.user_available("alice", "BTC")) == 1_000_000_000
    assert _btc(funded, acct.fees("BTC")) == 0
    assert funded.ledger.entry(current["release_entry_id"]).type == "withdrawal.release"


def test_withdrawal_expired_approval_releases_hold(funded, clock):
    document = _withdraw(funded, "1")
    clock.advance(funded.config.approval_ttl + timedelta(seconds=1))
    assert approvals.expire_due(funded, SYSTEM).done == [document["approval_id"]]
    assert withdrawal.get_withdrawal(funded, document["_id"])["state"] == "rejected"
    assert _btc(funded, acct.user_available("alice", "BTC")) == 1_000_000_000


def test_withdrawal_more_than_available_changes_nothing(funded):
    before = world_state(funded.store)
    with pytest.raises(InsufficientFundsError):
        _withdraw(funded, "10.00000001")
    assert world_state(funded.store) == before


def test_withdrawal_locked_funds_are_not_available(funded):
    _withdraw(funded, "6", key="big")  # awaiting approval: 6 BTC locked
    with pytest.raises(InsufficientFundsError):
        _withdraw(funded, "4.5", key="second")


@pytest.mark.parametrize(
    "change, error",
    [
        ({"amount": 0.5}, FloatAmountError),
        ({"amount": "0.00000001"}, AmountTooSmallError),
        ({"destination": ""}, InvalidFlowInputError),
        ({"idempotency_key": "a b"}, InvalidArgumentError),  # the boundary's key rule
    ],
)
def test_withdrawal_invalid_input_changes_nothing(funded, change, error):
    before = world_state(funded.store)
    with pytest.raises(error):
        _withdraw(funded, change.pop("amount", "0.1"), **change)
    assert world_state(funded.store) == before


@pytest.mark.parametrize("who", [Principal(name="ann", role=Role.ADMIN), Principal(name="q", role=Role.QA)])
def test_withdrawal_needs_move_money(funded, who):
    before = world_state(funded.store)
    with pytest.raises(PermissionDeniedError):
        withdrawal.request_withdrawal(
            funded, who, user_id="alice", asset="BTC", amount="1", destination="x", idempotency_key="k"
        )
    assert world_state(funded.store) == before


def test_withdrawal_replay_and_conflict(funded):
    first = _withdraw(funded, "0.2")
    entries = funded.store.raw("entries").count_documents({})
    assert _withdraw(funded, "0.2")["_id"] == first["_id"]
    assert funded.store.raw("entries").count_documents({}) == entries
    with pytest.raises(IdempotencyConflictError):
        _withdraw(funded, "0.3")


def test_withdrawal_system_cannot_self_approve(funded):
    document = _withdraw(funded, "1")
    with pytest.raises(PermissionDeniedError):
        approvals.approve(funded, SYSTEM, document["approval_id"])
    with pytest.raises(PermissionDeniedError):  # InvalidPrincipalError: "system" is reserved (issue 11)
        Principal(name="system", role=Role.ADMIN)


@pytest.mark.parametrize(
    "crash_collection, crash_operation",
    [("withdrawals", "find_one_and_update"), ("balances", "update_one"), ("entries", "insert_one"), ("audit", "insert_one")],
)
def test_withdrawal_crash_is_finished_by_retry(funded, crash_collection, crash_operation):
    fired = {"done": False}

    def crash(phase, collection, operation):
        if not fired["done"] and phase == "after" and (collection, operation) == (crash_collection, crash_operation):
            fired["done"] = True
            raise RuntimeError("crash")

    funded.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        _withdraw(funded, "0.3")
    funded.store.fault_hook = None
    assert _withdraw(funded, "0.3")["state"] == "settled"
    assert _btc(funded, acct.user_available("alice", "BTC")) == 970_000_000
    assert _btc(funded, acct.fees("BTC")) == 300_000


def test_withdrawal_approvals_needed_boundaries(platform):
    assert withdrawal.approvals_needed(platform, "BTC", 50_000_000) == 0
    assert withdrawal.approvals_needed(platform, "BTC", 50_000_001) == 1
    assert withdrawal.approvals_needed(platform, "BTC", 500_000_001) == 2
