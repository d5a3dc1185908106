"""Approval reads: history with who/when/why, eligible approvers, readable details, warnings."""

from __future__ import annotations

from core.approvals import view as approvals_view
from core.flows import treasury
from core import approvals
from core.base.permissions import Principal, Role
from tests.principals import CHECKER, MAKER

PEOPLE = {"usernames": {
    "maker": {"name": "Mia Maker", "roles": ["admin"]},
    "checker": {"name": "Carl Checker", "roles": ["admin"]},
    "gone": {"name": "Old Admin", "roles": ["admin"], "disabled": True},
    "helpdesk": {"name": "Sam", "roles": ["support"]},
}}


def test_eligible_approvers_are_enabled_admins_other_than_the_requester():
    assert approvals_view.eligible_approvers(PEOPLE, "maker") == ["checker"]
    assert approvals_view.approver_shortfall(PEOPLE, "maker", 1) == 0
    assert approvals_view.approver_shortfall(PEOPLE, "maker", 2) == 1
    assert approvals_view.approver_shortfall(PEOPLE, "maker", 2, approved_by=["checker"]) == 1
    assert approvals_view.approver_shortfall({}, "maker", 1) == 1
    assert approvals_view.display_name(PEOPLE, "checker") == "Carl Checker (checker)"
    assert approvals_view.display_name(PEOPLE, "stranger") == "stranger"


def test_history_records_the_rejection_reason_decider_and_time(platform):
    request = treasury.request_liquidity_topup(platform, MAKER, asset="USDT", amount="1000", reason="float is low",
                                               idempotency_key="topup-1")
    assert approvals_view.decision(request) is None
    rejected = approvals.reject(platform, CHECKER, request["_id"], "no ticket for this")
    lines = approvals_view.history(rejected)
    assert [(line.action, line.by, line.reason) for line in lines] == [
        ("requested", "maker", "float is low"), ("rejected", "checker", "no ticket for this")]
    assert lines[-1].at == rejected["rejected_at"] is not None
    assert approvals_view.decision(rejected).reason == "no ticket for this"


def test_history_of_an_approved_request_names_approver_and_outcome(platform):
    request = treasury.request_liquidity_topup(platform, MAKER, asset="USDT", amount="5", reason="top up",
                                               idempotency_key="topup-2")
    done = approvals.approve(platform, CHECKER, request["_id"], "matches the ticket")
    actions = [(line.action, line.by) for line in approvals_view.history(done)]
    assert actions[:2] == [("requested", "maker"), ("approved", "checker")] and actions[-1][0] == "executed"
    assert approvals_view.decision(done).by == "checker"


def test_details_are_readable_amounts_and_accounts(platform):
    document = {"asset": "BTC", "payload": {"account": "user.available:u0001:BTC", "actual_minor": 87916478197,
                                            "expected_minor": 87916478198, "note": "x" * 400}}
    rows = {d.label: d for d in approvals_view.details(document, platform.registry)}
    assert rows["Actual"].text == "879.16478197 BTC" and rows["Expected"].text == "879.16478198 BTC"
    assert rows["Account"].text == "u0001 · available BTC" and rows["Account"].user_id == "u0001"
    assert len(rows["Note"].text) == approvals_view.DETAIL_TEXT_LENGTH_MAX
    assert approvals_view.amount_text(123456789012, "BTC", platform.registry) == "1,234.56789012 BTC"
    assert approvals_view.amount_text(-100, "GBP", platform.registry) == "-1.00 GBP"
    assert approvals_view.account_text("platform.fees:platform:BTC") == "fees BTC"
    assert approvals_view.account_text("nonsense") == "nonsense"


def test_request_warnings_name_too_few_approvers_and_an_empty_source(platform):
    warnings = approvals_view.request_warnings(platform, MAKER, PEOPLE, kind="treasury.fee_sweep", asset="BTC",
                                               amount_minor=100_000_000_000)
    assert any("holds 0.00000000 BTC" in w for w in warnings)
    needs_two = approvals.approvals_required_for(platform, "BTC", 100_000_000_000) == 2
    assert any("only 1 enabled admin" in w for w in warnings) == needs_two
    assert approvals_view.request_warnings(platform, MAKER, PEOPLE, kind="treasury.liquidity_topup", asset="BTC",
                                           amount_minor=1) == []


