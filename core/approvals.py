"""Maker-checker approvals (SPEC §7), enforced in core.

A request is a document in `approvals`:
`{_id, idempotency_key, request_hash, kind, state: pending|approved|rejected|expired,
requested_by, requested_role, requested_at, expires_at, payload, asset, amount_minor,
approvals_required, approvals: [{by, role, at, reason}], reason (why it was requested),
rejected_by, rejected_at, rejection_reason, approved_at, result}`.

Rules: the requester never approves their own request; amounts above the second threshold
need two distinct approvers; requests expire (clock); a reject needs a reason. Every
change is one guarded `find_one_and_update` (state in the filter), so two approvers
racing cannot both "complete" a request, and each action is audited with an event key
so a replay after a crash does not duplicate the trail.

Execution: other modules plug kinds in with `register_executor(kind, fn)`. When the last
approval lands, the request moves pending → approved, then the executor runs (its
entries use idempotency keys derived from the request id, so re-running is safe) and
the `result` is set once (`result: None` in the filter). A crash between those steps is
finished by calling `approve` again (it resumes an approved request without a result)
or by `resume_approved`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.errors import (
    ApprovalAlreadyExecutedError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    ApprovalRejectedError,
    ApprovalStateError,
    DuplicateApprovalError,
    FloatAmountError,
    IdempotencyConflictError,
    InvalidEntryError,
    LedgerError,
    ReasonRequiredError,
    SelfApprovalError,
    StoreError,
    UnknownApprovalKindError,
)
from core.ledger import canonical, digest
from core.ledger import PAGE_SIZE_MAX, Page
from core.ledger import amount as make_amount
from core.permissions import Permission, Principal, Role, require
from core.platform import Platform
from core.ledger import DuplicateKeyStoreError

COLLECTION = "approvals"
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}$")
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
REASON_LENGTH_MAX = 500
PAYLOAD_SIZE_MAX = 8_000  # bytes of canonical JSON
APPROVERS_MAX = 2
RESUME_BATCH_MAX = 500
EXECUTION_STALE_AFTER = timedelta(seconds=60)  # a claim older than this is a crashed executor's
STATES = ("pending", "approved", "rejected", "expired")

Executor = Callable[[Platform, dict, Principal], dict]
CloseHook = Callable[[Platform, dict, Principal], None]


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str
    execute: Executor
    on_close: CloseHook | None  # runs when a request is rejected or expires (e.g. release a hold)
    permission: Permission  # what a principal needs to *request* this kind


_EXECUTORS: dict[str, ExecutorSpec] = {}
# Modules imported on demand so their kinds are known even if nobody imported them yet.
EXECUTOR_MODULES = ("core.flows", "core.integrity.repairs", "core.legacy.rebuild")


def _default_permission(kind: str) -> Permission:
    if kind.startswith("repair."):
        return Permission.REQUEST_REPAIR
    if kind.startswith("legacy."):
        return Permission.MANAGE_LEGACY
    return Permission.REQUEST_TREASURY


def register_executor(
    kind: str, fn: Executor, *, on_close: CloseHook | None = None, permission: Permission | None = None
) -> None:
    """Plug in what an approved request of `kind` does. `fn(platform, approval, principal)`
    must be idempotent (derive entry keys from `approval["_id"]`) and returns a JSON-able
    dict stored as the request's `result`. Re-registering a kind replaces it.

    The permission to *request* defaults by prefix: `repair.*` REQUEST_REPAIR,
    `legacy.*` MANAGE_LEGACY, anything else REQUEST_TREASURY."""
    if not KIND_PATTERN.match(kind):
        raise InvalidEntryError(f"approval kind {kind!r} must be dotted lower-case words", kind=kind)
    _EXECUTORS[kind] = ExecutorSpec(kind, fn, on_close, permission or _default_permission(kind))


def registered_kinds() -> list[str]:
    _load_executor_modules()
    return sorted(_EXECUTORS)


def _load_executor_modules() -> None:
    for module in EXECUTOR_MODULES:
        importlib.import_module(module)


def _spec(kind: object) -> ExecutorSpec:
    if isinstance(kind, str) and kind not in _EXECUTORS:
        _load_executor_modules()
    if not isinstance(kind, str) or kind not in _EXECUTORS:
        raise UnknownApprovalKindError(f"no executor for approval kind {kind!r}", kind=repr(kind))
    return _EXECUTORS[kind]


# -- requesting ---------------------------------------------------------------------------
def approvals_required_for(platform: Platform, asset: str | None, amount_minor: int | None) -> int:
    """1, or 2 when the amount is above the asset's second threshold (FlowConfig)."""
    if asset is None or amount_minor is None:
        return 1
    second = platform.config.second_approval_threshold.get(asset)
    if second is None:
        return 1
    second_minor = make_amount(second, asset, platform.registry).minor
    return 2 if abs(amount_minor) > second_minor else 1


