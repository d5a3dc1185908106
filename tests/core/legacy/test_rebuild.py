"""core.legacy.rebuild: a document the bridge cannot read is never overwritten or deleted,
one pair never aborts the plan, an empty database is never populated, and nothing but the
four balance collections is ever written."""

from __future__ import annotations

import pytest
from bson import ObjectId

from core import approvals
from core.cli import main as cli
from core import legacy as legacy_module
from core.base.errors import LegacyConfigurationError
from core.ledger.money import DEFAULT_REGISTRY
from core.ledger.store import Store
from core.legacy import bridge
from core.legacy.bridge import SPECS
from core.legacy.fixture import build_legacy_fixture
from core.legacy.opening import import_balances
from core.legacy.rebuild import plan_rebuild, request_rebuild
from core.legacy.reconcile import reconcile
from tests.helpers import deposit, snapshot
from tests.principals import ADMIN, ADMIN_2

WRITES = ("insert_one", "insert_many", "update_one", "update_many", "delete_many", "find_one_and_update", "create_index",
          "drop_database")


def _wallet(user: str, currency: str, available: object, locked: object = 0.0, total: object = None) -> dict:
    return {"user_id": user, "currency": currency, "available_balance": available, "locked_balance": locked,
            "total_balance": available if total is None else total}


def _rebuild(platform, legacy) -> dict:
    platform.legacy = legacy
    request = request_rebuild(platform, ADMIN, legacy, "rewrite from the ledger")
    return approvals.approve(platform, ADMIN_2, request["_id"])["result"]


def _documents_written(plan) -> set[str]:
    return {w["document"] for w in plan.writes if w["document"]}


def test_rebuild_after_a_mixed_id_import_plans_no_duplicate(legacy, platform, monkeypatch):
    monkeypatch.setattr(bridge, "LEGACY_SCAN_BATCH", 3)
    documents = [{**_wallet(f"user-{n:02d}", "BTC", 0.5), "_id": ObjectId(f"{n:024x}") if n % 2 else f"w-{n}"}
                 for n in range(10)]
    legacy.collection("wallets").insert_many(documents)
    assert len(import_balances(platform, ADMIN, legacy).imported) == 10
    plan = plan_rebuild(platform, ADMIN, legacy)
    assert plan.writes == [] and plan.refused == []  # every user's wallet was read: nothing to insert or delete


def test_unreadable_documents_are_never_overwritten_or_deleted(legacy, platform):
    deposit(platform.ledger, "u-known", "1", "BTC")
    deposit(platform.ledger, "u-dup", "2", "BTC")
    legacy.collection("wallets").insert_many([
        _wallet("u-bad", "BTC", "1,5", "", float("nan")),  # not in the ledger: the pair is refused
        _wallet("u-known", "ETH", float("inf"), 0.0, float("-inf")),
        _wallet("u-known", "BTC", "text", 0.0, ""),  # in the ledger: no copy is inserted beside it
        _wallet("u-dup", "BTC", 2.0),
        _wallet("u-dup", "BTC", "two", 0.0, "2,0"),  # an unreadable duplicate is not deleted
    ])
    legacy.collection("crypto_balances").insert_one({"user_id": "u-known", "currency": "BTC", "balance": 0.5,
                                                     "locked_balance": 0.0})
    unreadable = {d["_id"]: d for d in legacy.raw("wallets").find() if not isinstance(d["available_balance"], float)
                  or d["available_balance"] != d["available_balance"] or abs(d["available_balance"]) == float("inf")}
    plan = plan_rebuild(platform, ADMIN, legacy)
    held = {(h["user"], h["currency"]): h for h in plan.held}
    assert set(held) == {("u-bad", "BTC"), ("u-known", "ETH"), ("u-known", "BTC"), ("u-dup", "BTC")}
    assert held[("u-bad", "BTC")]["values"] == {"available_balance": "'1,5'", "locked_balance": "''",
                                                "total_balance": "nan"}
    assert {h["document"] for h in plan.held}.isdisjoint(_documents_written(plan))
    assert not [w for w in plan.writes if w["op"] == "insert"]
    refused = {(r["user"], r["currency"]): r["reason"] for r in plan.refused}
    assert "human decision" in refused[("u-bad", "BTC")] and "human decision" in refused[("u-known", "ETH")]
    assert {(w["collection"], w["user"]) for w in plan.writes} == {("crypto_balances", "u-known")}
    assert _rebuild(platform, legacy)["ok"]
    after = {d["_id"]: d for d in legacy.raw("wallets").find()}
    assert all(after[key] == document for key, document in unreadable.items())  # byte for byte
    assert legacy.raw("crypto_balances").find_one({"user_id": "u-known"})["balance"] == 1.0
    assert legacy.raw("wallets").count_documents({"user_id": "u-known", "currency": "BTC"}) == 1
    after_rebuild = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert after_rebuild.clean and len(after_rebuild.held) == len(plan.held)  # clean, and still listed for a human


