"""Retries per posting on a hot account, measured by the deterministic simulator.

Every writer pays one fee account (the fee wallet, the liquidity float and `external` are
such accounts in production); each entry takes the next version of it, so concurrent
writers lose claims and retry. Seeded runs without crashes, K = 2, 4, 8 writers.
"""

from __future__ import annotations

from core.ledger.simulation import simulate

WRITERS = (2, 4, 8)
SEEDS = 5
STEPS = 400


def run_contention_benchmark(seeds: int = SEEDS, steps: int = STEPS) -> dict:
    rows = {}
    for writers in WRITERS:
        runs = [simulate(seed, actors=writers, steps=steps, hot=True, crash_rate=0) for seed in range(seeds)]
        posts = sum(r.stats["posts"] for r in runs)
        attempts = sum(r.stats["claim_attempts"] for r in runs)
        rows[str(writers)] = {"posts": posts, "claim_attempts": attempts, "ok": all(r.ok for r in runs),
                              "retries_per_post": round((attempts - posts) / max(posts, 1), 2)}
    return {"writers": rows, "seeds": seeds, "steps": steps, "ok": all(row["ok"] for row in rows.values())}


def text(result: dict) -> str:
    lines = ["Retries per posting on one hot account (simulator, no crashes):"]
    for writers, row in result["writers"].items():
        lines.append(f"  {writers} concurrent writers: {row['retries_per_post']} retries per posting "
                     f"({row['posts']} postings, {row['claim_attempts']} claim attempts)")
    return "\n".join(lines)
