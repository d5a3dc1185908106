"""P2P trades: escrow, mark paid, release minus fee, cancel/timeout, disputes."""

from __future__ import annotations

import pytest

from core.ledger import accounts as acct
from core.base.errors import (
    InvalidArgumentError,
    FlowNotFoundError,
    FlowStateError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidFlowInputError,
    NotFlowPartyError,
    PermissionDeniedError,
    ReasonRequiredError,
    TradeClosedError,
)
from core.flows import p2p
from core.flowtests.sandbox import Sandbox
from core.base.permissions import SYSTEM
from tests.helpers import world_state
from tests.principals import ADMIN


@pytest.fixture
def funded(platform, clock):
    Sandbox(platform=platform, clock=clock).fund("sam", "BTC", "1")
    return platform


def _open(platform, key="t1", amount="0.5", **changes):
    fields = dict(seller="sam", buyer="bea", asset="BTC", amount=amount, fiat_amount="24000 GBP", idempotency_key=key)
    fields.update(changes)
    return p2p.open_trade(platform, SYSTEM, **fields)


def _minor(platform, account):
    return platform.ledger.balance(account).minor


def test_p2p_release_happy_path(funded):
    trade = _open(funded)
    assert trade["state"] == "open" and _minor(funded, acct.escrow(trade["_id"], "BTC")) == 50_000_000
    assert p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="bea")["state"] == "paid"
    done = p2p.release_trade(funded, SYSTEM, trade_id=trade["_id"], seller="sam")
    assert done["state"] == "released"
    assert _minor(funded, acct.user_available("bea", "BTC")) == 49_500_000
    assert _minor(funded, acct.fees("BTC")) == 500_000
    assert _minor(funded, acct.escrow(trade["_id"], "BTC")) == 0
    assert funded.ledger.entry(done["close_entry_id"]).metadata["fee_minor"] == 500_000


def test_p2p_buyer_cancels_unpaid_trade(funded):
    trade = _open(funded)
    assert p2p.cancel_trade(funded, SYSTEM, trade_id=trade["_id"], user_id="bea")["state"] == "cancelled"
    assert _minor(funded, acct.user_available("sam", "BTC")) == 100_000_000
    before = world_state(funded.store)
    with pytest.raises(TradeClosedError):
        p2p.release_trade(funded, SYSTEM, trade_id=trade["_id"], seller="sam")
    with pytest.raises(TradeClosedError):
        p2p.open_dispute(funded, SYSTEM, trade_id=trade["_id"], user_id="bea", reason="x")
    with pytest.raises(TradeClosedError):
        p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="bea")
    assert world_state(funded.store) == before


def test_p2p_seller_cancels_only_after_timeout(funded, clock):
    trade = _open(funded)
    before = world_state(funded.store)
    with pytest.raises(FlowStateError):
        p2p.cancel_trade(funded, SYSTEM, trade_id=trade["_id"], user_id="sam")
    assert world_state(funded.store) == before
    clock.advance(funded.config.p2p_payment_timeout)
    with pytest.raises(FlowStateError):
        p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="bea")
    assert p2p.cancel_trade(funded, SYSTEM, trade_id=trade["_id"], user_id="sam")["state"] == "cancelled"


def test_p2p_timeout_sweep_cancels_unpaid_only(funded, clock):
    unpaid = _open(funded, key="a", amount="0.2")
    paid = _open(funded, key="b", amount="0.2")
    p2p.mark_paid(funded, SYSTEM, trade_id=paid["_id"], buyer="bea")
    clock.advance(funded.config.p2p_payment_timeout)
    assert p2p.cancel_timed_out(funded, SYSTEM).done == [unpaid["_id"]]
    assert p2p.get_trade(funded, paid["_id"])["state"] == "paid"


def test_p2p_paid_trade_cannot_be_cancelled(funded):
    trade = _open(funded)
    p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="bea")
    with pytest.raises(FlowStateError):
        p2p.cancel_trade(funded, SYSTEM, trade_id=trade["_id"], user_id="bea")


