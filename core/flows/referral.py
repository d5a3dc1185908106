"""Referral commission: a tier's share of a fee moves fees → referrer, once per source fee.

The source is a fee-bearing entry (metadata `fee_minor`, `fee_asset`, `fee_payer`). The
commission entry's idempotency key is `referral:<source entry id>`, so however often a
flow (or a recovery, or an operator) asks, it is paid exactly once. Referral data comes
from the exchange's `user_accounts` collection (`user_id`, `referred_by`,
`referral_tier`), read-only. The commission is rounded DOWN (the platform's favour).
"""

from __future__ import annotations

from decimal import Decimal

from core.platform.boundary import boundary, internal
from core.ledger import accounts as acct
from core.ledger import Entry, make_request
from core.base.errors import AmountTooSmallError, InsufficientFundsError, InvalidAccountError, NoReferrerError
from core.flows.common import convert_down, stored
from core.flows.documents import HoldingFlow
from core.ledger import from_minor
from core.base.permissions import Permission, Principal, require
from core.platform import transitions
from core.platform import Platform

ENTRY_TYPE = "referral.commission"
NO_REFERRER_VALUES = frozenset({"", "None", "none", "null"})


@boundary
def referrer_of(platform: Platform, user_id: str) -> tuple[str, str] | None:
    """(referrer id, tier) from `user_accounts`, or None when the user has no usable referrer."""
    return _referrer_of(platform, user_id)


def _referrer_of(platform: Platform, user_id: str) -> tuple[str, str] | None:
    """`referrer_of` of a user id already checked (a fee payer the ledger recorded)."""
    record = platform.store.collection("user_accounts").find_one({"user_id": user_id})
    referrer = (record or {}).get("referred_by")
    if not isinstance(referrer, str) or referrer in NO_REFERRER_VALUES or referrer == user_id:
        return None
    try:
        acct.check_owner_id(referrer)
    except InvalidAccountError:
        return None
    tier = record.get("referral_tier")
    return referrer, tier if isinstance(tier, str) and tier else "standard"


@boundary
def pay_referral_commission(platform: Platform, principal: Principal, source_entry_id: str) -> Entry:
    """Pay the referrer of the fee payer of `source_entry_id` their tier's share of that fee.

    Returns: the commission entry (the original one when already paid).
    Raises: PermissionDeniedError, EntryNotFoundError, NoReferrerError (no fee or no
        referrer), AmountTooSmallError (the share rounds down to zero),
        InsufficientFundsError (the fee wallet no longer holds it; nothing is journaled).
    """
    require(principal, Permission.MOVE_MONEY)
    return _pay(platform, principal, platform.ledger.entry(source_entry_id))


def _pay(platform: Platform, principal: Principal, source: Entry) -> Entry:
    """The payment itself; flows call it on behalf of whoever moved the money (an admin
    resolving a dispute has no MOVE_MONEY, yet the commission is still owed).
    The referrer is read first: most payers have none, and then nothing else is read."""
    source_entry_id = source.id
    fee, asset, payer = (
        source.metadata.get("fee_minor"),
        source.metadata.get("fee_asset"),
        source.metadata.get("fee_payer"),
    )
    if (
        source.state != "applied"
        or not isinstance(fee, int)
        or fee <= 0
        or not isinstance(asset, str)
        or not isinstance(payer, str)
    ):
        raise NoReferrerError(f"entry {source_entry_id} carries no fee", entry_id=source_entry_id)
    found = _referrer_of(platform, payer)
    if found is None:
        raise NoReferrerError(f"{payer} has no referrer", user_id=payer)
    existing = platform.ledger.entry_by_key(f"referral:{source.id}")
    if existing is not None and existing.state == "applied":
        return existing
    referrer, tier = found
    rate = platform.config.referral_rate(tier)
    commission = convert_down(fee, rate, 0, 0)
    if commission <= 0:
        raise AmountTooSmallError(f"a {rate} share of {fee} minor units rounds to zero", fee_minor=fee, rate=str(rate))
    fee_wallet = acct.fees(asset)  # the engine refuses (nothing journaled) when the wallet is short
    value = from_minor(commission, asset, platform.registry)
    return platform.ledger.post(
        make_request(
            idempotency_key=f"referral:{source.id}",
            type=ENTRY_TYPE,
            actor=principal.name,
            flow_ref=source.flow_ref,
            memo=f"referral commission on {source.type}",
            metadata={
                "source_entry_id": source.id,
                "referrer": referrer,
                "fee_payer": payer,
                "tier": tier,
                "rate": str(rate),
                "source_fee_minor": fee,
                "commission_minor": commission,
            },
            postings=(
                {"account": fee_wallet, "amount": -value},
                {"account": acct.user_available(referrer, asset), "amount": value},
            ),
        )
    )


