"""Deposits: chain/provider notices credited once confirmations reach the asset's minimum;
manual deposits (e.g. a bank transfer in GBP) only through an approval.

State document in `deposits`, keyed by the natural key (provider + payment id, or chain
txid:vout): `confirming` → `credited`. A notice may arrive any number of times with any
confirmation count (counts only ever go up, `$max`); the credit entry's key is
`deposit:<id>:credit`, so the user is credited exactly once however often and in
whatever order notices arrive, and a crash between the entry and the transition is
finished by the next notice or by `resume_deposit`.
"""

from __future__ import annotations

from core.platform.boundary import boundary
from core.ledger import accounts as acct
from core import approvals
from core.approvals import ApprovalRequest
from core.ledger import Entry
from core.base.errors import InvalidFlowInputError
from core.flows.common import check_text, flow_id, insert_or_existing, load, step, stored, transfer
from core.flows.documents import Deposit
from core.flows.states import DEPOSITS
from core.ledger import from_minor, positive_amount
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

COLLECTION = DEPOSITS
MANUAL_KIND = "deposit.manual"
CONFIRMATIONS_MAX = 1_000_000


def chain_payment_id(txid: str, vout: int) -> str:
    """The natural key of an on-chain deposit: transaction id and output index."""
    if isinstance(vout, bool) or not isinstance(vout, int) or vout < 0:
        raise InvalidFlowInputError("vout must be a non-negative integer", vout=repr(vout))
    return f"{check_text(txid, 'txid')}:{vout}"


@boundary
def record_deposit(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    asset: str,
    amount: object,
    provider: str,
    payment_id: str,
    confirmations: int,
    idempotency_key: str,
) -> dict:
    """Record a provider or chain notice and credit the user once it is confirmed enough.

    The deposit is identified by (provider, payment_id); `idempotency_key` is kept for the
    trail. Returns the deposit document (`confirming` or `credited`).
    Raises: PermissionDeniedError, amount errors, InvalidFlowInputError,
        IdempotencyConflictError (same payment id, different user/asset/amount).
    """
    require(principal, Permission.MOVE_MONEY)
    provider, payment_id = check_text(provider, "provider"), check_text(payment_id, "payment_id")
    if (
        isinstance(confirmations, bool)
        or not isinstance(confirmations, int)
        or not (0 <= confirmations <= CONFIRMATIONS_MAX)
    ):
        raise InvalidFlowInputError(
            f"confirmations must be an integer 0..{CONFIRMATIONS_MAX}", value=repr(confirmations)
        )
    value = positive_amount(amount, asset, platform.registry)
    collection = platform.store.collection(COLLECTION)
    document = Deposit(
        id=flow_id("dep", provider, payment_id),
        idempotency_key=idempotency_key,
        provider=provider,
        payment_id=payment_id,
        user=user_id,
        asset=asset,
        amount_minor=value.minor,
        confirmations=confirmations,
        confirmations_required=platform.config.confirmations_for(asset),
        state="confirming",
        created_at=platform.clock.now(),
        credit_entry_id=None,
    )
    document, _ = insert_or_existing(collection, document, ("provider", "payment_id", "user", "asset", "amount_minor"))
    if confirmations > document.confirmations:
        document = stored(collection, collection.find_one_and_update({"_id": document.id},
                                                                     {"$max": {"confirmations": confirmations}}))
    return _drive(platform, principal, document).to_document()


def _drive(platform: Platform, principal: Principal, document: Deposit) -> Deposit:
    if document.state != "confirming" or document.confirmations < document.confirmations_required:
        return document
    entry = _credit(platform, principal, document)
    return step(
        platform, principal, platform.store.collection(COLLECTION), document, "credited",
        allowed_from=("confirming",), what="deposit", user=document.user,
        extra={"credit_entry_id": entry.id, "credited_at": platform.clock.now()},
    )


def _credit(platform: Platform, principal: Principal, document: Deposit) -> Entry:
    asset = document.asset
    return transfer(
        platform, principal, key=f"deposit:{document.id}:credit", entry_type="deposit.credit",
        flow_ref=document.id, memo=f"{document.provider} {document.payment_id}", metadata={
            "deposit_id": document.id,
            "payment_id": document.payment_id[:200],
            "confirmations_required": document.confirmations_required,
        },  # fixed: replays must hash alike
        source=acct.external(asset), destination=acct.user_available(document.user, asset),
        value=from_minor(document.amount_minor, asset, platform.registry),
    )


@boundary
def resume_deposit(platform: Platform, principal: Principal, deposit_id: str) -> dict:
    """Finish a deposit whose credit a crash interrupted. Raises: FlowNotFoundError."""
    require(principal, Permission.MOVE_MONEY)
    return _drive(platform, principal, load(platform.store.collection(COLLECTION), deposit_id, "deposit")).to_document()


@boundary
def request_manual_deposit(
    platform: Platform,
    principal: Principal,
    *,
    user_id: str,
    asset: str,
    amount: object,
    reference: str,
    reason: str,
    idempotency_key: str,
) -> dict:
    """Ask for a manual credit (a bank transfer seen on the statement): an approval request
    of kind `deposit.manual`; the user is credited when a different admin approves.

    Returns: the approval document. Raises: PermissionDeniedError, amount errors,
        ReasonRequiredError, IdempotencyConflictError.
    """
    require(principal, Permission.REQUEST_TREASURY)
    value = positive_amount(amount, asset, platform.registry)
    return approvals.request_approval(
        platform,
        principal,
        kind=MANUAL_KIND,
        asset=asset,
        amount_minor=value.minor,
        idempotency_key=idempotency_key,
        payload={
            "user_id": user_id,
            "asset": asset,
            "amount_minor": value.minor,
            "reference": check_text(reference, "reference"),
        },
        reason=reason,
    )


def _execute_manual(platform: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
    payload = approval.payload
    entry = transfer(
        platform, principal, key=approvals.execution_key(approval.id), entry_type="deposit.manual",
        flow_ref=approval.id, memo=f"manual deposit {payload['reference']}", metadata={
            "approval_id": approval.id,
            "reference": payload["reference"],
            "requested_by": approval.requested_by,
        },
        source=acct.external(payload["asset"], "bank"), destination=acct.user_available(payload["user_id"], payload["asset"]),
        value=from_minor(payload["amount_minor"], payload["asset"], platform.registry),
    )
    return {"entry_id": entry.id}


approvals.register_executor(MANUAL_KIND, _execute_manual)
