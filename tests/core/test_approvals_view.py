"""Approval reads: history with who/when/why, eligible approvers, readable details, warnings."""

from __future__ import annotations

from core import approvals_view
from core.flows import treasury
from core import approvals
from core.permissions import Principal, Role

MAKER = Principal(name="maker", role=Role.ADMIN)
CHECKER = Principal(name="checker", role=Role.ADMIN)
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
