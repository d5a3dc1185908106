"""Reads that recovery and every platform check run (issue 19, item 4) examine what they
return on a real planner — not every finished flow, every state, the pending backlog or
every request ever decided. Each test grows the history around a fixed amount of live
work and measures, with the planner model (core.ledger.planner), the index keys and
documents the read would examine. (Before the indexes and shapes of issue 19 each of
these examined the whole history.)"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core import approvals
from core.platform import transitions
from core.base.clock import ManualClock
from core.flows import adjustment, referral
from core.ledger import accounts as acct
from core.ledger.planner import uncovered
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from tests.helpers import make_test_store

NOW = datetime(2026, 6, 1)
HISTORY_SIZES = (40, 400)


def platform_with() -> Platform:
    return Platform.open(make_test_store(), ManualClock(NOW))


def examined(platform: Platform, collection: str, action) -> tuple[int, int, int]:
    """(keys, documents) examined by `action`'s reads of `collection`, and documents returned."""
    store = platform.store
    store.log.reset()
    store.log.examine = True
    try:
        action()
    finally:
        store.log.examine = False
    records = [r for r in store.log.records if r.collection == collection and r.operation in ("find", "find_one")]
    assert records and uncovered(records) == []
    return (sum(r.keys_examined for r in records), sum(r.documents_examined for r in records),
            sum(r.documents for r in records))


def flows(history: int, live: int, **fields) -> list[dict]:
    finished = [{"_id": f"f{n:05d}", "state": "settled", "created_at": NOW, "referral_done": True, "audit_outbox": [],
                 **fields} for n in range(history)]
    waiting = [{"_id": f"l{n:05d}", "state": "settled", "created_at": NOW, "referral_done": False,
                "referral_owed": ["e1"], "audit_outbox": [{"event_key": f"withdrawal:l{n}:settled"}], **fields}
               for n in range(live)]
    return finished + waiting


@pytest.mark.parametrize("history", HISTORY_SIZES)
def test_owed_commissions_examines_only_the_unsettled_flows(history):
    platform = platform_with()
    platform.store.raw("withdrawals").insert_many(flows(history, 3))
    keys, documents, returned = examined(platform, "withdrawals", lambda: referral.owed_commissions(platform))
    assert returned == 3 and (keys, documents) == (3, 3)  # was: every settled withdrawal (history + 3)


@pytest.mark.parametrize("history", HISTORY_SIZES)
def test_waiting_outboxes_examine_only_the_documents_with_an_event_left(history):
    platform = platform_with()
    platform.store.raw("withdrawals").insert_many(flows(history, 2))
    collection = platform.store.collection("withdrawals")
    keys, documents, returned = examined(platform, "withdrawals", lambda: transitions.waiting(collection))
    assert returned == 2 and (keys, documents) == (2, 2)  # was: `state $in` every state, i.e. every withdrawal
    with_states = examined(platform, "withdrawals", lambda: transitions.waiting(collection, ("settled",)))
    assert with_states == (2, 2, 2)
    assert {d["_id"] for d in transitions.waiting(collection)} == {"l00000", "l00001"}


def requests(history: int) -> list[dict]:
    """A decided history (executed, expired and closed, rejected and closed) and a pending
    backlog that is neither due nor voted on."""
    made = []
    for n in range(history):
        state = ("approved", "expired", "rejected", "pending")[n % 4]
        made.append({"_id": f"apr_{n:05d}", "idempotency_key": f"k{n}", "kind": "adjustment", "state": state,
                     "requested_at": NOW - timedelta(hours=1), "expires_at": NOW + timedelta(hours=23),
                     "approvals_required": 1, "approvals": [{"by": "cat"}] if state == "approved" else [],
                     "result": {"ok": True} if state == "approved" else None, "close_done": True,
                     "audit_outbox": [], "payload": {}})
    return made


@pytest.mark.parametrize("history", HISTORY_SIZES)
def test_expire_due_and_resume_approved_examine_nothing_when_nothing_is_due(history):
    platform = platform_with()
    platform.store.raw("approvals").insert_many(requests(history))
    expiring = examined(platform, "approvals", lambda: approvals.expire_due(platform, SYSTEM))
    resuming = examined(platform, "approvals", lambda: approvals.resume_approved(platform, SYSTEM))
    assert expiring == (0, 0, 0)  # was: the whole pending backlog, then every expired or rejected request
    assert resuming == (0, 0, 0)  # was: every approved request (twice) and the whole pending backlog


def test_expire_due_and_resume_approved_still_find_their_work(platform):
    """The new shapes still find the work: a request past its time is expired, an approved
    one whose result a crash lost is executed (a replay of its keyed entry)."""
    maker, checker = Principal(name="maker", role=Role.ADMIN), Principal(name="checker", role=Role.ADMIN)
    late = adjustment.request_adjustment(platform, maker, user_id="uma", asset="BTC", amount="0.5", reason="credit",
                                         idempotency_key="adj-late")
    done = adjustment.request_adjustment(platform, maker, user_id="uma", asset="BTC", amount="0.1", reason="credit",
                                         idempotency_key="adj-done")
    approvals.approve(platform, checker, done["_id"], "ok")
    platform.store.raw("approvals").update_one({"_id": done["_id"]}, {"$set": {"result": None}})  # the crash
    assert approvals.resume_approved(platform, SYSTEM).done == [done["_id"]]
    assert approvals.get_approval(platform, checker, done["_id"])["result"]["ok"] is True
    platform.clock.advance(platform.config.approval_ttl + timedelta(seconds=1))
    assert approvals.expire_due(platform, SYSTEM).done == [late["_id"]]
    assert platform.ledger.balance(acct.user_available("uma", "BTC")).minor == 10_000_000  # executed once
