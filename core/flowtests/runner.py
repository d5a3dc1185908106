"""The flow-test runner — the pre-deploy gate (`python -m core flows run`).

Each scenario runs in its own sandbox: a fresh embedded store by default, or a throw-away
database on the server named by `--uri` / `MONGODB_URI` (dropped afterwards), with a
manual clock, through the same service functions production uses. For every step the
report carries the balances before and after of the accounts involved, the entries
written, the fees booked and the ledger self-check (format: docs/flows.md).

Python API (the console calls it): `list_scenarios()`, `run_scenarios(names, uri,
progress, platform, principal)` → `RunReport` (`.as_dict()` is JSON-serialisable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from core.platform.boundary import boundary
from core.base.errors import ConfigurationError, InvalidFlowInputError, StoreError
from core.platform.settings import database_settings
from core.flowtests.sandbox import Sandbox, ScenarioCheckError, StepRecord
from core.flowtests import scenarios, scenarios_admin, scenarios_chaos, scenarios_robustness, scenarios_trading
from core.flowtests.scenarios import SCENARIOS, Scenario
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.ledger import Store

SCENARIO_NAMES_MAX = 100
ERROR_TEXT_MAX = 2_000

Progress = Callable[[int, int, str], None]  # (done, total, scenario name)


# Run order: cheap single-flow scenarios first, the robustness runs last.
SCENARIO_MODULES = (scenarios, scenarios_trading, scenarios_admin, scenarios_robustness, scenarios_chaos)


def all_scenarios() -> dict[str, Scenario]:
    """Every scenario by name, in run order: by module (SCENARIO_MODULES), then in the order
    each module defines them — whatever order the modules happened to be imported in."""
    names = [module.__name__ for module in SCENARIO_MODULES]
    registered = list(SCENARIOS.items())
    ranked = sorted(range(len(registered)), key=lambda i: (names.index(registered[i][1].__module__), i))
    return {registered[i][0]: registered[i][1] for i in ranked}


@dataclass
class ScenarioReport:
    name: str
    ok: bool
    duration_ms: int
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None

    @property
    def failing_step(self) -> str | None:
        return next((step.name for step in self.steps if not step.ok), None)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "duration_ms": self.duration_ms,
            "steps": [step.as_dict() for step in self.steps],
            "error": self.error,
        }


@dataclass
class RunReport:
    ok: bool
    scenarios: list[ScenarioReport]
    duration_ms: int = 0

    def as_dict(self) -> dict:
        return {"ok": self.ok, "duration_ms": self.duration_ms, "scenarios": [s.as_dict() for s in self.scenarios]}

    def text(self) -> str:
        lines = []
        for report in self.scenarios:
            mark = "PASS" if report.ok else "FAIL"
            lines.append(f"{mark}  {report.name}  ({len(report.steps)} steps, {report.duration_ms} ms)")
            if not report.ok:
                lines.append(f"      failing step: {report.failing_step or '(before the first step)'}")
                lines.append(f"      {report.error}")
        passed = sum(report.ok for report in self.scenarios)
        lines.append(f"{passed}/{len(self.scenarios)} scenarios passed in {self.duration_ms} ms")
        return "\n".join(lines)


def list_scenarios() -> list[str]:
    """Every scenario name, in run order."""
    return list(all_scenarios())


def _check_names(names: list[str] | None) -> list[str]:
    known = all_scenarios()
    if names is None:
        return list(known)
    if not isinstance(names, (list, tuple)) or len(names) > SCENARIO_NAMES_MAX:
        raise InvalidFlowInputError("scenario names must be a list")
    unknown = [n for n in names if not isinstance(n, str) or n not in known]
    if unknown:
        raise InvalidFlowInputError(
            f"unknown scenario(s): {', '.join(map(str, unknown))}; known: {', '.join(known)}",
            unknown=[str(n) for n in unknown],
        )
    return list(dict.fromkeys(names))


class _SandboxStores:
    """Where sandboxes come from: fresh embedded stores, or throw-away databases
    (`store.sibling()`) on a server — the one given by `uri`, or the caller's own server."""

    def __init__(self, uri: str | None, platform: Platform | None) -> None:
        self.uri = uri
        self.base = platform.store if platform is not None and not platform.store.embedded and not uri else None
        self._own_base: Store | None = None

    @property
    def on_server(self) -> bool:
        return bool(self.uri) or self.base is not None

    def make(self) -> Store:
        if self.uri and self.base is None:
            # one connection for the whole run; its own database is a throw-away too
            self._own_base = self.base = Store.from_uri(self.uri, f"flowtest_{uuid.uuid4().hex[:12]}")
        if self.base is not None:
            return self.base.sibling()
        return Store.embedded_store("flowtest")

    @staticmethod
    def dispose(store: Store) -> None:
        store.fault_hook = None
        if not store.embedded:
            store.drop()

    def close(self) -> None:
        if self._own_base is not None:
            self._own_base.drop()


