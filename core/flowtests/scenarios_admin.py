"""Flow-test scenarios: referral commission, adjustment and fee sweep."""

from __future__ import annotations

from core.ledger import accounts as acct
from core import approvals
from core.flows import adjustment, treasury
from core.flows.common import flow_id
from core.flowtests.sandbox import CHECKER, MAKER, Sandbox, expect, expect_equal, fees_booked_once, user_accounts
from core.flowtests.scenarios import available_minor, scenario, withdraw_alice
from core.base.permissions import SYSTEM


@scenario("referral_commission")
def referral_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    pf.store.collection("user_accounts").insert_many(
        [
            {"user_id": "alice", "referred_by": "gus", "referral_tier": "golden"},
            {"user_id": "bea", "referred_by": "ray", "referral_tier": "standard"},
        ]
    )
    sb.fund("alice", "BTC", "0.3")
    seen = user_accounts("alice", "BTC") + user_accounts("gus", "BTC") + [acct.fees("BTC")]

    def golden() -> str:
        withdraw_alice(sb, "0.2", "wd-referral")
        expect_equal(sb.minor(acct.fees("BTC")), 100_000, "fee wallet after the 50% commission (0.002 − 0.001)")
        expect_equal(available_minor(sb, "gus", "BTC"), 100_000, "golden referrer's commission")
        return "fee 0.002 BTC; golden referrer gus gets 50% = 0.001 BTC"

    sb.step("golden referral on a withdrawal fee", seen, golden)

    def once() -> str:
        source = pf.ledger.entry_by_key(f"hold:{flow_id('wd', 'wd-referral')}:close")
        from core.flows import referral

        referral.pay_referral_commission(pf, SYSTEM, source.id)
        expect_equal(available_minor(sb, "gus", "BTC"), 100_000, "commission paid once")
        return "asking again pays nothing more"

    sb.step("commission is paid exactly once", seen, once)
    expect(not fees_booked_once(pf.store), f"fee identity: {fees_booked_once(pf.store)}")


@scenario("adjustment")
def adjustment_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    seen = user_accounts("alice", "USDT") + [acct.adjustments("USDT")]
    credit = sb.step(
        "request a 25 USDT goodwill credit",
        seen,
        lambda: adjustment.request_adjustment(
            pf,
            MAKER,
            user_id="alice",
            asset="USDT",
            amount="25",
            reason="compensation for outage",
            idempotency_key="adj-1",
        ),
    )

    def approve_credit() -> str:
        approvals.approve(pf, CHECKER, credit["_id"], "ok")
        expect_equal(available_minor(sb, "alice", "USDT"), 25_000_000, "alice's USDT")
        return "adjustments −25 USDT → alice +25 USDT"

    sb.step("approve credit", seen, approve_credit)
    debit = sb.step(
        "request a 30 USDT debit (more than she has)",
        seen,
        lambda: adjustment.request_adjustment(
            pf, MAKER, user_id="alice", asset="USDT", amount="-30", reason="reverse duplicate", idempotency_key="adj-2"
        ),
    )

    def approve_debit() -> str:
        done = approvals.approve(pf, CHECKER, debit["_id"], "ok")
        expect(
            done["result"]["ok"] is False and done["result"]["error"] == "insufficient_funds",
            f"result {done['result']}",
        )
        expect_equal(available_minor(sb, "alice", "USDT"), 25_000_000, "alice's USDT unchanged")
        return "debit refused by the ledger: recorded as a failed result, nothing moved"

    sb.step("approve an impossible debit", seen, approve_debit)


@scenario("fee_sweep")
def fee_sweep_scenario(sb: Sandbox) -> None:
    pf = sb.platform
    sb.fund("alice", "BTC", "1")
    withdraw_alice(sb, "0.5", "wd-for-fees")  # fee 0.005 BTC, below the threshold: settles at once
    seen = [acct.fees("BTC"), acct.external("BTC", "treasury"), acct.liquidity("BTC")]
    request = sb.step(
        "owner requests sweeping 0.004 BTC",
        seen,
        lambda: treasury.request_fee_sweep(
            pf, MAKER, asset="BTC", amount="0.004", reason="monthly revenue", idempotency_key="sweep-1"
        ),
    )

    def approve() -> str:
        approvals.approve(pf, CHECKER, request["_id"], "ok")
        expect_equal(sb.minor(acct.fees("BTC")), 100_000, "fee wallet after the sweep")
        expect_equal(sb.minor(acct.liquidity("BTC")), 0, "the float is untouched")
        expect(not fees_booked_once(pf.store), f"fee identity: {fees_booked_once(pf.store)}")
        return "fees −0.004 BTC → external (treasury); wallet = credits − referral − sweeps"

    sb.step("approve sweep", seen, approve)
