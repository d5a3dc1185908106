"""The flow-test scenarios: the registry, and the payment scenarios (deposits,
withdrawals). Each scenario goes through the same service functions production uses,
with exact numbers a reader can check by hand.

Prices come from the deterministic source (BTC 60000, ETH 3000, GBP 1.25 USD), fees
and spreads from the default FlowConfig. The other scenarios live in
`scenarios_trading` (swap, instant, P2P), `scenarios_admin` (referral, adjustment, fee
sweep), `scenarios_robustness` (replay, crashes) and `scenarios_chaos` (concurrency,
chaos); `core.flowtests.runner.all_scenarios()` imports them in run order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from core.ledger import accounts as acct
from core import approvals
from core.base.errors import (
    ApprovalRejectedError,
    DuplicateApprovalError,
    FloatAmountError,
    IdempotencyConflictError,
    InsufficientFundsError,
    SelfApprovalError,
)
from core.flows import deposit, withdrawal
from core.flowtests.sandbox import (
    CHECKER,
    CHECKER_2,
    MAKER,
    Sandbox,
    expect,
    expect_equal,
    user_accounts,
)
from core.base.permissions import SYSTEM, Principal

Scenario = Callable[[Sandbox], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


def available_minor(sb: Sandbox, user: str, asset: str) -> int:
    return sb.minor(acct.user_available(user, asset))


@scenario("deposit")
def deposit_scenario(sb: Sandbox) -> None:
    pf, seen = sb.platform, user_accounts("alice", "BTC") + [acct.external("BTC")]
    notice = dict(
        user_id="alice",
        asset="BTC",
        amount="0.5",
        provider="chain",
        payment_id=deposit.chain_payment_id("ab12cd", 0),
        idempotency_key="dep-1",
    )

    def send(confirmations: int, state: tuple[str, str], alice_btc: tuple[int, str]) -> None:
        """The notice with `confirmations`; fails the step unless the deposit's state and
        alice's BTC are as wanted (each: the wanted value, what the check is)."""
        document = deposit.record_deposit(pf, SYSTEM, confirmations=confirmations, **notice)
        expect_equal(document["state"], state[0], state[1])
        expect_equal(available_minor(sb, "alice", "BTC"), alice_btc[0], alice_btc[1])

    def unconfirmed() -> str:
        send(1, ("confirming", "state at 1 of 2 confirmations"), (0, "alice's BTC before confirmation"))
        return "1 of 2 BTC confirmations: recorded, not credited"

    sb.step("notice with 1 confirmation", seen, unconfirmed)

    def confirmed() -> str:
        send(2, ("credited", "state at 2 confirmations"), (50_000_000, "alice's BTC"))
        expect_equal(sb.minor(acct.external("BTC")), -50_000_000, "external BTC")
        return "2 confirmations: external −0.5 BTC → alice +0.5 BTC"

    sb.step("notice with 2 confirmations", seen, confirmed)

    def replay() -> str:
        send(7, ("credited", "state on replay"), (50_000_000, "alice's BTC after a replayed notice"))
        return "the same payment id again: nothing new"

    sb.step("replayed notice credits nothing", seen, replay)
    sb.refuse(
        "same payment id, different amount",
        seen,
        lambda: deposit.record_deposit(pf, SYSTEM, confirmations=2, **{**notice, "amount": "5"}),
        IdempotencyConflictError,
    )
    sb.refuse(
        "float amount",
        seen,
        lambda: deposit.record_deposit(  # a float on purpose: it must be refused
            pf, SYSTEM, confirmations=2, **{**notice, "amount": 0.5, "payment_id": "other:1"}
        ),
        FloatAmountError,
    )


@scenario("manual_deposit_approval")
def manual_deposit_scenario(sb: Sandbox) -> None:
    pf, seen = sb.platform, user_accounts("alice", "GBP") + [acct.external("GBP", "bank")]
    request = sb.step(
        "admin requests a manual GBP 250.00 credit",
        seen,
        lambda: deposit.request_manual_deposit(
            pf,
            MAKER,
            user_id="alice",
            asset="GBP",
            amount="250.00",
            reference="BANK-REF-1",
            reason="bank statement line 14",
            idempotency_key="manual-1",
        ),
    )
    sb.refuse(
        "requester approves own request", seen, lambda: approvals.approve(pf, MAKER, request["_id"]), SelfApprovalError
    )

    def approved() -> str:
        done = approvals.approve(pf, CHECKER, request["_id"], "matches statement")
        expect(done["state"] == "approved" and done["result"]["ok"], f"approval result {done['result']}")
        expect_equal(available_minor(sb, "alice", "GBP"), 25_000, "alice's GBP")
        return "checker approved: bank −250.00 GBP → alice +250.00 GBP"

    sb.step("a second admin approves", seen, approved)


