"""Adjustments, fee sweeps and liquidity moves: approval-gated, executed once."""

from __future__ import annotations

import pytest

from core.ledger import accounts as acct
from core import approvals
from core.base.errors import (
    FloatAmountError,
    NonPositiveAmountError,
    PermissionDeniedError,
    ReasonRequiredError,
    SelfApprovalError,
)
from core.flows import adjustment, treasury, withdrawal
from core.flowtests.sandbox import Sandbox
from core.base.permissions import SYSTEM, Principal, Role
from tests.helpers import world_state
from tests.principals import ADMIN, ADMIN_2, SUPPORT


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
    # each fits the wallet when requested; the second can no longer be paid once the first is
    first = treasury.request_fee_sweep(platform, ADMIN, asset="BTC", amount="0.004", reason="r", idempotency_key="s0a")
    late = treasury.request_fee_sweep(platform, ADMIN, asset="BTC", amount="0.004", reason="r", idempotency_key="s0b")
    assert approvals.approve(platform, ADMIN_2, first["_id"])["result"]["ok"] is True
    before = {a: _minor(platform, a) for a in (acct.fees("BTC"), acct.external("BTC", "treasury"))}
    assert approvals.approve(platform, ADMIN_2, late["_id"])["result"]["ok"] is False
    assert {a: _minor(platform, a) for a in before} == before
    sweep = treasury.request_fee_sweep(
        platform, ADMIN, asset="BTC", amount="0.001", reason="r", idempotency_key="s1", destination="cold wallet"
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


def test_fee_sweep_beyond_the_fee_wallet_is_refused_when_requested(platform, clock):
    """Issue 22 item 13: a 5 BTC sweep against a 0.012 BTC fee wallet was warned about, then
    queued; the approver saw nothing. Refused in core at request time, by name, nothing written."""
    from core.base.errors import InsufficientFundsError, SweepExceedsFeeWalletError

    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "1.2")
    for key in ("w1", "w2", "w3"):  # each below the approval threshold: settled at once, 1% fee
        withdrawal.request_withdrawal(
            platform, SYSTEM, user_id="alice", asset="BTC", amount="0.4", destination="x", idempotency_key=key
        )
    assert _minor(platform, acct.fees("BTC")) == 1_200_000  # 0.012 BTC
    before = world_state(platform.store)
    for too_much in ("5", "0.01200001"):
        with pytest.raises(SweepExceedsFeeWalletError) as refusal:
            treasury.request_fee_sweep(platform, ADMIN, asset="BTC", amount=too_much, reason="r", idempotency_key="big")
        assert isinstance(refusal.value, InsufficientFundsError)
        assert refusal.value.details == {"asset": "BTC", "requested_minor": amount_minor(too_much), "held_minor": 1_200_000}
        assert "0.01200000 BTC" in refusal.value.message and "nothing was requested" in refusal.value.message
    with pytest.raises(SweepExceedsFeeWalletError):  # an empty wallet of another asset
        treasury.request_fee_sweep(platform, ADMIN, asset="ETH", amount="0.00000001", reason="r", idempotency_key="e")
    assert world_state(platform.store) == before
    exact = treasury.request_fee_sweep(platform, ADMIN, asset="BTC", amount="0.012", reason="r", idempotency_key="all")
    assert exact["state"] == "pending"


def test_fee_sweep_replay_returns_the_original_after_the_wallet_was_emptied(platform, clock):
    """The check guards a first request only: replaying an executed sweep is not refused."""
    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "1")
    withdrawal.request_withdrawal(
        platform, SYSTEM, user_id="alice", asset="BTC", amount="0.5", destination="x", idempotency_key="w"
    )
    request = dict(asset="BTC", amount="0.005", reason="r", idempotency_key="sweep-all")
    sweep = treasury.request_fee_sweep(platform, ADMIN, **request)
    assert approvals.approve(platform, ADMIN_2, sweep["_id"])["result"]["ok"]
    assert _minor(platform, acct.fees("BTC")) == 0
    assert treasury.request_fee_sweep(platform, ADMIN, **request)["_id"] == sweep["_id"]


def amount_minor(text: str) -> int:
    from core.ledger import amount

    return amount(text, "BTC").minor
