"""The approval request document as a typed model: the one place it is converted to and
from the store (`ApprovalRequest.from_document`, `to_document`, core.platform.documents).

The fields are those of the store format described in core.approvals.requests; a request
gains `expired_at`/`expired_by` when it expires and `executed_at`/`executed_by` when its
result is recorded, and requests stored by an older layout may carry
`execution_claimed_by`. Those are absent until then, and stay absent on the way back.

Executors and close hooks still receive the document (a dict: `approval["_id"]`,
`approval["payload"]`), and the public functions still return it: the model is how the
approvals package reads and writes its own state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, Field

from core.platform.documents import DOCUMENT_CONFIG, Items, StoredDocument

APPROVERS_MAX = 2
State = Literal["pending", "approved", "rejected", "expired"]
STATES: tuple[str, ...] = get_args(State)


class Vote(BaseModel):
    """One approval of a request: who, in which role, when and why."""

    model_config = DOCUMENT_CONFIG

    by: str
    role: str
    at: datetime
    reason: str


class ApprovalRequest(StoredDocument):
    """A maker-checker request (SPEC §7) as `approvals` stores it."""

    what: ClassVar[str] = "approval request"

    idempotency_key: str
    request_hash: str
    kind: str
    state: State
    requested_by: str
    requested_role: str
    requested_at: datetime
    expires_at: datetime
    payload: dict[str, Any]
    asset: str | None
    amount_minor: int | None
    approvals_required: int = Field(ge=1, le=APPROVERS_MAX)
    approvals: Items[Vote]
    reason: str
    rejected_by: str | None
    rejected_at: datetime | None
    rejection_reason: str | None
    approved_at: datetime | None
    result: dict[str, Any] | None
    close_done: bool
    # set by later changes, absent before them
    expired_at: datetime | None = None
    expired_by: str | None = None
    executed_at: datetime | None = None
    executed_by: str | None = None
    execution_claimed_by: str | None = None  # an older layout's executor claim, read by the history only

    @classmethod
    def opened(
        cls, *, request_id: str, idempotency_key: str, request_hash: str, kind: str, requested_by: str,
        requested_role: str, requested_at: datetime, expires_at: datetime, payload: dict, asset: str | None,
        amount_minor: int | None, approvals_required: int, reason: str,
    ) -> ApprovalRequest:
        """A new pending request, every field of the opening layout set (so all are written)."""
        return cls(
            _id=request_id, idempotency_key=idempotency_key, request_hash=request_hash, kind=kind, state="pending",
            requested_by=requested_by, requested_role=requested_role, requested_at=requested_at,
            expires_at=expires_at, payload=payload, asset=asset, amount_minor=amount_minor,
            approvals_required=approvals_required, approvals=(), reason=reason, rejected_by=None,
            rejected_at=None, rejection_reason=None, approved_at=None, result=None, close_done=False,
        )

    @property
    def user(self) -> str | None:
        """The user the request is about (`payload.user_id`), for its audit events."""
        user = self.payload.get("user_id")
        return user if isinstance(user, str) else None

    def voted(self, name: str) -> bool:
        """Whether `name` is among the approvers."""
        return any(vote.by == name for vote in self.approvals)

    @property
    def unfinished(self) -> bool:
        """Enough approvals but not yet approved (a request stored before votes completed it
        atomically), or approved but not yet executed."""
        if self.state == "pending":
            return len(self.approvals) >= self.approvals_required
        return self.state == "approved" and self.result is None

    @property
    def closed_without_hook(self) -> bool:
        """Rejected or expired, and its kind's close hook not yet known to have run."""
        return self.state in ("expired", "rejected") and not self.close_done
