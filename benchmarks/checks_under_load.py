"""Checks under load (issue 19): a checker looping beside posting writers on a clean ledger.

W writers keep money moving through the real flows and the ledger — transfers between
users, deposits, withdrawals (settled at once, or held for approval), swaps quoted and
executed (or expired), user holds placed and released — while one checker runs every
reader that judges or totals the ledger in turn: the self-check, the incremental and the
full platform checks, a per-user check, the platform totals (rollups) and the liabilities
cut. On a clean ledger every reader must report nothing and every total must be exact
(the platform totals sum to zero per asset, the cut equals the journal's sum at its
position); after a planted tamper (an old entry edited behind the engine's back), the
checks must name that entry and nothing else.

The same workload runs two ways:
- under the deterministic scheduler (`run_scheduled`: core.ledger.simulation.run_actors,
  one store operation at a time, seeded) — the test, tests/core/integrity/test_checks_under_load.py.
  The scheduler gives every actor the same share of operations, so each writer also reads
  balances between its writes (THINK_READS), as clients do, and two actors fold the rollups
  in the background (FOLDERS, as a scheduled `rollups update` does): otherwise 8 writers
  would post faster than one checker's share of operations can fold, and the checker would
  fall behind for good — a property of the uniform scheduler, not of the checks. The
  folders also race the readers' fold-state reads, which is one of the races under test;
- with real threads behind a simulated round trip (`run_threads`) — the bench,
  `python -m core bench --checks-under-load`, figures in docs/performance.md.
Not timed: the bench reports what it measured, no test asserts a duration.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core import reports, rollups
from core.base.clock import Clock, SystemClock
from core.platform.config import DEFAULT_CONFIG
from core.base.errors import LedgerError
from core.flows import deposit, quotes, swap, withdrawal
from core.flowtests.sandbox import Sandbox
from core.integrity import check_platform, check_user
from core.ledger import Store, accounts as acct, amount, make_request, self_check
from core.ledger.ids import seeded_ids
from core.ledger.simulation import ManualBase, run_actors
from core import liabilities
from core.liabilities import read_cut
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform

CHECKER = Principal(name="checker", role=Role.ADMIN)
USERS = tuple(f"trader{n}" for n in range(12))
LOAD_CONFIG = DEFAULT_CONFIG.model_copy(update={"quote_ttl": timedelta(hours=1)})  # a quote outlives a slow writer
READERS = ("self_check", "incremental", "user", "totals", "liabilities", "full")
ROUND_TRIP_SECONDS = 0.002
DURATION_SECONDS = 60.0
WRITER_PAUSE_SECONDS = 0.5  # threads: each writer's pause between writes (~20 entries/s in all: what the embedded store can fold)
FOLD_EVERY_SECONDS = 1.0  # threads: a background `rollups update`, as the README schedules it (every minute or more often)
WRITERS = 8
SEED, STEPS = 19, 40_000
THINK_READS = 100  # scheduled run: balance reads a writer makes between two writes (module docstring)
FOLDERS = 1  # scheduled run: actors folding the rollups in the background, as a scheduled `rollups update` does


# -- the writers ----------------------------------------------------------------------------------------------
def prepare(platform: Platform, clock: Clock) -> None:
    """Every user funded through a confirmed deposit, the ETH float topped up (approved)."""
    sandbox = Sandbox(platform=platform, clock=clock)
    for user in USERS:
        sandbox.fund(user, "BTC", "20")
        sandbox.fund(user, "USDT", "50000")
    sandbox.top_up("ETH", "100000")
    platform.ledger.flush()


def write_once(platform: Platform, rng: random.Random, key: str) -> None:
    """One step of a writer: a randomly chosen flow or posting (refusals are ordinary)."""
    user, other = rng.sample(USERS, 2)
    choice = rng.random()
    try:
        if choice < 0.30:
            platform.ledger.post(make_request(
                idempotency_key=key, type="load.transfer", actor="writer",
                postings=({"account": acct.user_available(user, "USDT"), "amount": -amount("12.5", "USDT")},
                          {"account": acct.user_available(other, "USDT"), "amount": amount("12.5", "USDT")})))
        elif choice < 0.45:
            deposit.record_deposit(platform, SYSTEM, user_id=user, asset="BTC", amount="0.01", provider="load",
                                   payment_id=key, confirmations=platform.config.confirmations_for("BTC"), idempotency_key=key)
        elif choice < 0.60:
            value = "0.6" if rng.random() < 0.3 else "0.02"  # above the approval threshold: the hold stays open
            withdrawal.request_withdrawal(platform, SYSTEM, user_id=user, asset="BTC", amount=value,
                                          destination="bc1qload", idempotency_key=key)
        elif choice < 0.85:
            _swap(platform, rng, user, key)
        else:
            _hold(platform, rng, user, key)
    except LedgerError:
        pass  # a refusal (funds, expiry, a decision lost to another writer): nothing half done


def _swap(platform: Platform, rng: random.Random, user: str, key: str) -> None:
    quote = swap.quote_swap(platform, SYSTEM, user_id=user, from_asset="BTC", to_asset="ETH",
                            amount=rng.choice(("0.01", "0.02", "0.05")), idempotency_key=key)
    if rng.random() < 0.8:
        swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], user_id=user)
    else:
        platform.store.collection(quotes.COLLECTION).update_one({"_id": quote["_id"], "state": "open"},
                                                                {"$set": {"expires_at": platform.clock.now()}})
        quotes.expire_quote(platform, SYSTEM, quote["_id"])


def _hold(platform: Platform, rng: random.Random, user: str, key: str) -> None:
    platform.ledger.place_user_hold(hold_id=key, user_id=user, asset="USDT", amount="3", actor="writer")
    if rng.random() < 0.7:
        platform.ledger.release_hold(hold_id=key, actor="writer")


# -- the checker ------------------------------------------------------------------------------------------------
@dataclass
class Round:
    """One reader's run: what it reported (kind, subject) and any total that was not exact."""

    reader: str
    findings: list[tuple[str, str]] = field(default_factory=list)
    tampered: bool = False
    seconds: float = 0.0
    in_flight: int = 0  # self-check: entries claimed above the projections it read; cut: accounts rolled forward


