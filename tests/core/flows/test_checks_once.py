"""Each caller value is checked once at the boundary it crosses, then trusted (issue 20).

The real check functions are wrapped (unittest.mock `wraps=`) wherever a module holds
them, and one withdrawal and one per-user integrity check are counted: the amount text is
parsed once and `check_owner_id` runs at most twice per request for the user's id.
"""

from __future__ import annotations

import sys
from unittest import mock

import pytest

from core.base.permissions import SYSTEM, Principal, Role
from core.flows import withdrawal
from core.flowtests.sandbox import Sandbox
from core.integrity import check_user
from core.ledger import accounts, money

AUDITOR = Principal(name="ann", role=Role.ADMIN)
CHECKS_PER_REQUEST_MAX = 2


@pytest.fixture
def counted(monkeypatch):
    """`counted(function)`: a Mock wrapping `function`, put in its place in every loaded
    module that holds it (modules import it by name), so every call is counted."""
    def wrap(function):
        spy = mock.Mock(wraps=function)
        for module in list(sys.modules.values()):
            for name, value in list(getattr(module, "__dict__", {}).items()):
                if value is function:
                    monkeypatch.setattr(module, name, spy)
        return spy
    return wrap


def _calls_with(spy: mock.Mock, value: object) -> int:
    return sum(1 for call in spy.call_args_list if call.args[:1] == (value,))


def test_one_withdrawal_parses_its_amount_once_and_checks_the_user_at_most_twice(platform, clock, counted):
    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "10")
    owner_checks, parses = counted(accounts.check_owner_id), counted(money.to_decimal)
    document = withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount="0.5",
                                             destination="bc1qxyz", idempotency_key="w-once")
    assert document["state"] == "settled" and document["amount_minor"] == 50_000_000
    assert _calls_with(parses, "0.5") == 1
    assert 1 <= _calls_with(owner_checks, "alice") <= CHECKS_PER_REQUEST_MAX


def test_one_user_check_checks_the_user_id_at_most_twice(platform, clock, counted):
    Sandbox(platform=platform, clock=clock).fund("alice", "BTC", "10")
    withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount="0.5",
                                  destination="bc1qxyz", idempotency_key="w-once")
    owner_checks = counted(accounts.check_owner_id)
    report = check_user(platform, AUDITOR, "alice", record=False)
    assert report.ok
    assert 1 <= _calls_with(owner_checks, "alice") <= CHECKS_PER_REQUEST_MAX


def test_a_bad_user_id_is_still_refused_at_the_boundary(platform):
    from core.base.errors import InvalidAccountError

    for bad in ("alice\n", {"$gt": ""}, "a b"):
        with pytest.raises(InvalidAccountError):
            check_user(platform, AUDITOR, bad, record=False)
        with pytest.raises(InvalidAccountError):
            withdrawal.request_withdrawal(platform, SYSTEM, user_id=bad, asset="BTC", amount="0.5",
                                          destination="bc1qxyz", idempotency_key="w-bad")
