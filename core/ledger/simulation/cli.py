"""`python -m core simulate`: the deterministic simulator from the command line.

Exit codes: 0 every seed held every invariant, 1 a violation (its report names the seed
and the interleaving), 2 usage error. Self-contained: it runs on its own embedded stores.
"""

from __future__ import annotations

import argparse
import json
import time

from core.ledger.accounts import STRIPES_MAX
from core.ledger.simulation import DEFAULT_CRASH_RATE, DEFAULT_SKEW_MINUTES, MUTANTS, simulate

SEEDS_MAX = 1_000_000
ACTORS_MAX = 32
STEPS_MAX = 1_000_000


def cmd_simulate(args: argparse.Namespace) -> int:
    if not (1 <= args.seeds <= SEEDS_MAX and 1 <= args.actors <= ACTORS_MAX and 1 <= args.steps <= STEPS_MAX
            and 0 <= args.crash_rate < 1 and 0 <= args.skew_minutes <= 24 * 60
            and (args.stripes is None or 1 <= args.stripes <= STRIPES_MAX)):
        print(f"error: need 1 ≤ seeds ≤ {SEEDS_MAX}, 1 ≤ actors ≤ {ACTORS_MAX}, 1 ≤ steps ≤ {STEPS_MAX}, "
              f"0 ≤ crash-rate < 1, 0 ≤ skew-minutes ≤ 1440, 1 ≤ stripes ≤ {STRIPES_MAX}")
        return 2
    started = time.monotonic()
    operations, runs, retries = 0, [], []
    for seed in range(args.seed, args.seed + args.seeds):
        actors = args.actors if not args.vary_actors else 2 + seed % (args.actors - 1 if args.actors > 2 else 1)
        result = simulate(seed, actors=actors, steps=args.steps, crash_rate=args.crash_rate,
                          skew_minutes=args.skew_minutes, mutant=args.mutant, hot=args.hot, stripes=args.stripes)
        operations += result.operations
        retries.append(result.stats["retries_per_post"])
        runs.append(result.as_dict())
        if not result.ok:
            if args.json:
                print(json.dumps({"ok": False, "operations": operations, "failed": result.as_dict()}, indent=2, sort_keys=True))
            else:
                print(result.report())
            return 1
    summary = {"ok": True, "seeds": args.seeds, "first_seed": args.seed, "operations": operations, "violations": 0,
               "seconds": round(time.monotonic() - started, 1), "mean_retries_per_post": round(sum(retries) / len(retries), 3),
               "mutant": args.mutant, "hot": args.hot, "stripes": args.stripes}
    if args.json:
        print(json.dumps(dict(summary, runs=runs if args.seeds <= 20 else []), indent=2, sort_keys=True))
    else:
        print(f"{args.seeds} seeds from {args.seed}: {operations} store operations, 0 violations, "
              f"{summary['mean_retries_per_post']} retries per post, {summary['seconds']} s")
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("simulate", help="run the deterministic simulator of the posting engine")
    parser.add_argument("--seed", type=int, default=0, help="first seed (same seed, same run)")
    parser.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds to run")
    parser.add_argument("--actors", type=int, default=4, help="concurrent actors (processes)")
    parser.add_argument("--vary-actors", action="store_true", help="use 2..ACTORS actors, varying with the seed")
    parser.add_argument("--steps", type=int, default=300, help="store operations per seed")
    parser.add_argument("--crash-rate", type=float, default=DEFAULT_CRASH_RATE, help="chance of a crash at each operation")
    parser.add_argument("--skew-minutes", type=int, default=DEFAULT_SKEW_MINUTES, help="clock skew per process, up to ± this")
    parser.add_argument("--mutant", choices=sorted(MUTANTS), help="run a known-bad engine (to see the simulator catch it)")
    parser.add_argument("--hot", action="store_true", help="every writer pays one fee wallet (retries on a hot account)")
    parser.add_argument("--stripes", type=int, help="stripes of every hot account kind (default: a few each; 1 = not striped)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=cmd_simulate)
