"""core.legacy.opening: import books exactly or not at all, and names every document of the
source collection it did not book, with its raw values and why."""

from __future__ import annotations

import json
from datetime import datetime

from bson import ObjectId

from core import approvals
from core.cli import main as cli
from core import legacy as legacy_module
from core.ledger import accounts as acct
from core.ledger.money import DEFAULT_REGISTRY
from core.legacy import bridge
from core.legacy.opening import import_balances
from core.legacy.rebuild import plan_rebuild, request_rebuild
from core.legacy.reconcile import reconcile
from tests.helpers import snapshot
from tests.principals import ADMIN, ADMIN_2

LEDGER_COLLECTIONS = ("entries", "balances")


def _wallet(user: str, currency: object, available: object, locked: object = 0.0, total: object = None, **extra) -> dict:
    document = {"user_id": user, "currency": currency, "available_balance": available, "locked_balance": locked,
                "total_balance": available if total is None else total}
    return {**document, **extra}


def _minor(platform, user: str, asset: str) -> int:
    return platform.ledger.balance(acct.user_available(user, asset)).minor


def test_import_with_mixed_id_types_skips_no_user(legacy, platform, monkeypatch):
    monkeypatch.setattr(bridge, "LEGACY_SCAN_BATCH", 3)
    users = [f"user-{n:02d}" for n in range(10)]
    legacy.collection("wallets").insert_many(
        [{**_wallet(user, "BTC", 0.5), "_id": ObjectId(f"{n:024x}") if n % 2 else f"w-{n}"} for n, user in enumerate(users)]
    )
    report = import_balances(platform, ADMIN, legacy)
    assert len(report.imported) == len(users) and report.ok
    assert not [s for s in report.skipped if "no wallets document" in s["reason"]]
    assert {_minor(platform, user, "BTC") for user in users} == {50_000_000}


def test_import_names_every_document_it_did_not_book(legacy, platform):
    legacy.collection("wallets").insert_many([
        _wallet("u-ok", "USDT", 100.0),
        _wallet("u-ok", "USDTTRC20", 12.5),  # a suffixed copy beside a plain one: held, named
        _wallet("u-alone", "USDTTRC20", 7.25),  # alone: booked as USDT
        _wallet("u-unknown", "XYZ", 3.0),
        _wallet("u-bad", "BTC", "1,5", "", float("nan")),
        _wallet("u-inf", "ETH", float("inf"), 0.0, float("-inf")),
        _wallet("u-precise", "BTC", "0.123456789", "0", "0.123456789"),  # 9 decimals as text: refused, not rounded
        _wallet("u-precise-double", "BTC", 0.123456789),
        _wallet("u-noise", "BTC", 0.0015300000000000001),  # float noise: booked exactly as 0.00153
        _wallet("u-negative", "BTC", -0.5),
        _wallet("u-zero", "ETH", 0),
        _wallet("u-dup", "BTC", 1.0, last_updated=datetime(2025, 1, 1)),
        _wallet("u-dup", "BTC", 2.0, last_updated=datetime(2025, 6, 1)),
        _wallet("None", "BTC", 0.5),
        _wallet("admin_wallet", "BTC", 9.0),
        _wallet({"$gt": ""}, "BTC", 1.0),
    ])
    before = snapshot(platform.store, LEDGER_COLLECTIONS)
    dry = import_balances(platform, ADMIN, legacy, dry_run=True)
    assert snapshot(platform.store, LEDGER_COLLECTIONS) == before
    report = import_balances(platform, ADMIN, legacy)
    assert report.planned == dry.planned and report.not_booked == dry.not_booked
    booked = {(p["user"], p["currency"]): p for p in report.planned}
    assert {pair: p["available_minor"] for pair, p in booked.items()} == {
        ("u-ok", "USDT"): 100_000_000, ("u-alone", "USDT"): 7_250_000, ("u-noise", "BTC"): 153_000,
        ("u-dup", "BTC"): 200_000_000,
    }
    assert booked[("u-alone", "USDT")]["raw_currency"] == "USDTTRC20"
    reasons = {(item["user"], item["kind"]): item for item in report.not_booked}
    assert set(reasons) == {
        ("u-ok", "held"), ("u-unknown", "unknown_currency"), ("u-bad", "held"), ("u-inf", "held"),
        ("u-precise", "unbookable"), ("u-precise-double", "unbookable"), ("u-negative", "unbookable"),
        ("u-zero", "zero_balance"), ("u-dup", "duplicate"), ("None", "null_owner"),
        ("admin_wallet", "system_owner"), ("{'$gt': ''}", "invalid_owner"),
    }
    assert reasons[("u-ok", "held")]["values"]["available_balance"] == "12.5"
    assert "beside a plain USDT" in reasons[("u-ok", "held")]["reason"]
    assert reasons[("u-bad", "held")]["values"] == {"available_balance": "'1,5'", "locked_balance": "''",
                                                    "total_balance": "nan"}
    assert "refused, never rounded" in reasons[("u-precise", "unbookable")]["reason"]
    assert "0.123456789" in reasons[("u-precise-double", "unbookable")]["reason"]
    assert "newest" in reasons[("u-dup", "duplicate")]["reason"]
    assert reasons[("u-dup", "duplicate")]["values"]["available_balance"] == "1.0"  # the older copy, not booked
    assert [c["primary"] for c in report.choices if c["user"] == "u-dup"]
    for user in ("u-precise", "u-precise-double", "u-bad", "u-negative"):
        assert _minor(platform, user, "BTC") == 0  # refused, never rounded nor guessed


