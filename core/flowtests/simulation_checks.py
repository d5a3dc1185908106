"""What must hold for the flows at quiescence, after the final recovery (issue 10):
- every flow and approval executed at most once, and its state agrees with the journal
  (a released trade's escrow went to the buyer, an expired quote's user paid nothing...);
- every state change has exactly one audit event, naming the real actor and decision;
  no event names a decision the document does not carry; no outbox left unflushed;
- no owed referral commission was silently dropped;
- no hold is left open behind a finished flow (a hold placed after its flow was refused
  is released, by its placer or by recovery, with the one `hold.release` keyed close);
- the audit chain verifies. (Money conserved per asset is the engine's own quiescence check.)

Reads the raw collections: the checker runs alone, after every actor ended.
"""

from __future__ import annotations

from core.platform import transitions
from core.flows import holds, p2p, referral
from core.ledger.simulation import Violation
from core.platform import Platform

DOCUMENTS_MAX = 10_000
DECISION_STATES = {  # state reached by a decision → the decision's name
    "p2p_trades": {"paid": "mark_paid", "disputed": "dispute", "released": "release", "cancelled": "cancel",
                   "resolved_buyer": "resolved", "resolved_seller": "resolved"},
    "quotes": {"executed": "execute", "expired": None},
}
EXECUTOR_KINDS_WITH_ENTRY = ("adjustment", "deposit.manual", "treasury.fee_sweep", "treasury.liquidity_topup",
                             "treasury.liquidity_withdrawal")


def check_flows(platform: Platform) -> None:
    """Raise Violation naming the first broken rule."""
    store = platform.store
    events = {e["event_key"]: e for e in store.raw("audit").find({"event_key": {"$not": {"$regex": "^evt:"}}})}
    entries = {e["idempotency_key"]: e for e in store.raw("entries").find({})}
    for name in ("p2p_trades", "quotes", "withdrawals", "deposits", "approvals"):
        for document in store.raw(name).find({}).limit(DOCUMENTS_MAX):
            if document.get(transitions.OUTBOX):
                raise Violation(f"{name} {document['_id']}: audit events left unflushed: "
                                f"{[e['event_key'] for e in document[transitions.OUTBOX]]}")
    _check_trades(store, events, entries)
    _check_quotes(store, events, entries)
    _check_withdrawals(store, events, entries)
    _check_deposits(store, events, entries)
    _check_approvals(store, events)
    _check_commissions(platform, entries)
    verified = platform.ledger.audit.verify()
    if not verified.ok:
        raise Violation(f"audit chain: {verified.problem}")


def _decisions_audited(what: str, document: dict, events: dict) -> None:
    """Each decision in the document has its one event naming the same actor and target;
    no decision event of this document names anything else."""
    recorded = {d["name"]: d for d in document.get("decisions") or []}
    for name, decision in recorded.items():
        event = events.get(f"{what}:{document['_id']}:{name}")
        if event is None:
            raise Violation(f"{what} {document['_id']}: decision {name} → {decision['to']} by {decision['by']} "
                            "has no audit event")
        if event["actor"] != decision["by"] or (event.get("data") or {}).get("to") != decision["to"]:
            raise Violation(f"{what} {document['_id']}: the {name} event names {event['actor']} → "
                            f"{(event.get('data') or {}).get('to')}, the document says {decision['by']} → "
                            f"{decision['to']}")
    for key, event in events.items():
        if event.get("target") == document["_id"] and (event.get("data") or {}).get("decision") not in (None, *recorded):
            raise Violation(f"{what} {document['_id']}: event {key} names a decision the document does not carry "
                            f"({event['actor']} → {(event.get('data') or {}).get('to')})")


def _stepped(what: str, document: dict, events: dict, state: str) -> None:
    if f"{what}:{document['_id']}:{state}" not in events:
        raise Violation(f"{what} {document['_id']} is {state} without its audit event")


def _close_entry(entries: dict, hold_id: str) -> dict | None:
    return entries.get(f"hold:{hold_id}:close")