def check_once(platform: Platform, reader: str, user: str, cuts: list) -> Round:
    """Run one reader; a total that is not exact is reported like a finding."""
    started, result = time.perf_counter(), Round(reader)
    now = platform.clock.now()
    if reader == "self_check":
        report = self_check(platform.store, now)
        result.findings, result.in_flight = [(f.kind, f.subject) for f in report.findings], len(set(report.in_flight))
    elif reader in ("incremental", "full"):
        report = check_platform(platform, CHECKER, full=reader == "full")
        result.findings = [(f.kind, f.subject) for f in report.findings]
    elif reader == "user":
        result.findings = [(f.kind, f.subject) for f in check_user(platform, CHECKER, user, record=False).findings]
    elif reader == "totals":
        rows = reports.platform_totals(platform, CHECKER)
        result.findings = [("totals_not_zero_sum", row.asset) for row in rows if row.zero_sum != 0]
        per_asset: dict[str, int] = {}
        for (_, asset), total in rollups.class_totals(platform.store).items():
            per_asset[asset] = per_asset.get(asset, 0) + total
        result.findings += [("class_totals_not_zero_sum", asset) for asset, total in per_asset.items() if total]
    else:
        cut = read_cut(platform.store)
        cuts.append(cut)  # judged against the journal afterwards: entries never change
        result.in_flight = cut.rolled_forward
        liabilities.take_snapshot(platform, CHECKER)  # the published snapshot, from a cut of its own
    result.seconds = time.perf_counter() - started
    return result


