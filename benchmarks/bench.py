"""`python -m core bench`: store round trips, index coverage and scaling (issue 6).

On a real MongoDB server cost is dominated by round trips and by queries that scan
instead of using an index. The embedded store cannot show real-server speed, so this
benchmark measures what transfers:
1. store operations per flow, beside a model of the old platform's write path
   (`benchmarks.legacy_write_path`), with the ratio ours / legacy and why a flow costs more;
2. every query shape issued during the whole run, checked against `core.ledger.indexes.INDEXES`
   with MongoDB's `notablescan` rule (`core.ledger.planner.uncovered`);
3. scaling: store operations and documents read by the integrity checks (full, and
   incremental after NEW_ENTRIES new entries), recovery, the user-balance read and each
   console page on data sets 1x, 10x and 50x: a page must read as many documents whatever
   the size of the journal (issue 15) — and, by the planner model (core.ledger.planner),
   examine as many index keys and documents (issue 19) — also in the state between folds
   and recoveries (`BenchSize.dirty_entries` entries posted since the last fold and recovery);
4. throughput and peak memory on the embedded store (labelled as such).
Budgets (issue 6) are reported met / not met; the exit code is 1 when any is missed.
"""

from __future__ import annotations

import json
import platform as host
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import dataset
from benchmarks.legacy_write_path import LegacyPlatform
from benchmarks.run import Measurement, Run
from benchmarks.report import PAGE_OPS_MAX, PLATFORM_CHECK_RATIO_MAX, TWO_LEG_ENTRY_OPS_MAX, report  # noqa: F401
from core.ledger import accounts as acct
from core import approvals, integrity, rollups
from core.base.clock import ManualClock, SystemClock
from core.ledger.entries import make_request
from core.flows import adjustment, instant, p2p, recovery, referral, swap, withdrawal
from core.ledger.engine import Ledger
from core.ledger.money import amount
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from core.ledger.store import OperationRecord, Store

RESULTS_PATH = Path("bench-results.json")
SCALE_FACTOR = 10
PAGE_SCALE_FACTOR = 50  # pages and checks are also measured on a data set this many copies large (flows are not)
NEW_ENTRIES = 20  # entries posted between the full check and the measured incremental one
DIRTY = " (entries unfolded)"  # the suffix of a page or check measured after BenchSize.dirty_entries unfolded entries
OPEN_ESCROWS = 12  # open trades of the "active P2P seller" whose user-lookup page is measured
SUPPORT = Principal(name="bench-support", role=Role.SUPPORT)
FLOW_COLLECTIONS = ("deposits", "withdrawals", "quotes", "p2p_trades", "approvals")


@dataclass(frozen=True)
class BenchSize:
    """`chunk` is built through the services; the larger data set is SCALE_FACTOR copies."""

    name: str
    chunk: dataset.ChunkSize
    throughput_entries: int
    dirty_entries: int = 1_000  # posted without a fold or a recovery: pages and checks are measured in that state too


SIZES: dict[str, BenchSize] = {
    # `tiny` is the test suite's size (seconds); `small` and `medium` are the command's.
    "tiny": BenchSize("tiny", dataset.ChunkSize(users=4, deposits_per_user=2, actions_per_user=2), 40, dirty_entries=100),
    "small": BenchSize("small", dataset.ChunkSize(users=5, deposits_per_user=3, actions_per_user=6), 200),
    "medium": BenchSize("medium", dataset.ChunkSize(users=50, deposits_per_user=3, actions_per_user=6), 400),
}


def measure(run: Run, store: Store, action: Callable[[], Any], *, examine: bool = False) -> tuple[Any, Measurement]:
    """Run `action` and count the store operations it issued (their shapes join the coverage
    check); with `examine`, also what a real server would examine for them (planner model)."""
    from benchmarks.pages import examined

    run.fold(store)
    store.log.examine = examine
    started = time.perf_counter()
    try:
        result = action()
    finally:
        store.log.examine = False
    seconds = time.perf_counter() - started
    records = list(store.log.records)
    assert store.log.complete, "the operation log dropped records: the measurement would undercount"
    run.fold(store)
    measurement = Measurement(len(records), round(seconds, 4), dict(Counter(category(r) for r in records)),
                              sum(r.documents for r in records))
    if examine:
        found = examined(records)
        measurement.keys_examined, measurement.documents_examined = found["keys_examined"], found["documents_examined"]
        measurement.examined_by_shape = found["examined_by_shape"]
    return result, measurement