def test_a_suffixed_copy_beside_a_plain_balance_survives_the_round_trip(legacy, platform):
    legacy.collection("wallets").insert_many([_wallet("u1", "USDT", 100.0), _wallet("u1", "USDTTRC20", 12.5)])
    report = import_balances(platform, ADMIN, legacy)
    assert [p["available_minor"] for p in report.planned] == [100_000_000]
    assert [(n["kind"], n["values"]["available_balance"]) for n in report.not_booked] == [("held", "12.5")]
    plan = plan_rebuild(platform, ADMIN, legacy)
    assert not [w for w in plan.writes if w["op"] == "delete"] and [h["raw_currency"] for h in plan.held] == ["'USDTTRC20'"]
    deposit(platform.ledger, "u1", "1", "USDT")  # the ledger moves on: the plain document is rewritten
    assert _rebuild(platform, legacy)["ok"]
    assert legacy.raw("wallets").find_one({"currency": "USDTTRC20"})["available_balance"] == 12.5  # never deleted
    assert legacy.raw("wallets").find_one({"currency": "USDT"})["available_balance"] == 101.0
    final = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert final.ok and final.clean and [h["user"] for h in final.held] == ["u1"]
    assert [d.kind for d in final.dirt if d.severity == "warning"] == ["suffixed_beside_plain"]


def test_a_null_amount_is_a_missing_field_the_rebuild_fills(legacy, platform):
    deposit(platform.ledger, "u1", "1", "BTC")
    legacy.collection("wallets").insert_one(_wallet("u1", "BTC", 1.0, None, 1.0))
    report = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert report.held == [] and "locked_balance is null" in {d.message for d in report.dirt}
    assert _rebuild(platform, legacy)["ok"]
    assert legacy.raw("wallets").find_one({"user_id": "u1"})["locked_balance"] == 0.0
    assert reconcile(platform.store, legacy, DEFAULT_REGISTRY).clean


def test_one_pair_a_double_cannot_hold_is_refused_by_name_and_the_rest_proceeds(legacy, platform):
    deposit(platform.ledger, "u-big", "700000000000000.01", "GBP")
    deposit(platform.ledger, "u-small", "10.00", "GBP")
    legacy.collection("wallets").insert_many([_wallet("u-big", "GBP", 1.0), _wallet("u-small", "GBP", 5.0),
                                              _wallet("u-legacy-only", "BTC", 0.25)])
    plan = plan_rebuild(platform, ADMIN, legacy)
    refused = {(r["user"], r["currency"]): r for r in plan.refused}
    assert set(refused) == {("u-big", "GBP"), ("u-legacy-only", "BTC")}
    assert refused[("u-big", "GBP")]["value"] == "700000000000000.01"
    assert "double" in refused[("u-big", "GBP")]["reason"]
    assert refused[("u-legacy-only", "BTC")]["value"] == "wallets.available_balance = 0.25"
    assert "import it first" in refused[("u-legacy-only", "BTC")]["reason"]
    assert [(w["user"], w["set"]["available_balance"]) for w in plan.writes] == [("u-small", "10.00")]
    result = _rebuild(platform, legacy)
    assert result["ok"] and result["writes_applied"] == 1
    assert legacy.raw("wallets").find_one({"user_id": "u-small"})["available_balance"] == 10.0
    assert legacy.raw("wallets").find_one({"user_id": "u-big"})["available_balance"] == 1.0


def test_an_empty_database_is_never_populated(legacy, platform, monkeypatch, capsys):
    deposit(platform.ledger, "u1", "1", "BTC")
    before = snapshot(legacy, tuple(SPECS))
    for call in (lambda: plan_rebuild(platform, ADMIN, legacy), lambda: request_rebuild(platform, ADMIN, legacy, "x")):
        with pytest.raises(LegacyConfigurationError) as refused:
            call()
        assert "never populates" in refused.value.message
    assert snapshot(legacy, tuple(SPECS)) == before and platform.store.raw("approvals").count_documents({}) == 0
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.legacy_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.setattr(legacy_module, "open_legacy_store", lambda: legacy)
    assert cli.main(["legacy", "rebuild", "--dry-run"]) == 2
    assert "LEGACY_DB" in capsys.readouterr().err


def test_two_runs_of_one_approved_plan_insert_one_document(legacy, platform):
    from core.legacy.rebuild import _apply

    deposit(platform.ledger, "u1", "1", "BTC")
    legacy.collection("crypto_balances").insert_one({"user_id": "u1", "currency": "BTC", "balance": 0.5})
    plan = plan_rebuild(platform, ADMIN, legacy)
    assert [(w["op"], w["document"]) for w in plan.writes if w["collection"] == "wallets"] == [
        ("insert", "ledger-rebuild:u1:BTC")
    ]
    _apply(legacy, plan, platform.clock.now())
    _apply(legacy, plan, platform.clock.now())  # a retry beside a slow first run: the same end state
    assert legacy.raw("wallets").count_documents({"user_id": "u1"}) == 1
    assert reconcile(platform.store, legacy, DEFAULT_REGISTRY).clean and plan_rebuild(platform, ADMIN, legacy).writes == []


