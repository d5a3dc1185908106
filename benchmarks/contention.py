"""The contention bench (HOT_ACCOUNTS.md): the write path under live load.

A fault hook sleeps one network round trip before every store operation — outside the
embedded store's lock, as network time — and W writer threads post for a fixed time.
Side by side in one run, on fresh stores of the same shape:
- **trades on the shared platform accounts**: per loop a deposit (`external` → user), a buy
  (user's USDT → float and fee wallet; float's BTC → user) and a sell (user's BTC → float;
  float's USDT → user, fee → fee wallet) — every writer shares `external`, the fee wallet and
  both sides of the float;
- **the same trades on accounts nobody shares** (each writer its own desk's float, fee
  wallet and counterparty): the ceiling without contention;
- **deposits, then withdrawals, through the flows** (state documents and audit events
  included), each writer its own users.
Each runs on this engine (hot accounts in stripes, audit in streams) and on the previous
write path (one stripe, one audit stream) for comparison. Reported: postings (or flows) per
second, the hot/unshared ratio, retries per posting, gave-ups (`ContentionError`), inserts
refused for a duplicate key per flow, and whether every logical balance is exact afterwards.
Not a test: `python -m core bench --contention`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.base.clock import SystemClock
from core.base.errors import ContentionError
from core.flows import deposit, withdrawal
from core.ledger import DEFAULT_STRIPING, Ledger, Store, accounts as acct, amount, logical_id, make_request, self_check
from core.ledger.audit import AUDIT_STREAMS_DEFAULT
from core.ledger.simulation import simulate
from core.ledger.stripes import UNSTRIPED, Striping
from core.base.permissions import SYSTEM
from core.platform import Platform

ROUND_TRIP_SECONDS = 0.002
DURATION_SECONDS = 3.0
WRITERS = (8, 32, 64)
BUDGET_WRITERS = 32
RATIO_MIN = 0.8
RETRIES_PER_POSTING_MAX = 0.25
DUPLICATES_PER_FLOW_MAX = 0.25
FLOAT_TOP_UP = "1000"  # BTC and 100× USDT per writer's top-up of the float
HOT_RETRY_SEEDS, HOT_RETRY_STEPS = 3, 300


@dataclass(frozen=True)
class Engine:
    """A write-path configuration: stripes per hot kind and audit streams."""

    name: str
    striping: Striping
    audit_streams: int


ENGINES = (Engine("striped", DEFAULT_STRIPING, AUDIT_STREAMS_DEFAULT), Engine("previous", UNSTRIPED, 1))


class MeteredLedger(Ledger):
    """The real engine, counting postings and claim attempts (each attempt plans once)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.meter_lock = threading.Lock()
        self.posts = self.attempts = 0

    def post(self, request):  # noqa: ANN001, ANN201 - same as Ledger.post
        with self.meter_lock:
            self.posts += 1
        return super().post(request)

    def _plan(self, request, legs, heads):  # noqa: ANN001, ANN202
        with self.meter_lock:
            self.attempts += 1
        return super()._plan(request, legs, heads)


@dataclass
class Outcome:
    done: int = 0
    gave_up: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _platform(engine: Engine, name: str) -> Platform:
    store = Store.embedded_store(name)
    clock = SystemClock()
    ledger = MeteredLedger(store, clock, striping=engine.striping, audit_streams=engine.audit_streams)
    platform = Platform.open(store, clock)
    platform.ledger = ledger
    return platform


def _transfer(key: str, legs: list[tuple[acct.Account, str]]) -> object:
    return make_request(idempotency_key=key, type="bench.trade", actor="system",
                        postings=tuple({"account": account, "amount": amount(value, account.asset)} for account, value in legs))


def _run_writers(writers: int, loop: Callable[[int, Callable[[], bool]], int], platform: Platform, outcome: Outcome,
                 prepare: Callable[[int], None] = lambda number: None) -> float:
    """Start `writers` threads behind the simulated network: each runs `prepare(number)`
    (not measured), then — once all are ready — `loop(number, running)` until
    DURATION_SECONDS pass. Returns the seconds measured."""
    store, ledger = platform.store, platform.ledger
    store.fault_hook = lambda phase, _collection, _operation: time.sleep(ROUND_TRIP_SECONDS) if phase == "before" else None
    ready, go = threading.Barrier(writers + 1), threading.Event()
    window: dict[str, float] = {}

    def record(error: BaseException) -> None:
        with outcome.lock:
            if isinstance(error, ContentionError):
                outcome.gave_up += 1
            else:
                outcome.failures.append(f"{type(error).__name__}: {error}"[:200])

    def guarded(number: int) -> None:
        prepared = True
        try:
            prepare(number)
        except Exception as error:  # noqa: BLE001 - a failure is reported, never hidden
            record(error)
            prepared = False
        ready.wait()  # every writer reaches the barrier, prepared or not: nobody waits forever
        go.wait()
        if not prepared:
            return
        try:
            done = loop(number, lambda: time.perf_counter() < window["deadline"])
        except Exception as error:  # noqa: BLE001 - a failure is reported, never hidden
            record(error)
            return
        with outcome.lock:
            outcome.done += done

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    ready.wait()  # every writer prepared: measure from here
    with ledger.meter_lock:
        ledger.posts = ledger.attempts = 0
    store.log.reset()
    started = time.perf_counter()
    window["deadline"] = started + DURATION_SECONDS
    go.set()
    for thread in threads:
        thread.join()
    store.fault_hook = None
    return time.perf_counter() - started


