"""core.legacy.reconcile: states that are wrong even when every copy agrees — a negative
balance, a missing collection, an empty database — are findings that fail the reconcile."""

from __future__ import annotations

import json
from decimal import Decimal


from core.cli import main as cli
from core import legacy as legacy_module
from core.ledger.money import DEFAULT_REGISTRY
from core.ledger.store import Store
from core.legacy.reconcile import reconcile
from tests.helpers import deposit



def _negative_everywhere(legacy: Store) -> None:
    """−0.5 BTC for u-neg, agreed by all four collections (and nothing else wrong)."""
    legacy.collection("wallets").insert_one({"user_id": "u-neg", "currency": "BTC", "available_balance": -0.5,
                                             "locked_balance": 0.0, "total_balance": -0.5})
    legacy.collection("crypto_balances").insert_one({"user_id": "u-neg", "currency": "BTC", "balance": -0.5,
                                                     "locked_balance": 0.0})
    legacy.collection("trader_balances").insert_one({"trader_id": "u-neg", "currency": "BTC", "available_balance": -0.5,
                                                     "locked_balance": 0.0, "total_balance": -0.5})
    legacy.collection("internal_balances").insert_one({"user_id": "u-neg", "currency": "BTC", "balance": -0.5,
                                                       "locked_balance": 0.0})


def _cli(monkeypatch, platform, legacy, argv) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.legacy_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.setattr(legacy_module, "open_legacy_store", lambda: legacy)
    return cli.main(argv)


def test_reconcile_a_negative_balance_all_collections_agree_on_is_a_finding(legacy, platform, monkeypatch, capsys):
    _negative_everywhere(legacy)
    report = reconcile(None, legacy, DEFAULT_REGISTRY)
    assert report.drift == [] and not report.ok and not report.clean
    assert sorted(f["collection"] for f in report.findings) == sorted(
        ["wallets", "crypto_balances", "trader_balances", "internal_balances"]
    )
    assert {f["kind"] for f in report.findings} == {"negative_balance"}
    assert report.findings[0]["values"] and report.findings[0]["user"] == "u-neg"
    assert _cli(monkeypatch, platform, legacy, ["legacy", "reconcile"]) == 1
    out = capsys.readouterr().out
    assert "negative_balance" in out and "u-neg" in out


def test_ledger_user_balances_reads_every_user_across_batches(platform):
    from core.legacy.reconcile import ledger_user_balances

    for number in range(7):
        deposit(platform.ledger, f"u{number}", f"0.{number + 1}", "BTC")
    platform.ledger.place_user_hold(hold_id="h-u3", user_id="u3", asset="BTC", amount=Decimal("0.1"), actor="test")
    whole = ledger_user_balances(platform.store)
    assert len(whole) == 7 and whole[("u3", "BTC")] == {"available": 30_000_000, "locked": 10_000_000}
    for batch_size in (1, 2, 3, 7):
        assert ledger_user_balances(platform.store, batch_size) == whole


def test_reconcile_a_missing_collection_is_a_finding(legacy):
    wallet = {"user_id": "u1", "currency": "BTC", "available_balance": 1.0, "locked_balance": 0.0,
                    "total_balance": 1.0}
    legacy.collection("wallets").insert_one(wallet)
    assert reconcile(None, legacy, DEFAULT_REGISTRY).ok
    legacy.raw("trader_balances").drop()
    report = reconcile(None, legacy, DEFAULT_REGISTRY)
    assert not report.ok and [(f["kind"], f["collection"]) for f in report.findings] == [
        ("missing_collection", "trader_balances")
    ]


def test_reconcile_an_empty_database_is_a_finding_not_ok(legacy, platform, monkeypatch, capsys):
    deposit(platform.ledger, "u1", "1", "BTC")
    report = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert not report.ok and "empty_database" in {f["kind"] for f in report.findings}
    assert _cli(monkeypatch, platform, legacy, ["legacy", "reconcile", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["counts"]["findings"] >= 1
    assert reconcile(None, legacy, DEFAULT_REGISTRY).findings[-1]["kind"] == "empty_database"