def category(record: OperationRecord) -> str:
    """What a round trip is for, in the words the performance notes use."""
    name, operation, fields = record.collection, record.operation, set(record.filter_fields)
    if name == "entries":
        return {"insert_one": "journal insert", "find_one_and_update": "entry finalise (state guard)",
                "find": "hold lookup" if "hold_id" in fields else "journal read"}.get(operation, "journal read")
    if name == "balances":
        return {"find_one_and_update": "balance leg (guarded $inc + marker)", "update_many": "leg markers cleared",
                "find_one": "balance pre-check"}.get(operation, f"balances {operation}")
    if name == "audit":
        if operation == "insert_one":
            return "audit insert"
        if operation == "find_one":
            return "audit event lookup (by key)" if "event_key" in fields else "audit chain head read"
        return "audit read (chain walk / scan)"
    if name in FLOW_COLLECTIONS:
        kinds = {"insert_one": "insert", "find_one": "read", "find_one_and_update": "guarded transition"}
        return f"{name} {kinds.get(operation, operation)}"
    if name == "user_accounts":
        return "referrer lookup"
    return f"{name} {operation}"


# -- our flows -------------------------------------------------------------------------------------------------
def measure_flows(run: Run, label: str, platform: Platform, seller: str, buyer: str) -> None:
    """One instance of every flow for `seller` (no referrer, so no commission rides along),
    each step counted on its own. Funds come from a confirmed deposit first (counted too)."""
    store, tag = platform.store, f"bench-{label}"
    results: dict[str, Measurement] = {}

    def step(name: str, action: Callable[[], Any]) -> Any:
        """Measure one step; a failure is recorded (the row reads "error") and the run goes on."""
        try:
            value, results[name] = measure(run, store, action)
            return value
        except Exception as error:  # noqa: BLE001 — reported in the results, never hidden
            run.errors[f"{label}: {name}"] = f"{type(error).__name__}: {error}"[:300]
            run.fold(store)
            return None

    for asset, value in (("USDT", "60000"), ("BTC", "2"), ("GBP", "20000")):
        dataset.fund(platform, seller, asset, value, f"{tag}-fund-{seller}-{asset}")
    run.fold(store)
    user = {"user_id": seller}
    checker = dataset.CHECKERS[0]
    step("deposit", lambda: dataset.fund(platform, seller, "USDT", "100", f"{tag}-deposit-{seller}"))
    step("withdrawal.auto", lambda: withdrawal.request_withdrawal(
        platform, SYSTEM, **user, asset="USDT", amount="100", destination="addr-bench",
        idempotency_key=f"{tag}-wd-small"))
    large = step("withdrawal.request", lambda: withdrawal.request_withdrawal(
        platform, SYSTEM, **user, asset="USDT", amount="15000", destination="addr-bench",
        idempotency_key=f"{tag}-wd-large"))
    step("withdrawal.approve", lambda: approvals.approve(platform, checker, large["approval_id"], "benchmark"))
    quote = step("swap.quote", lambda: swap.quote_swap(
        platform, SYSTEM, **user, from_asset="USDT", to_asset="BTC", amount="100", idempotency_key=f"{tag}-swap"))
    swapped = step("swap.execute", lambda: swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], **user))
    quote = step("instant_buy.quote", lambda: instant.quote_instant_buy(
        platform, SYSTEM, **user, asset="BTC", pay_asset="GBP", spend="100", idempotency_key=f"{tag}-buy"))
    step("instant_buy.execute", lambda: instant.execute_instant(platform, SYSTEM, quote_id=quote["_id"], **user))
    quote = step("instant_sell.quote", lambda: instant.quote_instant_sell(
        platform, SYSTEM, **user, asset="BTC", receive_asset="GBP", amount="0.002", idempotency_key=f"{tag}-sell"))
    step("instant_sell.execute", lambda: instant.execute_instant(platform, SYSTEM, quote_id=quote["_id"], **user))
    trade = step("p2p.create", lambda: p2p.open_trade(
        platform, SYSTEM, seller=seller, buyer=buyer, asset="USDT", amount="100", fiat_amount="GBP 80",
        idempotency_key=f"{tag}-p2p"))
    step("p2p.mark_paid", lambda: p2p.mark_paid(platform, SYSTEM, trade_id=trade["_id"], buyer=buyer))
    step("p2p.release", lambda: p2p.release_trade(platform, SYSTEM, trade_id=trade["_id"], seller=seller))
    if swapped is not None:
        _measure_referral(run, platform, seller, buyer, swapped["pay_entry_id"], results)
    else:
        run.errors[f"{label}: referral.payout"] = "not measured: the swap it pays a commission on failed"
    request = step("adjustment.request", lambda: adjustment.request_adjustment(
        platform, dataset.MAKER, **user, asset="USDT", amount="5", reason="benchmark goodwill",
        idempotency_key=f"{tag}-adj"))
    step("adjustment.approve", lambda: approvals.approve(platform, checker, request["_id"], "benchmark"))
    for name, measurement in results.items():
        run.flows.setdefault(name, {})[label] = measurement


