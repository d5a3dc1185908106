"""Proof-of-liabilities benchmark (issue 14), part of `python -m core bench`.

1. Tree build: the real build (`core.liabilities.snapshot.build_asset_tree`: commitments,
   padding, shuffle, chunk subtrees, the tree over chunk roots) over 10k, 100k and 1M
   synthetic users, in pure Python. Reported: seconds, seconds per leaf (flat = linear),
   and the size of one user's proof (path steps = log2 of the padded leaf count; JSON bytes).
   Every measured proof is verified.
2. Snapshot store operations on the embedded store with prepared balance documents, at two
   sizes: operations per collection and operation, and every query shape checked against
   the declared indexes (`core.ledger.uncovered`). On a real server the cost is
   2 x ceil(user balance documents / READ_BATCH_SIZE) balance reads + the flagged-entry reads
   + one insert per CHUNK_INSERT_BATCH leaf chunks and per USER_INSERT_BATCH users.
Times are this machine's, single-threaded; nothing here is a timed assertion.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter

from core import liabilities
from core.clock import ManualClock
from core.ledger import DEFAULT_REGISTRY, Store, uncovered
from core.liabilities.proofs import chunk_tree, proof_document, proof_leaf, top_tree
from core.liabilities.snapshot import build_asset_tree
from core.permissions import Principal, Role
from core.platform import Platform

TREE_SIZES = (10_000, 100_000, 1_000_000)
STORE_USERS = (200, 2_000)  # embedded store: keep collections to a few thousand documents
BALANCE_MAX_MINOR = 10**12
ADMIN = Principal(name="bench-admin", role=Role.ADMIN)
SUPPORT = Principal(name="bench-support", role=Role.SUPPORT)
SEED = 14


def tree_build(users: int, rng: random.Random) -> dict:
    """Build one asset's tree over `users` synthetic balances and measure one proof."""
    balances = {f"u{number:07d}": rng.randrange(1, BALANCE_MAX_MINOR) for number in range(users)}
    nonces = {user: rng.randbytes(32) for user in balances}
    started, cpu_started = time.perf_counter(), time.process_time()
    built = build_asset_tree("bench", "BTC", balances, nonces, 1, rng, DEFAULT_REGISTRY)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    summary = built.summary
    user = next(iter(balances))
    (leaf,) = [{"index": i, "part": part, "sum": value} for i, (_, value, owner, part) in enumerate(built.leaves) if owner == user]
    chunk = built.chunks[leaf["index"] // summary["chunk_size"]]
    snapshot = {"_id": "bench", "taken_at": ManualClock().now()}
    proof = proof_document(snapshot, summary, user, nonces[user],
                           [proof_leaf("bench", "BTC", user, nonces[user], leaf, chunk_tree(chunk, summary["chunk_size"]), top_tree(summary))],
                           DEFAULT_REGISTRY)
    check = liabilities.verify_proof(proof, summary["root"], summary["total"])
    return {"users": users, "leaf_count": summary["leaf_count"], "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
            "microseconds_per_leaf": round(cpu_seconds / summary["leaf_count"] * 1e6, 3),
            "proof_steps": len(proof["leaves"][0]["path"]), "proof_bytes": len(json.dumps(proof)),
            "total_exact": summary["total"] == sum(balances.values()), "proof_verifies": check.ok}


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


def run_liabilities_benchmark(tree_sizes: tuple[int, ...] = TREE_SIZES, store_users: tuple[int, ...] = STORE_USERS) -> dict:
    """The whole section (JSON-ready). `ok` when every proof verified, every total was exact
    and no snapshot or proof query went without an index."""
    rng = random.Random(SEED)
    trees = [tree_build(size, rng) for size in tree_sizes]
    stores = [snapshot_operations(size, rng) for size in store_users]
    ok = all(t["proof_verifies"] and t["total_exact"] for t in trees) and not any(s["uncovered"] for s in stores)
    return {"trees": trees, "snapshots": stores, "ok": ok}


def text(result: dict) -> str:
    """The human-readable table."""
    lines = ["Proof of liabilities — Merkle-sum tree build (pure Python, this machine)",
             f"  {'users':>10} {'leaves':>10} {'build s':>9} {'cpu s':>7} {'cpu µs/leaf':>11} {'proof steps':>12} {'proof bytes':>12}"]
    for t in result["trees"]:
        lines.append(f"  {t['users']:>10,} {t['leaf_count']:>10,} {t['seconds']:>9} {t['cpu_seconds']:>7} {t['microseconds_per_leaf']:>11} "
                     f"{t['proof_steps']:>12} {t['proof_bytes']:>12,}" + ("" if t["proof_verifies"] and t["total_exact"] else "  FAILED"))
    lines.append("  snapshot store operations (embedded store, prepared balances; query shapes checked against the indexes):")
    for s in result["snapshots"]:
        lines.append(f"  {s['users']:>6,} users × 3 balances: snapshot {s['snapshot_ops']} ops, proof bundle {s['proof_ops']} ops, "
                     f"uncovered shapes {len(s['uncovered'])} — {', '.join(f'{k} {v}' for k, v in s['breakdown'].items())}")
    return "\n".join(lines)