def run_scenario(name: str, stores: _SandboxStores | None = None) -> ScenarioReport:
    """Run one scenario in its own sandbox; never raises for a failing scenario."""
    stores = stores or _SandboxStores(None, None)
    scenario = all_scenarios()[name]
    started = time.perf_counter()
    store = stores.make()
    sandbox = Sandbox.create(store)
    error = None
    try:
        scenario(sandbox)
    except ScenarioCheckError as failure:
        error = str(failure)
    except Exception as failure:  # noqa: BLE001 - a crash of the scenario itself is a failure, reported
        error = f"{type(failure).__name__}: {failure}\n{traceback.format_exc(limit=6)}"[:ERROR_TEXT_MAX]
    finally:
        stores.dispose(store)
    ok = error is None and all(step.ok for step in sandbox.steps)
    if not ok and error is None:
        error = f"step {next(s.name for s in sandbox.steps if not s.ok)!r} failed"
    return ScenarioReport(
        name=name, ok=ok, duration_ms=int((time.perf_counter() - started) * 1000), steps=sandbox.steps, error=error
    )


@boundary
def run_scenarios(
    names: list[str] | None = None,
    uri: str | None = None,
    progress: Progress | None = None,
    platform: Platform | None = None,
    principal: Principal | None = None,
) -> RunReport:
    """Run scenarios (all by default), each in its own sandbox.

    With `platform` (the console's), `principal` must hold RUN_FLOW_TESTS and the run is
    recorded there as a `flows.run` audit event; sandboxes are then siblings of its store
    when it is a real server. Returns the RunReport.
    Raises: PermissionDeniedError, InvalidFlowInputError (unknown scenario name).
    """
    if platform is not None:
        require(principal, Permission.RUN_FLOW_TESTS)
    chosen = _check_names(names)
    stores = _SandboxStores(uri, platform)
    started = time.perf_counter()
    reports = []
    try:
        for index, name in enumerate(chosen):
            if progress is not None:
                progress(index, len(chosen), name)
            reports.append(run_scenario(name, stores))
    finally:
        stores.close()
    if progress is not None:
        progress(len(chosen), len(chosen), "")
    report = RunReport(
        ok=all(r.ok for r in reports), scenarios=reports, duration_ms=int((time.perf_counter() - started) * 1000)
    )
    if platform is not None:
        platform.ledger.audit.append(
            type="flows.run",
            actor=principal.name,
            role=principal.role.value,
            target="flow-tests",
            after={"ok": report.ok},
            data={
                "scenarios": [{"name": r.name, "ok": r.ok, "failing_step": r.failing_step} for r in reports],
                "duration_ms": report.duration_ms,
                "sandbox": "server" if stores.on_server else "embedded",
            },
        )
    return report


# -- CLI ------------------------------------------------------------------------------------------
def cmd_flows_run(args: argparse.Namespace) -> int:
    from core.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit

    try:
        names = _check_names(args.scenario or None)
        uri = (args.uri or "").strip() or _configured_uri()
    except (InvalidFlowInputError, ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = run_scenarios(names, uri=uri)
    except StoreError as error:  # the sandbox server cannot be reached: a configuration problem, not a failed flow
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    emit(report.as_dict(), args.json, report.text())
    return EXIT_OK if report.ok else EXIT_FAILED


def _configured_uri() -> str | None:
    """MONGODB_URI (the scenarios then run in throw-away databases on that server), else None.
    Raises: MalformedDatabaseUriError, ConfigurationError (core.platform.settings)."""
    uri = database_settings().uri
    return uri.get_secret_value() if uri is not None else None


def cmd_flows_list(args: argparse.Namespace) -> int:
    from core.cli.common import EXIT_OK

    print(json.dumps(list_scenarios()) if args.json else "\n".join(list_scenarios()))
    return EXIT_OK


def cmd_flows_recover(args: argparse.Namespace) -> int:
    """Finish every flow a crash interrupted on the configured database."""
    from core.cli import common
    from core.cli.common import EXIT_FAILED, EXIT_OK, emit
    from core.flows.recovery import resume_all
    from core.base.permissions import SYSTEM

    report = resume_all(Platform.open(common.open_database_store()), SYSTEM)
    emit(
        report.as_dict(),
        args.json,
        f"ledger entries projected: {report.entries_driven}; audit events flushed: {report.events_flushed}; "
        f"flows resumed: {report.flows_resumed}; approvals finished: {report.approvals_finished}, "
        f"expired: {report.approvals_expired}; quotes expired: {report.quotes_expired}; "
        f"commissions still owed: {report.commissions_owed}; could not finish: {report.failed or 'none'}",
    )
    return EXIT_OK if report.ok else EXIT_FAILED


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    flows = subparsers.add_parser("flows", help="end-to-end flow tests in a sandbox (the pre-deploy gate)")
    commands = flows.add_subparsers(dest="flows_command", required=True)
    run = commands.add_parser("run", help="run the flow scenarios (all by default); exit 1 if any fails")
    run.add_argument("--scenario", action="append", help="a scenario name (repeatable); see `flows list`")
    run.add_argument("--json", action="store_true", help="print the full report as JSON (docs/flows.md)")
    run.add_argument(
        "--uri",
        help="run each scenario in a throw-away database on this MongoDB server "
        "(default: MONGODB_URI if set, else the embedded store)",
    )
    run.set_defaults(handler=cmd_flows_run)
    listing = commands.add_parser("list", help="list the scenario names")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_flows_list)
    recover = commands.add_parser("recover", help="finish flows a crash interrupted (needs MONGODB_URI)")
    recover.add_argument("--json", action="store_true")
    recover.set_defaults(handler=cmd_flows_recover)
