"""Deciding maker-checker requests: approve (a vote; the completing vote executes the
request once), reject, expire, resume what a crash interrupted, list and read. The rules
and the state machine are described in core.approvals.requests.

Inside, a request is the typed `ApprovalRequest` (core.approvals.model); what leaves —
the documents the public functions return, what executors and close hooks receive — is
its document (`to_document()`), the store format unchanged."""

from __future__ import annotations

from core.platform.boundary import boundary
from core.base.errors import (
    ApprovalAlreadyExecutedError,
    ApprovalDecisionConflictError,
    ApprovalExpiredError,
    ApprovalRejectedError,
    DuplicateApprovalError,
    InvalidEntryError,
    LedgerError,
    ReasonRequiredError,
    SelfApprovalError,
    StoreError,
)
from core.ledger import PAGE_SIZE_MAX, Page
from core.base.permissions import Permission, Principal, Role, require
from core.platform import transitions
from core.platform import Platform
from core.platform.transitions import SweepReport
from core.base.errors import MalformedDocumentError
from core.approvals.model import STATES, ApprovalRequest
from core.approvals.requests import (
    COLLECTION,
    KIND_PATTERN,
    REASON_LENGTH_MAX,
    RESUME_BATCH_MAX,
    _change,
    _current,
    _event,
    _flushed,
    _load,
    _spec,
    check_reason,
)


def _refuse_closed(request: ApprovalRequest) -> None:
    """Raise the named error for a request that can no longer be decided, naming the
    decision that closed it and who made it."""
    state, request_id = request.state, request.id
    if state == "rejected":
        raise ApprovalRejectedError(
            f"approval {request_id} was rejected by {request.rejected_by}", request_id=request_id,
            winner={"decision": "rejected", "by": request.rejected_by, "reason": request.rejection_reason},
        )
    if state == "expired":
        raise ApprovalExpiredError(
            f"approval {request_id} expired at {request.expires_at:%Y-%m-%d %H:%M:%S}", request_id=request_id,
            winner={"decision": "expired", "by": request.expired_by},
        )
    if state == "approved":
        raise ApprovalAlreadyExecutedError(
            f"approval {request_id} was already approved", request_id=request_id,
            winner={"decision": "approved", "by": [vote.by for vote in request.approvals]},
        )
    assert state == "pending", state


def _expire_if_due(platform: Platform, principal: Principal, request: ApprovalRequest) -> ApprovalRequest:
    """Expire a pending request whose time is up (and run its close hook). The expiry is a
    compare-and-set on `pending` and `expires_at` with its audit event."""
    now = platform.clock.now()
    if request.state != "pending" or now < request.expires_at:
        return request
    expired = _change(
        platform,
        {"_id": request.id, "state": "pending", "expires_at": {"$lte": now}},
        {"$set": {"state": "expired", "expired_at": now, "expired_by": principal.name}},
        _event(principal, request, "expired", "expired", "pending", "expired", {"kind": request.kind}),
    )
    request = expired or _current(platform, request.id)
    if request.closed_without_hook:
        _close(platform, principal, request)
    return request


def _close(platform: Platform, principal: Principal, request: ApprovalRequest) -> None:
    """Run the kind's close hook (idempotent; it receives the typed request), then
    mark `close_done` so the sweep (`expire_due`) knows a crash did not cut the hook short.
    The audit event of the rejection or expiry was written with the state change itself."""
    spec = _spec(request.kind)
    if spec.on_close is not None:
        spec.on_close(platform, request, principal)
    platform.store.collection(COLLECTION).update_one({"_id": request.id}, {"$set": {"close_done": True}})


