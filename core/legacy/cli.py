"""`python -m core legacy reconcile|import|rebuild [--dry-run] [--json]` — the legacy
bridge from the command line. Needs MONGODB_URI (the embedded store is refused) and
LEGACY_MONGODB_URI / LEGACY_DB. Exit codes: reconcile 1 on drift or a finding (a negative
balance, a missing collection, an empty database); import 1 when a pair failed or the
source collection is missing or the database empty; rebuild 0 (it plans with --dry-run,
otherwise opens an approval request), 2 on an empty legacy database (never populated).
Every text output names what was refused or left for a human, not only counts.
"""

from __future__ import annotations

import argparse

from core.base.errors import RepairNotNeededError
from core.legacy.bridge import AUTHORITATIVE_DEFAULT, SPECS
from core.legacy.reconcile import reconcile
from core.legacy.opening import import_balances
from core.legacy.rebuild import plan_rebuild, request_rebuild
from core.base.permissions import Principal, Role
from core.platform import Platform
from core.ledger import Store

CLI_PRINCIPAL = Principal(name="cli", role=Role.ADMIN)


def _stores() -> tuple[Platform, Store]:
    from core.cli import common as cli
    from core.legacy import open_legacy_store

    platform = Platform.open(cli.open_database_store())
    platform.legacy = open_legacy_store()
    return platform, platform.legacy


def cmd_reconcile(args: argparse.Namespace) -> int:
    from core.cli import common as cli

    platform, legacy = _stores()
    report = reconcile(platform.store, legacy, platform.registry)
    data = report.as_dict()
    text = (
        f"legacy reconcile: {'OK' if report.ok else 'DRIFT' if report.drift else 'FINDINGS'} — "
        f"{report.pairs_checked} pairs, {len(report.drift)} drift, {len(report.findings)} findings, "
        f"{len(report.held)} held for a human, "
        f"{len(report.noise)} noise, {len(report.dirt)} dirty documents ({data['counts']['dirt_by_kind']})"
    )
    text += "".join(
        f"\n  drift {d['user']}/{d['currency']} {d['collection']}.{d['field']}: "
        f"{d['actual']} vs {d['expected']} ({d['difference']:+d})"
        for d in report.drift
    )
    text += "".join(f"\n  {f['kind']}: {f['message']}" for f in report.findings)
    text += _held_lines(report.held)
    cli.emit(data, args.json, text)
    return cli.EXIT_OK if report.ok else cli.EXIT_FAILED


def cmd_import(args: argparse.Namespace) -> int:
    from core.cli import common as cli

    platform, legacy = _stores()
    report = import_balances(platform, CLI_PRINCIPAL, legacy, source=args.source, dry_run=args.dry_run)
    counts = report.as_dict()["counts"]
    text = f"legacy import from {args.source}{' (dry run)' if args.dry_run else ''}: {counts}"
    text += "".join(f"\n  {f['kind']}: {f['message']}" for f in report.findings)
    text += "".join(
        f"\n  not booked {item['collection']}:{item['document']} ({item['user']}/{item.get('raw_currency') or item['currency']}"
        f" {item['values']}): {item['reason']}"
        for item in report.not_booked
    )
    cli.emit(report.as_dict(), args.json, text)
    return cli.EXIT_OK if report.ok else cli.EXIT_FAILED


def _held_lines(held: list[dict]) -> str:
    return "".join(
        f"\n  held {item['collection']}:{item['document']} ({item['user']}/{item['raw_currency']} {item['values']}): "
        f"{item['reason']}"
        for item in held
    )


def cmd_rebuild(args: argparse.Namespace) -> int:
    from core.cli import common as cli

    platform, legacy = _stores()
    if args.dry_run:
        plan = plan_rebuild(platform, CLI_PRINCIPAL, legacy)
        text = (
            f"legacy rebuild plan {plan.digest[:12]}: {plan.counts or 'nothing to write'}, "
            f"{len(plan.refused)} pairs refused, {len(plan.held)} documents held for a human decision"
        )
        text += "".join(f"\n  refused {r['user']}/{r['currency']} ({r['value']}): {r['reason']}" for r in plan.refused)
        text += _held_lines(plan.held)
        text += "".join(f"\n  missing collection {name}: never created" for name in plan.missing)
        cli.emit(plan.as_dict(), args.json, text)
        return cli.EXIT_OK
    try:
        request = request_rebuild(platform, CLI_PRINCIPAL, legacy, args.reason)
    except RepairNotNeededError as error:
        cli.emit({"requested": False, "message": error.message}, args.json, error.message)
        return cli.EXIT_OK
    cli.emit(
        {"requested": True, "approval_id": request["_id"], "state": request["state"], "payload": request["payload"]},
        args.json,
        f"rebuild requested: approval {request['_id']} ({request['state']}); another admin approves it in the console; "
        f"{request['payload'].get('refused', 0)} pairs refused and {request['payload'].get('held', 0)} documents held "
        "for a human decision are left alone (--dry-run lists them)",
    )
    return cli.EXIT_OK


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    legacy = subparsers.add_parser("legacy", help="the legacy bridge (LEGACY_MONGODB_URI / LEGACY_DB)")
    actions = legacy.add_subparsers(dest="legacy_command", required=True)
    reconcile_parser = actions.add_parser(
        "reconcile", help="compare the four legacy collections with each other and the ledger"
    )
    reconcile_parser.add_argument(
        "--dry-run", action="store_true", help="accepted for symmetry: reconcile never writes"
    )
    reconcile_parser.set_defaults(handler=cmd_reconcile)
    import_parser = actions.add_parser("import", help="book opening balances from the authoritative collection")
    import_parser.add_argument("--source", default=AUTHORITATIVE_DEFAULT, choices=sorted(SPECS))
    import_parser.add_argument("--dry-run", action="store_true")
    import_parser.set_defaults(handler=cmd_import)
    rebuild_parser = actions.add_parser(
        "rebuild", help="plan (--dry-run) or request the rewrite of the legacy collections"
    )
    rebuild_parser.add_argument("--dry-run", action="store_true")
    rebuild_parser.add_argument("--reason", default="legacy rebuild requested from the CLI")
    rebuild_parser.set_defaults(handler=cmd_rebuild)
    for parser in (reconcile_parser, import_parser, rebuild_parser):
        parser.add_argument("--json", action="store_true")
