"""Approval-gated repairs of balance projections (SPEC §8: "nothing is repaired silently").

`request_projection_repair` opens a maker-checker request of kind "repair.projection";
once approved, its executor rebuilds the projection from the journal with one conditional
update (guarded on the balance and in-flight markers it read, so a posting landing
meanwhile is never overwritten) and records before/after in the audit chain first.
"""

from __future__ import annotations

from core.validation import boundary
from core import approvals
from core.ledger import parse_account_id
from core.errors import RepairAlreadyRequestedError, RepairNotNeededError, StoreError
from core.permissions import Permission, Principal, require
from core.platform import Platform
from core.ledger import scan
from core.ledger import DuplicateKeyStoreError, Store

REPAIR_ATTEMPTS_MAX = 20
REPAIR_KIND = "repair.projection"


def journal_balance(store: Store, account_id: str, balance_document: dict | None) -> int:
    """What the projection of `account_id` should hold: applied postings plus the legs of
    in-flight entries it has already absorbed (their marker is in its `pending` list)."""
    absorbed = set((balance_document or {}).get("pending", []))
    total = 0
    for entry in scan(store.collection("entries"), {"accounts": account_id}):
        if entry.get("state") == "applied" or entry["_id"] in absorbed:
            total += sum(p["amount_minor"] for p in entry.get("postings", []) if p.get("account") == account_id)
    return total


@boundary
def request_projection_repair(platform: Platform, principal: Principal, account_id: str, reason: str) -> dict:
    """Ask for a projection to be rebuilt from the journal (maker-checker).

    Returns: the approval document. Raises: PermissionDeniedError, InvalidAccountError,
        RepairNotNeededError (the projection already agrees), ReasonRequiredError,
        RepairAlreadyRequestedError (another person's request for it is pending: never
        silently hand back someone else's request).
    """
    require(principal, Permission.REQUEST_REPAIR)
    account = parse_account_id(account_id)
    document = platform.store.collection("balances").find_one({"_id": account.id})
    actual = document["balance_minor"] if document else 0
    expected = journal_balance(platform.store, account.id, document)
    if actual == expected:
        raise RepairNotNeededError(f"{account.id} already equals the journal ({actual})", account=account.id)
    waiting = platform.store.collection(approvals.COLLECTION).find_one(
        {"kind": REPAIR_KIND, "state": "pending", "payload.account": account.id}, sort=[("requested_at", -1)])
    if waiting is not None and waiting["requested_by"] != principal.name:
        raise RepairAlreadyRequestedError(
            f"{waiting['requested_by']} already asked for this repair ({waiting['_id']}); it is waiting for approval",
            request_id=waiting["_id"], requested_by=waiting["requested_by"], account=account.id)
    return approvals.request_approval(
        platform,
        principal,
        kind=REPAIR_KIND,
        asset=account.asset,
        amount_minor=abs(actual - expected),
        payload={"account": account.id, "actual_minor": actual, "expected_minor": expected},
        idempotency_key=f"{REPAIR_KIND}:{account.id}:{actual}:{expected}:{principal.name}",  # per requester
        reason=reason,
    )


@boundary
def execute_projection_repair(platform: Platform, approval: dict, principal: Principal) -> dict:
    """The executor of "repair.projection": set the projection to the journal's balance.

    The audit event (keyed by the approval) is written first, then one conditional update
    guarded on the balance and markers read, so a posting that lands meanwhile is never
    overwritten (the attempt is retried on the new state). Re-running is a no-op.
    Raises: InvalidAccountError, StoreError when contended for REPAIR_ATTEMPTS_MAX tries.
    """
    account = parse_account_id(approval["payload"]["account"])
    balances = platform.store.collection("balances")
    for _ in range(REPAIR_ATTEMPTS_MAX):
        document = balances.find_one({"_id": account.id})
        before = document["balance_minor"] if document else 0
        after = journal_balance(platform.store, account.id, document)
        if before == after:
            return {"account": account.id, "before_minor": before, "after_minor": after, "changed": False}
        platform.ledger.audit.append(
            type="repair.projection",
            actor=principal.name,
            role=principal.role.value,
            target=account.id,
            user=account.owner if account.is_user else None,
            before={"balance_minor": before},
            after={"balance_minor": after},
            data={"approval_id": approval["_id"], "difference_minor": after - before},
            event_key=f"repair:{approval['_id']}",
        )
        if document is None:
            try:
                balances.insert_one(
                    {
                        "_id": account.id,
                        "kind": account.kind.value,
                        "owner": account.owner,
                        "asset": account.asset,
                        "balance_minor": after,
                        "pending": [],
                    }
                )
                return {"account": account.id, "before_minor": before, "after_minor": after, "changed": True}
            except DuplicateKeyStoreError:
                continue
        guard = {"_id": account.id, "balance_minor": before}
        if "pending" in document:
            guard["pending"] = document["pending"]
        if balances.find_one_and_update(guard, {"$set": {"balance_minor": after}}) is not None:
            return {"account": account.id, "before_minor": before, "after_minor": after, "changed": True}
    raise StoreError(f"repair of {account.id} stayed contended", account=account.id)


approvals.register_executor(REPAIR_KIND, execute_projection_repair)
