"""Typed flow documents (core.flows.documents): the withdrawals, quotes and P2P trades the
real flows write — and every one in the demo snapshot — convert to their model and back
unchanged; malformed documents are refused by name."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import approvals
from core.base.errors import MalformedDocumentError
from core.base.permissions import SYSTEM, Principal, Role
from core.demo import load_snapshot
from core.flows import instant, p2p, quotes, states, swap, withdrawal
from core.flows.documents import MODELS, FlowDecision, P2PTrade, Quote, Withdrawal
from core.flowtests.sandbox import Sandbox
from core.ledger import Store
from core.platform import Platform

CHECKER = Principal(name="checker", role=Role.ADMIN)
ADMIN = Principal(name="ann", role=Role.ADMIN)
FUNDED = [("alice", "BTC", "10"), ("alice", "GBP", "1000"), ("sam", "BTC", "1")]  # users' balances
FLOATS = [("ETH", "40"), ("BTC", "1")]  # the liquidity the quotes reserve from
SNAPSHOT = Path(__file__).resolve().parents[3] / "demo" / "snapshot.json.gz"


def _all(platform: Platform, collection: str) -> list[dict]:
    return platform.store.collection(collection).find({}, limit=1_000)


def _round_trips(platform: Platform) -> dict[str, set[str]]:
    """Check every flow document round-trips; returns the states seen per collection."""
    seen: dict[str, set[str]] = {}
    for collection, model in MODELS.items():
        for document in _all(platform, collection):
            assert model.from_document(document).to_document() == document, document["_id"]
            seen.setdefault(collection, set()).add(document["state"])
    return seen


def test_documents_round_trip_every_flow_document_of_the_demo_snapshot():
    store = Store.embedded_store("flow-documents")
    load_snapshot(store, SNAPSHOT)
    for collection, model in MODELS.items():
        documents = store.collection(collection).find({}, limit=1_000)
        assert len(documents) > 100, collection
        for document in documents:
            assert model.from_document(document).to_document() == document


@pytest.fixture
def world(platform, clock):
    sandbox = Sandbox(platform=platform, clock=clock)
    for user, asset, amount in FUNDED:
        sandbox.fund(user, asset, amount)
    for asset, amount in FLOATS:
        sandbox.top_up(asset, amount)
    return platform


def test_withdrawals_made_by_the_real_flow_round_trip(world):
    small = withdrawal.request_withdrawal(world, SYSTEM, user_id="alice", asset="BTC", amount="0.1", destination="a",
                                          idempotency_key="w-small")
    big = withdrawal.request_withdrawal(world, SYSTEM, user_id="alice", asset="BTC", amount="1", destination="b",
                                        idempotency_key="w-big")
    refused = withdrawal.request_withdrawal(world, SYSTEM, user_id="alice", asset="BTC", amount="1", destination="c",
                                            idempotency_key="w-refused")
    approvals.approve(world, CHECKER, big["approval_id"], "checked")
    approvals.reject(world, CHECKER, refused["approval_id"], "sanctions list")
    assert _round_trips(world)[states.WITHDRAWALS] == {"settled", "rejected"}
    settled = Withdrawal.from_document(withdrawal.get_withdrawal(world, big["_id"]))
    assert settled.state == "settled" and settled.approved_by == ("checker",) and settled.settled_at is not None
    assert Withdrawal.from_document(withdrawal.get_withdrawal(world, refused["_id"])).rejection == "rejected"
    assert small["state"] == "settled" and "approved_by" not in small  # absent until a step sets it


def test_quotes_and_trades_made_by_the_real_flows_round_trip(world, clock):
    executed = swap.quote_swap(world, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1",
                               idempotency_key="q-done")
    swap.execute_swap(world, SYSTEM, quote_id=executed["_id"], user_id="alice")
    instant.quote_instant_buy(world, SYSTEM, user_id="alice", asset="BTC", pay_asset="GBP", spend="100",
                              idempotency_key="q-buy")
    released = p2p.open_trade(world, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.2",
                              fiat_amount="9000 GBP", idempotency_key="t-released")
    p2p.mark_paid(world, SYSTEM, trade_id=released["_id"], buyer="bea")
    p2p.release_trade(world, SYSTEM, trade_id=released["_id"], seller="sam")
    disputed = p2p.open_trade(world, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.2",
                              fiat_amount="9000 GBP", idempotency_key="t-disputed")
    p2p.mark_paid(world, SYSTEM, trade_id=disputed["_id"], buyer="bea")
    p2p.open_dispute(world, SYSTEM, trade_id=disputed["_id"], user_id="bea", reason="not received")
    p2p.resolve_dispute(world, ADMIN, trade_id=disputed["_id"], to="seller", reason="no payment")
    cancelled = p2p.open_trade(world, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.1",
                               fiat_amount="", idempotency_key="t-cancelled")
    p2p.cancel_trade(world, SYSTEM, trade_id=cancelled["_id"], user_id="bea")
    clock.advance(timedelta(hours=1))
    assert quotes.expire_due_quotes(world, SYSTEM).ok
    seen = _round_trips(world)
    assert seen[states.QUOTES] == {"executed", "expired"}
    assert seen[states.P2P_TRADES] == {"released", "resolved_seller", "cancelled"}
    trade = P2PTrade.from_document(p2p.get_trade(world, disputed["_id"]))
    assert trade.dispute is not None and trade.dispute.by == "bea" and trade.closing_to == "resolved_seller"
    assert [d.name for d in trade.decisions] == ["mark_paid", "dispute", "resolved"]
    assert all(isinstance(d, FlowDecision) for d in trade.decisions) and isinstance(trade.decisions, tuple)
    quote = Quote.from_document(quotes.get_quote(world, executed["_id"]))
    assert quote.state == "executed" and quote.pay_entry_id == quote.receive_entry_id and quote.executed_at
    with pytest.raises(ValidationError):
        quote.state = "open"  # type: ignore[misc]  # frozen


def _broken_withdrawals(document: dict) -> list[tuple[str, object]]:
    without_user = {name: value for name, value in document.items() if name != "user"}
    return [
        ("amount_minor", {**document, "amount_minor": True}),
        ("amount_minor", {**document, "amount_minor": 1.5}),
        ("amount_minor", {**document, "amount_minor": -1}),
        ("fee_minor", {**document, "fee_minor": "10"}),
        ("state", {**document, "state": "sent"}),
        ("approvals_needed", {**document, "approvals_needed": 3}),
        ("user", without_user),
        ("surprise", {**document, "surprise": {"$gt": ""}}),
        ("_id", {**document, "_id": {"$ne": None}}),
        ("created_at", {**document, "created_at": "2026-01-01"}),
        ("hold_placers", {**document, "hold_placers": "p1"}),
        ("referral_done", {**document, "referral_done": 1}),
        ("", ["not", "a", "document"]),
    ]


def test_models_refuse_malformed_documents_by_name(world):
    document = withdrawal.request_withdrawal(world, SYSTEM, user_id="alice", asset="BTC", amount="0.1",
                                             destination="a", idempotency_key="w-model")
    for field, broken in _broken_withdrawals(document):
        with pytest.raises(MalformedDocumentError) as refusal:
            Withdrawal.from_document(broken)
        assert field in refusal.value.details["fields"], (field, refusal.value.details)
        assert refusal.value.message.startswith("withdrawal ")
    quote = swap.quote_swap(world, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1",
                            idempotency_key="q-model")
    decision = {"name": "execute", "to": "executing", "by": "system", "role": "system", "party": None,
                "reason": None, "at": None}
    for field, broken in [("price", {**quote, "price": "3000\n"}), ("price", {**quote, "price": "1e3"}),
                          ("market_price", {**quote, "market_price": 3000}),
                          ("decisions.0.name", {**quote, "decisions": [{**decision, "name": None}]}),
                          ("decision.surprise", {**quote, "decision": {**decision, "surprise": 1}})]:
        with pytest.raises(MalformedDocumentError) as refusal:
            Quote.from_document(broken)
        assert field in refusal.value.details["fields"], (field, refusal.value.details)
    trade = p2p.open_trade(world, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.1", fiat_amount="",
                           idempotency_key="t-model")
    for field, broken in [("closing_to", {**trade, "closing_to": "paid"}), ("dispute", {**trade, "dispute": "yes"})]:
        with pytest.raises(MalformedDocumentError) as refusal:
            P2PTrade.from_document(broken)
        assert field in refusal.value.details["fields"], (field, refusal.value.details)


def test_get_withdrawal_refuses_a_malformed_stored_document_by_name(world):
    document = withdrawal.request_withdrawal(world, SYSTEM, user_id="alice", asset="BTC", amount="0.1",
                                             destination="a", idempotency_key="w-stored")
    world.store.collection(states.WITHDRAWALS).update_one({"_id": document["_id"]}, {"$set": {"net_minor": "1"}})
    with pytest.raises(MalformedDocumentError) as refusal:
        withdrawal.get_withdrawal(world, document["_id"])
    assert refusal.value.details["fields"] == ["net_minor"]