def check_reason(reason: object, what: str) -> str:
    """A stripped, non-empty reason of at most REASON_LENGTH_MAX characters. Raises: ReasonRequiredError."""
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequiredError(f"{what} needs a reason")
    if len(reason) > REASON_LENGTH_MAX:
        raise ReasonRequiredError(f"reason longer than {REASON_LENGTH_MAX} characters", length=len(reason))
    return reason.strip()


def _check_payload(payload: object) -> dict:
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise InvalidEntryError("approval payload must be a dict with text keys")
    try:
        size = len(canonical(payload))
    except AssertionError:
        raise FloatAmountError("approval payload contains a float; give amounts as decimal text") from None
    except TypeError as error:
        raise InvalidEntryError(f"approval payload is not JSON: {error}") from None
    if size > PAYLOAD_SIZE_MAX:
        raise InvalidEntryError(f"approval payload larger than {PAYLOAD_SIZE_MAX} bytes", size=size)
    return payload


def _check_request(
    platform: Platform, reason: object, payload: object, asset: object, amount_minor: object, idempotency_key: object
) -> tuple[str, dict]:
    """Validate a request's fields. Returns (reason, payload). Raises: ReasonRequiredError,
    InvalidEntryError, FloatAmountError, UnknownAssetError."""
    reason = check_reason(reason, "an approval request")
    payload = _check_payload(payload)
    if not isinstance(idempotency_key, str) or not KEY_PATTERN.match(idempotency_key):
        raise InvalidEntryError("idempotency key must be 1-200 printable characters without spaces")
    if asset is not None:
        platform.registry.get(asset)
    if amount_minor is not None and (isinstance(amount_minor, bool) or not isinstance(amount_minor, int)):
        raise InvalidEntryError("amount_minor must be an integer", value=repr(amount_minor))
    return reason, payload


def request_approval(
    platform: Platform,
    principal: Principal,
    *,
    kind: str,
    payload: dict,
    asset: str | None,
    amount_minor: int | None,
    idempotency_key: str,
    reason: str,
) -> dict:
    """Open a maker-checker request (idempotent on `idempotency_key`).

    Returns: the approval document (the original one on a replay).
    Raises: PermissionDeniedError, UnknownApprovalKindError, ReasonRequiredError,
        InvalidEntryError/FloatAmountError (payload), UnknownAssetError,
        IdempotencyConflictError (same key, different request).
    """
    spec = _spec(kind)
    require(principal, spec.permission)
    return open_request(
        platform,
        principal,
        kind=kind,
        payload=payload,
        asset=asset,
        amount_minor=amount_minor,
        idempotency_key=idempotency_key,
        reason=reason,
    )


