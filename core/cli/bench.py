"""`python -m core bench`: the performance benchmark's command line (issue 6).

A thin adapter: the benchmark itself lives in `benchmarks/` (outside core, because its
legacy baseline deliberately models the old platform's float arithmetic) and is imported
only when the command runs. It is self-contained: it builds its own embedded data sets and
never touches the configured database.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCH_SIZES = ("small", "medium")  # `tiny` exists for the test suite only
EXIT_OK, EXIT_FAILED = 0, 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table (or the JSON report), write the results file.
    Returns 0 when every budget is met, 1 otherwise."""
    if getattr(args, "contention", False):
        return cmd_contention(args)
    if getattr(args, "checks_under_load", False):
        return cmd_checks_under_load(args)
    from benchmarks import bench
    from benchmarks import report
    result = bench.run_benchmark(args.size, pages=not args.skip_pages)
    from benchmarks import liabilities  # issue 14: Merkle-sum tree scaling, snapshot store ops
    result["liabilities"] = liabilities.run_liabilities_benchmark()
    from benchmarks import contention  # retries per posting on a hot account, striped or not
    result["contention"] = {"hot_retries": contention.hot_retries()}
    result["ok"] = result["ok"] and result["liabilities"]["ok"] and all(r["ok"] for r in result["contention"]["hot_retries"].values())
    path = bench.write_results(result, Path(args.out))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str, ensure_ascii=False))
    elif args.markdown:
        print(report.markdown(result))
    else:
        print(report.text(result) + "\n\n" + liabilities.text(result["liabilities"]) + "\n\n"
              + contention.hot_retries_text(result["contention"]["hot_retries"]) + f"\nresults written to {path}")
    return EXIT_OK if result["ok"] else EXIT_FAILED


def cmd_contention(args: argparse.Namespace) -> int:
    """The contention bench alone (HOT_ACCOUNTS.md): W writers behind a simulated round trip,
    hot against unshared accounts and the flows, this engine beside the previous write path."""
    from benchmarks import contention
    result = contention.run_contention_benchmark()
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True, default=str, ensure_ascii=False) if args.json else contention.text(result))
    return EXIT_OK if result["ok"] else EXIT_FAILED


def cmd_checks_under_load(args: argparse.Namespace) -> int:
    """Issue 19: a checker looping beside 8 writers (real threads, 2 ms round trip) — false
    findings, whether a planted tamper is found, liabilities snapshots under full-speed posting."""
    from benchmarks import checks_under_load as load
    result = load.run_benchmark()
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True, default=str, ensure_ascii=False) if args.json else load.benchmark_text(result))
    return EXIT_OK if result["ok"] else EXIT_FAILED


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="store round trips, index coverage and scaling (embedded store)")
    bench.add_argument("--size", choices=BENCH_SIZES, default="medium",
                       help="the larger data set (the other is a tenth of it): medium ≈ 500 users / 10,000 entries")
    output = bench.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    output.add_argument("--markdown", action="store_true", help="print the figures as Markdown tables")
    bench.add_argument("--out", default="bench-results.json",
                       help="results file (default bench-results.json, git-ignored)")
    bench.add_argument("--skip-pages", action="store_true", help="skip the console pages (no Streamlit rendering)")
    bench.add_argument("--contention", action="store_true",
                       help="only the contention bench: 8/32/64 writers behind a 2 ms round trip, hot vs unshared accounts, the flows")
    bench.add_argument("--checks-under-load", action="store_true",
                       help="only the checks under load: every reader beside 8 writers for 60 s (and a planted tamper), "
                            "then liabilities snapshots beside writers at full speed")
    bench.set_defaults(handler=cmd_bench)
