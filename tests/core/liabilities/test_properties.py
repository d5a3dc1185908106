"""Property: for random user sets (available and locked, several assets, random splits),
every user's proof verifies against the published root, and each root's total equals the
ledger's user liabilities for that asset exactly."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import liabilities, reports
from core.base.clock import ManualClock
from core.platform import Platform
from tests.principals import ADMIN, SUPPORT
from tests.helpers import deposit, make_test_store

ASSETS = {"BTC": 8, "USDT": 6, "GBP": 2}
holding = st.tuples(st.sampled_from(sorted(ASSETS)), st.integers(min_value=1, max_value=10**12), st.integers(min_value=0, max_value=100))
users = st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.\-]{0,11}", fullmatch=True), st.lists(holding, min_size=1, max_size=3),
                        min_size=1, max_size=10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(users, st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=2**32))
def test_liabilities_every_proof_verifies_and_totals_equal_the_ledger(population, split_parts, seed):
    store = make_test_store()
    try:
        platform = Platform.open(store, ManualClock())
        for user, holdings in population.items():
            for number, (asset, minor, locked_percent) in enumerate(holdings):
                value = Decimal(minor).scaleb(-ASSETS[asset])
                deposit(platform.ledger, user, format(value, "f"), asset, key=f"d:{user}:{number}")
                locked = Decimal(minor * locked_percent // 100).scaleb(-ASSETS[asset])
                if locked > 0:
                    platform.ledger.place_user_hold(hold_id=f"h:{user}:{number}", user_id=user, asset=asset, amount=format(locked, "f"), actor="system")
        snapshot = liabilities.take_snapshot(platform, ADMIN, split_parts=split_parts, rng=random.Random(seed))
        published = {a["asset"]: a for a in snapshot["assets"]}
        ledger = {row.asset: row.user_liabilities for row in reports.platform_totals(platform, ADMIN) if row.user_liabilities}
        assert {asset: summary["total"] for asset, summary in published.items()} == ledger
        for user in population:
            bundle = liabilities.user_proof_bundle(platform, SUPPORT, user)
            balances = platform.ledger.user_balances(user)
            assert {p["asset"] for p in bundle["proofs"]} == {a for a, b in balances.items() if b.total.minor > 0}
            for proof in bundle["proofs"]:
                summary = published[proof["asset"]]
                check = liabilities.verify_proof(proof, summary["root"], summary["total"])
                assert check.ok, check.reason
                assert proof["balance_minor"] == balances[proof["asset"]].total.minor
        assert liabilities.verify_snapshot(platform, ADMIN).ok
    finally:
        if not store.embedded:
            store.drop()
