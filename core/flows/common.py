"""What every flow shares: ids from idempotency keys, guarded transitions, rounding.

Rounding rule (docs/flows.md): amounts are integers of minor units; a computed fee is
rounded UP to a whole minor unit (ROUND_CEILING), and what a user receives is rounded
DOWN (ROUND_FLOOR). Every entry still balances per asset exactly, because each
posting is an integer and the leftover of a rounding stays on the platform side of the
same entry (the liquidity float or the fee wallet) — nothing is created or lost.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from core.ledger import Account, check_owner_id
from core.errors import FlowNotFoundError, FlowStateError, InsufficientFundsError, InvalidFlowInputError
from core.ledger import digest
from core.ledger import from_minor
from core.permissions import Principal
from core.platform import Platform
from core.ledger import Collection, DuplicateKeyStoreError

ARITHMETIC_PRECISION = 80  # digits: int64 minor units × 28-digit prices never lose a digit
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,160}$")
TEXT_LENGTH_MAX = 200
FLOW_ID_DIGITS = 24


def check_key(idempotency_key: object) -> str:
    """Raises: InvalidFlowInputError unless the key is 1-160 printable characters, no spaces."""
    if not isinstance(idempotency_key, str) or not KEY_PATTERN.match(idempotency_key):
        raise InvalidFlowInputError(
            "idempotency key must be 1-160 printable characters without spaces", key=repr(idempotency_key)
        )
    return idempotency_key


def check_user(user_id: object, what: str = "user") -> str:
    """A safe user id (raises InvalidAccountError otherwise)."""
    return check_owner_id(user_id)


def check_text(value: object, what: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > TEXT_LENGTH_MAX:
        raise InvalidFlowInputError(f"{what} must be text of 1-{TEXT_LENGTH_MAX} characters", field=what)
    return value.strip()


def flow_id(prefix: str, *parts: str) -> str:
    """A deterministic id: the same idempotency key always names the same flow, so a
    caller retrying after a crash finds the document it started."""
    return f"{prefix}_{digest({'parts': list(parts)})[:FLOW_ID_DIGITS]}"


def fee_minor(amount_minor: int, rate: Decimal) -> int:
    """The fee on `amount_minor` at `rate`, rounded UP to a whole minor unit."""
    assert amount_minor >= 0
    with localcontext() as context:
        context.prec = ARITHMETIC_PRECISION
        return int((Decimal(amount_minor) * rate).to_integral_value(rounding=ROUND_CEILING))


def convert_down(amount_minor: int, price: Decimal, scale_from: int, scale_to: int) -> int:
    """`amount_minor` of an asset with `scale_from` decimals, times `price`, expressed in
    minor units of an asset with `scale_to` decimals, rounded DOWN (the user receives it)."""
    with localcontext() as context:
        context.prec = ARITHMETIC_PRECISION
        value = Decimal(amount_minor) * price * Decimal(10) ** (scale_to - scale_from)
        return int(value.to_integral_value(rounding=ROUND_FLOOR))


def insert_or_existing(collection: Collection, document: dict, same: tuple[str, ...]) -> tuple[dict, bool]:
    """Insert a flow document, or return the one a previous call with the same id wrote.

    Returns (document, created). Raises: IdempotencyConflictError when the stored document
    differs in any of the `same` fields (the key was reused for a different request)."""
    from core.errors import IdempotencyConflictError

    try:
        collection.insert_one(document)
        return document, True
    except DuplicateKeyStoreError:
        existing = collection.find_one({"_id": document["_id"]})
        assert existing is not None, "a duplicate _id was reported but the document is gone"
        different = [name for name in same if existing.get(name) != document.get(name)]
        if different:
            raise IdempotencyConflictError(
                f"idempotency key {existing.get('idempotency_key')!r} was used for a different request "
                f"({', '.join(different)})",
                key=existing.get("idempotency_key"),
                flow_id=existing["_id"],
                fields=different,
            ) from None
        return existing, False


def load(collection: Collection, document_id: object, what: str) -> dict:
    """Raises: FlowNotFoundError (ids are plain text only: no operator can be injected)."""
    document = collection.find_one({"_id": document_id}) if isinstance(document_id, str) else None
    if document is None:
        raise FlowNotFoundError(f"no {what} {document_id!r}", kind=what, id=repr(document_id))
    return document


def transition(
    collection: Collection,
    document: dict,
    to_state: str,
    *,
    allowed_from: tuple[str, ...],
    what: str,
    extra: dict | None = None,
    error: type[FlowStateError] = FlowStateError,
) -> dict:
    """Move a flow document from one of `allowed_from` to `to_state` with one guarded update.

    Returns the document after the change — or as it is, when a concurrent caller already
    made the same move (every step before a transition is idempotent, so that caller wrote
    the same entries). Raises `error` naming the current state when the document is not
    (or no longer) in an allowed state."""
    update = {"$set": {"state": to_state, **(extra or {})}}
    for state in allowed_from:
        changed = collection.find_one_and_update({"_id": document["_id"], "state": state}, update)
        if changed is not None:
            return changed
    current = collection.find_one({"_id": document["_id"]}) or document
    if current["state"] == to_state:
        return current  # a concurrent caller doing the same step got there first
    raise error(
        f"{what} {document['_id']} is {current['state']}; cannot become {to_state}",
        id=document["_id"],
        state=current["state"],
        wanted=to_state,
    )


def hold_for_flow(platform: Platform, principal: Principal, collection: Collection, document: dict, *,
                  what: str, source: Account, held: Account, amount_minor: int, memo: str, metadata: dict,
                  from_state: str, held_state: str, entry_field: str, refused_state: str, refused_reason: dict) -> dict:
    """Place a flow's hold (hold id = the flow's id) and move its document on: to `held_state`
    recording the hold entry in `entry_field`, or — when the source is short — to
    `refused_state` with `refused_reason`, re-raising InsufficientFundsError.

    Safe to re-run after a crash: the hold's key is derived from the flow id, and both
    transitions are guarded on `from_state`."""
    try:
        entry = platform.ledger.place_hold(
            hold_id=document["_id"], source=source, held=held,
            amount=from_minor(amount_minor, source.asset, platform.registry),
            actor=principal.name, flow_ref=document["_id"], memo=memo, metadata=metadata,
        )
    except InsufficientFundsError:
        transition(collection, document, refused_state, allowed_from=(from_state,), what=what, extra=refused_reason)
        raise
    return transition(collection, document, held_state, allowed_from=(from_state,), what=what, extra={entry_field: entry.id})
