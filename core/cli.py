"""`python -m core …` — exit codes: 0 success, 1 a check failed, 2 usage or configuration
error — including a malformed MONGODB_URI / LEGACY_MONGODB_URI and a database that cannot
be reached (the message names which one), so a failed check is never confused with a
server that is down."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from core.errors import ConfigurationError, DatabaseUnreachableError, LedgerError
from core.platform import Platform
from core.ledger import Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def open_database_store() -> Store:
    """The configured real store; commands that inspect a database refuse the embedded one.
    Raises: ConfigurationError (no or malformed MONGODB_URI), DatabaseUnreachableError."""
    from core.validation import check_database_uri

    check_database_uri("MONGODB_URI", "ledger")
    store = Store.from_environment()
    if store.embedded:
        raise ConfigurationError("this command inspects a database: set MONGODB_URI (the embedded store is empty and in memory)")
    return store


def emit(data: object, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text)


def cmd_recover(args: argparse.Namespace) -> int:
    """Project every unprojected entry, then finish every half-done flow and approval
    (core.flows.recovery.resume_all: audit events left in outboxes, interrupted steps,
    executions, owed commissions). Exit 1 when anything could not be finished."""
    from core.flows.recovery import resume_all
    from core.permissions import SYSTEM

    platform = Platform.open(open_database_store())
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
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register_commands(commands)
    return parser


# Modules that add sub-commands: each defines `register_commands(subparsers) -> None`.
COMMAND_MODULES: list[str] = ["core.users", "core.demo", "core.audit_cli", "core.integrity", "core.legacy.cli", "core.runner", "core.bench", "core.rollups", "core.liabilities.cli", "core.ledger.simulation.cli"]


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