@boundary
def approve(platform: Platform, principal: Principal, request_id: str, reason: str = "") -> dict:
    """Add `principal`'s approval; the vote that completes the required number moves the
    request to `approved` in the same compare-and-set, and the action is executed once.

    The vote's filter names the expected state (pending, not expired), that this approver
    has not voted and is not the requester, and how many votes came before — so two racing
    votes, or a vote racing a rejection, never both "win". Its audit event is written by
    the same update (crash-complete).

    Calling it again after a crash finishes the execution; for an approver who did not
    vote, it finishes it too and then says the request was already approved.

    Returns: the approval document after the action (with `result` once executed).
    Raises: PermissionDeniedError, ApprovalNotFoundError, SelfApprovalError,
        DuplicateApprovalError, ApprovalExpiredError, ApprovalRejectedError,
        ApprovalAlreadyExecutedError (each naming the winning decision),
        ApprovalDecisionConflictError (the request changed under the vote; retry).
    """
    require(principal, Permission.APPROVE)
    if not isinstance(reason, str) or len(reason) > REASON_LENGTH_MAX:
        raise ReasonRequiredError(f"reason must be text of at most {REASON_LENGTH_MAX} characters")
    request = _expire_if_due(platform, principal, _current(platform, request_id))
    if request.unfinished:
        request = _finish(platform, principal, request)  # complete what a crash interrupted
        if request.voted(principal.name):
            return request.to_document()  # this approver's own vote, replayed
    _refuse_closed(request)
    _refuse_approver(request, principal)
    updated = _vote(platform, principal, request, reason.strip())
    if updated is None:  # lost a race: say why, from the current state
        current = _expire_if_due(platform, principal, _current(platform, request.id))
        _refuse_closed(current)
        _refuse_approver(current, principal)
        raise ApprovalDecisionConflictError(f"approval {request.id} changed concurrently; retry", request_id=request.id)
    if updated.state != "approved":
        return updated.to_document()
    return _execute(platform, principal, updated).to_document()


def _vote(platform: Platform, principal: Principal, request: ApprovalRequest, reason: str) -> ApprovalRequest | None:
    """Push one vote: first as the completing vote (pending → approved), else as an earlier
    one. Returns the updated request, or None when neither filter matched."""
    now, required = platform.clock.now(), request.approvals_required
    vote = {"by": principal.name, "role": principal.role.value, "at": now, "reason": reason}
    base = {
        "_id": request.id,
        "state": "pending",
        "requested_by": {"$ne": principal.name},
        "approvals.by": {"$ne": principal.name},
        "expires_at": {"$gt": now},
    }
    attempts = [(required, {f"approvals.{required - 1}": {"$exists": False},
                            **({f"approvals.{required - 2}": {"$exists": True}} if required >= 2 else {})},
                 {"$push": {"approvals": vote}, "$set": {"state": "approved", "approved_at": now}})]
    if required >= 2:
        attempts.append((required - 1, {f"approvals.{required - 2}": {"$exists": False}}, {"$push": {"approvals": vote}}))
        if len(request.approvals) < required - 1:
            attempts.reverse()  # as last read, this vote does not complete the request: try that first
    for count, condition, update in attempts:
        data = {"decision": "approve", "kind": request.kind, "reason": reason, "approvals": count,
                "approvals_required": required}
        after = "approved" if count == required else "pending"
        event = _event(principal, request, "approved", f"approve:{principal.name}", "pending", after, data)
        updated = _change(platform, {**base, **condition}, update, event)
        if updated is not None:
            return updated
    return None


def _finish(platform: Platform, principal: Principal, request: ApprovalRequest) -> ApprovalRequest:
    """pending (with enough approvals) → approved, then execute once."""
    if request.state == "pending" and request.unfinished:
        required = request.approvals_required
        ready = _change(
            platform,
            {"_id": request.id, "state": "pending", f"approvals.{required - 1}": {"$exists": True}},
            {"$set": {"state": "approved", "approved_at": platform.clock.now()}},
            _event(principal, request, "authorized", "authorized", "pending", "approved", {"kind": request.kind}),
        )
        request = ready or _current(platform, request.id)
    return _execute(platform, principal, request)


def _refuse_approver(request: ApprovalRequest, principal: Principal) -> None:
    if request.requested_by == principal.name:
        raise SelfApprovalError(
            f"{principal.name} requested {request.id} and may not approve it",
            request_id=request.id,
            principal=principal.name,
        )
    if request.voted(principal.name):
        raise DuplicateApprovalError(
            f"{principal.name} already approved {request.id}", request_id=request.id, principal=principal.name
        )


