"""The flow-test runner: every scenario passes, the report is complete and JSON-stable, a
broken flow makes `flows run` exit 1 naming the failing step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.flowtests import runner
from core.cli.main import main
from core.base.errors import InvalidFlowInputError, PermissionDeniedError
from core.flows import common as flows_common
from core.flows import deposit
from core.base.permissions import Principal, Role
from tests.helpers import REPO
from tests.principals import QA

REQUIRED = [
    "deposit",
    "manual_deposit_approval",
    "withdrawal_approved",
    "withdrawal_rejected",
    "withdrawal_two_approvers",
    "swap",
    "instant_buy",
    "instant_sell",
    "expired_quote",
    "p2p_release",
    "p2p_cancel",
    "p2p_dispute_buyer",
    "p2p_dispute_seller",
    "referral_commission",
    "adjustment",
    "fee_sweep",
    "idempotent_replay",
    "crash_recovery",
    "concurrent_double_spend",
    "flow_simulation",
    "stranded_holds",
    "chaos",
]


def test_runner_lists_every_required_scenario():
    assert runner.list_scenarios() == REQUIRED


def test_runner_report_has_the_documented_shape():
    report = runner.run_scenarios(["swap", "withdrawal_approved"])
    data = json.loads(json.dumps(report.as_dict()))  # no default=: plain JSON types only
    assert data["ok"] is True and [s["name"] for s in data["scenarios"]] == ["swap", "withdrawal_approved"]
    scenario = data["scenarios"][0]
    assert set(scenario) == {"name", "ok", "duration_ms", "steps", "error"} and scenario["error"] is None
    step = next(s for s in scenario["steps"] if s["name"] == "execute")
    assert {"name", "ok", "detail", "balances_before", "balances_after", "entries", "fees_booked", "self_check"} <= set(
        step
    )
    assert step["balances_before"]["user.available:alice:BTC"] == {"minor": 100_000_000, "text": "1.00000000"}
    assert step["balances_after"]["user.available:alice:BTC"] == {"minor": 90_000_000, "text": "0.90000000"}
    assert step["fees_booked"] == {"BTC": {"minor": 150_000, "text": "0.00150000"}}
    assert step["self_check"] == {"ok": True, "findings": []}
    types = [e["type"] for e in step["entries"]]
    assert types == ["swap.execute"]  # one entry: the payment and the reservation consumed together
    pay = step["entries"][0]
    assert sum(p["amount_minor"] for p in pay["postings"]) == 0 and pay["metadata"]["fee_minor"] == 150_000


def test_runner_refusal_steps_show_nothing_changed():
    report = runner.run_scenarios(["withdrawal_approved"])
    refusal = report.scenarios[0].steps[-1]
    assert refusal.name == "withdraw more than available" and refusal.ok
    assert refusal.detail.startswith("refused as expected: InsufficientFundsError")
    assert refusal.balances_before == refusal.balances_after and refusal.entries == []


def test_runner_unknown_scenario_refused():
    with pytest.raises(InvalidFlowInputError):
        runner.run_scenarios(["nope"])
    assert main(["flows", "run", "--scenario", "nope"]) == 2


def test_runner_progress_and_audit_in_callers_platform(platform):
    calls = []
    report = runner.run_scenarios(
        ["deposit"],
        progress=lambda done, total, name: calls.append((done, total, name)),
        platform=platform,
        principal=QA,
    )
    assert report.ok and calls == [(0, 1, "deposit"), (1, 1, "")]
    event = platform.ledger.audit.head()
    assert event["type"] == "flows.run" and event["actor"] == "quinn" and event["role"] == "qa"
    assert event["data"]["scenarios"] == [{"name": "deposit", "ok": True, "failing_step": None}]
    assert platform.store.raw("entries").count_documents({}) == 0  # the sandbox is not the caller's store


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.SYSTEM])
def test_runner_needs_run_flow_tests_permission(platform, role):
    with pytest.raises(PermissionDeniedError):
        runner.run_scenarios(["deposit"], platform=platform, principal=Principal(name="x", role=role))
    assert platform.ledger.audit.head() is None


def test_runner_cli_exits_1_naming_the_failing_step(monkeypatch, capsys):
    monkeypatch.setattr(flows_common, "fee_minor", lambda amount_minor, rate: 0)  # a broken flow: forgets the fee
    code = main(["flows", "run", "--scenario", "deposit", "--scenario", "withdrawal_approved"])
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS  deposit" in out and "FAIL  withdrawal_approved" in out
    assert "failing step: request 1 BTC (hold: available → locked)" in out
    assert "fee 1% and net" in out


def test_runner_self_check_catches_a_flow_that_corrupts_balances(monkeypatch):
    original = deposit._credit

    def corrupt(platform, principal, document):
        entry = original(platform, principal, document)
        platform.store.raw("balances").update_one(
            {"_id": f"user.available:{document.user}:{document.asset}"}, {"$inc": {"balance_minor": 1}}
        )
        return entry

    monkeypatch.setattr(deposit, "_credit", corrupt)
    report = runner.run_scenarios(["deposit"])
    scenario = report.scenarios[0]
    assert not report.ok and scenario.failing_step == "notice with 2 confirmations"
    failing = next(s for s in scenario.steps if not s.ok)
    assert failing.self_check["ok"] is False
    assert {f["kind"] for f in failing.self_check["findings"]} >= {"projection_mismatch"}


def test_runner_json_output_is_parseable(capsys):
    assert main(["flows", "run", "--scenario", "p2p_release", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["scenarios"][0]["name"] == "p2p_release"


def test_flows_run_all_scenarios_pass_from_a_clean_checkout():
    result = subprocess.run(
        [sys.executable, "-m", "core", "flows", "run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(REQUIRED)}/{len(REQUIRED)} scenarios passed" in result.stdout


def _fake_server_store(name: str):
    """A mongomock database presented as a server store (no embedded lock): enough to show
    that sandboxes are sibling databases that get dropped. Single-threaded scenarios only."""
    import mongomock

    from core.ledger.store import Store

    client = mongomock.MongoClient(tz_aware=False)
    store = Store(client[name], embedded=False, client=client)
    store.ensure_indexes()
    return store, client


def test_runner_server_sandboxes_are_dropped(platform, monkeypatch):
    from core.ledger.store import Store
    from core.platform import Platform

    monkeypatch.setattr(Store, "session_options", lambda self: {})  # mongomock has no sessions

    server, client = _fake_server_store("ledger")
    caller = Platform.open(server, platform.clock)
    report = runner.run_scenarios(["deposit", "swap"], platform=caller, principal=QA)
    assert report.ok
    assert client.list_database_names() in ([], ["ledger"])  # every sandbox database was dropped
    assert server.raw("entries").count_documents({}) == 0
    assert caller.ledger.audit.head()["data"]["sandbox"] == "server"


def test_runner_uri_sandboxes_are_dropped(monkeypatch):
    from core.ledger.store import Store

    created = []
    monkeypatch.setattr(Store, "session_options", lambda self: {})  # mongomock has no sessions

    def from_uri(uri, name):
        store, client = _fake_server_store(name)
        created.append(client)
        return store

    monkeypatch.setattr(Store, "from_uri", staticmethod(from_uri))
    report = runner.run_scenarios(["deposit", "p2p_release"], uri="mongodb://example.invalid")
    assert report.ok and len(created) == 1
    assert created[0].list_database_names() == []


def test_runner_scenarios_reads_are_all_indexed(monkeypatch):
    from core.ledger.store import uncovered

    problems = []
    original = runner._SandboxStores.dispose

    def check_then_dispose(store):
        problems.extend(uncovered(store.log.records))
        original(store)

    monkeypatch.setattr(runner._SandboxStores, "dispose", staticmethod(check_then_dispose))
    names = [n for n in REQUIRED if n not in ("chaos", "crash_recovery")]  # same calls, just more of them
    assert runner.run_scenarios(names).ok
    assert problems == []


def test_runner_cli_unreachable_server_is_a_usage_error(monkeypatch, capsys):
    from core.base.errors import StoreError
    from core.ledger.store import Store

    def unreachable(uri, name):
        raise StoreError("cannot reach MongoDB: ServerSelectionTimeoutError")

    monkeypatch.setattr(Store, "from_uri", staticmethod(unreachable))
    assert main(["flows", "run", "--scenario", "deposit", "--uri", "mongodb://user:secret@nowhere"]) == 2
    captured = capsys.readouterr()
    assert "cannot reach MongoDB" in captured.err and "secret" not in captured.err + captured.out
