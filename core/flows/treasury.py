"""Treasury moves, each an approval request executed once by its approver(s):
fee sweep (`platform.fees` → external: the owner takes revenue out), liquidity top-up
(external → `platform.liquidity`) and liquidity withdrawal (float → external).

Only a fee sweep (entry type `treasury.fee_sweep`) and a referral commission ever debit
the fee wallet; top-ups and withdrawals touch only the float, so revenue and float never
mix. Entry keys are `approval:<request id>:execute`.

A fee sweep larger than the fee wallet is refused when it is requested
(SweepExceedsFeeWalletError): its execution would be refused anyway, and a request that can
only fail should not sit in an approver's queue. (The wallet can still shrink between
request and approval — another sweep, a referral payout —; execution then records the
refusal as the request's failed result.) A replay of a request already made is not
checked again: it returns the original, whatever the wallet holds now.
"""

from __future__ import annotations

from collections.abc import Callable

from core.platform.boundary import boundary
from core.ledger import accounts as acct
from core import approvals
from core.approvals import ApprovalRequest
from core.approvals import view as approvals_view
from core.base.errors import SweepExceedsFeeWalletError
from core.flows.common import check_text, transfer
from core.ledger import from_minor, positive_amount
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

# kind → (entry type, source account factory, destination account factory)
MOVES = {
    "treasury.fee_sweep": ("treasury.fee_sweep", acct.fees, lambda asset: acct.external(asset, "treasury")),
    "treasury.liquidity_topup": (
        "treasury.liquidity_topup",
        lambda asset: acct.external(asset, "treasury"),
        acct.liquidity,
    ),
    "treasury.liquidity_withdrawal": (
        "treasury.liquidity_withdrawal",
        acct.liquidity,
        lambda asset: acct.external(asset, "treasury"),
    ),
}


FEE_SWEEP = "treasury.fee_sweep"


def _refuse_sweep_beyond_wallet(platform: Platform, asset: str, amount_minor: int, idempotency_key: str) -> None:
    """Raises: SweepExceedsFeeWalletError when the fee wallet holds less than `amount_minor`,
    unless the request was made already (a replay returns the original, whatever the
    wallet holds now: its key is looked up only then, so a sweep that fits costs one read)."""
    held = platform.ledger.balance(acct.fees(asset)).minor
    if amount_minor > held and approvals.request_by_key(platform, idempotency_key) is None:
        registry = platform.registry
        raise SweepExceedsFeeWalletError(
            f"a fee sweep of {approvals_view.amount_text(amount_minor, asset, registry)} is more than the fee wallet "
            f"holds ({approvals_view.amount_text(held, asset, registry)}): nothing was requested",
            asset=asset, requested_minor=amount_minor, held_minor=held,
        )


def _request(
    platform: Platform,
    principal: Principal,
    kind: str,
    asset: str,
    amount: object,
    reason: str,
    idempotency_key: str,
    destination: str = "",
) -> dict:
    require(principal, Permission.REQUEST_TREASURY)
    value = positive_amount(amount, asset, platform.registry)
    if kind == FEE_SWEEP:
        _refuse_sweep_beyond_wallet(platform, asset, value.minor, idempotency_key)
    payload = {
        "asset": asset,
        "amount_minor": value.minor,
        "destination": check_text(destination, "destination", required=False),
    }
    return approvals.request_approval(
        platform,
        principal,
        kind=kind,
        asset=asset,
        amount_minor=value.minor,
        idempotency_key=idempotency_key,
        payload=payload,
        reason=reason,
    )


def _request_with_destination(kind: str, name: str, doc: str) -> Callable[..., dict]:
    """The public request of a treasury move of `kind` that names where the money goes
    (`destination`): one body for the fee sweep and the liquidity withdrawal."""
    def request(platform: Platform, principal: Principal, *, asset: str, amount: object, reason: str,
                idempotency_key: str, destination: str = "") -> dict:
        return _request(platform, principal, kind, asset, amount, reason, idempotency_key, destination)

    request.__name__ = request.__qualname__ = name
    request.__doc__ = doc
    return boundary(request)


request_fee_sweep = _request_with_destination(
    FEE_SWEEP, "request_fee_sweep",
    """Ask to move fee revenue out to the owner. Returns the approval document.
    Raises: PermissionDeniedError, amount errors, SweepExceedsFeeWalletError (more than the
        fee wallet holds now), ReasonRequiredError, IdempotencyConflictError.""")
request_liquidity_withdrawal = _request_with_destination(
    "treasury.liquidity_withdrawal", "request_liquidity_withdrawal",
    """Ask to take funds out of the float. Returns the approval document. Raises: as request_fee_sweep.""")


@boundary
def request_liquidity_topup(
    platform: Platform, principal: Principal, *, asset: str, amount: object, reason: str, idempotency_key: str
) -> dict:
    """Ask to add funds to the float. Returns the approval document. Raises: as request_fee_sweep."""
    return _request(platform, principal, "treasury.liquidity_topup", asset, amount, reason, idempotency_key)


def _executor(kind: str):
    entry_type, source_of, destination_of = MOVES[kind]

    def execute(platform: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
        payload = approval.payload
        asset = payload["asset"]
        entry = transfer(
            platform, principal, key=approvals.execution_key(approval.id), entry_type=entry_type,
            flow_ref=approval.id, memo=approval.reason, metadata={
                "approval_id": approval.id,
                "requested_by": approval.requested_by,
                "destination": payload.get("destination") or None,
            },
            source=source_of(asset), destination=destination_of(asset),
            value=from_minor(payload["amount_minor"], asset, platform.registry),
        )
        return {"entry_id": entry.id}

    return execute


for _kind in MOVES:
    approvals.register_executor(_kind, _executor(_kind))