def _measure_referral(run: Run, platform: Platform, payer: str, referrer: str, fee_entry_id: str,
                      results: dict) -> None:
    """The payout alone: the payer gets a referrer after the fee entry, then the commission is paid.
    (The referral data is the exchange's, written here directly as the exchange would.)"""
    accounts = platform.store.collection("user_accounts")
    accounts.update_one({"user_id": payer}, {"$set": {"referred_by": referrer}})
    try:
        _, results["referral.payout"] = measure(
            run, platform.store, lambda: referral.pay_referral_commission(platform, SYSTEM, fee_entry_id))
    except Exception as error:  # noqa: BLE001 — reported in the results, never hidden
        run.errors["referral.payout"] = f"{type(error).__name__}: {error}"[:300]
    finally:
        accounts.update_one({"user_id": payer}, {"$set": {"referred_by": None}})
        run.fold(platform.store)


def measure_reads_and_checks(run: Run, label: str, platform: Platform, probe: str) -> None:
    """The two-leg entry, the user-balance read, the per-user check, the full platform check,
    then — after NEW_ENTRIES new entries on as many users — the incremental platform check,
    and recovery (`flows recover`) with nothing to do."""
    store = platform.store
    entry = make_request(idempotency_key=f"bench-{label}-two-leg", type="bench.transfer", actor="system",
                         postings=({"account": acct.external("USDT"), "amount": -amount("1", "USDT")},
                                   {"account": acct.user_available(probe, "USDT"), "amount": amount("1", "USDT")}))
    measurements = {"two_leg_entry": measure(run, store, lambda: platform.ledger.post(entry), examine=True)[1],
                    "two_leg_replay": measure(run, store, lambda: platform.ledger.post(entry), examine=True)[1],
                    "user_balances": measure(run, store, lambda: platform.ledger.user_balances(probe), examine=True)[1]}
    user_report, measurements["integrity.user"] = measure(
        run, store, lambda: integrity.check_user(platform, SUPPORT, probe), examine=True)
    platform_report, measurements["integrity.platform"] = measure(
        run, store, lambda: integrity.check_platform(platform, SUPPORT, full=True))  # O(journal) by design: not examined
    post_transfers(platform, f"bench-{label}-new", NEW_ENTRIES)
    run.fold(store)
    incremental, measurements["integrity.platform.incremental"] = measure(
        run, store, lambda: integrity.check_platform(platform, SUPPORT), examine=True)
    _, measurements["recovery"] = measure(run, store, lambda: recovery.resume_all(platform, SYSTEM), examine=True)
    for name, measurement in measurements.items():
        run.checks.setdefault(name, {})[label] = measurement
    run.integrity_ok.setdefault(label, {}).update({"user": {"ok": user_report.ok, "findings": len(user_report.findings)},
                               "platform": {"ok": platform_report.ok, "findings": len(platform_report.findings),
                                            "kinds": sorted({f.kind for f in platform_report.findings})},
                               "incremental": {"ok": incremental.ok, "mode": incremental.mode,
                                               "entries_checked": incremental.entries_checked,
                                               "accounts_checked": incremental.accounts_checked}})