def _execute(platform: Platform, principal: Principal, request: ApprovalRequest) -> ApprovalRequest:
    """Run the executor of an approved request and record its result once.

    No claim, no clock: any number of callers may execute at once (a slow executor, a
    recovery, a process whose clock runs ahead), because an executor only posts entries
    whose idempotency keys derive from the request id — a second execution is a replay of
    the same entries. The result is set by one compare-and-set (`result: None` in the
    filter) that also writes the `approval.executed` event. A refusal is not durable (the
    funds may arrive for a concurrent executor a moment later), so a failed result is
    corrected when the request's entry exists after all (`_correct_failure`)."""
    if request.state != "approved" or request.result is not None:
        return _correct_failure(platform, principal, request)
    spec = _spec(request.kind)
    try:
        result = {"ok": True, **(spec.execute(platform, request, principal) or {})}
    except StoreError:
        raise  # the database failed: leave the request approved without a result, retry later
    except LedgerError as error:
        result = {"ok": False, "error": error.code, "message": error.message}
    updated = _change(
        platform,
        {"_id": request.id, "state": "approved", "result": None},
        {"$set": {"result": result, "executed_at": platform.clock.now(), "executed_by": principal.name}},
        _event(principal, request, "executed", "executed", "approved", "approved",
               {"kind": request.kind, "result": result}),
    )
    return _correct_failure(platform, principal, updated or _current(platform, request.id))


def execution_key(request_id: str) -> str:
    """The idempotency key of the entry an executor posts for a request (one per request)."""
    return f"approval:{request_id}:execute"


def _correct_failure(platform: Platform, principal: Principal, request: ApprovalRequest) -> ApprovalRequest:
    """A request recorded as failed whose entry (`execution_key`) exists after all (a
    concurrent executor posted it after this one was refused) gets its result corrected,
    once, with an event."""
    result = request.result
    if request.state != "approved" or result is None or result.get("ok") is not False:
        return request
    posted = platform.ledger.entry_by_key(execution_key(request.id))
    if posted is None:
        return request
    corrected = {"ok": True, "entry_id": posted.id, "corrected_from": result.get("error")}
    updated = _change(
        platform,
        {"_id": request.id, "state": "approved", "result.ok": False},
        {"$set": {"result": corrected}},
        _event(principal, request, "execution_corrected", "execution_corrected", "approved", "approved",
               {"kind": request.kind, "result": corrected}),
    )
    return updated or _current(platform, request.id)


@boundary
def reject(platform: Platform, principal: Principal, request_id: str, reason: str) -> dict:
    """Refuse a pending request (a reason is required); runs the kind's close hook
    (e.g. a withdrawal's hold is released). The rejection is a compare-and-set on
    `pending` with its audit event; a rejection racing the completing vote loses to it
    (or wins, and the vote loses), never both.

    Raises: PermissionDeniedError, ReasonRequiredError, ApprovalNotFoundError,
        ApprovalExpiredError, ApprovalRejectedError, ApprovalAlreadyExecutedError (each
        naming the winning decision), ApprovalDecisionConflictError.
    """
    require(principal, Permission.APPROVE)
    reason = check_reason(reason, "a rejection")
    request = _expire_if_due(platform, principal, _current(platform, request_id))
    if request.state == "rejected" and request.rejected_by == principal.name and request.rejection_reason == reason:
        if not request.close_done:
            _close(platform, principal, request)  # replay: finish a close a crash interrupted
        return _current(platform, request.id).to_document()
    _refuse_closed(request)
    now = platform.clock.now()
    updated = _change(
        platform,
        {"_id": request.id, "state": "pending"},
        {"$set": {"state": "rejected", "rejected_by": principal.name, "rejected_at": now, "rejection_reason": reason}},
        _event(principal, request, "rejected", "rejected", "pending", "rejected",
               {"decision": "reject", "kind": request.kind, "reason": reason}),
    )
    if updated is None:
        _refuse_closed(_current(platform, request.id))
        raise ApprovalDecisionConflictError(f"approval {request.id} changed concurrently; retry", request_id=request.id)
    _close(platform, principal, updated)
    return _current(platform, updated.id).to_document()


# -- reading and housekeeping -----------------------------------------------------------------
@boundary
def list_approvals(
    platform: Platform,
    principal: Principal,
    *,
    state: str | None = "pending",
    kind: str | None = None,
    page: int = 0,
    page_size: int = 50,
) -> Page:
    """Requests newest first, one page at a time. Raises: PermissionDeniedError, InvalidEntryError."""
    require(principal, Permission.APPROVE)
    if not (1 <= page_size <= PAGE_SIZE_MAX) or not isinstance(page, int) or page < 0:
        raise InvalidEntryError(f"page_size must be 1..{PAGE_SIZE_MAX} and page ≥ 0")
    if state is not None and state not in STATES:
        raise InvalidEntryError(f"state must be one of {', '.join(STATES)}", state=repr(state))
    if kind is not None and (not isinstance(kind, str) or not KIND_PATTERN.match(kind)):
        raise InvalidEntryError("kind must be dotted lower-case words", kind=repr(kind))
    query = {key: value for key, value in (("state", state), ("kind", kind)) if value is not None}
    documents = platform.store.collection(COLLECTION).find(
        query, sort=[("requested_at", -1)], skip=page * page_size, limit=page_size + 1
    )
    requests = [ApprovalRequest.from_document(document).to_document() for document in documents[:page_size]]
    return Page(requests, page, page_size, len(documents) > page_size)