def open_request(
    platform: Platform,
    principal: Principal,
    *,
    kind: str,
    payload: dict,
    asset: str | None,
    amount_minor: int | None,
    idempotency_key: str,
    reason: str,
    approvals_required: int | None = None,
) -> dict:
    """`request_approval` without the permission check: for flows that already checked
    theirs (a withdrawal above the threshold is requested by the exchange backend)."""
    _spec(kind)
    reason, payload = _check_request(platform, reason, payload, asset, amount_minor, idempotency_key)
    required = approvals_required or approvals_required_for(platform, asset, amount_minor)
    assert 1 <= required <= APPROVERS_MAX
    fingerprint = digest({"kind": kind, "payload": payload, "asset": asset, "amount_minor": amount_minor})
    now = platform.clock.now()
    document = {
        "_id": "apr_" + digest({"key": idempotency_key})[:24], "idempotency_key": idempotency_key,
        "request_hash": fingerprint, "kind": kind, "state": "pending", "requested_by": principal.name,
        "requested_role": principal.role.value, "requested_at": now, "expires_at": now + platform.config.approval_ttl,
        "payload": payload, "asset": asset, "amount_minor": amount_minor, "approvals_required": required,
        "approvals": [], "reason": reason, "rejected_by": None, "rejected_at": None, "rejection_reason": None,
        "approved_at": None, "result": None, "execution_claimed_at": None, "execution_claimed_by": None,
        "close_done": False,
    }  # fmt: skip
    collection = platform.store.collection(COLLECTION)
    try:
        collection.insert_one(document)
    except DuplicateKeyStoreError:
        existing = collection.find_one({"idempotency_key": idempotency_key})
        if existing is None or existing["request_hash"] != fingerprint:
            raise IdempotencyConflictError(
                f"idempotency key {idempotency_key!r} was used for a different approval request",
                key=idempotency_key,
                approval_id=existing["_id"] if existing else None,
            ) from None
        document = existing
    _audit(
        platform,
        principal,
        document,
        "requested",
        key_suffix="requested",
        data={
            "kind": kind,
            "asset": asset,
            "amount_minor": amount_minor,
            "approvals_required": required,
            "reason": reason,
        },
    )
    return document


# -- deciding -----------------------------------------------------------------------------
def _load(platform: Platform, request_id: object) -> dict:
    document = None
    if isinstance(request_id, str):
        document = platform.store.collection(COLLECTION).find_one({"_id": request_id})
    if document is None:
        raise ApprovalNotFoundError(f"no approval request {request_id!r}", request_id=repr(request_id))
    return document


def _refuse_closed(document: dict) -> None:
    """Raise the named error for a request that can no longer be decided."""
    state, request_id = document["state"], document["_id"]
    if state == "rejected":
        raise ApprovalRejectedError(f"approval {request_id} was rejected", request_id=request_id)
    if state == "expired":
        raise ApprovalExpiredError(
            f"approval {request_id} expired at {document['expires_at']:%Y-%m-%d %H:%M:%S}", request_id=request_id
        )
    if state == "approved":
        raise ApprovalAlreadyExecutedError(f"approval {request_id} was already approved", request_id=request_id)
    assert state == "pending", state


def _expire_if_due(platform: Platform, principal: Principal, document: dict) -> dict:
    """Expire a pending request whose time is up (and run its close hook)."""
    if document["state"] != "pending" or platform.clock.now() < document["expires_at"]:
        return document
    collection = platform.store.collection(COLLECTION)
    collection.find_one_and_update({"_id": document["_id"], "state": "pending"}, {"$set": {"state": "expired"}})
    document = _load(platform, document["_id"])
    if document["state"] == "expired":
        _close(platform, principal, document, "expired")
    return document


def _close(platform: Platform, principal: Principal, document: dict, action: str) -> None:
    """Run the kind's close hook (idempotent), audit, then mark `close_done` so the sweep
    (`expire_due`) knows a crash did not cut the hook short."""
    spec = _spec(document["kind"])
    if spec.on_close is not None:
        spec.on_close(platform, document, principal)
    _audit(
        platform,
        principal,
        document,
        action,
        key_suffix=action,
        data={"kind": document["kind"], "reason": document.get("rejection_reason")},
    )
    platform.store.collection(COLLECTION).update_one({"_id": document["_id"]}, {"$set": {"close_done": True}})


