"""What every flow shares: ids from idempotency keys, decisions and steps (compare-and-set
state changes with their audit events, core.platform.transitions), rounding.

The flows hold their state as typed models (core.flows.documents); the helpers here are the
one place those models are read from and written to the store (`load`, `insert_or_existing`,
`step`, `decide`, `hold_for_flow`, `stored`), so no flow handles a stored dict.

Rounding rule (docs/flows.md): amounts are integers of minor units; a computed fee is
rounded UP to a whole minor unit (ROUND_CEILING), and what a user receives is rounded
DOWN (ROUND_FLOOR). Every entry still balances per asset exactly, because each
posting is an integer and the leftover of a rounding stays on the platform side of the
same entry (the liquidity float or the fee wallet) — nothing is created or lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from core.platform.boundary import internal
from core.ledger import Account, Amount, AccountKind, Entry
from core.ledger.accounts import checked_account
from core.platform import transitions
from core.flows import holds
from core.base.errors import (
    AmountTooSmallError,
    FlowDecisionConflictError,
    FlowNotFoundError,
    HoldClosedError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidFlowInputError,
    LedgerError,
)
from core.base.errors import ensure
from core.ledger import digest, make_request
from core.ledger import from_minor, positive_amount
from core.base.permissions import Principal
from core.platform import Platform
from core.ledger import Collection, DuplicateKeyStoreError
from core.flows.documents import MODELS, Decided, FlowDecision, FlowDocument, HoldingFlow

ARITHMETIC_PRECISION = 80  # digits: int64 minor units × 28-digit prices never lose a digit
FLOW_TEXT_LENGTH_MAX = 200  # a destination, reference, provider or payment id stored in a flow document
FLOW_ID_DIGITS = 24

# Ids, keys and user ids are checked by the flows' @boundary (core.ledger.arguments' table)
# and then trusted: nothing here checks them again.


def check_text(value: object, what: str, *, required: bool = True) -> str:
    """A flow's short text field, stripped: the boundary checked it is text without control
    characters; a flow also needs it short (FLOW_TEXT_LENGTH_MAX) and, if `required`, not
    blank. Raises: InvalidFlowInputError."""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > FLOW_TEXT_LENGTH_MAX:
        raise InvalidFlowInputError(f"{what} must be text of 1-{FLOW_TEXT_LENGTH_MAX} characters", field=what)
    return value.strip()


def user_accounts(user_id: str, asset: str) -> tuple[Account, Account]:
    """The user's available and locked accounts in `asset`, from a user id and asset the
    flow's @boundary checked (or the flow's own document holds): not checked again."""
    return (checked_account(AccountKind.USER_AVAILABLE, user_id, asset),
            checked_account(AccountKind.USER_LOCKED, user_id, asset))


def holding_request(platform: Platform, collection_name: str, prefix: str, idempotency_key: str, payer: str,
                    amount: object, asset: str, fee_rate: Decimal, *, leaves: str) -> tuple[Collection, dict, Amount]:
    """The start of a request that holds the payer's money (withdrawal, P2P trade): the
    caller's gross `amount` parsed (once, here), the fee on it, the flow's collection and id
    (from the key), and — for a first request only, before anything is written — the
    payer's available balance. Returns (collection, the new document's common fields —
    `_id`, `idempotency_key`, `asset`, `amount_minor`, `fee_minor` —, the amount).
    Raises: amount errors, AmountTooSmallError (nothing left after the fee; `leaves` says
    for what), InsufficientFundsError."""
    value = positive_amount(amount, asset, platform.registry)
    fee = fee_minor(value.minor, fee_rate)
    if value.minor - fee <= 0:
        raise AmountTooSmallError(f"{value} leaves nothing {leaves} after the {fee} minor-unit fee",
                                  amount=value.text(), asset=asset)
    collection = platform.store.collection(collection_name)
    document_id = flow_id(prefix, idempotency_key)
    if collection.find_one({"_id": document_id}, projection={"_id": 1}) is None:
        account = user_accounts(payer, asset)[0]
        require_cover(platform, account, value.minor,
                      lambda held: f"{payer} has {from_minor(held, asset, platform.registry)} available, needs {value}",
                      account=account.id)
    return collection, {"id": document_id, "idempotency_key": idempotency_key, "asset": asset,
                        "amount_minor": value.minor, "fee_minor": fee}, value


def require_cover(platform: Platform, holder: Account, needed_minor: int, message: Callable[[int], str],
                  error: type[LedgerError] = InsufficientFundsError, **details: object) -> None:
    """Refuse before anything is written when `holder` holds less than `needed_minor`: the
    payer of a withdrawal or trade, the user paying a quote, the float a quote reserves
    from. `message(held)` says so in the flow's words; the error carries both figures.
    (A pre-check for a clear refusal only: the ledger's own funds check decides.)"""
    held = platform.ledger.balance(holder).minor
    if held < needed_minor:
        raise error(message(held), **details, needed_minor=needed_minor, available_minor=held)


def flow_id(prefix: str, *parts: str) -> str:
    """A deterministic id: the same idempotency key always names the same flow, so a
    caller retrying after a crash finds the document it started."""
    return f"{prefix}_{digest({'parts': list(parts)})[:FLOW_ID_DIGITS]}"


def fee_minor(amount_minor: int, rate: Decimal) -> int:
    """The fee on `amount_minor` at `rate`, rounded UP to a whole minor unit."""
    ensure(amount_minor >= 0, "a fee is taken on a non-negative amount", amount_minor=amount_minor)
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


def stored(collection: Collection, document: dict) -> FlowDocument:
    """The model of a flow document as `collection` holds it (core.flows.documents.MODELS).
    Raises: MalformedDocumentError."""
    return MODELS[collection.name].from_document(document)


def insert_or_existing(collection: Collection, document: FlowDocument,
                       same: tuple[str, ...]) -> tuple[FlowDocument, bool]:
    """Insert a flow document, or return the one a previous call with the same id wrote.

    Returns (document, created). Raises: IdempotencyConflictError when the stored document
    differs in any of the `same` fields (the key was reused for a different request)."""
    try:
        collection.insert_one(document.to_document())
        return document, True
    except DuplicateKeyStoreError:
        found = collection.find_one({"_id": document.id})
        assert found is not None, "a duplicate _id was reported but the document is gone"
        existing = stored(collection, found)
        different = [name for name in same if getattr(existing, name) != getattr(document, name)]
        if different:
            raise IdempotencyConflictError(
                f"idempotency key {existing.idempotency_key!r} was used for a different request "
                f"({', '.join(different)})",
                key=existing.idempotency_key,
                flow_id=existing.id,
                fields=different,
            ) from None
        return existing, False


def insert_holding_flow(collection: Collection, model: type[HoldingFlow], fields: dict,
                        same: tuple[str, ...]) -> tuple[HoldingFlow, str]:
    """`insert_or_existing` for a flow that places a hold and pays a referral (withdrawal,
    P2P trade): the new document (`model` of `fields`) names this caller as its first placer
    (core.flows.holds) and its referral as not yet settled. Returns (the document as
    stored, this caller's placer name)."""
    placer = holds.new_placer()  # this call may place the hold
    document = model(**fields, referral_done=False, hold_placers=(placer,))
    return insert_or_existing(collection, document, same)[0], placer


def load(collection: Collection, document_id: object, what: str) -> FlowDocument:
    """Raises: FlowNotFoundError (ids are plain text only: no operator can be injected),
    MalformedDocumentError."""
    return stored(collection, _find(collection, document_id, what))


def _find(collection: Collection, document_id: object, what: str) -> dict:
    document = collection.find_one({"_id": document_id}) if isinstance(document_id, str) else None
    if document is None:
        raise FlowNotFoundError(f"no {what} {document_id!r}", kind=what, id=repr(document_id))
    return document


def current(platform: Platform, collection: Collection, document_id: str, what: str) -> FlowDocument:
    """The flow as stored now, after appending any audit events its outbox still holds (a
    caller that lost a compare-and-set carries on from here)."""
    found = _find(collection, document_id, what)
    return stored(collection, transitions.flush(platform.ledger.audit, collection, found))


@internal
def step(platform: Platform, principal: Principal, collection: Collection, document: FlowDocument, to_state: str, *,
         allowed_from: tuple[str, ...], what: str, extra: dict | None = None, match: dict | None = None,
         user: str | None = None, also: dict | None = None) -> FlowDocument:
    """A mechanical step whose outcome the document already fixes (a hold placed, an escrow
    moved the way `closing_to` says): one compare-and-set from one of `allowed_from` —
    plus `match`, the decision the step carries out — to `to_state`, with its audit event
    `<what>:<id>:<to_state>` queued in the same update (core.platform.transitions). `also` adds
    update operators the event does not echo (e.g. the hold's placer names, core.flows.holds).

    Returns the document after the step. When the compare-and-set loses, another caller
    took the same step (its entries are the same keyed entries), so the current document
    is returned as it is and the caller carries on from its real state: helping is safe
    because the step decides nothing. Nothing here ever reports a step it did not take."""
    audit, document_id = platform.ledger.audit, document.id
    update: dict = {"$set": {"state": to_state, **(extra or {})}}
    for operator, fields in (also or {}).items():
        update[operator] = {**update.get(operator, {}), **fields}
    for state in allowed_from:
        changed = transitions.change_and_flush(
            audit, collection, {"_id": document_id, "state": state, **(match or {})}, update,
            transitions.event(
                key=f"{what}:{document_id}:{to_state}", type=f"{what}.{to_state}", actor=principal.name,
                role=principal.role.value, target=document_id, user=user, before={"state": state},
                after={"state": to_state}, data={name: value for name, value in (extra or {}).items() if _plain(value)},
            ),
        )
        if changed is not None:
            return stored(collection, changed)
    return current(platform, collection, document_id, what)


def _plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, bool, list))


