"""`python -m core rollups update [--sweep] | rebuild`."""

from __future__ import annotations

import argparse

from core.rollups.fold import rebuild, sweep, update


def cmd_rollups(args: argparse.Namespace) -> int:
    """`update` folds new entries (`--sweep`: also accounts the feed cannot see); `rebuild`
    folds a new generation from scratch and switches to it. Exit 0."""
    from core.cli import common as cli

    store = cli.open_database_store()
    if args.rollups_command == "rebuild":
        report = rebuild(store)
    elif args.sweep:
        report = sweep(store)
    else:
        report = update(store)
    result = {"generation": report.generation, "passes": report.passes, "accounts": report.accounts,
              "caught_up": report.caught_up}
    cli.emit(result, args.json, f"rollups generation {report.generation}: {report.passes} passes, "
                                f"{report.accounts} account ranges folded")
    return cli.EXIT_OK


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    rollups = subparsers.add_parser("rollups", help="daily rollups the reports read (issue 15)")
    actions = rollups.add_subparsers(dest="rollups_command", required=True)
    for name, text in (("update", "fold the entries after the watermark"), ("rebuild", "fold everything again, from scratch")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--json", action="store_true")
        if name == "update":
            action.add_argument("--sweep", action="store_true", help="also fold accounts the journal feed cannot see (reads every balance)")
        action.set_defaults(handler=cmd_rollups)