def _books_exact(platform: Platform) -> bool:
    """Every logical balance equals the sum of its journal legs, the self-check is clean."""
    platform.ledger.flush()
    legs: dict[str, int] = {}
    for entry in platform.store.raw("entries").find({}, {"postings": 1}):
        for posting in entry["postings"]:
            legs[logical_id(posting["account"])] = legs.get(logical_id(posting["account"]), 0) + posting["amount_minor"]
    projected: dict[str, int] = {}
    for document in platform.store.raw("balances").find({}):
        projected[logical_id(document["_id"])] = projected.get(logical_id(document["_id"]), 0) + document["balance_minor"]
    report = self_check(platform.store, platform.clock.now())
    return report.ok and {k: v for k, v in legs.items() if v} == {k: v for k, v in projected.items() if v}


def trades(engine: Engine, writers: int, shared: bool) -> dict:
    """Trades for DURATION_SECONDS by `writers` threads, on the shared platform accounts or on
    accounts each writer owns alone."""
    platform = _platform(engine, "bench-contention")
    outcome = Outcome()

    def accounts_of(number: int) -> tuple[acct.Account, ...]:
        owner = "platform" if shared else f"desk{number}"
        return (acct.external("USDT", "world" if shared else owner), acct.account(acct.AccountKind.FEES, owner, "USDT"),
                acct.account(acct.AccountKind.LIQUIDITY, owner, "USDT"), acct.account(acct.AccountKind.LIQUIDITY, owner, "BTC"),
                acct.account(acct.AccountKind.OPENING, owner, "BTC"), acct.account(acct.AccountKind.OPENING, owner, "USDT"))

    def prepare(number: int) -> None:
        """Each writer tops the float up from its own thread (so from its own stripe)."""
        _, _, float_usdt, float_btc, opening_btc, opening_usdt = accounts_of(number)
        platform.ledger.post(_transfer(f"float:{number}:btc", [(opening_btc, "-" + FLOAT_TOP_UP), (float_btc, FLOAT_TOP_UP)]))
        platform.ledger.post(_transfer(f"float:{number}:usdt", [(opening_usdt, f"-{FLOAT_TOP_UP}00"), (float_usdt, f"{FLOAT_TOP_UP}00")]))

    def loop(number: int, running: Callable[[], bool]) -> int:
        ledger, user = platform.ledger, f"trader{number}"
        external, fees, float_usdt, float_btc, _, _ = accounts_of(number)
        usdt, btc = acct.user_available(user, "USDT"), acct.user_available(user, "BTC")
        posted, index = 0, 0
        while running():
            key = f"{number}:{index}"
            ledger.post(_transfer(f"dep:{key}", [(external, "-100"), (usdt, "100")]))
            ledger.post(_transfer(f"buy:{key}", [(usdt, "-100"), (float_usdt, "99"), (fees, "1"), (float_btc, "-0.001"), (btc, "0.001")]))
            ledger.post(_transfer(f"sell:{key}", [(btc, "-0.001"), (float_btc, "0.001"), (float_usdt, "-98"), (usdt, "97"), (fees, "1")]))
            posted, index = posted + 3, index + 1
        return posted

    seconds = _run_writers(writers, loop, platform, outcome, prepare)
    return _figures(platform, outcome, seconds, "postings")


def flows(engine: Engine, writers: int) -> dict:
    """Deposits through the flow (provider notices, state documents, audit events) for
    DURATION_SECONDS, then withdrawals of what was deposited for as long."""
    platform = _platform(engine, "bench-flows")
    result = {}
    for name in ("deposits", "withdrawals"):
        outcome = Outcome()

        def loop(number: int, running: Callable[[], bool], name: str = name) -> int:
            done, index = 0, 0
            while running():
                key = f"{number}-{index}"
                if name == "deposits":
                    deposit.record_deposit(platform, SYSTEM, user_id=f"payer{number}", asset="USDT", amount="100", provider="bench",
                                           payment_id=f"p{key}", confirmations=20, idempotency_key=f"dep-{key}")
                else:
                    withdrawal.request_withdrawal(platform, SYSTEM, user_id=f"payer{number}", asset="USDT", amount="10",
                                                  destination=f"addr{number}", idempotency_key=f"wd-{key}")
                done, index = done + 1, index + 1
            return done

        seconds = _run_writers(writers, loop, platform, outcome)
        result[name] = _figures(platform, outcome, seconds, "flows")
    return result