def approve(platform: Platform, principal: Principal, request_id: str, reason: str = "") -> dict:
    """Add `principal`'s approval; once enough distinct approvers (never the requester)
    have approved, execute the action exactly once.

    Returns: the approval document after the action (with `result` once executed).
    Raises: PermissionDeniedError, ApprovalNotFoundError, SelfApprovalError,
        DuplicateApprovalError, ApprovalExpiredError, ApprovalRejectedError,
        ApprovalAlreadyExecutedError.
    """
    require(principal, Permission.APPROVE)
    if not isinstance(reason, str) or len(reason) > REASON_LENGTH_MAX:
        raise ReasonRequiredError(f"reason must be text of at most {REASON_LENGTH_MAX} characters")
    document = _expire_if_due(platform, principal, _load(platform, request_id))
    if _unfinished(document):
        return _finish(platform, principal, document)  # complete what a crash interrupted
    _refuse_closed(document)
    _refuse_approver(document, principal)
    now = platform.clock.now()
    entry = {"by": principal.name, "role": principal.role.value, "at": now, "reason": reason.strip()}
    updated = platform.store.collection(COLLECTION).find_one_and_update(
        {
            "_id": document["_id"],
            "state": "pending",
            "requested_by": {"$ne": principal.name},
            "approvals.by": {"$ne": principal.name},
            "expires_at": {"$gt": now},
            f"approvals.{document['approvals_required'] - 1}": {"$exists": False},
        },  # never more than required
        {"$push": {"approvals": entry}},
    )
    if updated is None:  # lost a race: say why, from the current state
        current = _expire_if_due(platform, principal, _load(platform, document["_id"]))
        _refuse_closed(current)
        _refuse_approver(current, principal)
        raise ApprovalStateError(f"approval {document['_id']} changed concurrently; retry", request_id=document["_id"])
    _audit(
        platform,
        principal,
        updated,
        "approved",
        key_suffix=f"approve:{principal.name}",
        data={
            "kind": updated["kind"],
            "reason": entry["reason"],
            "approvals": len(updated["approvals"]),
            "approvals_required": updated["approvals_required"],
        },
    )
    if len(updated["approvals"]) < updated["approvals_required"]:
        return updated
    return _finish(platform, principal, updated)


def _unfinished(document: dict) -> bool:
    """Enough approvals but not yet approved, or approved but not yet executed."""
    if document["state"] == "pending":
        return len(document["approvals"]) >= document["approvals_required"]
    return document["state"] == "approved" and document["result"] is None


def _finish(
    platform: Platform, principal: Principal, document: dict, stale_after: timedelta = EXECUTION_STALE_AFTER
) -> dict:
    """pending (with enough approvals) → approved, then execute once."""
    if document["state"] == "pending" and len(document["approvals"]) >= document["approvals_required"]:
        ready = platform.store.collection(COLLECTION).find_one_and_update(
            {
                "_id": document["_id"],
                "state": "pending",
                f"approvals.{document['approvals_required'] - 1}": {"$exists": True},
            },
            {"$set": {"state": "approved", "approved_at": platform.clock.now()}},
        )
        document = ready or _load(platform, document["_id"])
    return _execute(platform, principal, document, stale_after)


def _refuse_approver(document: dict, principal: Principal) -> None:
    if document["requested_by"] == principal.name:
        raise SelfApprovalError(
            f"{principal.name} requested {document['_id']} and may not approve it",
            request_id=document["_id"],
            principal=principal.name,
        )
    if any(a["by"] == principal.name for a in document["approvals"]):
        raise DuplicateApprovalError(
            f"{principal.name} already approved {document['_id']}", request_id=document["_id"], principal=principal.name
        )


def _execute(
    platform: Platform, principal: Principal, document: dict, stale_after: timedelta = EXECUTION_STALE_AFTER
) -> dict:
    """Run the executor of an approved request and record its result once.

    The executor runs under a claim (`execution_claimed_at`, set by one guarded update), so
    concurrent approvers do not run it side by side; a claim older than `stale_after` is
    taken over (its holder crashed) — safe because executors are idempotent."""
    if document["state"] != "approved" or document["result"] is not None:
        return document
    now = platform.clock.now()
    claimed = platform.store.collection(COLLECTION).find_one_and_update(
        {
            "_id": document["_id"],
            "state": "approved",
            "result": None,
            "$or": [{"execution_claimed_at": None}, {"execution_claimed_at": {"$lte": now - stale_after}}],
        },
        {"$set": {"execution_claimed_at": now, "execution_claimed_by": principal.name}},
    )
    if claimed is None:
        return _load(platform, document["_id"])  # another caller is executing it right now
    spec = _spec(document["kind"])
    try:
        result = {"ok": True, **(spec.execute(platform, document, principal) or {})}
    except StoreError:
        raise  # the database failed: leave the request approved without a result, retry later
    except LedgerError as error:
        result = {"ok": False, "error": error.code, "message": error.message}
    updated = platform.store.collection(COLLECTION).find_one_and_update(
        {"_id": document["_id"], "state": "approved", "result": None}, {"$set": {"result": result}}
    )
    document = updated or _load(platform, document["_id"])
    _audit(
        platform,
        principal,
        document,
        "executed",
        key_suffix="executed",
        data={"kind": document["kind"], "result": document["result"]},
    )
    return document


