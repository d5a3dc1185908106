"""The legacy bridge: the dirty fixture, reconcile, import, rebuild, CLI, secrets."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core import approvals
from core.cli import main as cli
from core import legacy as legacy_module
from core.base.errors import LegacyConfigurationError, PermissionDeniedError, RepairNotNeededError
from core.integrity import check_platform, check_user
from core.legacy.bridge import SPECS
from core.legacy.values import legacy_decimal, legacy_time, normalise_currency, to_minor
from core.legacy.fixture import build_legacy_fixture
from core.legacy.reconcile import reconcile
from core.legacy.opening import import_balances
from core.legacy.rebuild import plan_rebuild, request_rebuild
from core.ledger.money import DEFAULT_REGISTRY
from core.ledger.store import uncovered
from tests.helpers import Crash, make_test_store, snapshot
from tests.principals import ADMIN, ADMIN_2, SUPPORT

LEGACY_COLLECTIONS = tuple(SPECS) + ("users", "user_accounts")
LEDGER_COLLECTIONS = ("entries", "balances", "audit", "approvals")


def _drift_set(items) -> set:
    return {(d["user"], d["currency"], d["collection"], d["field"], d["difference"]) for d in items}


def _planted(manifest) -> set:
    return {(d.user, d.currency, d.collection, d.field, d.difference_minor) for d in manifest.drift}


# -- values at the boundary --------------------------------------------------------------------
def test_legacy_decimal_exact_at_the_boundary():
    assert legacy_decimal(0.0015300000000000001) == Decimal("0.0015300000000000001")
    assert (
        legacy_decimal(0.1) == Decimal("0.1") and legacy_decimal(0) == 0 and legacy_decimal("2.50") == Decimal("2.50")
    )
    for bad in (None, True, float("nan"), float("inf"), "abc", {"$gt": 1}, [1], b"1"):
        assert legacy_decimal(bad) is None
    assert to_minor(Decimal("0.0015300000000000001"), 8) == 153_000
    assert to_minor(Decimal("0.125"), 2) == 12  # half-even, only to name a value


def test_legacy_currency_and_time_normalised():
    assert normalise_currency("USDTTRC20", DEFAULT_REGISTRY) == ("USDT", True)
    assert normalise_currency(" usdt ", DEFAULT_REGISTRY) == ("USDT", False)
    assert normalise_currency("USDTERC20", DEFAULT_REGISTRY) == ("USDT", True)
    for bad in ("BNB", "TRC20", None, 5, ""):
        assert normalise_currency(bad, DEFAULT_REGISTRY) == (None, False)
    assert legacy_time("2025-06-01T13:00:00+01:00").isoformat() == "2025-06-01T12:00:00"
    assert (
        legacy_time("2025-06-01 12:00:00").hour == 12
        and legacy_time("2025-06-01T12:00:00.123456").microsecond == 123456
    )
    assert legacy_time("last tuesday") is None and legacy_time(17) is None


# -- the fixture -------------------------------------------------------------------------------------
def test_fixture_deterministic_and_dirty(legacy):
    manifest = build_legacy_fixture(legacy, seed=7)
    second = make_test_store()
    try:
        other = build_legacy_fixture(second, seed=7)
    finally:
        if not second.embedded:
            second.drop()
    assert manifest.users == other.users and manifest.truth == other.truth and manifest.drift == other.drift
    kinds = {kind for kind, _, _ in manifest.dirt}
    assert kinds >= {
        "duplicate",
        "null_owner",
        "suffixed_currency",
        "fee_counter",
        "system_owner",
        "mixed_type",
        "missing_field",
        "bad_timestamp",
        "string_timestamp",
        "unknown_currency",
        "balance_is_available",
    }
    assert manifest.noise and len(manifest.drift) == 6
    raw = legacy.raw("wallets")
    assert raw.find_one({"user_id": "None"}) is not None and raw.find_one({"user_id": "admin_wallet"}) is not None
    assert legacy.raw("internal_balances").find_one({"user_id": "PLATFORM_FEES"})["total_fees"] == 0.0015300000000000001
    assert legacy.raw("crypto_balances").find_one({"currency": "USDTTRC20"}) is not None
    assert isinstance(
        raw.find_one({"user_id": manifest.users[0], "currency": "BTC"})["locked_balance"], int
    )  # int32 zero
    assert any(isinstance(d.get("created_at"), str) and "+01:00" in d["created_at"] for d in raw.find())


# -- reconcile ---------------------------------------------------------------------------------------
def test_reconcile_finds_exactly_the_planted_drift(legacy):
    manifest = build_legacy_fixture(legacy)
    before = snapshot(legacy, LEGACY_COLLECTIONS)
    report = reconcile(None, legacy, DEFAULT_REGISTRY)
    assert _drift_set(report.drift) == _planted(manifest)
    assert {(n["collection"], n["user"], n["currency"], n["field"]) for n in report.noise} == set(manifest.noise)
    reported = {(d.kind, d.collection, d.owner) for d in report.dirt}
    assert set(manifest.dirt) <= reported
    assert not report.ok and not report.clean and report.pairs_checked == len(manifest.truth)
    assert snapshot(legacy, LEGACY_COLLECTIONS) == before  # read-only
    assert reconcile(None, legacy, DEFAULT_REGISTRY).as_dict() == report.as_dict()


def test_reconcile_against_the_ledger_finds_exactly_the_planted_drift(legacy, platform):
    manifest = build_legacy_fixture(legacy, ledger_platform=platform)
    report = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert _drift_set(report.drift) == _planted(manifest)
    assert {d["reference"] for d in report.drift} == {"ledger"}
    assert {(n["collection"], n["user"], n["currency"], n["field"]) for n in report.noise} == set(manifest.noise)
    assert check_platform(platform, ADMIN, record=False).ok


def test_reconcile_survives_malformed_documents(legacy):
    legacy.collection("wallets").insert_many(
        [
            {"user_id": "u-x", "currency": None, "available_balance": 1.0},
            {"user_id": 5, "currency": "BTC", "available_balance": 1.0},
            {
                "user_id": "u-y",
                "currency": "BTC",
                "available_balance": {"$gt": 1},
                "locked_balance": float("nan"),
                "total_balance": [1],
                "last_updated": 17,
            },
            {
                "user_id": "u-z",
                "currency": "btc",
                "available_balance": "0.5",
                "locked_balance": True,
                "total_balance": "x",
            },
            {"currency": "ETH"},
            {"user_id": "bad id with spaces", "currency": "ETH", "available_balance": 1.0},
        ]
    )
    report = reconcile(None, legacy, DEFAULT_REGISTRY)
    kinds = {d.kind for d in report.dirt}
    assert {"unknown_currency", "invalid_owner", "malformed_value", "null_owner"} <= kinds
    assert report.ok  # nothing to compare against: dirt, not drift


def test_reconcile_noise_is_not_drift(legacy, platform):
    from core.ledger import accounts as acct
    from tests.helpers import deposit

    deposit(platform.ledger, "u1", "0.00153", "BTC")
    legacy.collection("wallets").insert_one(
        {
            "user_id": "u1",
            "currency": "BTC",
            "available_balance": 0.0015300000000000001,
            "locked_balance": 0.0,
            "total_balance": 0.001530009,
        }
    )
    report = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert report.ok and len(report.noise) == 2 and report.drift == []
    legacy.raw("wallets").update_one({"user_id": "u1"}, {"$set": {"total_balance": 0.00153001}})
    drift = reconcile(platform.store, legacy, DEFAULT_REGISTRY).drift
    assert [(d["field"], d["difference"]) for d in drift] == [("total_balance", 1)]
    assert platform.ledger.balance(acct.user_available("u1", "BTC")).minor == 153_000


# -- import, rebuild, reconcile ------------------------------------------------------------------------
def test_import_then_rebuild_then_reconcile_clean(legacy, platform):
    manifest = build_legacy_fixture(legacy)
    platform.legacy = legacy
    before = snapshot(platform.store, LEDGER_COLLECTIONS)
    dry = import_balances(platform, ADMIN, legacy, dry_run=True)
    assert dry.planned and not dry.imported and snapshot(platform.store, LEDGER_COLLECTIONS) == before
    report = import_balances(platform, ADMIN, legacy)
    nonzero = {pair for pair, (available, locked) in manifest.truth.items() if available + locked}
    assert len(report.imported) == len(nonzero) and not report.failed
    assert report.planned == dry.planned
    # every disagreement with the authoritative wallets is listed: the planted drift (wallets' own seen from the others)
    listed = {(d["user"], d["currency"], d["collection"]) for d in report.disagreements}
    assert {(d.user, d.currency, d.collection) for d in manifest.drift if d.collection != "wallets"} <= listed
    gbp_user = next(d.user for d in manifest.drift if d.collection == "wallets")
    assert {("trader_balances", gbp_user), ("internal_balances", gbp_user)} <= {
        (d["collection"], d["user"]) for d in report.disagreements
    }
    assert check_platform(platform, ADMIN, record=False).ok
    # idempotent: a second import changes nothing
    after_import = snapshot(platform.store, ("entries", "balances"))
    again = import_balances(platform, ADMIN, legacy)
    assert not again.imported and len(again.already) == len(nonzero)
    assert snapshot(platform.store, ("entries", "balances")) == after_import
    # rebuild: dry-run first, then approval
    plan = plan_rebuild(platform, ADMIN, legacy)
    assert plan.writes and {"update", "delete"} <= set(plan.counts)
    legacy_before = snapshot(legacy, LEGACY_COLLECTIONS)
    request = request_rebuild(platform, ADMIN, legacy, "legacy must read the ledger's numbers")
    assert request["state"] == "pending" and snapshot(legacy, LEGACY_COLLECTIONS) == legacy_before
    done = approvals.approve(platform, ADMIN_2, request["_id"], "plan reviewed")
    assert done["result"]["ok"] and done["result"]["writes_applied"] == len(plan.writes)
    final = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert final.ok and final.clean and final.drift == [] and final.noise == []
    assert {d.kind for d in final.dirt} <= {"null_owner", "system_owner", "fee_counter", "unknown_currency"}
    event = platform.store.raw("audit").find_one({"type": "legacy.rebuild"})
    assert event["actor"] == ADMIN_2.name and event["data"]["writes"] == len(plan.writes)
    # idempotent: nothing left to rebuild, a third import and a reconcile change nothing
    assert plan_rebuild(platform, ADMIN, legacy).writes == []
    with pytest.raises(RepairNotNeededError):
        request_rebuild(platform, ADMIN, legacy, "again")
    settled = (snapshot(legacy, LEGACY_COLLECTIONS), snapshot(platform.store, ("entries", "balances")))
    assert not import_balances(platform, ADMIN, legacy).imported
    reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert (snapshot(legacy, LEGACY_COLLECTIONS), snapshot(platform.store, ("entries", "balances"))) == settled
    assert check_platform(platform, ADMIN, record=False).ok
    for user in manifest.users:
        serious = [
            (f.kind, f.collection)
            for f in check_user(platform, SUPPORT, user, legacy=legacy, record=False).findings
            if f.severity != "info"
        ]
        # a BNB balance the ledger has no asset for stays a warning for an admin's decision
        assert serious == ([("legacy_unknown_currency", "wallets")] if user == manifest.users[0] else [])


def test_rebuild_with_ledger_truth_ends_clean(legacy, platform, monkeypatch):
    from core.legacy import rebuild as legacy_rebuild

    monkeypatch.setattr(legacy_rebuild, "PLAN_CHUNK_WRITES", 7)  # the stored plan spans several chunks
    manifest = build_legacy_fixture(legacy, ledger_platform=platform)
    platform.legacy = legacy
    skipped = import_balances(platform, ADMIN, legacy)
    assert not skipped.imported and {item["kind"] for item in skipped.not_booked} <= {
        "ledger_holds_balance", "zero_balance", "unknown_currency", "null_owner", "system_owner"
    }
    gbp = next(d for d in manifest.drift if d.collection == "wallets")
    findings = [
        f
        for f in check_user(platform, SUPPORT, gbp.user, legacy=legacy, record=False).findings
        if f.kind == "legacy_mismatch"
    ]
    assert sorted((f.collection, f.field, f.difference) for f in findings) == [
        ("wallets", "available_balance", gbp.difference_minor),
        ("wallets", "total_balance", gbp.difference_minor),
    ]
    request = request_rebuild(platform, ADMIN, legacy, "rewrite from the ledger")
    assert platform.store.raw("legacy_rebuild_plans").count_documents({}) == -(-request["payload"]["writes"] // 7) > 1
    assert request_rebuild(platform, ADMIN, legacy, "rewrite from the ledger")["_id"] == request["_id"]  # idempotent
    assert approvals.approve(platform, ADMIN_2, request["_id"])["result"]["ok"]
    final = reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    assert final.clean
    assert not [
        f for f in check_user(platform, SUPPORT, gbp.user, legacy=legacy, record=False).findings if f.severity != "info"
    ]
    truth_user, truth_asset = gbp.user, gbp.currency
    wallet = legacy.raw("wallets").find_one({"user_id": truth_user, "currency": truth_asset})
    assert isinstance(wallet["available_balance"], float)
    assert to_minor(legacy_decimal(wallet["available_balance"]), 2) == manifest.truth[(truth_user, truth_asset)][0]


def test_rebuild_refused_when_legacy_changed_after_approval_request(legacy, platform):
    manifest = build_legacy_fixture(legacy, ledger_platform=platform)
    platform.legacy = legacy
    request = request_rebuild(platform, ADMIN, legacy, "rewrite")
    legacy.raw("wallets").update_one(
        {"user_id": manifest.users[1], "currency": "BTC"}, {"$set": {"available_balance": 99.0}}
    )
    legacy_before = snapshot(legacy, LEGACY_COLLECTIONS)
    done = approvals.approve(platform, ADMIN_2, request["_id"])
    assert done["result"]["ok"] is False and done["result"]["error"] == "legacy_plan_changed"
    assert snapshot(legacy, LEGACY_COLLECTIONS) == legacy_before


def test_rebuild_resumes_after_a_crash_mid_apply(legacy, platform):
    build_legacy_fixture(legacy, ledger_platform=platform)
    platform.legacy = legacy
    request = request_rebuild(platform, ADMIN, legacy, "rewrite")
    writes = {"count": 0}

    def crash_after_three(phase, collection, operation):
        if phase == "after" and operation in ("update_one", "delete_many", "insert_one"):
            writes["count"] += 1
            if writes["count"] == 3:
                raise Crash("died mid-rebuild")

    legacy.fault_hook = crash_after_three
    with pytest.raises(Crash):
        approvals.approve(platform, ADMIN_2, request["_id"])
    legacy.fault_hook = None
    assert not reconcile(platform.store, legacy, DEFAULT_REGISTRY).clean
    resumed = approvals.approve(platform, ADMIN_2, request["_id"])  # the approved request runs again and finishes
    assert resumed["result"]["ok"] and reconcile(platform.store, legacy, DEFAULT_REGISTRY).clean


def test_bridge_refusals_change_nothing(legacy, platform):
    build_legacy_fixture(legacy)
    before = (snapshot(legacy, LEGACY_COLLECTIONS), snapshot(platform.store, LEDGER_COLLECTIONS))
    for call in (
        lambda: import_balances(platform, SUPPORT, legacy),
        lambda: plan_rebuild(platform, SUPPORT, legacy),
        lambda: request_rebuild(platform, SUPPORT, legacy, "no"),
    ):
        with pytest.raises(PermissionDeniedError):
            call()
    with pytest.raises(LegacyConfigurationError):
        import_balances(platform, ADMIN, legacy, source="users")
    request = request_rebuild(platform, ADMIN, legacy, "mine")
    with pytest.raises(Exception) as refused:
        approvals.approve(platform, ADMIN, request["_id"])
    assert refused.value.code == "self_approval"
    assert snapshot(legacy, LEGACY_COLLECTIONS) == before[0]


def test_bridge_reads_are_served_by_declared_indexes(legacy, platform):
    manifest = build_legacy_fixture(legacy, ledger_platform=platform)  # the checked users are known to the ledger
    legacy.log.reset()
    platform.store.log.reset()
    reconcile(platform.store, legacy, DEFAULT_REGISTRY)
    import_balances(platform, ADMIN, legacy, dry_run=True)
    plan_rebuild(platform, ADMIN, legacy)
    assert uncovered(platform.store.log.records) == []  # the bridge's reads of the ledger
    check_user(platform, SUPPORT, manifest.users[2], legacy=legacy, record=False)  # (its ledger reads: integrity's tests)
    assert uncovered(legacy.log.records) == []
    legacy.log.reset()
    check_user(platform, SUPPORT, manifest.users[3], legacy=legacy, record=False)
    assert legacy.log.count == len(SPECS)  # one query per legacy collection, whatever the number of users


# -- secrets and CLI -------------------------------------------------------------------------------------
def _run_cli(monkeypatch, platform, legacy, argv):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.legacy_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.setattr(legacy_module, "open_legacy_store", lambda: legacy)
    return cli.main(argv)


def test_cli_flow_and_secrets_never_read_or_printed(legacy, platform, monkeypatch, capsys):
    from core.ledger.store import Collection

    manifest = build_legacy_fixture(legacy)
    reads: list[tuple[str, object]] = []
    original_find, original_find_one = Collection.find, Collection.find_one

    def spy_find(self, query, **kwargs):
        reads.append((self.name, kwargs.get("projection")))
        return original_find(self, query, **kwargs)

    def spy_find_one(self, query, **kwargs):
        reads.append((self.name, kwargs.get("projection")))
        return original_find_one(self, query, **kwargs)

    monkeypatch.setattr(Collection, "find", spy_find)
    monkeypatch.setattr(Collection, "find_one", spy_find_one)
    outputs = []
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "reconcile", "--json"]) == 1
    outputs.append(capsys.readouterr().out)
    assert json.loads(outputs[-1])["counts"]["drift"] == len(manifest.drift)
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "import", "--dry-run", "--json"]) == 0
    outputs.append(capsys.readouterr().out)
    assert platform.store.raw("entries").count_documents({}) == 0
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "import"]) == 0
    outputs.append(capsys.readouterr().out)
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "rebuild", "--dry-run", "--json"]) == 0
    outputs.append(capsys.readouterr().out)
    assert json.loads(outputs[-1])["writes"]
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "rebuild", "--json"]) == 0
    outputs.append(capsys.readouterr().out)
    approval_id = json.loads(outputs[-1])["approval_id"]
    platform.legacy = legacy
    approvals.approve(platform, ADMIN_2, approval_id)
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "reconcile"]) == 0
    outputs.append(capsys.readouterr().out)
    assert _run_cli(monkeypatch, platform, legacy, ["legacy", "rebuild"]) == 0  # nothing to rebuild
    outputs.append(capsys.readouterr().out)
    text = "\n".join(outputs)
    stored = json.dumps(
        [list(platform.store.raw(name).find({}, {"_id": 0})) for name in platform.store.collection_names()], default=str
    )
    for secret in manifest.secrets + ["password_hash", "salt"]:
        assert secret not in text and secret not in stored
    for name, projection in reads:
        if name == "users":
            assert projection and not {"password_hash", "salt"} & set(projection)
        if name in SPECS:
            assert projection and "password_hash" not in projection


def test_cli_needs_legacy_configuration(platform, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.legacy_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.delenv("LEGACY_MONGODB_URI", raising=False)
    monkeypatch.delenv("LEGACY_DB", raising=False)
    assert cli.main(["legacy", "reconcile"]) == 2
    assert "LEGACY_MONGODB_URI" in capsys.readouterr().err
    assert cli.main(["legacy", "frobnicate"]) == 2


def test_rebuild_text_refuses_values_a_legacy_double_cannot_hold():
    import pytest

    from core.base.errors import InvalidAmountError
    from core.legacy.rebuild import _text

    assert _text(87_916_478_198, 8) == "879.16478198"
    with pytest.raises(InvalidAmountError):
        _text(1_234_567_890_123_456_789, 8)  # 19 significant digits: a double would round it