def post_transfers(platform: Platform, prefix: str, count: int) -> None:
    """`count` two-leg entries, each crediting one of NEW_ENTRIES users from the outside world
    (the same entries at every size)."""
    for number in range(count):
        platform.ledger.post(make_request(
            idempotency_key=f"{prefix}-{number}", type="bench.transfer", actor="system",
            postings=({"account": acct.external("USDT"), "amount": -amount("1", "USDT")},
                      {"account": acct.user_available(f"newcomer{number % NEW_ENTRIES}", "USDT"),
                       "amount": amount("1", "USDT")})))


def measure_dirty_checks(run: Run, label: str, platform: Platform) -> None:
    """The state between folds and recoveries (`BenchSize.dirty_entries` entries posted since, still
    flagged unfolded and unprojected): recovery, then the incremental platform check."""
    store = platform.store
    _, recovered = measure(run, store, lambda: recovery.resume_all(platform, SYSTEM), examine=True)
    incremental, checked = measure(run, store, lambda: integrity.check_platform(platform, SUPPORT), examine=True)
    run.checks.setdefault(f"recovery{DIRTY}", {})[label] = recovered
    run.checks.setdefault(f"integrity.platform.incremental{DIRTY}", {})[label] = checked
    run.integrity_ok.setdefault(label, {})["incremental_dirty"] = {
        "ok": incremental.ok, "mode": incremental.mode, "entries_checked": incremental.entries_checked,
        "accounts_checked": incremental.accounts_checked}


def open_escrows(platform: Platform, seller: str, buyer: str, count: int) -> None:
    """An active P2P seller: `count` open trades, each an open escrow hold (the heaviest
    case for a page that looks holds up one by one)."""
    dataset.fund(platform, seller, "USDT", "10000", f"bench-escrows-{seller}")
    for number in range(count):
        p2p.open_trade(platform, SYSTEM, seller=seller, buyer=buyer, asset="USDT", amount="10",
                       idempotency_key=f"bench-escrow-{seller}-{number}")


def measure_console(run: Run, label: str, platform: Platform, probe: str, busiest: str, trader: str,
                    suffix: str = "") -> None:
    from benchmarks.pages import measure_pages

    pages, frame_records = measure_pages(platform, probe, {"user with most holds in the data set": busiest,
                                                           f"P2P seller with {OPEN_ESCROWS} open trades": trader})
    run.shapes.update(frame_records)
    for stem, result in pages.items():
        run.shapes.update(result.pop("records"))
        run.pages.setdefault(stem + suffix, {})[label] = result
    platform.store.log.reset()