def test_primary_holding_the_amount_is_booked_and_kept_by_the_rebuild(legacy, platform):
    legacy.collection("trader_balances").insert_many([
        {"trader_id": "u-sol", "currency": "SOL", "available_balance": 80.73912638, "locked_balance": 0.0,
         "total_balance": 80.73912638, "updated_at": datetime(2025, 1, 1)},
        {"trader_id": "u-sol", "currency": "SOL", "updated_at": datetime(2025, 6, 1)},  # newest, states nothing
    ])
    platform.legacy = legacy
    report = import_balances(platform, ADMIN, legacy, source="trader_balances")
    assert [p["available_minor"] for p in report.planned] == [8_073_912_638]
    assert "states an amount" in report.choices[0]["reason"]
    assert [item["kind"] for item in report.not_booked] == ["duplicate"]
    request = request_rebuild(platform, ADMIN, legacy, "rewrite from the ledger")
    assert approvals.approve(platform, ADMIN_2, request["_id"])["result"]["ok"]
    kept = legacy.raw("trader_balances").find_one({"trader_id": "u-sol"})
    assert kept["available_balance"] == 80.73912638 and legacy.raw("trader_balances").count_documents({}) == 1
    assert legacy.raw("wallets").find_one({"user_id": "u-sol"})["total_balance"] == 80.73912638
    assert reconcile(platform.store, legacy, DEFAULT_REGISTRY).clean