def cut_problems(store: Store, cuts: list) -> list[tuple[str, str]]:
    """Each liabilities cut against the journal's sum at its position (read afterwards)."""
    legs: list[dict] = [p for e in store.raw("entries").find({}, {"postings": 1}) for p in e["postings"]
                        if p["kind"] in ("user.available", "user.locked")]
    problems = []
    for number, cut in enumerate(cuts):
        totals: dict[str, dict[str, int]] = {}
        for posting in legs:
            if posting["version"] <= cut.versions.get(posting["account"], 0):
                users = totals.setdefault(posting["asset"], {})
                users[posting["owner"]] = users.get(posting["owner"], 0) + posting["amount_minor"]
        expected = {a: {u: v for u, v in users.items() if v} for a, users in totals.items() if any(users.values())}
        if expected != cut.liabilities:
            problems.append(("liabilities_cut_not_the_journal", f"cut {number}"))
    return problems


def plant_tamper(platform: Platform) -> str:
    """Edit an old entry behind the engine's back (its memo); returns its id."""
    target = platform.store.raw("entries").find_one({}, sort=[("_id", 1)])  # the set-up's first deposit
    platform.store.raw("entries").update_one({"_id": target["_id"]}, {"$set": {"memo": "edited behind the engine"}})
    return target["_id"]


@dataclass
class LoadResult:
    rounds: list[Round] = field(default_factory=list)
    cut_problems: list[tuple[str, str]] = field(default_factory=list)
    tampered_entry: str | None = None
    entries: int = 0
    operations: int = 0
    seconds: float = 0.0
    failure: str | None = None
    cuts: list = field(default_factory=list)  # every liabilities cut taken, judged against the journal afterwards

    def before_tamper(self) -> list[Round]:
        return [r for r in self.rounds if not r.tampered]

    def after_tamper(self) -> list[Round]:
        return [r for r in self.rounds if r.tampered]

    def false_findings(self) -> list[tuple[str, str, str]]:
        """Anything reported on the clean ledger, or after the tamper other than its entry."""
        wrong = [(r.reader, k, s) for r in self.rounds for k, s in r.findings if not (r.tampered and (k, s) == ("entry_edited", self.tampered_entry))]
        return wrong + [("liabilities", k, s) for k, s in self.cut_problems]

    def tamper_found_by(self) -> set[str]:
        return {r.reader for r in self.after_tamper() if ("entry_edited", self.tampered_entry) in r.findings}


class Checker:
    """The checker's loop: each reader in turn, the tamper planted when asked."""

    def __init__(self, platform: Platform, rng: random.Random, result: LoadResult, readers: tuple[str, ...] = READERS) -> None:
        self.platform, self.rng, self.result, self.readers = platform, rng, result, readers

    def step(self, number: int, tamper: bool) -> None:
        if tamper and self.result.tampered_entry is None:
            self.result.tampered_entry = plant_tamper(self.platform)
        reader = self.readers[number % len(self.readers)]
        done = check_once(self.platform, reader, self.rng.choice(USERS), self.result.cuts)
        done.tampered = self.result.tampered_entry is not None
        self.result.rounds.append(done)