def withdraw_alice(sb: Sandbox, amount: str, key: str) -> dict:
    return withdrawal.request_withdrawal(
        sb.platform,
        SYSTEM,
        user_id="alice",
        asset="BTC",
        amount=amount,
        destination="bc1q-sandbox",
        idempotency_key=key,
    )


def withdrawal_state(sb: Sandbox, document: dict) -> str:
    """The withdrawal's state as stored now (`document` is what the request returned)."""
    return withdrawal.get_withdrawal(sb.platform, document["_id"])["state"]


def approving(sb: Sandbox, checker: Principal, document: dict) -> Callable[[], dict]:
    """`checker` approves the withdrawal's request, when a step calls it."""
    return partial(approvals.approve, sb.platform, checker, document["approval_id"])


@scenario("withdrawal_approved")
def withdrawal_approved_scenario(sb: Sandbox) -> None:
    sb.fund("alice", "BTC", "2")
    seen = user_accounts("alice", "BTC") + [acct.fees("BTC"), acct.external("BTC")]

    def request() -> dict:
        document = withdraw_alice(sb, "1", "wd-approved")
        expect_equal(document["state"], "awaiting_approval", "state above the 0.5 BTC threshold")
        expect_equal(sb.minor(acct.user_locked("alice", "BTC")), 100_000_000, "alice's locked BTC")
        expect_equal((document["fee_minor"], document["net_minor"]), (1_000_000, 99_000_000), "fee 1% and net")
        return document

    document = sb.step("request 1 BTC (hold: available → locked)", seen, request)

    def approve() -> str:
        approvals.approve(sb.platform, CHECKER, document["approval_id"], "verified destination")
        expect_equal(withdrawal_state(sb, document), "settled", "state")
        expect_equal(sb.minor(acct.user_locked("alice", "BTC")), 0, "alice's locked BTC")
        expect_equal(sb.minor(acct.fees("BTC")), 1_000_000, "fee wallet BTC")
        expect_equal(sb.minor(acct.external("BTC")), -200_000_000 + 99_000_000, "external BTC")
        return "settled: locked −1 BTC → external +0.99 BTC, fees +0.01 BTC"

    sb.step("checker approves → settle", seen, approve)
    sb.refuse(
        "withdraw more than available", seen, lambda: withdraw_alice(sb, "1.5", "wd-too-much"), InsufficientFundsError
    )


@scenario("withdrawal_rejected")
def withdrawal_rejected_scenario(sb: Sandbox) -> None:
    sb.fund("alice", "BTC", "2")
    seen = user_accounts("alice", "BTC") + [acct.fees("BTC"), acct.external("BTC")]
    document = sb.step("request 1 BTC", seen, lambda: withdraw_alice(sb, "1", "wd-rejected"))

    def reject() -> str:
        approvals.reject(sb.platform, CHECKER, document["approval_id"], "destination on a sanctions list")
        expect_equal(withdrawal_state(sb, document), "rejected", "state")
        expect_equal(
            (available_minor(sb, "alice", "BTC"), sb.minor(acct.user_locked("alice", "BTC"))),
            (200_000_000, 0),
            "alice's BTC",
        )
        expect_equal(sb.minor(acct.fees("BTC")), 0, "fee wallet (no fee on a rejected withdrawal)")
        return "rejected with a reason: locked → available, no fee"

    sb.step("checker rejects → release", seen, reject)
    sb.refuse("approve after reject", seen, approving(sb, CHECKER_2, document), ApprovalRejectedError)


@scenario("withdrawal_two_approvers")
def withdrawal_two_approvers_scenario(sb: Sandbox) -> None:
    sb.fund("alice", "BTC", "8")
    seen = user_accounts("alice", "BTC") + [acct.fees("BTC"), acct.external("BTC")]
    document = sb.step(
        "request 6 BTC (above the 5 BTC second threshold)", seen, lambda: withdraw_alice(sb, "6", "wd-two")
    )
    expect_equal(
        approvals.get_approval(sb.platform, CHECKER, document["approval_id"])["approvals_required"], 2, "approvers"
    )

    def first() -> str:
        approvals.approve(sb.platform, CHECKER, document["approval_id"], "first look")
        expect_equal(withdrawal_state(sb, document), "awaiting_approval", "state")
        return "one of two approvals: still held"

    sb.step("first approver", seen, first)
    sb.refuse("same approver again", seen, approving(sb, CHECKER, document), DuplicateApprovalError)

    def second() -> str:
        approvals.approve(sb.platform, CHECKER_2, document["approval_id"], "second look")
        expect_equal(sb.minor(acct.fees("BTC")), 6_000_000, "fee wallet BTC (1% of 6)")
        expect_equal(available_minor(sb, "alice", "BTC"), 200_000_000, "alice's BTC left")
        return "two distinct approvers: settled, locked −6 BTC → external +5.94 BTC, fees +0.06 BTC"

    sb.step("second approver → settle", seen, second)
