"""Maker-checker approvals (SPEC §7), enforced in core.

A request is a document in `approvals`:
`{_id, idempotency_key, request_hash, kind, state: pending|approved|rejected|expired,
requested_by, requested_role, requested_at, expires_at, payload, asset, amount_minor,
approvals_required, approvals: [{by, role, at, reason}], reason (why it was requested),
rejected_by, rejected_at, rejection_reason, approved_at, result, close_done}`, typed by
`core.approvals.model.ApprovalRequest`, the one place it is converted to and from the store.

Rules: the requester never approves their own request; amounts above the second threshold
need two distinct approvers; requests expire (clock); a reject needs a reason.

State changes (docs/flows.md, "Approvals"): every change is one compare-and-set whose
filter names the expected state and the decision's preconditions — a vote
(`approvals.<n>` absent/present, voter not yet among them; the completing vote also
moves pending → approved), a rejection (pending), an expiry (pending, `expires_at` due),
the result (approved, `result: None`) — and carries its audit event in the same update
(core.platform.transitions outbox, keys `approval:<id>:requested|approve:<who>|rejected|expired|
executed`), so no change exists without its event and a loser gets the named error of
the winning decision.

Execution: other modules plug kinds in with `register_executor(kind, fn)`. Executors only
post entries whose idempotency keys derive from the request id, so executing twice —
concurrent approvers, a recovery, a process whose clock runs ahead — is a replay, never
a second effect; nothing depends on clocks or claims. A crash anywhere is finished by
calling `approve` again, `resume_approved` or `python -m core flows recover`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.ledger.arguments import refuse
from core.platform.boundary import boundary, register_check
from core.base.errors import (
    ApprovalNotFoundError,
    BrokenInvariantError,
    FloatAmountError,
    IdempotencyConflictError,
    InvalidArgumentError,
    InvalidEntryError,
    ReasonRequiredError,
    UnknownApprovalKindError,
)
from core.ledger import canonical, digest
from core.ledger import amount as make_amount
from core.base.permissions import Permission, Principal, require
from core.platform import transitions
from core.platform import Platform
from core.ledger import DuplicateKeyStoreError
from core.approvals.model import APPROVERS_MAX, ApprovalRequest

COLLECTION = "approvals"
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}\Z")
REASON_LENGTH_MAX = 500
PAYLOAD_SIZE_MAX = 8_000  # bytes of canonical JSON
RESUME_BATCH_MAX = 500

Executor = Callable[[Platform, ApprovalRequest, Principal], dict]
CloseHook = Callable[[Platform, ApprovalRequest, Principal], None]


def typed_request(value: object, name: str) -> None:
    """The boundary's check of an executor's `approval`: a typed request, re-validated (one
    built around validation — `model_construct` — is refused like any malformed value)."""
    if not isinstance(value, ApprovalRequest):
        refuse(name, value, "an ApprovalRequest", InvalidArgumentError)
    assert isinstance(value, ApprovalRequest)
    try:
        ApprovalRequest.model_validate(value.model_dump(by_alias=True))
    except (ValidationError, TypeError, ValueError):
        refuse(name, value, "a valid ApprovalRequest", InvalidArgumentError)


register_check("approval", typed_request)  # what executors and close hooks receive


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str
    execute: Executor
    on_close: CloseHook | None  # runs when a request is rejected or expires (e.g. release a hold)
    permission: Permission  # what a principal needs to *request* this kind


_EXECUTORS: dict[str, ExecutorSpec] = {}  # filled by the modules that own each kind, when they are imported


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
    receives the typed request (core.approvals.model.ApprovalRequest), must be idempotent
    (derive entry keys from `approval.id`) and returns a JSON-able dict stored as the
    request's `result`; `on_close` receives the same. Re-registering a kind replaces it.

    The permission to *request* defaults by prefix: `repair.*` REQUEST_REPAIR,
    `legacy.*` MANAGE_LEGACY, anything else REQUEST_TREASURY."""
    if not KIND_PATTERN.match(kind):
        raise InvalidEntryError(f"approval kind {kind!r} must be dotted lower-case words", kind=kind)
    _EXECUTORS[kind] = ExecutorSpec(kind, fn, on_close, permission or _default_permission(kind))


def registered_kinds() -> list[str]:
    return sorted(_EXECUTORS)


def _spec(kind: object) -> ExecutorSpec:
    """The executor of `kind`. The owners register on import: the flows (`core.flows`), the
    projection repair (`core.integrity.repairs`) and the legacy rebuild
    (`core.legacy.rebuild`); every entry point (app.py, core.cli, the flow runner, the test
    suite) imports all three. Raises: UnknownApprovalKindError."""
    if not isinstance(kind, str) or kind not in _EXECUTORS:
        raise UnknownApprovalKindError(f"no executor for approval kind {kind!r}", kind=repr(kind))
    return _EXECUTORS[kind]


# -- requesting ---------------------------------------------------------------------------
@boundary
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
    except BrokenInvariantError:
        raise FloatAmountError("approval payload contains a float; give amounts as decimal text") from None
    except TypeError as error:
        raise InvalidEntryError(f"approval payload is not JSON: {error}") from None
    if size > PAYLOAD_SIZE_MAX:
        raise InvalidEntryError(f"approval payload larger than {PAYLOAD_SIZE_MAX} bytes", size=size)
    return payload


