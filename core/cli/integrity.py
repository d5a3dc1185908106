"""`python -m core integrity check [--user ID] [--full] [--json]`: the platform checks, or
one user's (plus the legacy collections when LEGACY_MONGODB_URI is set). Lives with the
command line, not in core.integrity, because it wires the legacy bridge in."""

from __future__ import annotations

import argparse

from core.base.errors import InvalidAccountError
from core.base.permissions import Principal, Role
from core.cli import common
from core.cli.common import EXIT_FAILED, EXIT_OK, UsageError, emit
from core.integrity import check_platform, check_user
from core.ledger import check_owner_id
from core.legacy import open_legacy_store_if_configured
from core.platform import Platform


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when clean, 1 when anything critical or warning was found."""
    operator = Principal(name="cli", role=Role.ADMIN)
    platform = Platform.open(common.open_database_store())
    if args.user:
        try:
            check_owner_id(args.user)
        except InvalidAccountError as error:
            raise UsageError(error.message) from None
        report = check_user(platform, operator, args.user, legacy=open_legacy_store_if_configured())
    else:
        report = check_platform(platform, operator, full=args.full)
    lines = [
        f"integrity {report.scope} ({report.mode}): {'OK' if report.ok else 'FAILED'} ({report.severity}), "
        f"{len(report.findings)} findings, {report.duration_ms} ms, run {report.run_id}"
    ]
    lines += [f"  note: {note}" for note in report.notes]
    lines += [f"  [{f.severity}] {f.kind} {f.subject}: {f.message}" for f in report.findings]
    emit(report.as_dict(), args.json, "\n".join(lines))
    return EXIT_OK if report.ok else EXIT_FAILED


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    integrity = subparsers.add_parser("integrity", help="integrity checks (SPEC §8)")
    actions = integrity.add_subparsers(dest="integrity_command", required=True)
    check = actions.add_parser("check", help="run the platform checks, or one user's")
    check.add_argument(
        "--user", help="check only this user (plus the legacy collections when LEGACY_MONGODB_URI is set)"
    )
    check.add_argument("--full", action="store_true",
                       help="re-verify the whole journal and audit chain (default: what changed since the last verified anchor)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_check)
