"""Approval-gated repairs of balance projections (SPEC §8: "nothing is repaired silently").

`request_projection_repair` opens a maker-checker request of kind "repair.projection";
once approved, its executor sets the projection to the head of the account's chain in the
journal (version, balance after, entry hash) with one compare-and-set guarded on the
projection it read, so a posting landing meanwhile is never overwritten, and records
before/after in the audit chain first.
"""

from __future__ import annotations

from core.platform.boundary import boundary
from core import approvals
from core.approvals import ApprovalRequest
from core.ledger import parse_account_id
from core.base.errors import RepairAlreadyRequestedError, RepairNotNeededError, StoreError
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.ledger import scan
from core.ledger import DuplicateKeyStoreError, Store

REPAIR_ATTEMPTS_MAX = 20
REPAIR_KIND = "repair.projection"


def journal_head(store: Store, account_id: str) -> tuple[int, int, str]:
    """The head of the account's chain in the journal: (version, balance after it, its
    entry hash); (0, 0, genesis) for an account with no entries. Reads the account's entries."""
    version, balance, head_hash = 0, 0, "0" * 64
    for entry in scan(store.collection("entries"), {"accounts": account_id}):
        for posting in entry.get("postings", []):
            if posting.get("account") == account_id and isinstance(posting.get("version"), int) and posting["version"] > version:
                version, balance, head_hash = posting["version"], posting.get("balance_after", 0), entry.get("entry_hash")
    return version, balance, head_hash


def journal_balance(store: Store, account_id: str, balance_document: dict | None = None) -> int:
    """What the projection of `account_id` should hold: the balance after its newest entry."""
    return journal_head(store, account_id)[1]


@boundary
def request_projection_repair(platform: Platform, principal: Principal, account_id: str, reason: str) -> dict:
    """Ask for a projection to be rebuilt from the journal (maker-checker).

    Returns: the approval document. Raises: PermissionDeniedError, InvalidAccountError,
        RepairNotNeededError (the projection already agrees), ReasonRequiredError,
        RepairAlreadyRequestedError (another person's request for it is pending: never
        silently hand back someone else's request).
    """
    require(principal, Permission.REQUEST_REPAIR)
    account = parse_account_id(account_id)  # a stored account: a plain id, or one stripe `<id>#k` of a hot account
    document = platform.store.collection("balances").find_one({"_id": account_id})
    actual = document["balance_minor"] if document else 0
    version, expected, head_hash = journal_head(platform.store, account_id)
    if document is not None and (document.get("version"), actual, document.get("head_hash")) == (version, expected, head_hash) \
            or document is None and version == 0:
        raise RepairNotNeededError(f"{account_id} already equals the journal ({actual})", account=account_id)
    waiting = platform.store.collection(approvals.COLLECTION).find_one(
        {"kind": REPAIR_KIND, "state": "pending", "payload.account": account_id}, sort=[("requested_at", -1)])
    if waiting is not None and waiting["requested_by"] != principal.name:
        raise RepairAlreadyRequestedError(
            f"{waiting['requested_by']} already asked for this repair ({waiting['_id']}); it is waiting for approval",
            request_id=waiting["_id"], requested_by=waiting["requested_by"], account=account_id)
    return approvals.request_approval(
        platform,
        principal,
        kind=REPAIR_KIND,
        asset=account.asset,
        amount_minor=abs(actual - expected),
        payload={"account": account_id, "actual_minor": actual, "expected_minor": expected},
        idempotency_key=f"{REPAIR_KIND}:{account_id}:{actual}:{expected}:{principal.name}",  # per requester
        reason=reason,
    )


@boundary
def execute_projection_repair(platform: Platform, approval: ApprovalRequest, principal: Principal) -> dict:
    """The executor of "repair.projection": set the projection to the journal's balance.

    The audit event (keyed by the approval) is written first, then one conditional update
    guarded on the balance and markers read, so a posting that lands meanwhile is never
    overwritten (the attempt is retried on the new state). Re-running is a no-op.
    Raises: InvalidAccountError, StoreError when contended for REPAIR_ATTEMPTS_MAX tries.
    """
    stored = approval.payload["account"]  # the stored account repaired: a plain id or one stripe `<id>#k`
    account = parse_account_id(stored)
    balances = platform.store.collection("balances")
    for _ in range(REPAIR_ATTEMPTS_MAX):
        document = balances.find_one({"_id": stored})
        before = document["balance_minor"] if document else 0
        version, after, head_hash = journal_head(platform.store, stored)
        if document is not None and (document.get("version"), before, document.get("head_hash")) == (version, after, head_hash):
            return {"account": stored, "before_minor": before, "after_minor": after, "changed": False}
        if document is None and version == 0:
            return {"account": stored, "before_minor": 0, "after_minor": 0, "changed": False}
        platform.ledger.audit.append(
            type="repair.projection",
            actor=principal.name,
            role=principal.role.value,
            target=stored,
            user=account.owner if account.is_user else None,
            before={"balance_minor": before, "version": (document or {}).get("version", 0)},
            after={"balance_minor": after, "version": version},
            data={"approval_id": approval.id, "difference_minor": after - before},
            event_key=f"repair:{approval.id}",
        )
        head = {"version": version, "balance_minor": after, "head_hash": head_hash}
        if document is None:
            try:
                balances.insert_one({"_id": stored, "kind": account.kind.value, "owner": account.owner,
                                     "asset": account.asset, **head})
                return {"account": stored, "before_minor": before, "after_minor": after, "changed": True}
            except DuplicateKeyStoreError:
                continue
        guard = {"_id": stored, "version": document.get("version"), "balance_minor": before,
                 "head_hash": document.get("head_hash")}
        if balances.find_one_and_update(guard, {"$set": head}) is not None:
            return {"account": stored, "before_minor": before, "after_minor": after, "changed": True}
    raise StoreError(f"repair of {stored} stayed contended", account=stored)


approvals.register_executor(REPAIR_KIND, execute_projection_repair)