@internal
def decision(principal: Principal, name: str, to: str, *, party: str | None = None, reason: str | None = None,
             at: datetime | None = None) -> FlowDecision:
    """What a caller decides: `name` (the kind of decision, a verb such as "release" — never
    a state name, so its event key `<what>:<id>:<name>` cannot collide with a step's
    `<what>:<id>:<state>`; "resolved" is the one historical exception, whose states are
    `resolved_buyer|seller`), `to` (the target state or side), who (`by`, `role`) and for
    which party. Stored in the document
    by the winning compare-and-set and carried by its audit event."""
    return FlowDecision(name=name, to=to, by=principal.name, role=principal.role.value, party=party, reason=reason,
                        at=at)


def replayed(document: Decided, wanted: FlowDecision) -> bool:
    """`document` holds this very decision by the same caller already: a replay (then it may
    be resumed, not refused)."""
    return any(_same_decision(made, wanted) for made in document.decisions)


def _same_decision(made: FlowDecision, wanted: FlowDecision) -> bool:
    return (made.name, made.to, made.by, made.party) == (wanted.name, wanted.to, wanted.by, wanted.party)


def winner_of(decision_made: FlowDecision | None) -> dict | None:
    """The decision that got there first, as a refusal names it."""
    return None if decision_made is None else decision_made.model_dump(include={"name", "to", "by", "party"})