def _check_request(platform: Platform, reason: str, payload: dict, asset: str | None) -> tuple[str, dict]:
    """What the boundary's form checks (key, amount_minor, types) leave to check: a reason
    given, a payload small and JSON-able, a known asset. Returns (reason, payload). Raises:
    ReasonRequiredError, InvalidEntryError, FloatAmountError, UnknownAssetError."""
    reason = check_reason(reason, "an approval request")
    payload = _check_payload(payload)
    if asset is not None:
        platform.registry.get(asset)
    return reason, payload


@boundary
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
    reason, payload = _check_request(platform, reason, payload, asset)
    required = approvals_required or approvals_required_for(platform, asset, amount_minor)
    assert 1 <= required <= APPROVERS_MAX
    fingerprint = digest({"kind": kind, "payload": payload, "asset": asset, "amount_minor": amount_minor})
    now = platform.clock.now()
    request = ApprovalRequest.opened(
        request_id="apr_" + digest({"key": idempotency_key})[:24], idempotency_key=idempotency_key,
        request_hash=fingerprint, kind=kind, requested_by=principal.name, requested_role=principal.role.value,
        requested_at=now, expires_at=now + platform.config.approval_ttl, payload=payload, asset=asset,
        amount_minor=amount_minor, approvals_required=required, reason=reason,
    )  # fmt: skip
    document = request.to_document()
    document[transitions.OUTBOX] = [_event(principal, request, "requested", "requested", None, "pending", {
        "kind": kind, "asset": asset, "amount_minor": amount_minor, "approvals_required": required, "reason": reason,
    })]  # the request and its audit event are one insert
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
    return transitions.flush(platform.ledger.audit, collection, document)


def _requester(open_: Callable[..., dict]) -> Callable[..., dict]:
    """`open_request` behind the requester's permission check, and without its
    `approvals_required` (for a requester the thresholds decide): one argument list, kept
    by `open_request`'s signature."""
    def request_approval(platform: Platform, principal: Principal, **request: Any) -> dict:
        """Open a maker-checker request (idempotent on `idempotency_key`).

        Returns: the approval document (the original one on a replay).
        Raises: PermissionDeniedError, UnknownApprovalKindError, ReasonRequiredError,
            InvalidEntryError/FloatAmountError (payload), UnknownAssetError,
            IdempotencyConflictError (same key, different request).
        """
        require(principal, _spec(request["kind"]).permission)
        return open_.__wrapped__(platform, principal, **request)  # its arguments were checked by this boundary

    signature = inspect.signature(open_)
    request_approval.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in signature.parameters.items() if name != "approvals_required"])
    return boundary(request_approval)


request_approval = _requester(open_request)


def request_by_key(platform: Platform, idempotency_key: str) -> dict | None:
    """The request opened under `idempotency_key`, or None (one read of the unique key
    index). For requesters that check a precondition only on a first request, never on a
    replay (core.flows.treasury). The key was checked by the caller's boundary."""
    return platform.store.collection(COLLECTION).find_one({"idempotency_key": idempotency_key})


# -- reading and changing one request ---------------------------------------------------
def _find(platform: Platform, request_id: object) -> dict:
    """The stored document of a request (ids are plain text only: no operator can be
    injected). Raises: ApprovalNotFoundError."""
    document = None
    if isinstance(request_id, str):
        document = platform.store.collection(COLLECTION).find_one({"_id": request_id})
    if document is None:
        raise ApprovalNotFoundError(f"no approval request {request_id!r}", request_id=repr(request_id))
    return document


def _load(platform: Platform, request_id: object) -> ApprovalRequest:
    """The request as stored. Raises: ApprovalNotFoundError, MalformedDocumentError."""
    return ApprovalRequest.from_document(_find(platform, request_id))


def _flushed(platform: Platform, document: dict) -> ApprovalRequest:
    """A stored request with any audit event a crash left in its outbox appended."""
    collection = platform.store.collection(COLLECTION)
    return ApprovalRequest.from_document(transitions.flush(platform.ledger.audit, collection, document))


def _current(platform: Platform, request_id: object) -> ApprovalRequest:
    """The request as stored, its outbox flushed (`_flushed`)."""
    return _flushed(platform, _find(platform, request_id))


def _change(platform: Platform, query: dict, update: dict, event: dict) -> ApprovalRequest | None:
    """One compare-and-set on a request with its audit event (core.platform.transitions).
    Returns the request after it, or None when the filter matched nothing."""
    changed = transitions.change_and_flush(
        platform.ledger.audit, platform.store.collection(COLLECTION), query, update, event
    )
    return None if changed is None else ApprovalRequest.from_document(changed)


def _event(principal: Principal, request: ApprovalRequest, action: str, key_suffix: str, before: str | None,
           after: str, data: Any) -> dict:
    """The audit event of one change of a request, keyed `approval:<id>:<key_suffix>`."""
    return transitions.event(
        key=f"approval:{request.id}:{key_suffix}", type=f"approval.{action}", actor=principal.name,
        role=principal.role.value, target=request.id, user=request.user,
        before={"state": before} if before else None, after={"state": after}, data=data,
    )