def _refused_hold_settled(what: str, document: dict, entries: dict) -> None:
    """A refused flow holds nothing: no hold, or a hold placed late and released."""
    placed, closing = entries.get(f"hold:{document['_id']}:place"), _close_entry(entries, document["_id"])
    if placed is not None and closing is None:
        raise Violation(f"{what} {document['_id']} is {document['state']} but its hold {placed['_id']} is still open "
                        "(stranded behind a finished flow)")
    if closing is not None and (placed is None or closing["type"] != holds.RELEASE_TYPE):
        raise Violation(f"{what} {document['_id']} is {document['state']} but its hold closed as {closing['type']}")


def _check_trades(store, events: dict, entries: dict) -> None:
    for trade in store.raw("p2p_trades").find({}).limit(DOCUMENTS_MAX):
        state, trade_id = trade["state"], trade["_id"]
        _decisions_audited("p2p", trade, events)
        if state in ("new", "closing"):
            raise Violation(f"trade {trade_id} left {state} after recovery")
        closing = _close_entry(entries, trade_id)
        if trade.get("close_reason") == "escrow_refused":
            _refused_hold_settled("trade", trade, entries)
        elif state in p2p.CLOSED:
            wanted = DECISION_STATES["p2p_trades"][state]
            if (trade.get("decision") or {}).get("name") != wanted or trade["decision"]["to"] != state:
                raise Violation(f"trade {trade_id} is {state} but its deciding decision is {trade.get('decision')}")
            if closing is None or closing["type"] != f"p2p.{state}":
                raise Violation(f"trade {trade_id} is {state} but its escrow closed as "
                                f"{closing['type'] if closing else 'nothing'}")
            _stepped("p2p", trade, events, state)
        elif closing is not None:
            raise Violation(f"trade {trade_id} is {state} but its escrow was closed ({closing['type']})")


def _check_quotes(store, events: dict, entries: dict) -> None:
    for quote in store.raw("quotes").find({}).limit(DOCUMENTS_MAX):
        state, quote_id = quote["state"], quote["_id"]
        _decisions_audited("quote", quote, events)
        closing = _close_entry(entries, quote_id)  # the execution (consume, with the payment) or the expiry
        if state in ("new", "executing", "expiring"):
            raise Violation(f"quote {quote_id} left {state} after recovery")
        if state == "failed":
            _refused_hold_settled("quote", quote, entries)
            continue
        wanted = {"executed": "consume", "expired": "release", "open": None, "failed": None}[state]
        if (closing["hold_action"] if closing else None) != wanted or (
                state == "executed" and quote.get("pay_entry_id") != closing["_id"]):
            raise Violation(f"quote {quote_id} is {state} but its reservation was "
                            f"{closing['hold_action'] + 'd' if closing else 'never closed'}")
        if state in ("executed", "expired"):
            _stepped("quote", quote, events, state)


def _check_withdrawals(store, events: dict, entries: dict) -> None:
    for document in store.raw("withdrawals").find({}).limit(DOCUMENTS_MAX):
        state, withdrawal_id = document["state"], document["_id"]
        closing = _close_entry(entries, withdrawal_id)
        if state in ("requested", "held", "approved", "rejecting"):
            raise Violation(f"withdrawal {withdrawal_id} left {state} after recovery")
        expected = {"settled": "withdrawal.settle", "rejected": "withdrawal.release"}.get(state)
        if expected and (closing is None or closing["type"] != expected):
            raise Violation(f"withdrawal {withdrawal_id} is {state} but its hold closed as "
                            f"{closing['type'] if closing else 'nothing'}")
        if state == "awaiting_approval" and closing is not None:
            raise Violation(f"withdrawal {withdrawal_id} awaits approval but its hold was closed")
        if state == "failed":
            _refused_hold_settled("withdrawal", document, entries)
        if state != "failed":
            _stepped("withdrawal", document, events, state)
        _agrees_with_approval(store, document)


