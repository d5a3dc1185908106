"""Maker-checker approvals (SPEC §7), enforced in core: `requests` opens them and holds the
executor registry (each kind's owner registers what an approved request does), `decisions`
approves, rejects, expires and resumes them, `view` is the read side the console shows,
`model` is the typed request those three read and write (converted to and from the store
there only; the functions below take and return the stored document, and executors and
close hooks receive the typed request).

The rest of the product imports only these names."""

from core.approvals.decisions import (
    approve,
    execution_key,
    expire_due,
    flush_waiting_events,
    get_approval,
    list_approvals,
    reject,
    resume_approved,
)
from core.approvals.model import ApprovalRequest
from core.approvals.requests import (
    COLLECTION,
    REASON_LENGTH_MAX,
    approvals_required_for,
    check_reason,
    open_request,
    register_executor,
    registered_kinds,
    request_approval,
    request_by_key,
)

__all__ = [
    "COLLECTION",
    "ApprovalRequest",
    "REASON_LENGTH_MAX",
    "approvals_required_for",
    "approve",
    "check_reason",
    "execution_key",
    "expire_due",
    "flush_waiting_events",
    "get_approval",
    "list_approvals",
    "open_request",
    "register_executor",
    "registered_kinds",
    "reject",
    "request_approval",
    "request_by_key",
    "resume_approved",
]