def reject(platform: Platform, principal: Principal, request_id: str, reason: str) -> dict:
    """Refuse a pending request (a reason is required); runs the kind's close hook
    (e.g. a withdrawal's hold is released).

    Raises: PermissionDeniedError, ReasonRequiredError, ApprovalNotFoundError,
        ApprovalExpiredError, ApprovalRejectedError, ApprovalAlreadyExecutedError.
    """
    require(principal, Permission.APPROVE)
    reason = check_reason(reason, "a rejection")
    document = _expire_if_due(platform, principal, _load(platform, request_id))
    if (
        document["state"] == "rejected"
        and document["rejected_by"] == principal.name
        and document["rejection_reason"] == reason
    ):
        _close(platform, principal, document, "rejected")  # replay: finish a close a crash interrupted
        return _load(platform, document["_id"])
    _refuse_closed(document)
    updated = platform.store.collection(COLLECTION).find_one_and_update(
        {"_id": document["_id"], "state": "pending"},
        {
            "$set": {
                "state": "rejected",
                "rejected_by": principal.name,
                "rejected_at": platform.clock.now(),
                "rejection_reason": reason,
            }
        },
    )
    if updated is None:
        _refuse_closed(_load(platform, document["_id"]))
        raise ApprovalStateError(f"approval {document['_id']} changed concurrently; retry", request_id=document["_id"])
    _close(platform, principal, updated, "rejected")
    return _load(platform, updated["_id"])


# -- reading and housekeeping -----------------------------------------------------------------
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
        query, sort=[("requested_at", -1), ("_id", -1)], skip=page * page_size, limit=page_size + 1
    )
    return Page(documents[:page_size], page, page_size, len(documents) > page_size)


def get_approval(platform: Platform, principal: Principal, request_id: str) -> dict:
    """Raises: PermissionDeniedError, ApprovalNotFoundError."""
    require(principal, Permission.APPROVE)
    return _load(platform, request_id)


def expire_due(platform: Platform, principal: Principal) -> list[str]:
    """Expire every pending request past its time (runs close hooks), and finish close hooks
    a crash interrupted. Returns the ids it expired."""
    if principal.role is not Role.SYSTEM:
        require(principal, Permission.APPROVE)
    collection = platform.store.collection(COLLECTION)
    due = collection.find({"state": "pending", "expires_at": {"$lte": platform.clock.now()}}, limit=RESUME_BATCH_MAX)
    expired = []
    for document in due:
        if _expire_if_due(platform, principal, document)["state"] == "expired":
            expired.append(document["_id"])
    for state, action in (("expired", "expired"), ("rejected", "rejected")):  # close hooks a crash cut short
        for document in collection.find({"state": state, "close_done": False}, limit=RESUME_BATCH_MAX):
            _close(platform, principal, document, action)
    return expired


def resume_approved(
    platform: Platform, principal: Principal, stale_after: timedelta = EXECUTION_STALE_AFTER
) -> list[str]:
    """Finish what a crash interrupted: requests with enough approvals still pending, and
    approved requests without a result whose execution claim is older than `stale_after`.
    Returns the ids it looked at."""
    if principal.role is not Role.SYSTEM:
        require(principal, Permission.APPROVE)
    collection = platform.store.collection(COLLECTION)
    documents = collection.find({"state": "approved", "result": None}, limit=RESUME_BATCH_MAX)
    documents += [d for d in collection.find({"state": "pending"}, limit=RESUME_BATCH_MAX) if _unfinished(d)]
    return [_finish(platform, principal, document, stale_after)["_id"] for document in documents]


def _audit(
    platform: Platform, principal: Principal, document: dict, action: str, *, key_suffix: str, data: Any
) -> None:
    user = (document.get("payload") or {}).get("user_id")
    platform.ledger.audit.append(
        type=f"approval.{action}",
        actor=principal.name,
        role=principal.role.value,
        target=document["_id"],
        user=user if isinstance(user, str) else None,
        before=None,
        after={"state": document["state"]},
        data=data,
        event_key=f"approval:{document['_id']}:{key_suffix}",
    )