@internal
def credit_referral(platform: Platform, principal: Principal, source: Entry | None) -> Entry | None:
    """Called by every fee-bearing flow after its fee entry: pays the commission when the
    payer has a referrer, and does nothing otherwise (no fee, no referrer, share rounds to
    zero). Safe to call any number of times for the same entry.
    Raises: InsufficientFundsError when the fee wallet cannot pay it now (nothing is
    journaled): the caller records the commission as owed — it is never dropped."""
    if source is None or not source.metadata.get("fee_minor"):
        return None
    try:
        return _pay(platform, principal, source)
    except (NoReferrerError, AmountTooSmallError):
        return None


def referral_share(fee: int, rate: Decimal) -> int:
    """The commission on `fee` minor units at `rate`, rounded down (exposed for tests)."""
    return convert_down(fee, rate, 0, 0)


FLOW_PREFIX = {"withdrawals": "withdrawal", "quotes": "quote", "p2p_trades": "p2p"}
# finished states whose commission may still be owed, per flow collection
FINISHED_STATES = {"withdrawals": ("settled",), "quotes": ("executed",), "p2p_trades": ("released", "resolved_buyer")}
OWED_SCAN_MAX = 1_000


@internal
def settle_referrals(
    platform: Platform, principal: Principal, collection_name: str, document: HoldingFlow, entry_ids: list[str | None]
) -> HoldingFlow:
    """Pay the commissions owed on a finished flow's fee entries, then mark the flow
    `referral_done` so recovery stops looking at it.

    A commission the fee wallet cannot pay right now (a fee sweep got there first) is
    never dropped: the flow records it in `referral_owed` (with a `<flow>:<id>:referral_owed`
    audit event, once), stays `referral_done: False`, and recovery pays it when the wallet
    allows; `owed_commissions` lists it for the integrity report. Idempotent: a crash
    before the mark just means the (exactly-once) payments are asked for again."""
    if document.referral_done:
        return document
    owed = []
    for entry_id in dict.fromkeys(entry_ids):  # an execution entry may be named twice (pay and receive)
        if entry_id:
            try:
                credit_referral(platform, principal, platform.ledger.entry(entry_id))
            except InsufficientFundsError:
                owed.append(entry_id)
    collection = platform.store.collection(collection_name)
    if owed:
        return _record_owed(platform, principal, collection_name, document, owed)
    marked = collection.find_one_and_update(
        {"_id": document.id, "referral_done": False}, {"$set": {"referral_done": True, "referral_owed": []}}
    )
    return document if marked is None else stored(collection, marked)


def _record_owed(platform: Platform, principal: Principal, collection_name: str, document: HoldingFlow,
                 owed: list[str]) -> HoldingFlow:
    """Record (once, with its audit event) which fee entries' commissions are owed."""
    collection, prefix = platform.store.collection(collection_name), FLOW_PREFIX.get(collection_name, collection_name)
    if document.referral_owed:
        return document
    recorded = transitions.change_and_flush(
        platform.ledger.audit, collection,
        {"_id": document.id, "referral_done": False, "referral_owed.0": {"$exists": False}},
        {"$set": {"referral_owed": owed}},
        transitions.event(
            key=f"{prefix}:{document.id}:referral_owed", type="referral.owed", actor=principal.name,
            role=principal.role.value, target=document.id, after={"referral_owed": owed},
            data={"source_entry_ids": owed, "reason": "fee wallet short"},
        ),
    )
    return document if recorded is None else stored(collection, recorded)


def owed_commissions(platform: Platform, limit: int = OWED_SCAN_MAX) -> list[dict]:
    """Commissions owed and unpaid: finished fee-bearing flows whose referral settlement is
    not done (the fee wallet was short, or a crash came between the fee and its commission).
    For the integrity report (one finding each) and the console. Each item:
    `{collection, flow_id, state, owed_entry_ids}` (`owed_entry_ids` empty when the flow
    has not tried yet). Reads are served by the `state` indexes."""
    items = []
    for collection_name, states in FINISHED_STATES.items():
        documents = platform.store.collection(collection_name).find(
            {"state": {"$in": list(states)}, "referral_done": False}, limit=limit
        )
        items += [
            {"collection": collection_name, "flow_id": d["_id"], "state": d["state"],
             "owed_entry_ids": list(d.get("referral_owed") or [])}
            for d in documents
        ]
    return items
