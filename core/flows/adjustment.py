"""Admin adjustments: credit or debit a user against `platform.adjustments`, with a
reason, only through a maker-checker approval (kind `adjustment`).

The entry (type `adjustment.credit` / `adjustment.debit`, key
`approval:<request id>:execute`) is posted by the approval executor, so it happens once
however often the approval is resumed. A debit larger than the user's available
balance is refused by the ledger and recorded as the request's failed result.
"""

from __future__ import annotations

from core.platform.boundary import boundary
from core.ledger import accounts as acct
from core import approvals
from core.approvals import ApprovalRequest
from core.flows.common import transfer
from core.base.errors import NonPositiveAmountError
from core.ledger import amount as make_amount
from core.ledger import from_minor
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

KIND = "adjustment"


@boundary
def request_adjustment(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    asset: str,
    amount: object,
    reason: str,
    idempotency_key: str,
) -> dict:
    """Ask to credit (positive `amount`) or debit (negative) a user. Returns the approval.
    Raises: PermissionDeniedError, amount errors (zero refused), ReasonRequiredError,
        IdempotencyConflictError."""
    require(principal, Permission.REQUEST_TREASURY)
    value = make_amount(amount, asset, platform.registry)
    if value.is_zero():
        raise NonPositiveAmountError("an adjustment of zero changes nothing", asset=asset)
    return approvals.request_approval(
        platform,
        principal,
        kind=KIND,
        asset=asset,
        amount_minor=value.minor,
        idempotency_key=idempotency_key,
        payload={"user_id": user_id, "asset": asset, "amount_minor": value.minor},
        reason=reason,
    )


def _execute(platform: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
    payload = approval.payload
    value = from_minor(payload["amount_minor"], payload["asset"], platform.registry)
    entry = transfer(
        platform, principal, key=approvals.execution_key(approval.id),
        entry_type="adjustment.credit" if value.minor > 0 else "adjustment.debit", flow_ref=approval.id,
        memo=approval.reason, metadata={
            "approval_id": approval.id,
            "requested_by": approval.requested_by,
            "approved_by": ",".join(a.by for a in approval.approvals),
        },
        source=acct.adjustments(payload["asset"]), destination=acct.user_available(payload["user_id"], payload["asset"]),
        value=value,
    )
    return {"entry_id": entry.id}


approvals.register_executor(KIND, _execute)
