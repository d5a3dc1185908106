"""The state documents of the deposit, withdrawal, quote (swap, instant buy and sell) and P2P
trade flows as typed models, each converted to and from the store in one place
(`from_document`, `to_document`, core.platform.documents: strict, frozen, unknown keys
refused, absent fields stay absent so the store format does not change). The flows hold
these models between their steps (core.flows.common reads and writes them); only the
public functions hand the stored form back to their callers, as they always have.

The fields are the ones the flows write: the insert of each flow (`record_deposit`,
`request_withdrawal`, `create_quote`, `open_trade`), the steps and decisions that move it on
(core.flows.common: `decision`, `decisions`, the `extra` of each step), the hold placers
(core.flows.holds), the owed referral commissions (core.flows.referral) and the audit
outbox (core.platform.transitions). A field that a step adds later has a default and is
absent from documents that have not reached that step (or were written before it existed,
such as `hold_placers`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field

from core.flows import states
from core.platform.documents import DOCUMENT_CONFIG, Items, StoredDocument

Minor = Annotated[int, Field(ge=0)]  # an amount in minor units (core.ledger: integers, never floats)
PositiveMinor = Annotated[int, Field(gt=0)]
DecimalText = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]  # a price as `format(Decimal, "f")` writes it
EntryId = str | None  # the id of an entry the flow posted, None until it is posted
APPROVALS_NEEDED_MAX = 2  # a withdrawal needs 0, 1 or 2 approvals (core.approvals: APPROVERS_MAX)

WithdrawalState = Literal["requested", "held", "awaiting_approval", "approved", "settled", "rejecting", "rejected",
                          "failed"]
QuoteState = Literal["new", "open", "executing", "expiring", "executed", "expired", "failed"]
P2PState = Literal["new", "open", "paid", "disputed", "closing", "released", "cancelled", "resolved_buyer",
                   "resolved_seller"]
P2PClosing = Literal[states.P2P_CLOSED]


class FlowDecision(BaseModel):
    """A caller's decision as core.flows.common.decision records it."""

    model_config = DOCUMENT_CONFIG

    name: str
    to: str
    by: str
    role: str
    party: str | None
    reason: str | None
    at: datetime | None


class Dispute(BaseModel):
    """Who opened a P2P trade's dispute, why and when."""

    model_config = DOCUMENT_CONFIG

    by: str
    reason: str
    at: datetime


class FlowDocument(StoredDocument):
    """What every flow document has: its key and when it was made."""

    what: ClassVar[str] = "flow"

    idempotency_key: str
    created_at: datetime


class Deposit(FlowDocument):
    """A provider or chain deposit in `deposits` (core.flows.deposit)."""

    what: ClassVar[str] = "deposit"

    provider: str
    payment_id: str
    user: str
    asset: str
    amount_minor: PositiveMinor
    confirmations: Minor
    confirmations_required: Minor
    state: Literal["confirming", "credited"]
    credit_entry_id: EntryId
    credited_at: datetime | None = None  # set by the credit


class HoldingFlow(FlowDocument):
    """A flow that holds money and charges a fee: the referral bookkeeping and the names of
    the callers that may place its hold."""

    referral_done: bool
    referral_owed: Items[str] = ()  # fee entries whose commission the fee wallet could not pay yet
    hold_placers: Items[str] = ()  # core.flows.holds.PLACERS


class Withdrawal(HoldingFlow):
    """A withdrawal in `withdrawals` (core.flows.withdrawal)."""

    what: ClassVar[str] = "withdrawal"

    user: str
    asset: str
    amount_minor: PositiveMinor
    fee_minor: Minor
    net_minor: PositiveMinor
    destination: str
    approvals_needed: int = Field(ge=0, le=APPROVALS_NEEDED_MAX)
    state: WithdrawalState
    requested_by: str
    approval_id: str | None
    hold_entry_id: EntryId
    settle_entry_id: EntryId
    release_entry_id: EntryId
    # set by later steps
    settled_at: datetime | None = None
    approved_by: Items[str] = ()
    rejection: Literal["rejected", "expired"] | None = None  # how the approval request closed
    failure: Literal["insufficient_funds"] | None = None  # why the hold was refused


class Quote(HoldingFlow):
    """A swap or instant buy/sell quote in `quotes` (core.flows.quotes)."""

    what: ClassVar[str] = "quote"

    kind: str
    user: str
    state: QuoteState
    expires_at: datetime
    pay_asset: str
    pay_minor: PositiveMinor
    pay_to_liquidity_minor: Minor
    pay_fee_minor: Minor
    receive_asset: str
    receive_minor: Minor
    receive_fee_minor: Minor
    reserved_asset: str
    reserved_minor: Minor
    price: DecimalText
    market_price: DecimalText
    spread_minor: Minor
    spread_asset: str
    pay_entry_id: EntryId
    receive_entry_id: EntryId
    release_entry_id: EntryId
    close_reason: Literal["float_short", "payment_refused", "ttl"] | None  # why it closed without executing
    decision: FlowDecision | None
    decisions: Items[FlowDecision]
    # set by later steps
    reserve_entry_id: EntryId = None
    executed_at: datetime | None = None


class P2PTrade(HoldingFlow):
    """A P2P trade in `p2p_trades` (core.flows.p2p)."""

    what: ClassVar[str] = "P2P trade"

    seller: str
    buyer: str
    asset: str
    amount_minor: PositiveMinor
    fee_minor: Minor
    fiat_amount: str
    state: P2PState
    payment_due_at: datetime
    closing_to: P2PClosing | None
    decision: FlowDecision | None
    decisions: Items[FlowDecision]
    dispute: Dispute | None
    escrow_entry_id: EntryId
    close_entry_id: EntryId
    # set by later steps and decisions
    paid_at: datetime | None = None  # the buyer's mark_paid
    closed_at: datetime | None = None  # the escrow's close
    cancelled_by: str | None = None  # the party that cancelled, or "timeout"
    resolved_by: str | None = None  # the admin who resolved the dispute, with why:
    resolution_reason: str | None = None
    close_reason: Literal["escrow_refused"] | None = None  # the escrow was refused (the seller's funds went)


Decided = Quote | P2PTrade
"""The flows whose documents record callers' decisions (core.flows.common.decide)."""

MODELS: dict[str, type[FlowDocument]] = {
    states.DEPOSITS: Deposit,
    states.WITHDRAWALS: Withdrawal,
    states.QUOTES: Quote,
    states.P2P_TRADES: P2PTrade,
}
"""The model of each flow collection."""
