"""`python -m core liabilities snapshot|bundle|proof|secret|verify|roots` — proof of
liabilities from the command line. Exit codes: 0 success, 1 a check failed (or a refusal),
2 usage/configuration (a malformed argument included: `--user $'alice\\n'`, `--limit -5`).

`snapshot`, `bundle`, `proof`, `secret`, `roots` and `verify` without a file inspect the
configured database (refused on the embedded store); `verify PROOF.json --user --root
--total` checks a proof file offline, with the same rules as tools/verify_liabilities.py.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core.cli import common as cli
from core.ledger import OWNER_ID_PATTERN
from core.liabilities.bundle import build_bundle
from core.liabilities.proofs import bundle_json, user_proof_bundle, verify_snapshot
from core.liabilities.reveal import reissue_user_secret, reveal_user_secret
from core.liabilities.snapshot import SNAPSHOT_ID_PATTERN, SNAPSHOT_LIST_MAX, SPLIT_PARTS_MAX, published_roots, take_snapshot
from core.liabilities.verify import ASSET_PATTERN, DISPLAY_PATTERN, MINOR_PATTERN, ProofCheck, grouped, minor_text, parse_amount, verify_proof
from core.base.permissions import Principal, Role
from core.platform import Platform

CLI_PRINCIPAL = Principal(name="cli", role=Role.ADMIN)  # the operator at the console of the server
PROOF_FILE_BYTES_MAX = 50_000_000
HEX32 = re.compile(r"[0-9a-fA-F]{64}")


def _opened() -> Platform:
    return Platform.open(cli.open_database_store())


def _pattern(pattern: re.Pattern[str], what: str):
    """An argparse type: the text must match `pattern` whole (a malformed value is exit 2)."""
    def parse(text: str) -> str:
        if not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a valid {what}")
        return text
    return parse


def _limit(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= SNAPSHOT_LIST_MAX:
        raise argparse.ArgumentTypeError(f"--limit must be a whole number from 1 to {SNAPSHOT_LIST_MAX}, not {text[:20]!r}")
    return int(text)


def _amount_text(text: str) -> str:
    if not (MINOR_PATTERN.fullmatch(text.strip()) or DISPLAY_PATTERN.fullmatch(text.strip())):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is neither minor units (digits) nor a displayed amount such as 4,817.78417847")
    return text.strip()


def cmd_snapshot(args: argparse.Namespace) -> int:
    snapshot = take_snapshot(_opened(), CLI_PRINCIPAL, split_parts=args.split, snapshot_id=args.id)
    roots = [{key: summary[key] for key in ("asset", "scale", "root", "total", "leaf_count")} for summary in snapshot["assets"]]
    data = {"snapshot_id": snapshot["_id"], "taken_at": snapshot["taken_at"], "public_key": snapshot["public_key"],
            "cut": snapshot["cut"], "roots": roots}
    text = "\n".join([f"snapshot {snapshot['_id']}: cut covers {snapshot['cut']['versions_total']} user postings; "
                      f"statement key {snapshot['public_key']}"]
                     + [f"  {r['asset']}: root {r['root']} total {r['total']} ({r['leaf_count']} leaves)" for r in roots])
    cli.emit(data, args.json, text)
    return cli.EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    platform = _opened()
    with open(args.out, "wb") as out:
        result = build_bundle(platform, CLI_PRINCIPAL, out, snapshot_id=args.snapshot)
    data = {"path": args.out, "sha256": result.sha256, "size_bytes": result.size_bytes, "record_count": result.record_count}
    cli.emit(data, args.json, f"wrote the bundle to {args.out}: {result.size_bytes:,} bytes, {result.record_count:,} records "
                              f"(padded), SHA-256 {result.sha256}")
    return cli.EXIT_OK


def cmd_proof(args: argparse.Namespace) -> int:
    bundle = user_proof_bundle(_opened(), CLI_PRINCIPAL, args.user, snapshot_id=args.snapshot, asset=args.asset)
    if args.out:
        Path(args.out).write_text(bundle_json(bundle) + "\n")
        print(f"wrote {len(bundle['proofs'])} proof(s) for {args.user} to {args.out}")
    else:
        print(bundle_json(bundle))
    return cli.EXIT_OK


def cmd_secret(args: argparse.Namespace) -> int:
    show = reissue_user_secret if args.reissue else reveal_user_secret
    secret = show(_opened(), CLI_PRINCIPAL, args.user, args.reason)
    print(f"verification secret of {args.user} (shown once; give it to the user only): {secret}")
    return cli.EXIT_OK


def _proofs_in(args: argparse.Namespace) -> list:
    path = Path(args.proof)
    try:
        if path.stat().st_size > PROOF_FILE_BYTES_MAX:
            raise cli.UsageError(f"{path} is larger than {PROOF_FILE_BYTES_MAX} bytes")
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise cli.UsageError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, RecursionError):
        return [None]
    if isinstance(document, dict) and "proofs" in document:
        return document["proofs"] if isinstance(document["proofs"], list) else [None]
    return [document]


def _verify_file(args: argparse.Namespace) -> int:
    missing = [flag for flag, value in (("--user", args.user), ("--root", args.root), ("--total", args.total)) if value is None]
    if missing:
        raise cli.UsageError(f"give {', '.join(missing)}: a proof only shows you are inside the tree whose root and total "
                             "the exchange PUBLISHED, under your own user id")
    proofs = _proofs_in(args)
    chosen = [p for p in proofs if not args.asset or (isinstance(p, dict) and p.get("asset") == args.asset)]
    if args.asset and not chosen:
        result = ProofCheck(False, f"the file holds no {args.asset} proof")
    elif len(chosen) > 1:
        raise cli.UsageError("the file holds several proofs: name the one --root/--total refer to with --asset")
    else:
        result = _check_against(chosen[0], args)
    data = {"ok": result.ok, "asset": result.asset or args.asset, "user_id": result.user_id, "reason": result.reason,
            "root": result.root, "total": result.total, "balance_minor": result.balance_minor, "signed": result.signed}
    if result.ok:
        text = (f"OK {result.asset}: {result.user_id} holds {grouped(minor_text(result.balance_minor, result.scale))} {result.asset} "
                f"in snapshot {result.snapshot_id}; root {result.root}, total {grouped(minor_text(result.total, result.scale))} "
                f"{result.asset}; statement signed by the exchange")
    else:
        text = f"INVALID{' ' + data['asset'] if data['asset'] else ''}: {result.reason}"
    cli.emit(data, args.json, text)
    return cli.EXIT_OK if result.ok else cli.EXIT_FAILED


def _check_against(proof: object, args: argparse.Namespace) -> ProofCheck:
    """The proof checked against what the user gave (amounts read at the proof's committed scale)."""
    own = verify_proof(proof)
    if not own.ok:
        return own
    total, balance = parse_amount(args.total, own.scale), parse_amount(args.balance, own.scale) if args.balance else None
    if total is None or (args.balance and balance is None):
        return ProofCheck(False, f"an amount you gave has more decimals than {own.asset} has ({own.scale})", signed=own.signed)
    return verify_proof(proof, args.root, total, user_id=args.user, balance_minor=balance, public_key=args.public_key)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.proof:
        return _verify_file(args)
    check = verify_snapshot(_opened(), CLI_PRINCIPAL, args.snapshot)
    data = {"snapshot_id": check.snapshot_id, "ok": check.ok, "problems": check.problems, "leaves_checked": check.leaves_checked}
    text = (f"snapshot {check.snapshot_id} {'OK' if check.ok else 'BROKEN'}: {check.leaves_checked} leaves and every user's "
            f"recorded leaves checked" + "".join(f"\n  {problem}" for problem in check.problems))
    cli.emit(data, args.json, text)
    return cli.EXIT_OK if check.ok else cli.EXIT_FAILED


def cmd_roots(args: argparse.Namespace) -> int:
    rows = published_roots(_opened(), CLI_PRINCIPAL, args.limit)
    cli.emit(rows, args.json, "\n".join(f"{r['snapshot_id']} {r['asset']} root {r['root']} total {r['total']} "
                                         f"key {r['public_key']}" for r in rows) or "no snapshot has been taken yet")
    return cli.EXIT_OK


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    user_id, snapshot_id = _pattern(OWNER_ID_PATTERN, "user id"), _pattern(SNAPSHOT_ID_PATTERN, "snapshot id")
    asset = _pattern(ASSET_PATTERN, "asset code")
    command = subparsers.add_parser("liabilities", help="proof of liabilities: Merkle-sum snapshots, sealed bundles, inclusion proofs")
    actions = command.add_subparsers(dest="liabilities_command", required=True)
    snapshot = actions.add_parser("snapshot", help="read a consistent cut, publish one Merkle-sum root per asset (audited)")
    snapshot.add_argument("--split", type=int, default=1, choices=range(1, SPLIT_PARTS_MAX + 1), metavar=f"1..{SPLIT_PARTS_MAX}",
                          help="split each balance across this many leaves")
    snapshot.add_argument("--id", type=snapshot_id, help="snapshot id (idempotency key); default derived from the cut")
    snapshot.add_argument("--json", action="store_true")
    snapshot.set_defaults(handler=cmd_snapshot)
    bundle = actions.add_parser("bundle", help="write the public bundle: every user's signed proofs, each sealed to its user")
    bundle.add_argument("--out", required=True, help="the file to write (publish it beside the roots)")
    bundle.add_argument("--snapshot", type=snapshot_id, help="snapshot id (default: the newest)")
    bundle.add_argument("--json", action="store_true")
    bundle.set_defaults(handler=cmd_bundle)
    proof = actions.add_parser("proof", help="a user's signed inclusion proofs (JSON) from a snapshot, for support (audited)")
    proof.add_argument("--user", required=True, type=user_id)
    proof.add_argument("--snapshot", type=snapshot_id, help="snapshot id (default: the newest)")
    proof.add_argument("--asset", type=asset)
    proof.add_argument("--out", help="write to this file instead of stdout")
    proof.set_defaults(handler=cmd_proof)
    secret = actions.add_parser("secret", help="show a user's verification secret (opens their records in every bundle): once, audited")
    secret.add_argument("--user", required=True, type=user_id)
    secret.add_argument("--reason", required=True, help="why (e.g. the support ticket); recorded in the audit trail")
    secret.add_argument("--reissue", action="store_true", help="replace a lost or exposed secret with a new one")
    secret.set_defaults(handler=cmd_secret)
    verify = actions.add_parser("verify", help="check a proof file, or re-check a stored snapshot against its roots")
    verify.add_argument("proof", nargs="?", help="a proof file; without it the stored snapshot is re-checked")
    verify.add_argument("--user", type=user_id, help="YOUR user id: the proof must be yours (with a proof file)")
    verify.add_argument("--root", type=_pattern(HEX32, "root (64 hexadecimal digits)"), help="the PUBLISHED root (with a proof file)")
    verify.add_argument("--total", type=_amount_text, help="the PUBLISHED total: minor units, or as displayed (4,817.78417847)")
    verify.add_argument("--balance", type=_amount_text, help="the balance you see (optional): it must be the one in the tree")
    verify.add_argument("--public-key", type=_pattern(HEX32, "public key (64 hexadecimal digits)"),
                        help="the PUBLISHED statement key (optional: the root already commits to it)")
    verify.add_argument("--asset", type=asset, help="which proof of a multi-asset file to check")
    verify.add_argument("--snapshot", type=snapshot_id, help="snapshot id to re-check (default: the newest)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)
    roots = actions.add_parser("roots", help="the published roots, totals and statement key, newest snapshot first")
    roots.add_argument("--limit", type=_limit, default=50, help=f"snapshots to list (1..{SNAPSHOT_LIST_MAX})")
    roots.add_argument("--json", action="store_true")
    roots.set_defaults(handler=cmd_roots)
