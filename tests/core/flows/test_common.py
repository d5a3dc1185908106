"""Shared flow helpers: rounding rules, deterministic ids, guarded transitions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.base.errors import (
    FlowDecisionConflictError,
    FlowNotFoundError,
    IdempotencyConflictError,
    InvalidArgumentError,
    MalformedDocumentError,
)
from core.flows.common import (
    convert_down,
    decide,
    decision,
    fee_minor,
    flow_id,
    insert_or_existing,
    load,
    step,
)
from core.base.permissions import SYSTEM, Principal, Role
from core.flows.documents import P2PTrade, Withdrawal


def test_fee_minor_rounds_up():
    assert fee_minor(100, Decimal("0.015")) == 2  # 1.5 → 2
    assert fee_minor(200, Decimal("0.015")) == 3
    assert fee_minor(1, Decimal("0.01")) == 1
    assert fee_minor(0, Decimal("0.01")) == 0
    assert fee_minor(10**18, Decimal("0.01")) == 10**16


def test_convert_down_rounds_down_across_scales():
    assert convert_down(99_000, Decimal(1) / Decimal("49440"), 2, 8) == 2_002_427
    assert convert_down(10_000_000, Decimal("46800"), 8, 2) == 468_000
    assert convert_down(3, Decimal("0.5"), 0, 0) == 1


@given(
    amount=st.integers(min_value=0, max_value=2**62), rate=st.decimals(min_value=0, max_value=Decimal("0.5"), places=4)
)
def test_fee_minor_is_the_ceiling_property(amount, rate):
    fee = fee_minor(amount, rate)
    assert Decimal(fee) >= Decimal(amount) * rate > Decimal(fee) - 1 or fee == 0


@given(
    amount=st.integers(min_value=0, max_value=2**62),
    price=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**6), places=8),
)
def test_convert_down_is_the_floor_property(amount, price):
    out = convert_down(amount, price, 8, 8)
    assert Decimal(out) <= Decimal(amount) * price < Decimal(out) + 1


def test_flow_id_is_deterministic_and_distinct():
    assert flow_id("wd", "k1") == flow_id("wd", "k1")
    assert flow_id("wd", "k1") != flow_id("wd", "k2") != flow_id("q", "k1")
    assert flow_id("q", "a", "bc") != flow_id("q", "ab", "c")


@pytest.mark.parametrize("bad", ["", "a b", "x" * 201, None, 5, {"$ne": 1}, "tab\there", "k\n"])
def test_flow_boundary_refuses_bad_keys(bad):
    """A flow's idempotency key follows the one key rule (core.ledger.arguments), checked by its @boundary."""
    from core.flows.withdrawal import request_withdrawal
    from core.platform.boundary import precheck

    with pytest.raises(InvalidArgumentError):
        precheck(request_withdrawal, idempotency_key=bad)


WITHDRAWAL = dict(
    id="wd_1", idempotency_key="k", created_at=datetime(2026, 1, 5, 9, 0), referral_done=False, user="u", asset="BTC",
    amount_minor=5, fee_minor=0, net_minor=5, destination="d", approvals_needed=0, state="requested",
    requested_by="ops", approval_id=None, hold_entry_id=None, settle_entry_id=None, release_entry_id=None,
)
TRADE = dict(
    id="t1", idempotency_key="k", created_at=datetime(2026, 1, 5, 9, 0), referral_done=False, seller="sam",
    buyer="bea", asset="BTC", amount_minor=5, fee_minor=0, fiat_amount="", state="disputed",
    payment_due_at=datetime(2026, 1, 5, 9, 30), closing_to=None, decision=None, decisions=(), dispute=None,
    escrow_entry_id="e1", close_entry_id=None,
)


