"""The approval request model (core.approvals.model): every stored layout converts to the
model and back unchanged, requests made by the real decisions do too, a malformed
document is refused by name, and executors still receive the document."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import approvals
from core.approvals import requests as approval_requests
from core.approvals.model import ApprovalRequest, Vote
from core.base.errors import LedgerError, MalformedDocumentError
from core.base.permissions import SYSTEM, Principal, Role
from core.demo import load_snapshot
from core.flows import treasury, withdrawal
from core.flowtests.sandbox import Sandbox
from core.ledger import Store
from core.platform import Platform

MAKER = Principal(name="maker", role=Role.ADMIN)
CHECKER = Principal(name="checker", role=Role.ADMIN)
CHECKER_2 = Principal(name="checker2", role=Role.ADMIN)
SNAPSHOT = Path(__file__).resolve().parents[3] / "demo" / "snapshot.json.gz"
OPENING_LAYOUT = [  # the store format of a new request, in the order it is written
    "_id", "idempotency_key", "request_hash", "kind", "state", "requested_by", "requested_role", "requested_at",
    "expires_at", "payload", "asset", "amount_minor", "approvals_required", "approvals", "reason", "rejected_by",
    "rejected_at", "rejection_reason", "approved_at", "result", "close_done",
]


def _stored(platform: Platform) -> list[dict]:
    return platform.store.collection(approvals.COLLECTION).find({}, limit=1_000)


def _topup(platform: Platform, key: str, amount: str = "5") -> dict:
    return treasury.request_liquidity_topup(platform, MAKER, asset="USDT", amount=amount, reason="float is low",
                                            idempotency_key=key)


def test_model_round_trips_every_request_of_the_demo_snapshot():
    store = Store.embedded_store("approval-model")
    load_snapshot(store, SNAPSHOT)
    documents = store.collection(approvals.COLLECTION).find({}, limit=1_000)
    states = {document["state"] for document in documents}
    assert len(documents) == 50 and {"pending", "approved", "rejected"} <= states
    for document in documents:
        assert ApprovalRequest.from_document(document).to_document() == document


def test_model_round_trips_requests_in_every_state_the_decisions_make(platform, clock):
    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "10")
    pending = _topup(platform, "pending")
    executed = approvals.approve(platform, CHECKER, _topup(platform, "approved")["_id"], "matches the ticket")
    rejected = approvals.reject(platform, CHECKER, _topup(platform, "rejected")["_id"], "no ticket")
    held = withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount="6",
                                         destination="cold", idempotency_key="big")  # above the second threshold
    half = approvals.approve(platform, CHECKER, held["approval_id"], "first look")
    assert half == approvals.get_approval(platform, CHECKER, half["_id"])  # what a vote returns is what is stored
    expiring = _topup(platform, "expiring")
    clock.advance(platform.config.approval_ttl + timedelta(seconds=1))
    report = approvals.expire_due(platform, CHECKER)
    assert expiring["_id"] in report.done and report.ok
    assert executed["result"]["ok"] is True and rejected["state"] == "rejected"
    assert half["state"] == "pending" and len(half["approvals"]) == 1
    stored = {document["_id"]: document for document in _stored(platform)}
    assert {document["state"] for document in stored.values()} >= {"approved", "rejected", "expired"}
    for document in stored.values():
        assert ApprovalRequest.from_document(document).to_document() == document
    assert list(pending)[:len(OPENING_LAYOUT)] == OPENING_LAYOUT  # the opening layout, in its order
    assert {"executed_at", "executed_by"} <= set(stored[executed["_id"]]) and "expired_at" in stored[expiring["_id"]]
    assert "executed_at" not in stored[pending["_id"]]  # absent fields stay absent
    for returned in (executed, rejected):  # what the decisions return is the stored document
        assert returned == stored[returned["_id"]]


def test_model_is_frozen_and_holds_votes_as_a_tuple(platform):
    request = _topup(platform, "frozen")
    done = ApprovalRequest.from_document(approvals.approve(platform, CHECKER, request["_id"], "ok"))
    assert isinstance(done.approvals, tuple) and isinstance(done.approvals[0], Vote) and done.voted("checker")
    with pytest.raises(ValidationError):
        done.state = "pending"  # type: ignore[misc]
    document = done.to_document()
    assert isinstance(document["approvals"], list) and document["approvals"][0]["by"] == "checker"
    assert not done.unfinished and not done.closed_without_hook


def _broken(request: dict) -> list[tuple[str, dict | object]]:
    vote = {"by": "checker", "role": "admin", "at": request["requested_at"], "reason": "ok"}
    without_kind = {name: value for name, value in request.items() if name != "kind"}
    return [
        ("amount_minor", {**request, "amount_minor": True}),  # a bool is not an amount
        ("amount_minor", {**request, "amount_minor": 1.5}),
        ("requested_at", {**request, "requested_at": "2026-01-01T00:00:00"}),  # text is not a time
        ("state", {**request, "state": "done"}),
        ("approvals_required", {**request, "approvals_required": 3}),
        ("kind", without_kind),
        ("surprise", {**request, "surprise": 1}),  # a key nobody writes
        ("_id", {**request, "_id": {"$gt": ""}}),
        ("approvals.0.at", {**request, "approvals": [{**vote, "at": None}]}),
        ("approvals.0.extra", {**request, "approvals": [{**vote, "extra": 1}]}),
        ("payload", {**request, "payload": ["not", "a", "dict"]}),
        ("close_done", {**request, "close_done": 0}),
        ("audit_outbox.0.event_key", {**request, "audit_outbox": [{"type": "x"}]}),
        ("", "not a document"),
    ]


def test_model_refuses_malformed_documents_by_name(platform):
    request = ApprovalRequest.from_document(_topup(platform, "model")).to_document()
    for field, document in _broken(request):
        with pytest.raises(MalformedDocumentError) as refusal:
            ApprovalRequest.from_document(document)
        assert field in refusal.value.details["fields"], (field, refusal.value.details)
        assert "approval request" in refusal.value.message and refusal.value.code == "malformed_document"


def test_a_malformed_stored_request_is_refused_by_name_and_the_sweep_goes_on(platform, clock):
    bad, good = _topup(platform, "bad"), _topup(platform, "good")
    collection = platform.store.collection(approvals.COLLECTION)
    collection.update_one({"_id": bad["_id"]}, {"$set": {"approvals_required": "1"}})
    for call in (lambda: approvals.get_approval(platform, CHECKER, bad["_id"]),
                 lambda: approvals.approve(platform, CHECKER, bad["_id"], "ok"),
                 lambda: approvals.reject(platform, CHECKER, bad["_id"], "no")):
        with pytest.raises(MalformedDocumentError):
            call()
    assert collection.find_one({"_id": bad["_id"]})["state"] == "pending"  # nothing was decided
    clock.advance(platform.config.approval_ttl + timedelta(seconds=1))
    report = approvals.expire_due(platform, CHECKER)
    assert report.done == [good["_id"]] and report.failed[bad["_id"]]["error"] == "malformed_document"


def test_executors_and_close_hooks_receive_the_typed_request(platform, monkeypatch):
    monkeypatch.setattr(approval_requests, "_EXECUTORS", dict(approval_requests._EXECUTORS))  # undone after the test
    received: list[tuple[str, object]] = []

    def execute(platform_: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
        received.append(("execute", approval))
        return {"seen": approval.payload["note"]}

    def close(platform_: Platform, approval: ApprovalRequest, principal: Principal) -> None:
        received.append(("close", approval))

    approvals.register_executor("test.probe", execute, on_close=close)
    opened = [approvals.request_approval(platform, MAKER, kind="test.probe", payload={"note": note}, asset=None,
                                         amount_minor=None, idempotency_key=f"probe-{note}", reason="probe")
              for note in ("yes", "no")]
    done = approvals.approve(platform, CHECKER, opened[0]["_id"], "ok")
    approvals.reject(platform, CHECKER_2, opened[1]["_id"], "no")
    assert done["result"] == {"ok": True, "seen": "yes"}
    assert [(action, type(approval), approval.id) for action, approval in received] == [
        ("execute", ApprovalRequest, opened[0]["_id"]), ("close", ApprovalRequest, opened[1]["_id"])]
    assert received[1][1].state == "rejected" and received[1][1].rejected_by == "checker2"
    assert received[0][1].approvals[0].by == "checker"  # votes are typed too
    with pytest.raises(LedgerError):
        approvals.get_approval(platform, CHECKER, {"$gt": ""})