# -- the legacy baseline -------------------------------------------------------------------------------------------
def measure_legacy(run: Run) -> None:
    """The same steps through the old write path (its own store; its shapes are the old
    platform's, not ours, so they stay out of the coverage check)."""
    store = Store.embedded_store("bench-legacy")
    legacy = LegacyPlatform(store, dataset.START)
    store.collection("user_accounts").insert_many(
        [{"user_id": "payer", "referred_by": "referrer", "referral_tier": "standard"}])
    for currency, value in (("USDT", 60000.0), ("BTC", 2.0), ("GBP", 20000.0)):
        legacy.deposit("payer", currency, value, f"fund-{currency}")
    steps: dict[str, Callable[[], Any]] = {
        "deposit": lambda: legacy.deposit("payer", "USDT", 100.0, "deposit-1"),
        "withdrawal_request": lambda: legacy.withdrawal_request("payer", "USDT", 100.0),
        "swap": lambda: legacy.swap("payer", "USDT", "BTC", 100.0, 1 / 60000),
        "instant_buy_quote": lambda: legacy.instant_quote("payer", "buy", "BTC", 100.0, 60000 / 1.25),
        "instant_sell_quote": lambda: legacy.instant_quote("payer", "sell", "BTC", 0.002, 60000 / 1.25),
        "p2p_create": lambda: legacy.p2p_create("payer", "buyer", "USDT", 100.0),
        "referral_commission": lambda: legacy.referral_commission("payer", "USDT", 1.5, "swap-1"),
        "adjustment": lambda: legacy.adjustment("admin", "payer", "USDT", 5.0, "goodwill"),
    }
    made = {name: _legacy_step(run, store, name, action) for name, action in steps.items()}
    follow_ups = {
        "withdrawal_approve": lambda: legacy.withdrawal_approve(made["withdrawal_request"]),
        "instant_buy_execute": lambda: legacy.instant_execute(made["instant_buy_quote"], "GBP"),
        "instant_sell_execute": lambda: legacy.instant_execute(made["instant_sell_quote"], "GBP"),
        "p2p_mark_paid": lambda: legacy.p2p_mark_paid(made["p2p_create"]),
        "p2p_release": lambda: legacy.p2p_release(made["p2p_create"]),
    }
    for name, action in follow_ups.items():
        _legacy_step(run, store, name, action)


def _legacy_step(run: Run, store: Store, name: str, action: Callable[[], Any]) -> Any:
    store.log.reset()
    started = time.perf_counter()
    result = action()
    run.legacy[name] = Measurement(store.log.count, round(time.perf_counter() - started, 4),
                                   dict(Counter(f"{r.collection} {r.operation}" for r in store.log.records)))
    return result


