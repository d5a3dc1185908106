"""`python -m core audit verify|export` — the audit trail from the command line.

Kept apart from `core.audit` because the CLI needs the platform bundle, which imports the
ledger, which imports `core.audit`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from core.audit import AuditFilter, export_audit_csv, verify_audit
from core.cli import common
from core.cli.common import EXIT_FAILED, EXIT_OK, UsageError, emit
from core.base.clock import to_millis
from core.base.permissions import Principal, Role
from core.platform import Platform

CLI_PRINCIPAL = Principal(name="cli", role=Role.ADMIN)  # the operator at the console of the server


def _opened() -> Platform:
    return Platform.open(common.open_database_store())


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the chain verifies, 1 naming the first bad event (stream and sequence number)."""
    platform = _opened()
    result = verify_audit(platform, CLI_PRINCIPAL)
    data = {
        "ok": result.ok,
        "events_checked": result.events_checked,
        "first_bad_stream": result.first_bad_stream,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }
    text = (
        f"audit chain ok: {result.events_checked} events verified"
        if result.ok
        else f"audit chain BROKEN at {result.first_bad or 'the witness'}: {result.problem} "
        f"({result.events_checked} events verified before it)"
    )
    emit(data, args.json, text)
    return EXIT_OK if result.ok else EXIT_FAILED


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not an ISO date/time: {text!r}") from None
    return to_millis(moment)  # offsets converted to naive UTC, as stored


def cmd_export(args: argparse.Namespace) -> int:
    """Write the matching events as CSV to stdout."""
    audit_filter = AuditFilter(
        actor=args.actor,
        user=args.user,
        type=args.type,
        target=args.target,
        since=_time(args.since),
        until=_time(args.until),
    )
    sys.stdout.write(export_audit_csv(_opened(), CLI_PRINCIPAL, audit_filter))
    return EXIT_OK


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="the tamper-evident audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser("verify", help="walk the hash chain; exit 1 naming the first bad event")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)
    export = actions.add_parser("export", help="matching events as CSV on stdout")
    for name in ("actor", "user", "type", "target"):
        export.add_argument(f"--{name}")
    export.add_argument("--since", help="ISO date/time, inclusive (UTC)")
    export.add_argument("--until", help="ISO date/time, exclusive (UTC)")
    export.set_defaults(handler=cmd_export)
