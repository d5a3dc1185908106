"""`python -m core …` — exit codes: 0 success, 1 a check failed, 2 usage or configuration
error — including a malformed MONGODB_URI / LEGACY_MONGODB_URI and a database that cannot
be reached (the message names which one), so a failed check is never confused with a
server that is down."""

from __future__ import annotations

import argparse
import sys
from core.base.errors import ConfigurationError, DatabaseUnreachableError, LedgerError
from core.base.permissions import SYSTEM
from core.flows.recovery import resume_all
from core.platform import Platform
from core.audit import cli as audit_cli
from core.cli import bench, integrity as integrity_cli
from core.flowtests import runner
from core.ledger.simulation import cli as simulation_cli
from core.legacy import cli as legacy_cli
from core.liabilities import cli as liabilities_cli
from core.platform import logins
from core.rollups import cli as rollups_cli
from core import demo
import core.flows  # noqa: F401  (the flows, the projection repair and the legacy rebuild register their
import core.integrity.repairs  # noqa: F401  approval executors when imported: a command may run any kind)
import core.legacy.rebuild  # noqa: F401

from core.cli import common
from core.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, emit  # noqa: F401  (the commands' shared names)


def cmd_recover(args: argparse.Namespace) -> int:
    """Project every unprojected entry, then finish every half-done flow and approval
    (core.flows.recovery.resume_all: audit events left in outboxes, interrupted steps,
    executions, owed commissions). Exit 1 when anything could not be finished."""
    platform = Platform.open(common.open_database_store())
    report = platform.ledger.recover()
    flows = resume_all(platform, SYSTEM)
    emit({**report.as_dict(), "flows": flows.as_dict()}, args.json,
         f"projected {len(report.entries_projected)} entries; {len(report.poisoned)} could not be projected; "
         f"flows: {flows.events_flushed} audit events flushed, resumed {flows.flows_resumed}, "
         f"{flows.approvals_finished} approvals finished, {flows.commissions_owed} commissions still owed, "
         f"{len(flows.failed)} could not be finished")
    return EXIT_FAILED if report.poisoned or flows.failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Ledger console command line")
    commands = parser.add_subparsers(dest="command", required=True)
    recover = commands.add_parser("recover", help="project every journaled entry a crash left unprojected and finish every half-done flow and approval (safe to run any time, any number of times)")
    recover.add_argument("--json", action="store_true")
    recover.set_defaults(handler=cmd_recover)
    for module in COMMAND_MODULES:
        module.register_commands(commands)
    return parser


# Modules that add sub-commands: each defines `register_commands(subparsers) -> None`.
COMMAND_MODULES = (logins, demo, audit_cli, integrity_cli, legacy_cli, runner, bench, rollups_cli, liabilities_cli, simulation_cli)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    try:
        return args.handler(args)
    except (ConfigurationError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUnreachableError as error:
        which = error.details.get("which", "ledger")
        print(f"error: the {which} database cannot be reached ({error}); nothing was checked or changed — "
              f"check {'LEGACY_MONGODB_URI' if which == 'legacy' else 'MONGODB_URI'} and that the server is up", file=sys.stderr)
        return EXIT_USAGE
    except LedgerError as error:
        print(f"error ({error.code}): {error}", file=sys.stderr)
        return EXIT_FAILED