def decide(platform: Platform, collection: Collection, document: Decided, to_state: str, wanted: FlowDecision, *,
           allowed_from: tuple[str, ...], what: str, extra: dict | None = None, match: dict | None = None,
           event_type: str | None = None, user: str | None = None,
           error: type[FlowDecisionConflictError] | Callable[[Decided], type[FlowDecisionConflictError]]
           = FlowDecisionConflictError) -> Decided:
    """Record a caller's decision: one compare-and-set from one of `allowed_from` (with no
    decision of this name yet) to `to_state`, setting `decision` and appending it to
    `decisions`, its audit event (`<what>:<id>:<name>`, naming the caller and the decision)
    queued in the same update. `match` adds conditions the decision depends on (e.g. the
    payment window), so they are checked by the same atomic update.

    Returns the document after the change — also on a replay of the very same decision by
    the same caller. Raises `error` carrying the winner's decision when another caller's
    decision got there first (`error` may be a function of the current document choosing
    the class): a loser never succeeds with someone else's outcome."""
    audit, document_id, name, made = platform.ledger.audit, document.id, wanted.name, wanted.model_dump()
    for state in allowed_from:
        changed = transitions.change_and_flush(
            audit, collection,
            {"_id": document_id, "state": state, "decisions.name": {"$ne": name}, **(match or {})},
            {"$set": {"state": to_state, "decision": made, **(extra or {})}, "$push": {"decisions": made}},
            transitions.event(
                key=f"{what}:{document_id}:{name}", type=event_type or f"{what}.{name}", actor=wanted.by,
                role=wanted.role, target=document_id, user=user, before={"state": state},
                after={"state": to_state}, data={"decision": name, "to": wanted.to, "party": wanted.party,
                                                 "reason": wanted.reason},
            ),
        )
        if changed is not None:
            return stored(collection, changed)
    now = current(platform, collection, document_id, what)
    if replayed(now, wanted):
        return now  # a replay of this caller's own decision
    winner = now.decision
    error = error if isinstance(error, type) else error(now)
    raise error(
        f"{what} {document_id} is {now.state}"
        + (f" ({winner.name} → {winner.to} by {winner.by})" if winner else "")
        + f"; cannot be {name} → {wanted.to}",
        id=document_id, state=now.state, wanted={"decision": name, "to": wanted.to}, winner=winner_of(winner),
    )


