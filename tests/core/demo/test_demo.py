"""Demo data: generated through the real services, passes the self-check and the audit
chain, survives a snapshot round trip, and the committed snapshot loads clean (load time is measured by the bench, never asserted)."""

from __future__ import annotations

import pytest

from core import demo
from core.base.errors import ConfigurationError
from core.ledger.selfcheck import self_check
from core.ledger.store import Store

TINY = demo.DemoSize(users=6, days=2, seed=7)


@pytest.fixture(scope="module")
def tiny():
    return demo.generate(TINY)


def test_demo_generate_small_uses_every_flow_and_stays_consistent(tiny):
    platform, summary = tiny
    assert self_check(platform.store, platform.clock.now()).ok  # generated data is clean; the planted fault comes at load
    assert platform.ledger.audit.verify().ok
    events = summary.meta["events"]
    assert events["deposit"] >= TINY.users and events["treasury.topup.request"] >= len(demo.DEMO_ASSETS)
    users = platform.store.collection("users").find({}, limit=100)
    assert len(users) >= TINY.users and all("password_hash" not in u and "salt" not in u for u in users)
    kinds = {a["kind"] for a in platform.store.collection("approvals").find({"state": "pending"}, limit=100)}
    assert {"deposit.manual", "adjustment", "treasury.fee_sweep", "treasury.liquidity_topup", "treasury.liquidity_withdrawal"} <= kinds
    trades = {t["state"] for t in platform.store.collection("p2p_trades").find({}, limit=500)}
    assert {"open", "paid", "disputed"} <= trades


def test_demo_snapshot_round_trip_keeps_every_document(tiny, tmp_path):
    platform, summary = tiny
    path = tmp_path / "snap.json.gz"
    counts = demo.write_snapshot(platform, path, summary.meta)
    target = Store.embedded_store("copy")
    meta, legacy = demo.load_snapshot(target, path)
    assert meta == summary.meta
    for name, count in counts.items():
        assert target.collection(name).count_documents({}) == count, name
    assert self_check(target, platform.clock.now()).ok
    if platform.legacy is not None:
        assert legacy is not None and legacy.collection("wallets").count_documents({}) == platform.legacy.collection("wallets").count_documents({})
    again = tmp_path / "again.json.gz"
    demo.write_snapshot(platform, again, summary.meta)
    assert again.read_bytes() == path.read_bytes()  # deterministic bytes


def test_demo_committed_snapshot_loads_and_passes_the_checks():
    """(How fast it loads is the bench's business, never a test's: timings fail under load.)"""
    if not demo.SNAPSHOT_PATH.exists():
        pytest.fail("demo/snapshot.json.gz is missing: run `python -m core demo seed`")
    platform = demo.open_demo_platform(Store.embedded_store("demo"), "snapshot")
    report = self_check(platform.store, platform.clock.now())
    # exactly the one planted fault (a projection one satoshi off), with its repair request pending
    assert sorted((f.kind, f.difference) for f in report.findings) == [("asset_not_zero_sum", 1), ("projection_mismatch", 1)]
    drifted = next(f.subject for f in report.findings if f.kind == "projection_mismatch")
    pending = platform.store.collection("approvals").find({"kind": "repair.projection", "state": "pending"})
    assert [a["payload"]["account"] for a in pending] == [drifted]
    assert platform.ledger.audit.verify().ok
    assert platform.store.collection("users").count_documents({}) >= 100
    assets = {b["asset"] for b in platform.store.collection("balances").find({"kind": "user.available"}, limit=5000)}
    assert len(assets) >= 6
    types = {e["type"] for e in platform.store.collection("entries").find({}, limit=50_000, projection={"type": 1})}
    for flow_type in ("deposit", "withdrawal", "swap", "instant_buy", "instant_sell", "p2p", "referral.commission", "treasury.fee_sweep"):
        assert any(t.startswith(flow_type) for t in types), (flow_type, sorted(types))
    days = platform.store.collection("entries").aggregate([{"$match": {"state": "applied"}},
                                                          {"$group": {"_id": {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at"}}}}])
    assert len(days) >= 60
    assert platform.legacy is not None


def test_demo_refuses_unknown_sizes_and_real_stores(tmp_path):
    with pytest.raises(ConfigurationError):
        demo.open_demo_platform(Store.embedded_store("x"), "huge")
    real_looking = Store.embedded_store("y")
    real_looking.embedded = False
    with pytest.raises(ConfigurationError):
        demo.load_snapshot(real_looking, demo.SNAPSHOT_PATH)
    with pytest.raises(ConfigurationError):
        demo.load_snapshot(Store.embedded_store("z"), tmp_path / "missing.json.gz")
