"""Adjustments, fee sweeps and liquidity moves: approval-gated, executed once."""

from __future__ import annotations

import pytest

from core.ledger import accounts as acct
from core import approvals
from core.errors import (
    FloatAmountError,
    NonPositiveAmountError,
    PermissionDeniedError,
    ReasonRequiredError,
    SelfApprovalError,
)
from core.flows import adjustment, treasury, withdrawal
from core.flowtests.sandbox import Sandbox, world_state
from core.permissions import SYSTEM, Principal, Role

ADMIN = Principal(name="ann", role=Role.ADMIN)
ADMIN_2 = Principal(name="ben", role=Role.ADMIN)
SUPPORT = Principal(name="sue", role=Role.SUPPORT)


def _minor(platform, account):
    return platform.ledger.balance(account).minor


def test_adjustment_credit_and_debit(platform):
    credit = adjustment.request_adjustment(
        platform, ADMIN, user_id="alice", asset="USDT", amount="10.5", reason="refund", idempotency_key="a1"
    )
    assert _minor(platform, acct.user_available("alice", "USDT")) == 0
    approvals.approve(platform, ADMIN_2, credit["_id"])
    assert _minor(platform, acct.user_available("alice", "USDT")) == 10_500_000
    assert _minor(platform, acct.adjustments("USDT")) == -10_500_000
    debit = adjustment.request_adjustment(
        platform, ADMIN, user_id="alice", asset="USDT", amount="-0.5", reason="fix", idempotency_key="a2"
    )
    done = approvals.approve(platform, ADMIN_2, debit["_id"])
    assert platform.ledger.entry(done["result"]["entry_id"]).type == "adjustment.debit"
    assert _minor(platform, acct.user_available("alice", "USDT")) == 10_000_000


def test_adjustment_debit_beyond_balance_fails_cleanly(platform):
    debit = adjustment.request_adjustment(
        platform, ADMIN, user_id="alice", asset="USDT", amount="-1", reason="fix", idempotency_key="a1"
    )
    done = approvals.approve(platform, ADMIN_2, debit["_id"])
    assert done["result"]["ok"] is False and done["result"]["error"] == "insufficient_funds"
    assert _minor(platform, acct.user_available("alice", "USDT")) == 0


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"amount": "0"}, NonPositiveAmountError),
        ({"amount": 1.0}, FloatAmountError),
        ({"reason": ""}, ReasonRequiredError),
    ],
)
def test_adjustment_refusals_change_nothing(platform, fields, error):
    request = dict(user_id="alice", asset="USDT", amount="1", reason="r", idempotency_key="k")
    request.update(fields)
    before = world_state(platform.store)
    with pytest.raises(error):
        adjustment.request_adjustment(platform, ADMIN, **request)
    assert world_state(platform.store) == before


@pytest.mark.parametrize("who", [SUPPORT, SYSTEM, Principal(name="q", role=Role.QA)])
def test_treasury_requests_need_admin(platform, who):
    before = world_state(platform.store)
    with pytest.raises(PermissionDeniedError):
        adjustment.request_adjustment(
            platform, who, user_id="alice", asset="USDT", amount="1", reason="r", idempotency_key="k"
        )
    with pytest.raises(PermissionDeniedError):
        treasury.request_fee_sweep(platform, who, asset="BTC", amount="1", reason="r", idempotency_key="k")
    with pytest.raises(PermissionDeniedError):
        treasury.request_liquidity_topup(platform, who, asset="BTC", amount="1", reason="r", idempotency_key="k")
    assert world_state(platform.store) == before


def test_liquidity_topup_and_withdrawal(platform):
    top = treasury.request_liquidity_topup(
        platform, ADMIN, asset="ETH", amount="10", reason="float", idempotency_key="t"
    )
    with pytest.raises(SelfApprovalError):
        approvals.approve(platform, ADMIN, top["_id"])
    approvals.approve(platform, ADMIN_2, top["_id"])
    assert _minor(platform, acct.liquidity("ETH")) == 1_000_000_000
    out = treasury.request_liquidity_withdrawal(
        platform, ADMIN, asset="ETH", amount="4", reason="rebalance", idempotency_key="o"
    )
    approvals.approve(platform, ADMIN_2, out["_id"])
    assert _minor(platform, acct.liquidity("ETH")) == 600_000_000
    assert _minor(platform, acct.fees("ETH")) == 0


def test_fee_sweep_moves_only_revenue(platform, clock):
    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "1")
    withdrawal.request_withdrawal(
        platform, SYSTEM, user_id="alice", asset="BTC", amount="0.5", destination="x", idempotency_key="w"
    )
    assert _minor(platform, acct.fees("BTC")) == 500_000
    too_much = treasury.request_fee_sweep(platform, ADMIN, asset="BTC", amount="0.01", reason="r", idempotency_key="s0")
    before = {a: _minor(platform, a) for a in (acct.fees("BTC"), acct.external("BTC", "treasury"))}
    assert approvals.approve(platform, ADMIN_2, too_much["_id"])["result"]["ok"] is False
    assert {a: _minor(platform, a) for a in before} == before
    sweep = treasury.request_fee_sweep(
        platform, ADMIN, asset="BTC", amount="0.005", reason="r", idempotency_key="s1", destination="cold wallet"
    )
    done = approvals.approve(platform, ADMIN_2, sweep["_id"])
    assert platform.ledger.entry(done["result"]["entry_id"]).type == "treasury.fee_sweep"
    assert _minor(platform, acct.fees("BTC")) == 0
    assert _minor(platform, acct.external("BTC", "treasury")) == 500_000


def test_treasury_execution_happens_once_across_resumes(platform):
    top = treasury.request_liquidity_topup(
        platform, ADMIN, asset="GBP", amount="100", reason="float", idempotency_key="t"
    )
    approvals.approve(platform, ADMIN_2, top["_id"])
    before = world_state(platform.store)
    approvals.resume_approved(platform, SYSTEM)
    assert world_state(platform.store) == before