def _agrees_with_approval(store, document: dict) -> None:
    """A withdrawal behind an approval ends the way its approval was decided."""
    if not document.get("approval_id"):
        return
    request = store.raw("approvals").find_one({"_id": document["approval_id"]})
    decided = request["state"] if request else None
    expected = {"pending": "awaiting_approval", "approved": "settled", "rejected": "rejected", "expired": "rejected"}
    if decided is None or expected[decided] != document["state"]:
        raise Violation(f"withdrawal {document['_id']} is {document['state']} but its approval is {decided}")


def _check_deposits(store, events: dict, entries: dict) -> None:
    for document in store.raw("deposits").find({}).limit(DOCUMENTS_MAX):
        credit = entries.get(f"deposit:{document['_id']}:credit")
        if document["state"] == "credited" and credit is None:
            raise Violation(f"deposit {document['_id']} is credited without its credit entry")
        if document["state"] == "credited":
            _stepped("deposit", document, events, "credited")
        elif credit is not None or document["confirmations"] >= document["confirmations_required"]:
            raise Violation(f"deposit {document['_id']} left confirming with {document['confirmations']} "
                            f"confirmations (credit entry: {bool(credit)}) after recovery")


def _check_approvals(store, events: dict) -> None:
    executed_entries: dict[str, int] = {}
    for entry in store.raw("entries").find({"flow_ref": {"$regex": "^apr_"}}):
        executed_entries[entry["flow_ref"]] = executed_entries.get(entry["flow_ref"], 0) + 1
    for request in store.raw("approvals").find({}).limit(DOCUMENTS_MAX):
        request_id, state, result = request["_id"], request["state"], request.get("result")
        key = f"approval:{request_id}"
        if f"{key}:requested" not in events:
            raise Violation(f"approval {request_id} has no `requested` event")
        for vote in request["approvals"]:
            event = events.get(f"{key}:approve:{vote['by']}")
            if event is None or event["actor"] != vote["by"]:
                raise Violation(f"approval {request_id}: {vote['by']}'s vote has no event naming them")
        voters = {vote["by"] for vote in request["approvals"]}
        for event_key, event in events.items():
            if event_key.startswith(f"{key}:approve:") and event["actor"] not in voters:
                raise Violation(f"approval {request_id}: {event['actor']} is recorded as approving but did not vote")
        if state == "approved" and result is None:
            raise Violation(f"approval {request_id} approved but never executed after recovery")
        if result is not None and events.get(f"{key}:executed") is None:
            raise Violation(f"approval {request_id} executed without its `approval.executed` event")
        if state == "rejected" and (events.get(f"{key}:rejected") or {}).get("actor") != request["rejected_by"]:
            raise Violation(f"approval {request_id} rejected by {request['rejected_by']} without that event")
        if request["kind"] in EXECUTOR_KINDS_WITH_ENTRY:
            posted = executed_entries.get(request_id, 0)
            wanted = 1 if result is not None and result.get("ok") else 0
            if posted != wanted:
                raise Violation(f"approval {request_id} ({request['kind']}, result {result}) has {posted} entries")


def _check_commissions(platform: Platform, entries: dict) -> None:
    """Every fee whose payer has a referrer is paid once, or its flow still says it is owed."""
    owed = {item["flow_id"] for item in referral.owed_commissions(platform)}
    for key, entry in entries.items():
        metadata = entry.get("metadata") or {}
        fee, payer = metadata.get("fee_minor"), metadata.get("fee_payer")
        if not isinstance(fee, int) or fee <= 0 or not isinstance(payer, str):
            continue
        found = referral.referrer_of(platform, payer)
        if found is None or referral.referral_share(fee, platform.config.referral_rate(found[1])) <= 0:
            continue
        if f"referral:{entry['_id']}" not in entries and entry.get("flow_ref") not in owed:
            raise Violation(f"the commission on {entry['type']} {entry['_id']} ({key}) was dropped: not paid, "
                            "and its flow does not say it is owed")