@internal
def hold_for_flow(platform: Platform, principal: Principal, collection: Collection, document: HoldingFlow, *,
                  what: str, source: Account, held: Account, amount_minor: int, memo: str, metadata: dict,
                  from_state: str, held_state: str, entry_field: str, refused_state: str, refused_reason: dict,
                  placer: str | None = None) -> HoldingFlow:
    """Place a flow's hold (hold id = the flow's id) and move its document on: to `held_state`
    recording the hold entry in `entry_field`, or — when the source is short — to
    `refused_state` with `refused_reason`, re-raising InsufficientFundsError.

    Safe to re-run after a crash: the hold's key is derived from the flow id, and both
    steps are guarded on `from_state`. Who may place it (core.flows.holds): `placer` is the
    caller's name when the document's insert named it; otherwise the caller names itself
    first, by a compare-and-set that holds only while the flow is in `from_state` — a caller
    that finds the flow moved on places nothing and returns it as it is. The hold step
    clears every name; the refusal takes out only the refuser's. A refusal is not durable
    (funds may arrive a moment later for a concurrent caller), so whoever finds the flow
    refused while the hold exists releases it and clears the names; a placer that dies
    first leaves its name, and recovery's `holds.release_stranded` releases the hold."""
    document_id = document.id
    if placer is None or placer not in document.hold_placers:
        placer = holds.new_placer()
        registered = holds.register(collection, document_id, from_state, placer)
        if registered is None:  # the flow left `from_state`: its hold is someone else's business now
            return current(platform, collection, document_id, what)
        document = stored(collection, registered)
    try:
        entry = platform.ledger.place_hold(
            hold_id=document_id, source=source, held=held,
            amount=from_minor(amount_minor, source.asset, platform.registry),
            actor=principal.name, flow_ref=document_id, memo=memo, metadata=metadata,
        )
    except InsufficientFundsError:
        refused = step(platform, principal, collection, document, refused_state, allowed_from=(from_state,),
                       what=what, extra=refused_reason, also={"$pull": {holds.PLACERS: placer}})
        if refused.state != refused_state:
            return refused  # a concurrent caller placed the hold (and cleared the names): the flow went on
        if placer in refused.hold_placers:
            holds.forget(collection, document_id, placer)  # another caller's refusal came first
        release_refused_hold(platform, principal, document_id, collection)
        raise
    held_now = step(platform, principal, collection, document, held_state, allowed_from=(from_state,), what=what,
                    extra={entry_field: entry.id}, also={"$set": {holds.PLACERS: []}})
    if held_now.state == refused_state:
        release_refused_hold(platform, principal, document_id, collection)
    return held_now


@internal
def release_refused_hold(platform: Platform, principal: Principal, hold_id: str, collection: Collection) -> None:
    """Release the hold of a flow that was refused meanwhile, and clear its placer names
    once the hold is closed (no-op when none was placed: the names of placers still on
    their way stay, core.flows.holds)."""
    holds.release_behind(platform, principal, collection, hold_id)


def closing_entry(platform: Platform, hold_id: str, entry_type: str | None = None) -> Entry:
    """The entry that closed the flow's hold `hold_id` (a replay finds how it closed); a
    flow's hold closes one way, so it is of `entry_type` when one is named."""
    entry = platform.ledger.hold(hold_id)[1]
    assert entry is not None and entry_type in (None, entry.type), "a closed hold has its closing entry, of one type"
    return entry


@internal
def release_or_closing(platform: Platform, principal: Principal, hold_id: str, *, entry_type: str, memo: str,
                       metadata: dict) -> Entry:
    """Release the flow's hold `hold_id`, or — when it is closed already (a replay, or a
    concurrent consume) — return the entry that closed it: the caller reads which way."""
    try:
        return platform.ledger.release_hold(hold_id=hold_id, actor=principal.name, entry_type=entry_type, memo=memo,
                                            metadata=metadata)
    except HoldClosedError:
        return closing_entry(platform, hold_id)


MEMO_SHOWN_MAX = 200  # a flow's memo on its entry: the start of a reason or reference


@internal
def transfer(platform: Platform, principal: Principal, *, key: str, entry_type: str, flow_ref: str, memo: str,
             metadata: dict, source: Account, destination: Account, value: Amount) -> Entry:
    """Post the one two-leg entry of a deposit, an adjustment or a treasury move: `value`
    from `source` to `destination`, under `key` (derived from the flow or approval id, so
    a replay is the same entry)."""
    return platform.ledger.post(make_request(
        idempotency_key=key, type=entry_type, actor=principal.name, flow_ref=flow_ref, memo=memo[:MEMO_SHOWN_MAX],
        metadata=metadata, postings=({"account": source, "amount": -value}, {"account": destination, "amount": value}),
    ))