def test_import_from_an_empty_or_incomplete_database_fails_by_name(legacy, platform, monkeypatch, capsys):
    empty = import_balances(platform, ADMIN, legacy)
    assert not empty.ok and [f["kind"] for f in empty.findings] == ["empty_database"]
    legacy.collection("crypto_balances").insert_one({"user_id": "u1", "currency": "BTC", "balance": 1.0})
    legacy.raw("wallets").drop()
    missing = import_balances(platform, ADMIN, legacy)
    assert not missing.ok and [f["collection"] for f in missing.findings] == ["wallets"]
    assert platform.store.raw("entries").count_documents({}) == 0
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.legacy_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.setattr(legacy_module, "open_legacy_store", lambda: legacy)
    assert cli.main(["legacy", "import", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["findings"][0]["kind"] == "missing_collection"
    assert plan_rebuild(platform, ADMIN, legacy).missing == ["wallets"]


def _agreeing_copies(legacy, user: str, currency: str, amount: float) -> None:
    """The three other collections agree on `amount` available, nothing locked."""
    legacy.collection("crypto_balances").insert_one({"user_id": user, "currency": currency, "balance": amount,
                                                     "locked_balance": 0.0})
    legacy.collection("trader_balances").insert_one({"trader_id": user, "currency": currency, "available_balance": amount,
                                                     "locked_balance": 0.0, "total_balance": amount})
    legacy.collection("internal_balances").insert_one({"user_id": user, "currency": currency, "balance": amount,
                                                       "locked_balance": 0.0})


def test_import_reads_a_nan_available_like_an_absent_one(legacy, platform):
    """Issue 22 item 21: `available_balance: NaN` beside a finite total booked nothing and said
    "no wallets document" (false: it was held); the same document without the field booked
    2 ETH. Both book total − locked (2 ETH, which the other three collections agree on), and
    the NaN is reported: as dirt by reconcile, beside the booked row by import."""
    from bson.decimal128 import Decimal128

    legacy.collection("wallets").insert_many([
        {"_id": "w-nan", "user_id": "u-nan", "currency": "ETH", "available_balance": float("nan"), "locked_balance": 0.0,
         "total_balance": 2.0},
        {"_id": "w-absent", "user_id": "u-absent", "currency": "ETH", "locked_balance": 0.0, "total_balance": 2.0},
        {"_id": "w-d128", "user_id": "u-d128", "currency": "ETH", "available_balance": Decimal128("NaN"),
         "locked_balance": 0.5, "total_balance": 2.5},
    ])
    for user in ("u-nan", "u-absent", "u-d128"):
        _agreeing_copies(legacy, user, "ETH", 2.0)
    dirt = {(d.document, d.kind) for d in reconcile(None, legacy, DEFAULT_REGISTRY).dirt}
    assert {("w-nan", "non_finite_value"), ("w-d128", "non_finite_value")} <= dirt
    report = import_balances(platform, ADMIN, legacy)
    assert report.ok and report.skipped == [] and report.not_booked == [], (report.skipped, report.not_booked)
    booked = {p["user"]: (p["available_minor"], p["locked_minor"]) for p in report.planned}
    assert booked == {"u-nan": (200_000_000, 0), "u-absent": (200_000_000, 0), "u-d128": (200_000_000, 50_000_000)}
    assert {p["user"]: p.get("read_as_absent") for p in report.planned} == {
        "u-nan": {"available_balance": "nan"}, "u-absent": None, "u-d128": {"available_balance": "Decimal128('NaN')"}}
    assert report.disagreements == [] or {d["user"] for d in report.disagreements} == {"u-d128"}
    assert _minor(platform, "u-nan", "ETH") == _minor(platform, "u-absent", "ETH") == 200_000_000
    platform.legacy = legacy
    request = request_rebuild(platform, ADMIN, legacy, "rewrite the NaN from the ledger")
    assert approvals.approve(platform, ADMIN_2, request["_id"])["result"]["ok"]
    assert legacy.raw("wallets").find_one({"_id": "w-nan"})["available_balance"] == 2.0  # the dirt is fixed
    after = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert after.ok and not [d for d in after.dirt if d.kind == "non_finite_value"]


def test_import_holds_a_document_whose_only_amounts_are_nan_and_names_it(legacy, platform):
    """With no finite available or total there is nothing to read as absent: held, by name."""
    legacy.collection("wallets").insert_many([
        {"_id": "w-all-nan", "user_id": "u-all-nan", "currency": "ETH", "available_balance": float("nan"),
         "locked_balance": 0.0, "total_balance": float("nan")},
        {"_id": "w-inf", "user_id": "u-inf", "currency": "ETH", "available_balance": float("inf"), "locked_balance": 0.0},
    ])
    _agreeing_copies(legacy, "u-all-nan", "ETH", 2.0)
    report = import_balances(platform, ADMIN, legacy)
    assert report.planned == [] and _minor(platform, "u-all-nan", "ETH") == 0
    held = {item["document"]: item for item in report.not_booked if item["kind"] == "held"}
    assert set(held) == {"w-all-nan", "w-inf"}
    assert "not a finite number" in held["w-all-nan"]["reason"]
    assert held["w-all-nan"]["values"] == {"available_balance": "nan", "locked_balance": "0.0", "total_balance": "nan"}
    assert not [s for s in report.skipped if s["reason"] == "no wallets document"]  # the document is named, not denied
    skipped = {s["user"]: s for s in report.skipped}
    assert skipped["u-all-nan"]["document"] == "w-all-nan" and "is held" in skipped["u-all-nan"]["reason"]
