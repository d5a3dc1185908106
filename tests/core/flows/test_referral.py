"""Referral commission: tier share of a fee, fees → referrer, exactly once per source fee."""

from __future__ import annotations

import pytest

from core.ledger import accounts as acct
from core.base.errors import AmountTooSmallError, EntryNotFoundError, NoReferrerError, PermissionDeniedError
from core.flows import referral, withdrawal
from core.flowtests.sandbox import Sandbox
from core.base.permissions import SYSTEM, Principal, Role
from tests.helpers import world_state


@pytest.fixture
def sandbox(platform, clock):
    platform.store.collection("user_accounts").insert_many(
        [
            {"user_id": "alice", "referred_by": "gus", "referral_tier": "golden"},
            {"user_id": "bob", "referred_by": "ray"},
            {"user_id": "carl", "referred_by": "None"},
            {"user_id": "dan", "referred_by": "dan"},
            {"user_id": "eve", "referred_by": {"$ne": None}},
        ]
    )
    box = Sandbox(platform=platform, clock=clock)
    for user in ("alice", "bob", "carl", "dan", "eve", "zed"):
        box.fund(user, "BTC", "1")
    return box


def _withdraw(platform, user, amount="0.2"):
    document = withdrawal.request_withdrawal(
        platform,
        SYSTEM,
        user_id=user,
        asset="BTC",
        amount=amount,
        destination="bc1q",
        idempotency_key=f"w-{user}-{amount}",
    )
    return platform.ledger.entry(document["settle_entry_id"])


def _minor(platform, account):
    return platform.ledger.balance(account).minor


def test_referral_golden_gets_half_of_fee(sandbox):
    platform = sandbox.platform
    _withdraw(platform, "alice")  # fee 200 000 sat
    assert _minor(platform, acct.user_available("gus", "BTC")) == 100_000
    assert _minor(platform, acct.fees("BTC")) == 100_000


def test_referral_standard_default_tier_gets_fifth(sandbox):
    platform = sandbox.platform
    _withdraw(platform, "bob")
    assert _minor(platform, acct.user_available("ray", "BTC")) == 40_000
    assert _minor(platform, acct.fees("BTC")) == 160_000


@pytest.mark.parametrize("user", ["carl", "dan", "eve", "zed"])
def test_referral_missing_or_bad_referrer_pays_nothing(sandbox, user):
    platform = sandbox.platform
    source = _withdraw(platform, user)
    assert _minor(platform, acct.fees("BTC")) == 200_000
    before = world_state(platform.store)
    with pytest.raises(NoReferrerError):
        referral.pay_referral_commission(platform, SYSTEM, source.id)
    assert world_state(platform.store) == before


def test_referral_paid_exactly_once(sandbox):
    platform = sandbox.platform
    source = _withdraw(platform, "alice")
    first = platform.ledger.entry_by_key(f"referral:{source.id}")
    before = world_state(platform.store)
    for _ in range(3):
        assert referral.pay_referral_commission(platform, SYSTEM, source.id).id == first.id
        referral.credit_referral(platform, SYSTEM, source)
    assert world_state(platform.store) == before
    assert first.metadata["source_entry_id"] == source.id and first.type == "referral.commission"


def test_referral_source_without_fee_refused(sandbox):
    platform = sandbox.platform
    deposit_entry = platform.ledger.entries().items[0]
    with pytest.raises(NoReferrerError):
        referral.pay_referral_commission(platform, SYSTEM, deposit_entry.id)
    with pytest.raises(EntryNotFoundError):
        referral.pay_referral_commission(platform, SYSTEM, "E-nope")


def test_referral_tiny_fee_rounds_down_to_nothing(sandbox):
    platform = sandbox.platform
    source = _withdraw(platform, "bob", amount="0.00000002")  # fee ⌈0.02⌉ = 1 sat; 20% of 1 rounds to 0
    assert source.metadata["fee_minor"] == 1
    with pytest.raises(AmountTooSmallError):
        referral.pay_referral_commission(platform, SYSTEM, source.id)
    assert _minor(platform, acct.fees("BTC")) == 1


def test_referral_needs_move_money(sandbox):
    source = _withdraw(sandbox.platform, "zed")
    with pytest.raises(PermissionDeniedError):
        referral.pay_referral_commission(sandbox.platform, Principal(name="q", role=Role.QA), source.id)


def test_referral_share_rounds_down():
    from decimal import Decimal

    assert referral.referral_share(999, Decimal("0.2")) == 199
    assert referral.referral_share(1, Decimal("0.5")) == 0


def test_referral_interrupted_by_crash_is_paid_by_recovery(sandbox):
    from datetime import timedelta

    from core.flows import recovery

    platform = sandbox.platform
    inserts = {"n": 0}

    def crash(phase, collection, operation):
        if phase == "before" and collection == "entries" and operation == "insert_one":
            inserts["n"] += 1
            if inserts["n"] == 3:  # hold, settlement, then the commission: die before it
                raise RuntimeError("crash")

    platform.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        withdrawal.request_withdrawal(
            platform, SYSTEM, user_id="alice", asset="BTC", amount="0.2", destination="x", idempotency_key="w-crash"
        )
    platform.store.fault_hook = None
    document = platform.store.raw("withdrawals").find_one({})
    assert document["state"] == "settled" and document["referral_done"] is False
    assert _minor(platform, acct.user_available("gus", "BTC")) == 0
    report = recovery.resume_all(platform, SYSTEM, stale_after=timedelta(0))
    assert report.flows_resumed["withdrawals"] == 1
    assert _minor(platform, acct.user_available("gus", "BTC")) == 100_000
    assert platform.store.raw("withdrawals").find_one({})["referral_done"] is True
    assert recovery.resume_all(platform, SYSTEM).flows_resumed["withdrawals"] == 0