def test_timestamps_at_the_ends_of_time_are_rebuilt_not_crashed_on(legacy, platform):
    deposit(platform.ledger, "u1", "1", "BTC")
    deposit(platform.ledger, "u2", "1", "BTC")
    legacy.collection("wallets").insert_many([
        {**_wallet("u1", "BTC", 0.5), "last_updated": "0001-01-01 00:00:00", "created_at": "9999-12-31T23:59:59-01:00"},
        {**_wallet("u2", "BTC", 1.0), "last_updated": "0001-01-01T00:00:00"},  # only the text becomes a date
    ])
    plan = plan_rebuild(platform, ADMIN, legacy)
    assert {w["user"]: w["timestamps"].get("last_updated", "now") for w in plan.writes} == {
        "u1": None, "u2": "0001-01-01T00:00:00"}  # None: set to the rebuild's time
    assert _rebuild(platform, legacy)["ok"]
    assert legacy.raw("wallets").find_one({"user_id": "u2"})["last_updated"].year == 1
    assert reconcile(platform.store, legacy, DEFAULT_REGISTRY).clean


def test_a_missing_collection_is_never_created(legacy, platform):
    deposit(platform.ledger, "u1", "1", "BTC")
    legacy.collection("crypto_balances").insert_one({"user_id": "u1", "currency": "BTC", "balance": 0.5})
    legacy.raw("wallets").drop()
    plan = plan_rebuild(platform, ADMIN, legacy)
    assert plan.missing == ["wallets"] and {w["collection"] for w in plan.writes} == {"crypto_balances"}
    assert _rebuild(platform, legacy)["ok"]
    assert "wallets" not in legacy.collection_names()


def _rekey_every_other_document(legacy: Store) -> None:
    """Give every other balance document a string `_id` (the rest keep ObjectIds)."""
    for name in SPECS:
        for number, document in enumerate(list(legacy.raw(name).find())):
            if number % 2:
                legacy.raw(name).delete_one({"_id": {"$eq": document["_id"]}})
                legacy.raw(name).insert_one({**document, "_id": f"{name}-{number:04d}"})


def test_round_trip_on_the_dirty_fixture_writes_only_the_four_balance_collections(legacy, platform, monkeypatch):
    monkeypatch.setattr(bridge, "LEGACY_SCAN_BATCH", 5)  # many batch boundaries across the two `_id` types
    manifest = build_legacy_fixture(legacy)
    _rekey_every_other_document(legacy)
    directory = ("users", "user_accounts")
    directory_before = snapshot(legacy, directory)
    written: set[tuple[str, str]] = set()

    def record_writes(phase, collection, operation):
        if phase == "before" and operation in WRITES:
            written.add((collection, operation))

    legacy.fault_hook = record_writes
    report = import_balances(platform, ADMIN, legacy)
    assert report.ok and not report.failed
    result = _rebuild(platform, legacy)
    assert result["ok"] and result["writes_applied"] > 0
    final = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert final.ok and final.clean and final.findings == [] and final.held == []
    assert written and {collection for collection, _ in written} <= set(SPECS)
    assert snapshot(legacy, directory) == directory_before
    assert {u for u, _ in manifest.truth} <= {p["user"] for p in report.planned}


def test_a_pair_import_refuses_is_not_told_to_import_it_first(legacy, platform):
    """Issue 22 item 21: a wallets balance import refuses (negative, 9 decimals) was told by
    the plan to "import it first", which can never work: the plan says why import refuses it."""
    legacy.collection("wallets").insert_many([
        {**_wallet("u-negative", "BTC", -0.5), "_id": "w-neg"},
        {**_wallet("u-precise", "BTC", "0.123456789", "0", "0.123456789"), "_id": "w-precise"},
        {**_wallet("u-fine", "BTC", 0.25), "_id": "w-fine"},
    ])
    import_report = import_balances(platform, ADMIN, legacy, dry_run=True)
    assert {item["user"] for item in import_report.not_booked} == {"u-negative", "u-precise"}
    refused = {r["user"]: r["reason"] for r in plan_rebuild(platform, ADMIN, legacy).refused}
    assert "import it first" not in refused["u-negative"] and "import it first" not in refused["u-precise"]
    assert "negative amount" in refused["u-negative"] and "w-neg" in refused["u-negative"]
    assert "more decimals" in refused["u-precise"] and "w-precise" in refused["u-precise"]
    assert refused["u-fine"] == "not in the ledger: import it first"  # import would book it: still true