def test_insert_or_existing_and_step(platform):
    collection = platform.store.collection("withdrawals")
    document = Withdrawal(**WITHDRAWAL)
    assert insert_or_existing(collection, document, ("user", "amount_minor")) == (document, True)
    again, created = insert_or_existing(collection, document, ("user", "amount_minor"))
    assert not created and isinstance(again, Withdrawal) and again.id == "wd_1"
    with pytest.raises(IdempotencyConflictError) as info:
        insert_or_existing(collection, Withdrawal(**{**WITHDRAWAL, "amount_minor": 6}), ("user", "amount_minor"))
    assert info.value.details["fields"] == ["amount_minor"]
    held = step(platform, SYSTEM, collection, document, "held", allowed_from=("requested",), what="withdrawal")
    assert isinstance(held, Withdrawal) and held.state == "held" and held.audit_outbox == ()
    event = platform.ledger.audit.by_key("withdrawal:wd_1:held")
    assert event["actor"] == SYSTEM.name and event["before"] == {"state": "requested"}
    # a helper repeating the step changes nothing and writes no second event
    again = step(platform, SYSTEM, collection, document, "held", allowed_from=("requested",), what="withdrawal")
    assert again.state == "held" and platform.store.raw("audit").count_documents({}) == 1
    # a step from a state the document is not in returns the real state, never claims the step
    assert step(platform, SYSTEM, collection, document, "settled", allowed_from=("approved",),
                what="withdrawal").state == "held"
    assert platform.ledger.audit.by_key("withdrawal:wd_1:settled") is None


def test_a_step_refuses_a_document_the_store_changed_into_something_malformed(platform):
    """The store is read through the model: a document a bug or a hand edit broke is refused
    by name, never carried on as a dict of the wrong shape."""
    collection = platform.store.collection("withdrawals")
    insert_or_existing(collection, Withdrawal(**WITHDRAWAL), ("user",))
    collection.update_one({"_id": "wd_1"}, {"$set": {"amount_minor": "5"}})
    with pytest.raises(MalformedDocumentError) as info:
        load(collection, "wd_1", "withdrawal")
    assert info.value.details["fields"] == ["amount_minor"]


def test_decide_loser_gets_the_winners_decision(platform):
    collection = platform.store.collection("p2p_trades")
    trade = insert_or_existing(collection, P2PTrade(**TRADE), ("seller",))[0]
    ann, bob = Principal(name="ann", role=Role.ADMIN), Principal(name="bob", role=Role.ADMIN)
    to_buyer = decision(ann, "resolved", "resolved_buyer")
    won = decide(platform, collection, trade, "closing", to_buyer, allowed_from=("disputed",), what="p2p")
    assert won.decision.by == "ann" and won.state == "closing" and won.decisions == (to_buyer,)
    with pytest.raises(FlowDecisionConflictError) as info:
        decide(platform, collection, trade, "closing", decision(bob, "resolved", "resolved_seller"),
               allowed_from=("disputed",), what="p2p")
    assert info.value.details["winner"] == {"name": "resolved", "to": "resolved_buyer", "by": "ann", "party": None}
    # the same decision by a different caller is a loser too; by the same caller, a replay
    with pytest.raises(FlowDecisionConflictError):
        decide(platform, collection, trade, "closing", decision(bob, "resolved", "resolved_buyer"),
               allowed_from=("disputed",), what="p2p")
    assert decide(platform, collection, trade, "closing", to_buyer, allowed_from=("disputed",),
                  what="p2p").decision.by == "ann"
    events = list(platform.store.raw("audit").find({"event_key": "p2p:t1:resolved"}))
    assert len(events) == 1 and events[0]["actor"] == "ann" and events[0]["data"]["to"] == "resolved_buyer"
    stored = collection.find_one({"_id": "t1"})
    assert stored["decision"] == stored["decisions"][0] == to_buyer.model_dump()  # the store format is unchanged


def test_load_refuses_operator_ids(store):
    collection = store.collection("withdrawals")
    with pytest.raises(FlowNotFoundError):
        load(collection, {"$ne": None}, "withdrawal")
