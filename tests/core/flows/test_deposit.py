"""Deposits: confirmations per asset, natural key, credited once; manual deposits via approval."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.ledger import accounts as acct
from core import approvals
from core.base.errors import (
    InvalidArgumentError,
    ExcessPrecisionError,
    FloatAmountError,
    IdempotencyConflictError,
    InvalidAccountError,
    InvalidFlowInputError,
    NonPositiveAmountError,
    PermissionDeniedError,
    ReasonRequiredError,
    SelfApprovalError,
    UnknownAssetError,
)
from core.flows import deposit
from core.base.permissions import SYSTEM, Principal, Role
from tests.helpers import world_state
from tests.principals import ADMIN, ADMIN_2


def _notice(platform, confirmations, **changes):
    fields = dict(user_id="alice", asset="ETH", amount="1.5", provider="chain",
                  payment_id=deposit.chain_payment_id("0xabc", 1), idempotency_key="dep-1")
    fields.update(changes)
    return deposit.record_deposit(platform, SYSTEM, confirmations=confirmations, **fields)


def test_deposit_credited_at_required_confirmations(platform):
    assert _notice(platform, 11)["state"] == "confirming"
    assert platform.ledger.balance(acct.user_available("alice", "ETH")).minor == 0
    document = _notice(platform, 12)
    assert document["state"] == "credited"
    assert platform.ledger.balance(acct.user_available("alice", "ETH")).minor == 150_000_000
    assert platform.ledger.balance(acct.external("ETH")).minor == -150_000_000
    entry = platform.ledger.entry(document["credit_entry_id"])
    assert entry.type == "deposit.credit" and entry.idempotency_key == f"deposit:{document['_id']}:credit"


@pytest.mark.parametrize("asset, needed", [("BTC", 2), ("XRP", 1), ("LTC", 6), ("SOL", 6), ("USDT", 12)])
def test_deposit_confirmations_per_asset(platform, asset, needed):
    amount = "1"
    assert _notice(platform, needed - 1, asset=asset, amount=amount)["state"] == "confirming"
    assert _notice(platform, needed, asset=asset, amount=amount)["state"] == "credited"


def test_deposit_credited_once_for_many_notices(platform):
    for confirmations in (12, 30, 5, 12):
        _notice(platform, confirmations, idempotency_key=f"k{confirmations}")
    assert platform.ledger.balance(acct.user_available("alice", "ETH")).minor == 150_000_000
    assert platform.store.raw("entries").count_documents({}) == 1


def test_deposit_confirmations_never_go_down(platform):
    _notice(platform, 5)
    assert _notice(platform, 2)["confirmations"] == 5


def test_deposit_same_payment_id_different_terms_refused(platform):
    _notice(platform, 12)
    before = world_state(platform.store)
    for change in ({"amount": "2"}, {"user_id": "bob"}):
        with pytest.raises(IdempotencyConflictError):
            _notice(platform, 12, **change)
    assert world_state(platform.store) == before


@pytest.mark.parametrize(
    "change, error",
    [
        ({"amount": 1.5}, FloatAmountError),
        ({"amount": "0"}, NonPositiveAmountError),
        ({"amount": "-1"}, NonPositiveAmountError),
        ({"amount": "0.000000001"}, ExcessPrecisionError),
        ({"asset": "DOGE"}, UnknownAssetError),
        ({"user_id": "a b"}, InvalidAccountError),
        ({"user_id": {"$ne": 1}}, InvalidAccountError),
        ({"payment_id": ""}, InvalidArgumentError),
        ({"idempotency_key": ""}, InvalidArgumentError),
    ],
)
def test_deposit_invalid_input_changes_nothing(platform, change, error):
    before = world_state(platform.store)
    with pytest.raises(error):
        _notice(platform, 12, **change)
    assert world_state(platform.store) == before


@pytest.mark.parametrize("confirmations", [-1, 1.0, True, "12", 10**7])
def test_deposit_bad_confirmations_refused(platform, confirmations):
    with pytest.raises(InvalidArgumentError):  # the boundary's count rule, or the flow's own limit
        _notice(platform, confirmations)
    assert world_state(platform.store)["deposits"] == []


def test_deposit_needs_move_money(platform):
    with pytest.raises(PermissionDeniedError):
        deposit.record_deposit(
            platform,
            ADMIN,
            user_id="alice",
            asset="BTC",
            amount="1",
            provider="p",
            payment_id="x",
            confirmations=9,
            idempotency_key="k",
        )


def test_deposit_crash_between_entry_and_transition_is_resumed(platform):
    calls = {"n": 0}

    def crash(phase, collection, operation):
        if phase == "before" and collection == "deposits" and operation == "find_one_and_update":
            raise RuntimeError("crash")

    platform.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        _notice(platform, 12)
    platform.store.fault_hook = None
    assert platform.ledger.balance(acct.user_available("alice", "ETH")).minor == 150_000_000
    document = platform.store.raw("deposits").find_one({})
    assert document["state"] == "confirming"
    assert deposit.resume_deposit(platform, SYSTEM, document["_id"])["state"] == "credited"
    assert platform.store.raw("entries").count_documents({}) == 1 and calls["n"] == 0


def test_chain_payment_id_validates():
    assert deposit.chain_payment_id("abc", 0) == "abc:0"
    for bad in (-1, True, "1"):
        with pytest.raises(InvalidFlowInputError):
            deposit.chain_payment_id("abc", bad)


MANUAL = {"user_id": "alice", "asset": "GBP", "amount": "120.50", "reference": "BANK-9", "reason": "statement line",
          "idempotency_key": "man-1"}


def _manual(platform, principal=ADMIN, **changes):
    return deposit.request_manual_deposit(platform, principal, **{**MANUAL, **changes})


def test_manual_deposit_credited_after_approval(platform):
    request = _manual(platform)
    assert platform.ledger.balance(acct.user_available("alice", "GBP")).minor == 0
    done = approvals.approve(platform, ADMIN_2, request["_id"], "seen on statement")
    assert done["result"]["ok"] is True
    assert platform.ledger.balance(acct.user_available("alice", "GBP")).minor == 12_050
    assert platform.ledger.entry(done["result"]["entry_id"]).type == "deposit.manual"


def test_manual_deposit_refusals_change_nothing(platform):
    request = _manual(platform)
    before = world_state(platform.store)
    with pytest.raises(SelfApprovalError):
        approvals.approve(platform, ADMIN, request["_id"])
    with pytest.raises(ReasonRequiredError):
        _manual(platform, reason="", idempotency_key="man-2")
    with pytest.raises(PermissionDeniedError):
        _manual(platform, principal=SYSTEM, idempotency_key="man-3")
    with pytest.raises(PermissionDeniedError):
        _manual(platform, principal=Principal(name="s", role=Role.SUPPORT), idempotency_key="man-4")
    with pytest.raises(FloatAmountError):
        _manual(platform, amount=1.5, idempotency_key="man-5")
    assert world_state(platform.store) == before


def test_manual_deposit_rejected_credits_nothing(platform):
    request = _manual(platform)
    approvals.reject(platform, ADMIN_2, request["_id"], "not on the statement")
    assert platform.ledger.balance(acct.user_available("alice", "GBP")).minor == 0
    assert platform.store.raw("entries").count_documents({}) == 0


def test_manual_deposit_amount_is_exact(platform):
    request = _manual(platform, amount=Decimal("0.01"))
    approvals.approve(platform, ADMIN_2, request["_id"])
    assert platform.ledger.balance(acct.user_available("alice", "GBP")).minor == 1
