"""Declared reserves are exact, validated, admin-only and audited; the solvency view puts
them beside live liabilities, the platform's own holdings and the latest snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from core import liabilities
from core.base.errors import (
    ExcessPrecisionError,
    FloatAmountError,
    IdempotencyConflictError,
    InvalidReserveError,
    LedgerError,
    PermissionDeniedError,
    UnknownAssetError,
)
from core.ledger import accounts as acct
from core.ledger import amount, make_request
from tests.helpers import fund_holders
from tests.principals import ADMIN, SUPPORT
def declare(platform, **overrides):
    arguments = {"asset": "BTC", "value": "3.5", "wallet_address": "bc1qcoldwallet0001", "as_of": platform.clock.now() - timedelta(hours=1),
                 "evidence": "signed message, block 870000"}
    arguments.update(overrides)
    return liabilities.declare_reserve(platform, ADMIN, **arguments)


def test_reserve_is_stored_exactly_and_audited(platform):
    declared = declare(platform, value=Decimal("1.23456789"), declaration_id="r1")
    assert declared["amount_minor"] == 123_456_789 and declared["declared_by"] == ADMIN.name
    event = platform.ledger.audit.by_key("liabilities:reserve:r1")
    assert event["type"] == "liabilities.reserve_declared" and event["after"]["amount_minor"] == 123_456_789
    assert event["target"] == "bc1qcoldwallet0001"
    again = declare(platform, value=Decimal("1.23456789"), declaration_id="r1")  # a retry returns the first declaration
    assert again == declared
    assert platform.store.collection("liabilities_reserves").count_documents({}) == 1
    assert platform.store.collection("audit").count_documents({"type": "liabilities.reserve_declared"}) == 1


@pytest.mark.parametrize("change", [{"value": "9"}, {"asset": "ETH"}, {"wallet_address": "bc1qotherwallet99"},
                                    {"evidence": "another statement"}, {"as_of": None}])
def test_reserve_id_reused_for_a_different_declaration_is_a_conflict_and_audited(platform, change):
    """Issue 22 item 20: the same id with another value returned the first declaration silently."""
    first = declare(platform, declaration_id="r1")
    if "as_of" in change:
        change = {"as_of": platform.clock.now() - timedelta(hours=2)}
    with pytest.raises(IdempotencyConflictError) as refusal:
        declare(platform, declaration_id="r1", **change)
    assert refusal.value.details["key"] == "r1" and refusal.value.details["fields"]
    assert platform.store.collection("liabilities_reserves").find({}) == [first]  # nothing else written
    (refused,) = platform.store.collection("audit").find({"type": "liabilities.reserve_refused"})
    assert refused["actor"] == ADMIN.name and refused["data"] == {"declaration_id": "r1", "reason": "idempotency_conflict"}
    assert refused["before"]["amount_minor"] == first["amount_minor"] and refused["after"] != refused["before"]
    assert platform.ledger.audit.verify().ok


def test_reserve_two_admins_racing_on_one_id_leave_one_declaration(platform):
    raced = []

    def the_other_admin_declares_first(phase, collection, operation):
        if phase == "before" and collection == "liabilities_reserves" and operation == "insert_one" and not raced:
            raced.append(True)
            platform.store.fault_hook = None
            declare(platform, declaration_id="r1", value="2")

    platform.store.fault_hook = the_other_admin_declares_first
    with pytest.raises(IdempotencyConflictError):
        declare(platform, declaration_id="r1", value="3")
    platform.store.fault_hook = None
    assert raced and [d["amount_minor"] for d in platform.store.collection("liabilities_reserves").find({})] == [200_000_000]


@pytest.mark.parametrize("value, error", [
    (1.5, FloatAmountError), ("0.000000001", ExcessPrecisionError), ("-1", InvalidReserveError), ("abc", Exception),
])
def test_reserve_refuses_inexact_or_negative_amounts(platform, value, error):
    with pytest.raises(error):
        declare(platform, value=value)
    assert platform.store.collection("liabilities_reserves").count_documents({}) == 0


@pytest.mark.parametrize("overrides", [
    {"wallet_address": "ab"}, {"wallet_address": "x" * 129}, {"wallet_address": "bc1q/../x"}, {"evidence": "e" * 501},
])
def test_reserve_refuses_malformed_evidence(platform, overrides):
    with pytest.raises(InvalidReserveError):
        declare(platform, **overrides)
    assert platform.store.collection("liabilities_reserves").count_documents({}) == 0


@pytest.mark.parametrize("overrides", [{"wallet_address": {"$ne": ""}}, {"wallet_address": "a b c d"}, {"as_of": "yesterday"},
                                       {"declaration_id": "a b"},
                                       {"evidence": None}])
def test_reserve_refuses_values_of_the_wrong_type_with_a_named_error(platform, overrides):
    with pytest.raises(LedgerError):  # the validation boundary or the function itself, whichever sees it first
        declare(platform, **overrides)
    assert platform.store.collection("liabilities_reserves").count_documents({}) == 0


def test_reserve_refuses_a_time_in_the_future_an_unknown_asset_and_non_admins(platform):
    with pytest.raises(InvalidReserveError):
        declare(platform, as_of=platform.clock.now() + timedelta(minutes=5))
    with pytest.raises(UnknownAssetError):
        declare(platform, asset="DOGE")
    with pytest.raises(PermissionDeniedError):
        liabilities.declare_reserve(platform, SUPPORT, asset="BTC", value="1", wallet_address="bc1qwallet", as_of=datetime(2026, 1, 1))
    with pytest.raises(PermissionDeniedError):
        liabilities.solvency(platform, SUPPORT)


def test_solvency_puts_reserves_beside_liabilities_and_holdings(platform, clock):
    fund_holders(platform)
    platform.ledger.post(make_request(idempotency_key="float", type="treasury.liquidity_topup", actor="system", postings=(
        {"account": acct.external("BTC"), "amount": -amount("2", "BTC")}, {"account": acct.liquidity("BTC"), "amount": amount("2", "BTC")})))
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    declare(platform, value="1", as_of=clock.now() - timedelta(days=2))
    declare(platform, value="3.5")  # the same wallet seen later: only the newest counts
    declare(platform, value="1.5", wallet_address="bc1qhotwallet0002")
    rows = {row.asset: row for row in liabilities.solvency(platform, ADMIN, snapshot)}
    btc = rows["BTC"]
    assert btc.user_liabilities == 350_000_000 and btc.snapshot_total == 350_000_000
    assert btc.liquidity_free == 200_000_000 and btc.declared_reserves == 500_000_000 and btc.wallets == 2
    assert btc.custody_total == 550_000_000 and btc.surplus == -50_000_000
    assert btc.ratio == Decimal("1.4285")  # 5 / 3.5, rounded down: never overstated
    assert rows["USDT"].declared_reserves == 0 and rows["USDT"].ratio == Decimal("0")
    assert rows["ETH"].snapshot_total == 325_000_000


def test_solvency_with_no_liabilities_has_no_ratio(platform):
    declare(platform, value="1")
    (row,) = liabilities.solvency(platform, ADMIN)
    assert row.user_liabilities == 0 and row.ratio is None and row.snapshot_total is None and row.surplus == 100_000_000