@boundary
def get_approval(platform: Platform, principal: Principal, request_id: str) -> dict:
    """Raises: PermissionDeniedError, ApprovalNotFoundError, MalformedDocumentError."""
    require(principal, Permission.APPROVE)
    return _load(platform, request_id).to_document()


@boundary
def expire_due(platform: Platform, principal: Principal) -> SweepReport:
    """Expire every pending request past its time (runs close hooks), and finish close hooks
    a crash interrupted. One request's failure is recorded and the sweep goes on.
    Returns a SweepReport (`done`: the ids it expired)."""
    if principal.role is not Role.SYSTEM:
        require(principal, Permission.APPROVE)
    collection = platform.store.collection(COLLECTION)
    report = SweepReport()
    # served by (state, expires_at) and (state, close_done): each read examines the requests it
    # returns, not the pending backlog nor every request ever expired or rejected
    due = collection.find({"state": "pending", "expires_at": {"$lte": platform.clock.now()}}, limit=RESUME_BATCH_MAX)
    for document in due:  # each converted inside its own run: a malformed one is reported, the rest go on
        expired = report.run(document["_id"], lambda d=document: _expire_if_due(
            platform, principal, ApprovalRequest.from_document(d)))
        if expired is not None and expired.state != "expired":
            report.done.remove(document["_id"])  # approved or rejected meanwhile: not ours to expire
    closes = SweepReport()
    for document in collection.find({"state": {"$in": ["expired", "rejected"]}, "close_done": False},
                                    limit=RESUME_BATCH_MAX):  # close hooks a crash cut short
        closes.run(document["_id"], lambda d=document: _close(platform, principal, ApprovalRequest.from_document(d)))
    report.failed.update(closes.failed)
    return report


@boundary
def resume_approved(platform: Platform, principal: Principal) -> SweepReport:
    """Finish what a crash interrupted, whoever else may be running it right now (no claim,
    no staleness: execution is keyed by the request id): approved requests without a
    result, requests with enough approvals still pending, and failed results to correct.
    Returns a SweepReport of the ids it finished (failures isolated per request)."""
    if principal.role is not Role.SYSTEM:
        require(principal, Permission.APPROVE)
    collection = platform.store.collection(COLLECTION)
    # each read is served by an index whose bounds hold only what it is after — (state, result),
    # (state, approvals.by), (state, result.ok) — so it examines what it returns, not every
    # request ever approved nor the whole pending backlog
    documents = collection.find({"state": "approved", "result": None}, limit=RESUME_BATCH_MAX)
    documents += [d for d in collection.find({"state": "pending", "approvals.by": {"$gt": ""}}, limit=RESUME_BATCH_MAX)
                  if _needs_finishing(d)]  # voted on; the ones with enough votes are an old layout's leftovers
    documents += collection.find({"state": "approved", "result.ok": False}, limit=RESUME_BATCH_MAX)
    report = SweepReport()
    for document in documents:
        report.run(document["_id"], lambda d=document: _finish(platform, principal, _flushed(platform, d)))
    return report


def _needs_finishing(document: dict) -> bool:
    """A pending request with enough votes; a malformed one too, so that the sweep reports
    it as failed instead of passing over it."""
    try:
        return ApprovalRequest.from_document(document).unfinished
    except MalformedDocumentError:
        return True


def flush_waiting_events(platform: Platform) -> SweepReport:
    """Append the audit events a crash left in requests' outboxes (recovery)."""
    collection = platform.store.collection(COLLECTION)
    report = SweepReport()
    for document in transitions.waiting(collection, STATES):
        report.run(document["_id"], lambda d=document: transitions.flush(platform.ledger.audit, collection, d))
    return report
