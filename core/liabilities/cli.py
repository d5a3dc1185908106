"""`python -m core liabilities snapshot|proof|verify|roots` — proof of liabilities from the
command line. Exit codes: 0 success, 1 a check failed (or a refusal), 2 usage/configuration.

`snapshot`, `proof`, `roots` and `verify` without a file inspect the configured database
(refused on the embedded store); `verify PROOF.json` checks a proof file offline, with the
same rules as tools/verify_liabilities.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core import cli
from core.liabilities.proofs import bundle_json, user_proof_bundle, verify_proof, verify_snapshot
from core.liabilities.snapshot import SPLIT_PARTS_MAX, published_roots, take_snapshot
from core.permissions import Principal, Role
from core.platform import Platform

CLI_PRINCIPAL = Principal(name="cli", role=Role.ADMIN)  # the operator at the console of the server
PROOF_FILE_BYTES_MAX = 50_000_000


def _opened() -> Platform:
    return Platform.open(cli.open_database_store())


def cmd_snapshot(args: argparse.Namespace) -> int:
    snapshot = take_snapshot(_opened(), CLI_PRINCIPAL, split_parts=args.split, snapshot_id=args.id)
    roots = [{key: summary[key] for key in ("asset", "root", "total", "leaf_count", "users")} for summary in snapshot["assets"]]
    data = {"snapshot_id": snapshot["_id"], "taken_at": snapshot["taken_at"], "users": snapshot["users"],
            "cut": snapshot["cut"], "roots": roots}
    text = "\n".join([f"snapshot {snapshot['_id']}: {snapshot['users']} users, "
                      f"cut covers {snapshot['cut']['versions_total']} user postings"]
                     + [f"  {r['asset']}: root {r['root']} total {r['total']} ({r['leaf_count']} leaves)" for r in roots])
    cli.emit(data, args.json, text)
    return cli.EXIT_OK


def cmd_proof(args: argparse.Namespace) -> int:
    bundle = user_proof_bundle(_opened(), CLI_PRINCIPAL, args.user, snapshot_id=args.snapshot, asset=args.asset)
    if args.out:
        Path(args.out).write_text(bundle_json(bundle) + "\n")
        print(f"wrote {len(bundle['proofs'])} proof(s) for {args.user} to {args.out}")
    else:
        print(bundle_json(bundle))
    return cli.EXIT_OK


def _verify_file(args: argparse.Namespace) -> int:
    path = Path(args.proof)
    try:
        if path.stat().st_size > PROOF_FILE_BYTES_MAX:
            raise cli.UsageError(f"{path} is larger than {PROOF_FILE_BYTES_MAX} bytes")
        document = json.loads(path.read_text())
    except OSError as error:
        raise cli.UsageError(f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        cli.emit({"ok": False, "reason": "not JSON"}, args.json, "INVALID: the file is not JSON")
        return cli.EXIT_FAILED
    proofs = document.get("proofs") if isinstance(document, dict) and "proofs" in document else [document]
    chosen = [p for p in proofs if not args.asset or (isinstance(p, dict) and p.get("asset") == args.asset)] if isinstance(proofs, list) else []
    if (args.root or args.total is not None) and len(chosen) != 1:
        raise cli.UsageError("--root/--total need exactly one proof: name it with --asset")
    results = [(p, verify_proof(p, args.root if p in chosen else None, args.total if p in chosen else None))
               for p in (proofs if isinstance(proofs, list) else [proofs])]
    ok = bool(results) and all(check.ok for _, check in results)
    data = {"ok": ok, "proofs": [{"asset": p.get("asset") if isinstance(p, dict) else None, "ok": c.ok, "reason": c.reason,
                                  "root": c.root, "total": c.total} for p, c in results]}
    text = "\n".join(f"{'OK' if c.ok else 'INVALID'} {row['asset']}: " + (f"root {c.root} total {c.total}" if c.ok else c.reason)
                     for row, (_, c) in zip(data["proofs"], results)) or "INVALID: the file holds no proof"
    cli.emit(data, args.json, text)
    return cli.EXIT_OK if ok else cli.EXIT_FAILED


def cmd_verify(args: argparse.Namespace) -> int:
    if args.proof:
        return _verify_file(args)
    check = verify_snapshot(_opened(), CLI_PRINCIPAL, args.snapshot)
    data = {"snapshot_id": check.snapshot_id, "ok": check.ok, "problems": check.problems,
            "leaves_checked": check.leaves_checked, "users_checked": check.users_checked}
    text = (f"snapshot {check.snapshot_id} {'OK' if check.ok else 'BROKEN'}: {check.leaves_checked} leaves, "
            f"{check.users_checked} users checked" + "".join(f"\n  {problem}" for problem in check.problems))
    cli.emit(data, args.json, text)
    return cli.EXIT_OK if check.ok else cli.EXIT_FAILED


def cmd_roots(args: argparse.Namespace) -> int:
    rows = published_roots(_opened(), CLI_PRINCIPAL, args.limit)
    cli.emit(rows, args.json, "\n".join(f"{r['snapshot_id']} {r['asset']} root {r['root']} total {r['total']}" for r in rows)
             or "no snapshot has been taken yet")
    return cli.EXIT_OK


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser("liabilities", help="proof of liabilities: Merkle-sum snapshots and inclusion proofs")
    actions = command.add_subparsers(dest="liabilities_command", required=True)
    snapshot = actions.add_parser("snapshot", help="read a consistent cut, publish one Merkle-sum root per asset (audited)")
    snapshot.add_argument("--split", type=int, default=1, choices=range(1, SPLIT_PARTS_MAX + 1), metavar=f"1..{SPLIT_PARTS_MAX}",
                          help="split each balance across this many leaves")
    snapshot.add_argument("--id", help="snapshot id (idempotency key); default derived from the cut")
    snapshot.add_argument("--json", action="store_true")
    snapshot.set_defaults(handler=cmd_snapshot)
    proof = actions.add_parser("proof", help="a user's inclusion proofs (JSON) from a snapshot")
    proof.add_argument("--user", required=True)
    proof.add_argument("--snapshot", help="snapshot id (default: the newest)")
    proof.add_argument("--asset")
    proof.add_argument("--out", help="write to this file instead of stdout")
    proof.set_defaults(handler=cmd_proof)
    verify = actions.add_parser("verify", help="check a proof file, or re-check a stored snapshot against its roots")
    verify.add_argument("proof", nargs="?", help="a proof file; without it the stored snapshot is re-checked")
    verify.add_argument("--root", help="the published root (with a proof file)")
    verify.add_argument("--total", type=int, help="the published total in minor units (with a proof file)")
    verify.add_argument("--asset", help="which proof of a bundle --root/--total refer to")
    verify.add_argument("--snapshot", help="snapshot id to re-check (default: the newest)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)
    roots = actions.add_parser("roots", help="the published roots and totals, newest snapshot first")
    roots.add_argument("--limit", type=int, default=50)
    roots.add_argument("--json", action="store_true")
    roots.set_defaults(handler=cmd_roots)