@pytest.mark.parametrize(
    "to, buyer_gets, seller_has, fee", [("buyer", 49_500_000, 50_000_000, 500_000), ("seller", 0, 100_000_000, 0)]
)
def test_p2p_dispute_resolved(funded, to, buyer_gets, seller_has, fee):
    trade = _open(funded)
    p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="bea")
    assert (
        p2p.open_dispute(funded, SYSTEM, trade_id=trade["_id"], user_id="bea", reason="no release")["state"]
        == "disputed"
    )
    before = world_state(funded.store)
    with pytest.raises(FlowStateError):
        p2p.release_trade(funded, SYSTEM, trade_id=trade["_id"], seller="sam")
    with pytest.raises(PermissionDeniedError):
        p2p.resolve_dispute(funded, SYSTEM, trade_id=trade["_id"], to=to, reason="x")
    with pytest.raises(ReasonRequiredError):
        p2p.resolve_dispute(funded, ADMIN, trade_id=trade["_id"], to=to, reason=" ")
    with pytest.raises(InvalidFlowInputError):
        p2p.resolve_dispute(funded, ADMIN, trade_id=trade["_id"], to="both", reason="x")
    assert world_state(funded.store) == before
    done = p2p.resolve_dispute(funded, ADMIN, trade_id=trade["_id"], to=to, reason="bank proof")
    assert done["state"] == f"resolved_{to}" and done["resolved_by"] == "ann"
    assert _minor(funded, acct.user_available("bea", "BTC")) == buyer_gets
    assert _minor(funded, acct.user_available("sam", "BTC")) == seller_has
    assert _minor(funded, acct.fees("BTC")) == fee
    assert _minor(funded, acct.escrow(trade["_id"], "BTC")) == 0
    event = funded.ledger.audit.by_key(f"p2p:{trade['_id']}:resolved")
    assert event["actor"] == "ann" and event["data"]["to"] == f"resolved_{to}" and event["type"] == "p2p.dispute_resolved"
    assert (
        p2p.resolve_dispute(funded, ADMIN, trade_id=trade["_id"], to=to, reason="bank proof")["state"] == done["state"]
    )
    with pytest.raises(TradeClosedError):
        p2p.resolve_dispute(funded, ADMIN, trade_id=trade["_id"], to="seller" if to == "buyer" else "buyer", reason="x")


def test_p2p_resolve_undisputed_refused(funded):
    trade = _open(funded)
    with pytest.raises(FlowStateError):
        p2p.resolve_dispute(funded, ADMIN, trade_id=trade["_id"], to="buyer", reason="x")


def test_p2p_parties_enforced(funded):
    trade = _open(funded)
    before = world_state(funded.store)
    with pytest.raises(NotFlowPartyError):
        p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="sam")
    with pytest.raises(NotFlowPartyError):
        p2p.release_trade(funded, SYSTEM, trade_id=trade["_id"], seller="bea")
    with pytest.raises(NotFlowPartyError):
        p2p.cancel_trade(funded, SYSTEM, trade_id=trade["_id"], user_id="eve")
    with pytest.raises(NotFlowPartyError):
        p2p.open_dispute(funded, SYSTEM, trade_id=trade["_id"], user_id="eve", reason="x")
    with pytest.raises(FlowNotFoundError):
        p2p.release_trade(funded, SYSTEM, trade_id={"$ne": None}, seller="sam")
    assert world_state(funded.store) == before


@pytest.mark.parametrize(
    "change, error",
    [
        ({"buyer": "sam"}, InvalidFlowInputError),
        ({"amount": "2"}, InsufficientFundsError),
        ({"amount": "0.00000001"}, Exception),
        ({"idempotency_key": ""}, InvalidArgumentError),
    ],
)
def test_p2p_open_refusals_change_nothing(funded, change, error):
    before = world_state(funded.store)
    with pytest.raises(error) as info:
        _open(funded, **change)
    assert info.type.__module__ == "core.base.errors"
    assert world_state(funded.store) == before


def test_p2p_replay_and_conflict(funded):
    trade = _open(funded)
    assert _open(funded)["_id"] == trade["_id"]
    assert funded.store.raw("entries").count_documents({}) == 2  # funding deposit + escrow
    with pytest.raises(IdempotencyConflictError):
        _open(funded, amount="0.4")


def test_p2p_release_crash_is_resumed(funded):
    trade = _open(funded)
    p2p.mark_paid(funded, SYSTEM, trade_id=trade["_id"], buyer="bea")
    fired = {"n": 0}

    def crash(phase, collection, operation):
        if phase == "after" and collection == "entries" and operation == "insert_one" and not fired["n"]:
            fired["n"] = 1
            raise RuntimeError("crash")

    funded.store.fault_hook = crash
    with pytest.raises(RuntimeError):
        p2p.release_trade(funded, SYSTEM, trade_id=trade["_id"], seller="sam")
    funded.store.fault_hook = None
    assert p2p.get_trade(funded, trade["_id"])["state"] == "closing"
    funded.ledger.recover(stale_after=__import__("datetime").timedelta(0))
    assert p2p.resume_trade(funded, SYSTEM, trade["_id"])["state"] == "released"
    assert _minor(funded, acct.user_available("bea", "BTC")) == 49_500_000