def _figures(platform: Platform, outcome: Outcome, seconds: float, unit: str) -> dict:
    posts, attempts = platform.ledger.posts, platform.ledger.attempts
    return {unit: outcome.done, "per_second": round(outcome.done / seconds, 1), "seconds": round(seconds, 2),
            "retries_per_posting": round((attempts - posts) / max(posts, 1), 3), "gave_up": outcome.gave_up,
            "failures": outcome.failures[:5], "failed": len(outcome.failures),
            "duplicate_keys_per_" + unit.rstrip("s"): round(platform.store.log.duplicate_keys / max(outcome.done, 1), 3),
            "books_exact": _books_exact(platform)}


def hot_retries() -> dict:
    """Retries per posting on one fee wallet that every writer pays, from the deterministic
    simulator (no network, no crashes): unstriped against 64 stripes."""
    rows = {}
    for stripes in (1, 64):
        for writers in (2, 4, 8):
            runs = [simulate(seed, actors=writers, steps=HOT_RETRY_STEPS, hot=True, crash_rate=0, stripes=stripes)
                    for seed in range(HOT_RETRY_SEEDS)]
            rows[f"{stripes}x{writers}"] = {"stripes": stripes, "writers": writers, "ok": all(r.ok for r in runs),
                                            "retries_per_post": round(sum(r.stats["retries_per_post"] for r in runs) / len(runs), 3)}
    return rows


def run_contention_benchmark(writers: tuple[int, ...] = WRITERS, engines: tuple[Engine, ...] = ENGINES) -> dict:
    """Every figure of the bench, with the budgets at BUDGET_WRITERS checked (`ok`)."""
    rows = []
    for engine in engines:
        for count in writers:
            hot, unshared = trades(engine, count, shared=True), trades(engine, count, shared=False)
            row = {"engine": engine.name, "writers": count, "hot": hot, "unshared": unshared,
                   "ratio": round(hot["per_second"] / max(unshared["per_second"], 0.1), 2)}
            if count == BUDGET_WRITERS:
                row["flows"] = flows(engine, count)
            rows.append(row)
    result = {"round_trip_ms": ROUND_TRIP_SECONDS * 1000, "duration_seconds": DURATION_SECONDS, "rows": rows,
              "hot_retries": hot_retries()}
    result["budgets"] = budgets(result)
    result["ok"] = all(result["budgets"].values())
    return result


def budgets(result: dict) -> dict[str, bool]:
    """HOT_ACCOUNTS.md's bar at W = BUDGET_WRITERS for this engine (the previous one is shown, not judged)."""
    row = next((r for r in result["rows"] if r["engine"] == ENGINES[0].name and r["writers"] == BUDGET_WRITERS), None)
    if row is None:
        return {}
    flow = row.get("flows", {})
    return {
        "ratio ≥ 0.8": row["ratio"] >= RATIO_MIN,
        "retries ≤ 0.25 per posting": row["hot"]["retries_per_posting"] <= RETRIES_PER_POSTING_MAX,
        "no ContentionError": row["hot"]["gave_up"] == 0 and all(f.get("gave_up", 0) == 0 for f in flow.values()),
        "books exact": all(r["hot"]["books_exact"] and r["unshared"]["books_exact"] for r in result["rows"])
        and all(f["books_exact"] for f in flow.values()),
        "flows: no failure": all(f["failed"] == 0 for f in flow.values()),
        "flows: ≤ 0.25 duplicate-key inserts per flow": all(f["duplicate_keys_per_flow"] <= DUPLICATES_PER_FLOW_MAX for f in flow.values()),
    }


def text(result: dict) -> str:
    lines = [f"Contention bench: {result['round_trip_ms']:g} ms round trip per store operation, {result['duration_seconds']:g} s per run",
             f"{'engine':<9} {'W':>3} {'hot/s':>8} {'unshared/s':>11} {'ratio':>6} {'retries':>8} {'gave up':>8} {'exact':>6}"]
    for row in result["rows"]:
        hot = row["hot"]
        lines.append(f"{row['engine']:<9} {row['writers']:>3} {hot['per_second']:>8} {row['unshared']['per_second']:>11} "
                     f"{row['ratio']:>6} {hot['retries_per_posting']:>8} {hot['gave_up']:>8} "
                     f"{'yes' if hot['books_exact'] and row['unshared']['books_exact'] else 'NO':>6}")
    for row in result["rows"]:
        for name, flow in row.get("flows", {}).items():
            lines.append(f"{row['engine']:<9} {row['writers']:>3} {name}: {flow['per_second']}/s, {flow['failed']} failed, "
                         f"{flow['gave_up']} gave up, {flow['duplicate_keys_per_flow']} duplicate-key inserts per flow, "
                         f"retries {flow['retries_per_posting']} per posting, books {'exact' if flow['books_exact'] else 'NOT exact'}")
    lines.append(hot_retries_text(result["hot_retries"]))
    lines += [f"  budget at W = {BUDGET_WRITERS}: {name}: {'met' if met else 'MISSED'}" for name, met in result["budgets"].items()]
    return "\n".join(lines)


def hot_retries_text(rows: dict) -> str:
    lines = ["Retries per posting on one fee wallet every writer pays (simulator, no crashes):"]
    for row in rows.values():
        lines.append(f"  {row['stripes']:>2} stripe(s), {row['writers']} writers: {row['retries_per_post']}")
    return "\n".join(lines)
