"""Proof-of-liabilities benchmark (issues 14 and 21), part of `python -m core bench`.

1. Tree build: the real build (`core.liabilities.snapshot.build_asset_tree`: commitments,
   padding, shuffle, chunk subtrees, the tree over chunk roots, the committed root) over
   10k, 100k and 1M synthetic users, in pure Python. Reported: seconds, seconds per leaf
   (flat = linear), and the size of one user's proof (path steps = log2 of the padded leaf
   count; JSON bytes). Every measured proof is verified.
2. Bundle: the public file of every user's signed, sealed proof (`core.liabilities.bundle.
   write_bundle`, as `build_bundle` runs it from the store: chunk subtrees rebuilt, one
   Ed25519 signature and one sealed record per user, padding, sorted by tag) at the same
   sizes, written to a temporary file: seconds, bytes, records. Then the stand-alone tool
   as a user runs it (`python3 tools/verify_liabilities.py --bundle … --secret-file …`, a
   fresh interpreter) for one user: wall seconds including start-up and the bundle lookup,
   and the lookup + verification alone measured in-process.
3. Snapshot store operations on the embedded store with prepared balance documents, at two
   sizes: operations per collection and operation, and every query shape checked against
   the declared indexes (`core.ledger.uncovered`). On a real server the cost is
   2 x ceil(user balance documents / READ_BATCH_SIZE) balance reads + the flagged-entry reads
   + one insert per CHUNK_INSERT_BATCH leaf chunks and per USER_INSERT_BATCH users.
Times are this machine's, single-threaded; nothing here is a timed assertion.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from core import liabilities
from core.base.clock import ManualClock
from core.ledger import DEFAULT_REGISTRY, Store, uncovered
from core.liabilities.bundle import BundleAsset, BundleUser, bundle_header, write_bundle
from core.liabilities.keys import LiabilitiesKeys, secret_text
from core.liabilities.proofs import chunk_tree, leaf_path, proof_document, top_tree
from core.liabilities.snapshot import build_asset_tree
from core.base.permissions import Principal, Role
from core.platform import Platform

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TREE_SIZES = (10_000, 100_000, 1_000_000)
STORE_USERS = (200, 2_000)  # embedded store: keep collections to a few thousand documents
BALANCE_MAX_MINOR = 10**12
ADMIN = Principal(name="bench-admin", role=Role.ADMIN)
SUPPORT = Principal(name="bench-support", role=Role.SUPPORT)
SEED = 14
TOOL = Path(__file__).resolve().parents[1] / "tools" / "verify_liabilities.py"


def tree_build(users: int, rng: random.Random, bundle: bool = True) -> dict:
    """Build one asset's tree over `users` synthetic balances, measure one proof, then the bundle."""
    balances = {f"u{number:07d}": rng.randrange(1, BALANCE_MAX_MINOR) for number in range(users)}
    nonces = {user: rng.randbytes(32) for user in balances}
    keys = LiabilitiesKeys(Ed25519PrivateKey.generate(), os.urandom(32), throwaway=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    built = build_asset_tree("bench", "BTC", balances, nonces, 1, rng, DEFAULT_REGISTRY, public_key=keys.public_key)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    summary = built.summary
    user = next(iter(balances))
    (leaf,) = [{"index": i, "part": part, "sum": value} for i, (_, value, owner, part) in enumerate(built.leaves) if owner == user]
    chunk = chunk_tree(built.chunks[leaf["index"] // summary["chunk_size"]], summary["chunk_size"])
    proof = proof_document("bench", summary, user, nonces[user], [(leaf, leaf_path(leaf["index"], chunk, top_tree(summary)))],
                           keys, keys.public_key.hex())
    check = liabilities.verify_proof(proof, summary["root"], summary["total"], user_id=user)
    row = {"users": users, "leaf_count": summary["leaf_count"], "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
           "microseconds_per_leaf": round(cpu_seconds / summary["leaf_count"] * 1e6, 3),
           "proof_steps": len(proof["leaves"][0]["path"]), "proof_bytes": len(json.dumps(proof)),
           "total_exact": summary["total"] == sum(balances.values()), "proof_verifies": check.ok}
    if bundle:
        row["bundle"] = bundle_build(built, nonces, keys, proof)
    return row


def bundle_build(built, nonces: dict[str, bytes], keys: LiabilitiesKeys, proof: dict) -> dict:
    """The bundle of one asset's tree, written to a temporary file, and one user's check of it with the tool."""
    summary, user = built.summary, proof["user_id"]
    positions = built.positions()
    with tempfile.TemporaryDirectory(prefix="pol-bench-") as directory:
        path = Path(directory) / "bundle.bin"
        started = time.perf_counter()
        chunks = [chunk_tree(chunk, summary["chunk_size"]) for chunk in built.chunks]  # as build_bundle does from the store
        asset = BundleAsset(summary, chunks, top_tree(summary))
        people = (BundleUser(owner, nonces[owner], 1, tuple(leaves)) for owner, leaves in positions.items())
        with path.open("wb") as out:
            result = write_bundle(out, keys, bundle_header("bench", keys.public_key.hex(), 1, [asset]), [asset], people)
        seconds = time.perf_counter() - started
        secret = Path(directory) / "secret.txt"
        secret.write_text(secret_text(keys.user_secret(user)))
        command = [sys.executable, "-I", str(TOOL), "--bundle", str(path), "--secret-file", str(secret), "--user", user,
                   "--root", summary["root"], "--total", str(summary["total"]), "--balance", proof["balance"]]
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        tool_seconds = time.perf_counter() - started
        lookup_seconds = _tool_in_process(path, keys.user_secret(user), user)
    return {"seconds": round(seconds, 2), "size_bytes": result.size_bytes, "record_count": result.record_count,
            "record_bytes": result.record_bytes, "tool_ok": run.returncode == 0 and f"OK BTC: {user} holds" in run.stdout,
            "tool_seconds": round(tool_seconds, 3), "lookup_and_verify_seconds": round(lookup_seconds, 4)}


def _tool_in_process(path: Path, secret: bytes, user: str) -> float:
    """The tool's own lookup (binary search in the file, open, decode) and verification, without interpreter start-up."""
    spec = importlib.util.spec_from_file_location("verify_liabilities_bench", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    started = time.perf_counter()
    found, _ = tool.from_bundle(str(path), secret, "BTC")
    result = tool.verify(found["BTC"])
    elapsed = time.perf_counter() - started
    assert result["user"] == user
    return elapsed


def _prepared_platform(users: int, rng: random.Random) -> Platform:
    """An embedded platform whose balances (v2 projection documents) are loaded with insert_many."""
    platform = Platform.open(Store.embedded_store("bench_liabilities"), ManualClock())
    documents = []
    for number in range(users):
        owner = f"u{number:06d}"
        for kind, asset in (("user.available", "BTC"), ("user.locked", "BTC"), ("user.available", "USDT")):
            documents.append({"_id": f"{kind}:{owner}:{asset}", "kind": kind, "owner": owner, "asset": asset, "version": 1,
                              "balance_minor": rng.randrange(0, BALANCE_MAX_MINOR), "head_hash": f"{number:064x}"})
    platform.store.collection("balances").insert_many(documents)
    return platform


def snapshot_operations(users: int, rng: random.Random) -> dict:
    """Store operations of one snapshot and one proof bundle, and their query shapes."""
    platform = _prepared_platform(users, rng)
    platform.store.log.reset()
    started = time.perf_counter()
    snapshot = liabilities.take_snapshot(platform, ADMIN, rng=rng)
    seconds = time.perf_counter() - started
    snapshot_records = list(platform.store.log.records)
    platform.store.log.reset()
    liabilities.user_proof_bundle(platform, SUPPORT, "u000000")
    proof_records = list(platform.store.log.records)
    counts = Counter(f"{r.collection}.{r.operation}" for r in snapshot_records)
    missing = uncovered(snapshot_records + proof_records)
    platform.store.drop()
    return {"users": users, "snapshot_ops": len(snapshot_records), "breakdown": dict(sorted(counts.items())),
            "proof_ops": len(proof_records), "embedded_seconds": round(seconds, 3), "assets": len(snapshot["assets"]),
            "uncovered": [{"collection": r.collection, "operation": r.operation, "filter_fields": list(r.filter_fields)} for r in missing]}


def run_liabilities_benchmark(tree_sizes: tuple[int, ...] = TREE_SIZES, store_users: tuple[int, ...] = STORE_USERS,
                              bundles: bool = True) -> dict:
    """The whole section (JSON-ready). `ok` when every proof verified, every total was exact,
    the tool verified one user from every bundle and no snapshot or proof query went without an index."""
    rng = random.Random(SEED)
    trees = [tree_build(size, rng, bundles) for size in tree_sizes]
    stores = [snapshot_operations(size, rng) for size in store_users]
    ok = (all(t["proof_verifies"] and t["total_exact"] and t.get("bundle", {"tool_ok": True})["tool_ok"] for t in trees)
          and not any(s["uncovered"] for s in stores))
    return {"trees": trees, "snapshots": stores, "ok": ok}


def text(result: dict) -> str:
    """The human-readable table."""
    lines = ["Proof of liabilities — Merkle-sum tree build (pure Python, this machine)",
             f"  {'users':>10} {'leaves':>10} {'build s':>9} {'cpu s':>7} {'cpu µs/leaf':>11} {'proof steps':>12} {'proof bytes':>12}"]
    for t in result["trees"]:
        lines.append(f"  {t['users']:>10,} {t['leaf_count']:>10,} {t['seconds']:>9} {t['cpu_seconds']:>7} {t['microseconds_per_leaf']:>11} "
                     f"{t['proof_steps']:>12} {t['proof_bytes']:>12,}" + ("" if t["proof_verifies"] and t["total_exact"] else "  FAILED"))
    if any("bundle" in t for t in result["trees"]):
        lines.append("  public bundle (every user's signed proof sealed to them; padded; one file) and the tool for one user:")
        lines.append(f"  {'users':>10} {'build s':>9} {'bytes':>15} {'records':>10} {'record B':>9} {'tool s':>7} {'lookup+verify s':>16}")
    for t in result["trees"]:
        if "bundle" in t:
            b = t["bundle"]
            lines.append(f"  {t['users']:>10,} {b['seconds']:>9} {b['size_bytes']:>15,} {b['record_count']:>10,} {b['record_bytes']:>9,} "
                         f"{b['tool_seconds']:>7} {b['lookup_and_verify_seconds']:>16}" + ("" if b["tool_ok"] else "  FAILED"))
    lines.append("  snapshot store operations (embedded store, prepared balances; query shapes checked against the indexes):")
    for s in result["snapshots"]:
        lines.append(f"  {s['users']:>6,} users × 3 balances: snapshot {s['snapshot_ops']} ops, proof bundle {s['proof_ops']} ops, "
                     f"uncovered shapes {len(s['uncovered'])} — {', '.join(f'{k} {v}' for k, v in s['breakdown'].items())}")
    return "\n".join(lines)