# -- under the deterministic scheduler (the test) ----------------------------------------------------------------
def run_scheduled(seed: int = SEED, steps: int = STEPS, writers: int = WRITERS, tamper_after: int = 12) -> LoadResult:
    """The workload under core.ledger.simulation's seeded scheduler: one store operation at a
    time, no crashes, no clock skew (crashes and skew are the simulator's own tests). Same
    seed, same run."""
    result = LoadResult()
    rng = random.Random(seed)
    with seeded_ids(rng.getrandbits(64)):
        store, base = Store.embedded_store("checks-under-load"), ManualBase(datetime(2026, 6, 1, 12))
        first = Platform.open(store, base, config=LOAD_CONFIG)
        prepare(first, base)
        check_platform(first, CHECKER)  # the first verified anchor: the checker's runs are incremental from here

        def writer(number: int) -> Callable:
            def script(context) -> None:  # noqa: ANN001 - core.ledger.simulation.ActorContext
                platform = Platform.open(store, context.clock, config=LOAD_CONFIG)
                index = 0
                while context.budget():
                    write_once(platform, context.rng, f"w{number}-{index}")
                    for _ in range(THINK_READS):
                        platform.ledger.balance(acct.user_available(context.rng.choice(USERS), "USDT"))
                    index += 1
            return script

        def checker(context) -> None:  # noqa: ANN001
            loop = Checker(Platform.open(store, context.clock, config=LOAD_CONFIG), context.rng, result)
            number = 0
            while context.budget():
                loop.step(number, tamper=number >= tamper_after)
                number += 1

        def folder(context) -> None:  # noqa: ANN001
            while context.budget():
                rollups.update(store, passes_max=4)

        scripts = [(f"writer-{n}", writer(n)) for n in range(writers)] + [("checker", checker)]
        scripts += [(f"folder-{n}", folder) for n in range(FOLDERS)]
        started = time.perf_counter()
        gate = run_actors(store, rng, scripts, base=base, crash_rate=0.0, steps=steps, skew_minutes=0, after_write=lambda: None)
        result.seconds, result.operations, result.failure = time.perf_counter() - started, gate.operations, gate.failure
        result.cut_problems = cut_problems(store, result.cuts)
        result.entries = store.raw("entries").count_documents({})
    return result