# -- throughput -----------------------------------------------------------------------------------------------------
def throughput(entries: int, threads: int) -> dict:
    """Two-leg entries per second on a fresh embedded store, `threads` posting at once
    (each thread its own users; all share the hot `external` account)."""
    ledger = Ledger(Store.embedded_store("bench-throughput"), SystemClock())
    per_thread = max(1, entries // threads)
    one = amount("1", "USDT")

    def worker(number: int) -> None:
        for index in range(per_thread):
            ledger.post(make_request(idempotency_key=f"tp-{number}-{index}", type="bench.transfer", actor="system",
                                     postings=({"account": acct.external("USDT"), "amount": -one},
                                               {"account": acct.user_available(f"tp{number}-{index % 20}", "USDT"),
                                                "amount": one})))

    failures: list[str] = []

    def guarded(number: int) -> None:
        try:
            worker(number)
        except Exception as error:  # noqa: BLE001 — a failed post is reported, never hidden
            failures.append(f"{type(error).__name__}: {error}"[:200])

    workers = [threading.Thread(target=guarded, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    seconds = time.perf_counter() - started
    return {"threads": threads, "entries": per_thread * threads, "seconds": round(seconds, 3),
            "entries_per_second": round(per_thread * threads / seconds, 1), "failures": failures}


# -- one whole run ----------------------------------------------------------------------------------------------------
def build_data_sets(run: Run, size: BenchSize, pages: bool) -> dict[str, tuple[Platform, dataset.Chunk]]:
    """The chunk through the services, then the 10x and 50x sets from renamed copies of it."""
    base_label, scaled_label = labels(size)
    started = time.perf_counter()
    chunk = dataset.build_chunk(size.chunk, Store.embedded_store("bench-base"))
    chunk.platform.ledger.recover()  # what every start-up runs: clears the recovery flags
    rollups.update(chunk.platform.store)
    built = time.perf_counter() - started
    run.fold(chunk.platform.store)
    documents = dataset.dump(chunk.platform.store)
    run.data_sets[base_label] = describe(chunk.platform.store, size.chunk.users, "built through the services", built)
    run.data_sets[base_label]["actions"] = dict(chunk.actions, refused=chunk.refusals)
    chunk.busiest = busiest_user(documents["entries"])
    result = {base_label: (chunk.platform, chunk)}
    factors = [(scaled_label, SCALE_FACTOR), (page_label(size), PAGE_SCALE_FACTOR)]  # checks run at 50x too
    for label, factor in factors:
        started = time.perf_counter()
        scaled_store = Store.embedded_store(f"bench-x{factor}")
        dataset.build_copies(documents, factor, size.chunk.users, scaled_store)
        copied = time.perf_counter() - started
        scaled_store.log.reset()
        how = f"the {base_label} set plus {factor - 1} renamed copies (insert_many), rollups bulk-loaded"
        run.data_sets[label] = describe(scaled_store, size.chunk.users * factor, how, copied)
        result[label] = (Platform.open(scaled_store, ManualClock(chunk.clock.now())), chunk)
    return result


def busiest_user(entries: list[dict]) -> str:
    """The user with the most holds placed (withdrawals, P2P escrows): the heaviest user-lookup page."""
    holds = Counter(user for e in entries if e.get("hold_action") == "place"
                    for user in e.get("user_ids", []))
    return sorted(holds.items(), key=lambda item: (-item[1], item[0]))[0][0]


def labels(size: BenchSize) -> tuple[str, str]:
    named = {"medium": ("small", "medium"), "small": ("small/10", "small")}
    return named.get(size.name, (size.name, f"{size.name}x10"))


def page_label(size: BenchSize) -> str:
    """The label of the data set only the pages are measured on (PAGE_SCALE_FACTOR copies)."""
    return f"{labels(size)[0]}x{PAGE_SCALE_FACTOR}"


def describe(store: Store, users: int, how: str, seconds: float) -> dict:
    names = ("entries", "audit", "balances", "quotes", "p2p_trades")
    counts = {name: store.raw(name).count_documents({}) for name in names}  # exact (a counted read is capped)
    store.log.reset()
    return {"users": users, **counts, "how": how, "build_seconds": round(seconds, 2)}


def run_benchmark(size_name: str = "medium", *, pages: bool = True) -> dict:
    """Run everything at `size_name`. Returns the report (see `report`)."""
    size = SIZES[size_name]
    started = time.perf_counter()
    run = Run()
    data_sets = build_data_sets(run, size, pages)
    for label, (platform, chunk) in data_sets.items():
        seller, buyer, trader = chunk.unreferred[0], chunk.unreferred[1], chunk.unreferred[2]
        if pages:
            open_escrows(platform, trader, buyer, OPEN_ESCROWS)
            run.fold(platform.store)
            measure_console(run, label, platform, seller, chunk.busiest, trader)
        measure_reads_and_checks(run, label, platform, seller)
        post_transfers(platform, f"bench-{label}-dirty", size.dirty_entries)  # no fold, no recovery after them
        run.fold(platform.store)
        if pages:
            measure_console(run, label, platform, seller, chunk.busiest, trader, suffix=DIRTY)
        measure_dirty_checks(run, label, platform)
        if label != page_label(size):  # flows are measured at 1x and 10x
            measure_flows(run, label, platform, seller, buyer)
    measure_legacy(run)
    throughput_result = {"label": "embedded store (mongomock, one process-wide lock): NOT a real-server figure",
                         "one_thread": throughput(size.throughput_entries, 1),
                         "four_threads": throughput(size.throughput_entries, 4)}
    result = report(run, size_name, labels(size), pages, throughput_result,
                    page_labels=(*labels(size), page_label(size)))
    result["throughput"]["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["dirty_entries"] = size.dirty_entries
    result["seconds_total"] = round(time.perf_counter() - started, 1)
    result["generated_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["host"] = {"python": host.python_version(), "machine": host.machine()}
    return result


def write_results(result: dict, path: Path = RESULTS_PATH) -> Path:
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n")
    return path