# -- the balance a request would leave (issue 22 item 13) and the adjustment's user (item 12) -----------------
def _fee_wallet(platform, clock, btc_withdrawn: str = "0.5") -> None:
    from core.flows import withdrawal
    from core.flowtests.sandbox import Sandbox
    from core.base.permissions import SYSTEM

    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "1")
    withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount=btc_withdrawn,
                                  destination="x", idempotency_key="w-fees")  # 1% fee: 0.005 BTC


def test_balance_effects_show_what_each_money_request_would_leave(platform, clock):
    from core.flows import adjustment, deposit

    _fee_wallet(platform, clock)
    sweep = treasury.request_fee_sweep(platform, MAKER, asset="BTC", amount="0.004", reason="r", idempotency_key="s")
    topup = treasury.request_liquidity_topup(platform, MAKER, asset="BTC", amount="2", reason="r", idempotency_key="t")
    out = treasury.request_liquidity_withdrawal(platform, MAKER, asset="BTC", amount="1", reason="r", idempotency_key="o")
    debit = adjustment.request_adjustment(platform, MAKER, user_id="alice", asset="BTC", amount="-0.2", reason="r",
                                          idempotency_key="a")
    manual = deposit.request_manual_deposit(platform, MAKER, user_id="bob", asset="GBP", amount="1,500", reference="b1",
                                            reason="statement", idempotency_key="m")
    rebuild_like = {"_id": "apr_x", "kind": "legacy.rebuild", "payload": {"plan_digest": "d"}}
    platform.store.log.reset()
    effects = approvals_view.balance_effects(platform, CHECKER, [sweep, topup, out, debit, manual, rebuild_like])
    assert platform.store.log.count == 1  # one read for the whole page of requests
    seen = {request_id: [(e.label, e.now_minor, e.after_minor, e.impossible) for e in found]
            for request_id, found in effects.items()}
    assert seen == {
        sweep["_id"]: [("The fee wallet (BTC)", 500_000, 100_000, False)],
        topup["_id"]: [("The free liquidity float (BTC)", 0, 200_000_000, False)],
        out["_id"]: [("The free liquidity float (BTC)", 0, -100_000_000, True)],  # the float is empty: it would fail
        debit["_id"]: [("User alice's available BTC", 50_000_000, 30_000_000, False)],
        manual["_id"]: [("User bob's available GBP", 0, 150_000, False)],
        "apr_x": [],
    }
    text = approvals_view.effect_text(effects[sweep["_id"]][0], platform.registry)
    assert text == "The fee wallet (BTC) holds 0.00500000 BTC now; approving leaves 0.00100000 BTC."
    failing = approvals_view.effect_text(effects[out["_id"]][0], platform.registry)
    assert "leaves -1.00000000 BTC" in failing and "approving it would fail" in failing


def test_balance_effects_refuse_hostile_requests_and_support(platform):
    import pytest

    from core.base.errors import InvalidAccountError, LedgerError, PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        approvals_view.balance_effects(platform, Principal(name="sue", role=Role.SUPPORT), [])
    for hostile in ([{"_id": "a", "payload": {"$gt": 1}}], [{"_id": {"$ne": None}, "payload": {}}], "apr_1",
                    [{"_id": "a"}], [{}] * (approvals_view.EFFECTS_REQUESTS_MAX + 1)):
        with pytest.raises(LedgerError):
            approvals_view.balance_effects(platform, CHECKER, hostile)
    with pytest.raises(InvalidAccountError):
        approvals_view.balance_effects(platform, CHECKER, [{"_id": "a", "kind": "adjustment",
                                                             "payload": {"user_id": "a b", "asset": "BTC", "amount_minor": 1}}])


def test_adjustment_user_is_trimmed_and_must_exist(platform, clock):
    import pytest

    from core.base.errors import InvalidAccountError, PermissionDeniedError, UnknownUserError

    _fee_wallet(platform, clock)  # alice has a ledger balance
    platform.store.collection("users").insert_one({"user_id": "dora", "email": "d@example.com", "name": "Dora"})
    assert approvals_view.adjustment_user(platform, MAKER, "  alice ") == "alice"
    assert approvals_view.adjustment_user(platform, MAKER, "dora") == "dora"  # in the directory, no balance yet
    with pytest.raises(UnknownUserError, match="no user nobody"):
        approvals_view.adjustment_user(platform, MAKER, "nobody")
    for bad in ("", "a b", "x" * 300):
        with pytest.raises(InvalidAccountError):
            approvals_view.adjustment_user(platform, MAKER, bad)
    with pytest.raises(PermissionDeniedError):
        approvals_view.adjustment_user(platform, Principal(name="sue", role=Role.SUPPORT), "alice")