# -- with real threads (the bench) ---------------------------------------------------------------------------------
def run_threads(duration_seconds: float = DURATION_SECONDS, writers: int = WRITERS, round_trip_seconds: float = ROUND_TRIP_SECONDS,
                *, readers: tuple[str, ...] = READERS, writer_pause_seconds: float = WRITER_PAUSE_SECONDS) -> LoadResult:
    """W writer threads, one checker thread and a background rollup folder for
    `duration_seconds`, every store operation preceded by a simulated network round trip
    (outside the embedded store's lock); the tamper is planted half-way when the full check
    is among `readers`, and the checker (with the writers still posting) then runs every
    reader at least once more. Returns what the checker saw (and the writers' count)."""
    result, store, clock = LoadResult(), Store.embedded_store("checks-under-load"), SystemClock()
    first = Platform.open(store, clock, config=LOAD_CONFIG)
    prepare(first, clock)
    check_platform(first, CHECKER)
    store.fault_hook = lambda phase, _collection, _operation: time.sleep(round_trip_seconds) if phase == "before" else None
    started = time.perf_counter()
    deadline, halfway = started + duration_seconds, started + duration_seconds / 2
    stop = threading.Event()  # set by the checker: the writers keep posting as long as it reads
    errors: list[str] = []

    def writer(number: int) -> None:
        platform, rng, index = Platform.open(store, clock, config=LOAD_CONFIG), random.Random(number), 0
        while not stop.is_set():
            write_once(platform, rng, f"w{number}-{index}")
            index += 1
            time.sleep(writer_pause_seconds)
        platform.ledger.flush()

    def checker() -> None:
        loop, number = Checker(Platform.open(store, clock, config=LOAD_CONFIG), random.Random(SEED), result, readers), 0
        try:
            while time.perf_counter() < deadline or _owes_a_cycle(result, readers):
                loop.step(number, tamper="full" in readers and time.perf_counter() >= halfway)
                number += 1
        finally:
            stop.set()

    def folder() -> None:
        while not stop.is_set():
            rollups.update(store, passes_max=8)
            time.sleep(FOLD_EVERY_SECONDS)

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as error:  # noqa: BLE001 - a failure is reported, never hidden
                errors.append(f"{type(error).__name__}: {error}"[:300])
        return run

    threads = [threading.Thread(target=guarded(lambda n=n: writer(n))) for n in range(writers)]
    threads += [threading.Thread(target=guarded(checker)), threading.Thread(target=guarded(folder))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.fault_hook = None
    result.seconds = time.perf_counter() - started
    result.failure = "; ".join(errors) or None
    result.cut_problems = cut_problems(store, result.cuts)
    result.entries = store.raw("entries").count_documents({})
    return result


def _owes_a_cycle(result: LoadResult, readers: tuple[str, ...]) -> bool:
    """After the deadline the checker finishes one cycle of every reader after the tamper
    (a slow machine must not leave the tamper unchecked)."""
    return result.tampered_entry is not None and {r.reader for r in result.after_tamper()} != set(readers)


def figures(result: LoadResult, writers: int = WRITERS, readers: tuple[str, ...] = READERS) -> dict:
    """What the bench reports (docs/performance.md)."""
    per_reader = {}
    for reader in readers:
        done = [r for r in result.rounds if r.reader == reader]
        per_reader[reader] = {"runs": len(done), "runs_before_tamper": sum(not r.tampered for r in done),
                              "seconds_median": round(sorted(r.seconds for r in done)[len(done) // 2], 3) if done else None,
                              "seconds_max": round(max(r.seconds for r in done), 3) if done else None,
                              "in_flight_seen": sum(r.in_flight for r in done)}
    false = result.false_findings()
    return {"writers": writers, "seconds": round(result.seconds, 1), "entries": result.entries,
            "entries_per_second": round(result.entries / max(result.seconds, 0.001), 1), "readers": per_reader,
            "false_findings": len(false), "false_findings_listed": [list(f) for f in false[:10]],
            "snapshots_taken": len(result.cuts), "cuts_equal_the_journal": not result.cut_problems,
            "tampered_entry": result.tampered_entry, "tamper_found_by": sorted(result.tamper_found_by()),
            "failure": result.failure,
            "ok": not false and result.failure is None and ("full" not in readers or {"self_check", "full"} <= result.tamper_found_by())}


def text(figures_: dict) -> str:
    lines = [f"Checks under load: {figures_['writers']} writers and one checker for {figures_['seconds']} s, "
             f"{figures_['entries']} entries ({figures_['entries_per_second']}/s)",
             f"{'reader':<12} {'runs':>5} {'clean-ledger runs':>18} {'median s':>9} {'max s':>8} {'in flight seen':>15}"]
    for reader, row in figures_["readers"].items():
        lines.append(f"{reader:<12} {row['runs']:>5} {row['runs_before_tamper']:>18} {row['seconds_median']!s:>9} "
                     f"{row['seconds_max']!s:>8} {row['in_flight_seen']:>15}")
    lines.append(f"false findings: {figures_['false_findings']}; liabilities snapshots taken: {figures_['snapshots_taken']}, "
                 f"every cut equal to the journal at its position: {'yes' if figures_['cuts_equal_the_journal'] else 'NO'}")
    if figures_["tampered_entry"]:
        lines.append(f"planted tamper ({figures_['tampered_entry']}) found by: {', '.join(figures_['tamper_found_by']) or 'NOBODY'}")
    if figures_["failure"]:
        lines.append(f"FAILURE: {figures_['failure']}")
    return "\n".join(lines)


SNAPSHOT_WRITER_PAUSE_SECONDS = 0.0  # the snapshots-only run: writers post as fast as the store lets them


def run_benchmark(duration_seconds: float = DURATION_SECONDS) -> dict:
    """Both runs of the bench: every reader beside paced writers (with the tamper), and the
    liabilities snapshot alone beside writers posting as fast as they can."""
    everything = run_threads(duration_seconds)
    snapshots = run_threads(duration_seconds, readers=("liabilities",), writer_pause_seconds=SNAPSHOT_WRITER_PAUSE_SECONDS)
    result = {"round_trip_ms": ROUND_TRIP_SECONDS * 1000, "all_readers": figures(everything),
              "snapshots_only": figures(snapshots, readers=("liabilities",))}
    result["ok"] = result["all_readers"]["ok"] and result["snapshots_only"]["ok"]
    return result


def benchmark_text(result: dict) -> str:
    return "\n\n".join([f"(every store operation behind a {result['round_trip_ms']:g} ms round trip)",
                         "Every reader, writers pausing between writes:\n" + text(result["all_readers"]),
                         "The liabilities snapshot alone, writers at full speed:\n" + text(result["snapshots_only"])])
