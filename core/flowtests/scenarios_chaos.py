"""Flow-test scenarios: concurrent double-spends, a hold stranded behind a refused flow
(issue 19) and the seeded chaos run (random operations of every kind, with crashes
injected at random writes, then recovery)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from core.ledger import accounts as acct
from core import approvals
from core.base.errors import InsufficientFundsError, LedgerError
from core.flows import adjustment, deposit, instant, p2p, quotes, recovery, swap, treasury, withdrawal
from core.flowtests.sandbox import (
    CHECKER,
    CHECKER_2,
    MAKER,
    Sandbox,
    ScenarioCheckError,
    expect,
    expect_equal,
    fees_booked_once,
    platform_accounts,
    user_accounts,
)
from core.flowtests.choreography import HeldFlow, strand_sequence
from core.flowtests.scenarios import scenario
from core.flowtests.wording import readable_message
from core.flowtests.scenarios_robustness import CrashAt, SimulatedCrash
from core.base.permissions import SYSTEM
from core.ledger import scan

CHAOS_SEED = 20261126
CHAOS_OPERATIONS = 120
CHAOS_CRASH_PERCENT = 40  # of operations get a crash injected (an integer: no floats in core)
CHAOS_CRASH_WRITE_MAX = 14
DOUBLE_SPEND_THREADS = 8


# -- concurrency ------------------------------------------------------------------------------
SCHEDULED_SEEDS = (1, 2, 3)  # interleavings chosen by the simulator's seeded scheduler


@scenario("concurrent_double_spend")
def concurrent_double_spend_scenario(sb: Sandbox) -> None:
    """Concurrent withdrawals from one balance and concurrent executions of one quote,
    interleaved by the simulator's seeded scheduler (core.ledger.simulation): one store
    operation at a time, so each run is a chosen interleaving — not luck — and the engine's
    invariants are checked after every write."""
    pf = sb.platform
    sb.top_up("ETH", "100")
    for seed in SCHEDULED_SEEDS:
        user = f"alice{seed}"
        sb.fund(user, "BTC", "1")
        seen = user_accounts(user, "BTC", "ETH") + [acct.fees("BTC")]
        sb.step(f"8 concurrent withdrawals (seed {seed})", seen, partial(_race_withdrawals, sb, user, seed))
        quote = sb.step(f"one swap quote (seed {seed})", seen, partial(
            swap.quote_swap, pf, SYSTEM, user_id=user, from_asset="BTC", to_asset="ETH", amount="0.1",
            idempotency_key=f"race-swap-{seed}"))
        sb.step(f"4 concurrent executions of one quote (seed {seed})", seen,
                partial(_race_execute, sb, user, quote["_id"], seed))


def _scheduled(sb: Sandbox, seed: int, scripts: list) -> None:
    from core.flowtests.simulation import run_scheduled

    failure = run_scheduled(sb.platform.store, sb.clock, scripts, seed)
    if failure is not None:
        raise ScenarioCheckError(f"seed {seed}: {failure}")


def _race_withdrawals(sb: Sandbox, user: str, seed: int) -> str:
    pf, outcomes = sb.platform, []

    def attempt(index: int):
        def script(context) -> None:
            try:
                withdrawal.request_withdrawal(pf, SYSTEM, user_id=user, asset="BTC", amount="0.4", destination="bc1q",
                                              idempotency_key=f"race-{seed}-{index}")
                outcomes.append("settled")
            except InsufficientFundsError:
                outcomes.append("refused")
        return script

    _scheduled(sb, seed, [(f"withdrawer-{i}", attempt(i)) for i in range(DOUBLE_SPEND_THREADS)])
    expect_equal(sorted(outcomes).count("settled"), 2, "withdrawals of 0.4 from 1 BTC that succeed")
    expect_equal(sb.minor(acct.user_available(user, "BTC")), 20_000_000, f"{user}'s BTC left")
    return f"{DOUBLE_SPEND_THREADS} scheduled withdrawals × 0.4 BTC from 1 BTC: 2 settled, {outcomes.count('refused')} refused"


def _race_execute(sb: Sandbox, user: str, quote_id: str, seed: int) -> str:
    pf, errors = sb.platform, []

    def script(context) -> None:
        try:
            swap.execute_swap(pf, SYSTEM, quote_id=quote_id, user_id=user)
        except LedgerError as error:
            errors.append(type(error).__name__)

    _scheduled(sb, seed, [(f"executor-{i}", script) for i in range(4)])
    expect_equal(sb.minor(acct.user_available(user, "ETH")), 197_000_000, f"{user}'s ETH (one execution)")
    expect_equal(sb.minor(acct.user_available(user, "BTC")), 10_000_000, f"{user}'s BTC (paid once)")
    return f"4 scheduled executions of one quote: paid and delivered once; refusals: {errors or 'none'}"


@scenario("flow_simulation")
def flow_simulation_scenario(sb: Sandbox) -> None:
    """A few seeds of the flow simulator (core.flowtests.simulation): every flow's actors at
    once, with crashes and skewed clocks; all of issue 10's quiescence checks."""
    from core.flowtests.simulation import simulate_flows

    for seed in SCHEDULED_SEEDS:
        def run(seed: int = seed) -> str:
            result = simulate_flows(seed)
            if not result.ok:
                raise ScenarioCheckError(result.report())
            return f"seed {seed}: {result.operations} store operations, every invariant held"

        sb.step(f"flow simulation, seed {seed}", [], run)


# -- a hold stranded behind a finished flow (issue 19) --------------------------------------------------
def _held_flows(sb: Sandbox) -> list[tuple[str, str, HeldFlow, list]]:
    """(name, the state its refusal leaves, the flow, accounts to show) for a withdrawal, a
    P2P trade and a swap quote of stella's; her BTC (the float's ETH) goes to a parking
    account and back."""
    stella, parking = acct.user_available("stella", "BTC"), acct.user_available("parking", "BTC")
    float_eth, parked_eth = acct.liquidity("ETH"), acct.user_available("parking", "ETH")

    def move(source, destination, value):
        return lambda platform, key: _transfer(platform, sb.key(key), source, destination, value)

    return [
        ("withdrawal", "failed", HeldFlow("withdrawals", lambda platform: withdrawal.request_withdrawal(
            platform, SYSTEM, user_id="stella", asset="BTC", amount="0.4", destination="bc1q",
            idempotency_key="stranded-wd"), move(stella, parking, "1"), move(parking, stella, "1")),
         user_accounts("stella", "BTC")),
        ("P2P trade", "cancelled", HeldFlow("p2p_trades", lambda platform: p2p.open_trade(
            platform, SYSTEM, seller="stella", buyer="bob", asset="BTC", amount="0.4", idempotency_key="stranded-p2p"),
            move(stella, parking, "1"), move(parking, stella, "1")), user_accounts("stella", "BTC")),
        ("swap quote", "failed", HeldFlow("quotes", lambda platform: swap.quote_swap(
            platform, SYSTEM, user_id="stella", from_asset="BTC", to_asset="ETH", amount="0.1",
            idempotency_key="stranded-quote"), move(float_eth, parked_eth, "40"), move(parked_eth, float_eth, "40")),
         platform_accounts("ETH")),
    ]


def _transfer(platform, key: str, source, destination, value: str) -> None:
    from core.ledger import amount, make_request

    platform.ledger.post(make_request(idempotency_key=key, type="sandbox.transfer", actor="sandbox", postings=(
        {"account": source, "amount": -amount(value, source.asset)},
        {"account": destination, "amount": amount(value, destination.asset)})))


@scenario("stranded_holds")
def stranded_holds_scenario(sb: Sandbox) -> None:
    """Issue 19, with paused threads (core.flowtests.choreography): a first call writes the
    flow and is refused (the funds were spent meanwhile), failing it; a retry with the same
    key, which read the flow before, names itself a placer of the hold, places it once the
    funds are back, and dies before releasing it. Integrity reports the hold stranded;
    recovery releases it (one `hold:<id>:close` entry) and integrity reports it no more."""
    pf = sb.platform
    sb.fund("stella", "BTC", "1")
    sb.top_up("ETH", "40")
    for name, refused, flow, seen in _held_flows(sb):
        def strand(name=name, refused=refused, flow=flow) -> str:
            outcomes = strand_sequence(pf, flow)
            document = pf.store.collection(flow.collection).find_one({"idempotency_key": {"$regex": "^stranded-"},
                                                                      "state": refused})
            expect(document is not None, f"the {name} was refused ({outcomes.get('first')!r})")
            expect(pf.ledger.hold(document["_id"])[1] is None, f"the {name}'s hold is open behind it")
            return (f"first call refused ({type(outcomes['first']).__name__}), the {name} is {refused}; the retry "
                    f"placed hold {pf.ledger.hold(document['_id'])[0].id} and died ({outcomes['retry']})")

        sb.step(f"{name}: refused, then its hold placed by a retry that dies", seen, strand)
        sb.step(f"{name}: integrity reports the stranded hold", seen,
                partial(_stranded_reported, sb, flow.collection, True))
        sb.step(f"{name}: recovery releases it", seen, partial(_stranded_released, sb, flow.collection))
        sb.step(f"{name}: integrity reports it no more", seen, partial(_stranded_reported, sb, flow.collection, False))


def _stranded_reported(sb: Sandbox, collection: str, wanted: bool) -> str:
    """What every platform integrity run reports about stranded holds (the finder the
    incremental and full checks both call; tests/core/flows/test_holds.py runs the checks)."""
    from core.integrity.stranded import stranded_hold_findings

    found = [f for f in stranded_hold_findings(sb.platform, sb.clock.now(), timedelta(0)) if f.collection == collection]
    expect(bool(found) == wanted, f"stranded_hold findings for {collection}: {[f.message for f in found]}")
    return f"{found[0].kind} ({found[0].severity}): {found[0].message}" if found else "no stranded hold"


def _stranded_released(sb: Sandbox, collection: str) -> str:
    report = recovery.resume_all(sb.platform, SYSTEM, stale_after=timedelta(0))
    expect(len(report.holds_released) == 1 and report.ok, f"recovery released {report.holds_released}")
    closing = sb.platform.ledger.entry_by_key(f"hold:{report.holds_released[0]}:close")
    expect(closing is not None and closing.type == "hold.release", "the release is the hold's one keyed close")
    return f"released {report.holds_released[0]} with {closing.id} ({closing.type})"


# -- chaos ------------------------------------------------------------------------------------------
USERS = ("u0", "u1", "u2", "u3")


def _accept_quote(
    sb: Sandbox, user: str, key: str, quote: Callable[..., dict], execute: Callable[..., object], **terms: str
) -> object:
    """`user` asks for a quote on `terms` (idempotency key `key`) and executes it at once."""
    document = quote(sb.platform, SYSTEM, user_id=user, idempotency_key=key, **terms)
    return execute(sb.platform, SYSTEM, user_id=user, quote_id=document["_id"])


def _chaos_operation(sb: Sandbox, rng: random.Random, index: int) -> tuple[str, Callable[[], object]]:
    """One random operation (a closure, so a crashed one can be retried with the same keys)."""
    pf, key = sb.platform, f"chaos-{index}"
    user, other = rng.sample(USERS, 2)
    kind = rng.choice(
        ["deposit", "withdraw", "withdraw_big", "swap", "buy", "sell", "p2p", "p2p_dispute", "adjust", "sweep", "time"]
    )
    amount = str(rng.choice(["0.01", "0.05", "0.2", "0.7"]))
    rng_conf, rng_flag, rng_seconds = rng.choice([0, 1, 2, 6]), rng.randrange(2) == 0, rng.choice([5, 40, 2000])
    adjust_amount = rng.choice(["12.34", "-5.00"])
    accept = partial(_accept_quote, sb, user, key)
    operations: dict[str, Callable[[], object]] = {
        "deposit": lambda: deposit.record_deposit(
            pf,
            SYSTEM,
            user_id=user,
            asset="BTC",
            amount=amount,
            provider="chain",
            payment_id=key,
            confirmations=rng_conf,
            idempotency_key=key,
        ),
        "withdraw": lambda: withdrawal.request_withdrawal(
            pf, SYSTEM, user_id=user, asset="BTC", amount=amount, destination="bc1q", idempotency_key=key
        ),
        "withdraw_big": lambda: _big_withdrawal(sb, user, key, approve=rng_flag),
        "swap": lambda: accept(
            swap.quote_swap, swap.execute_swap, from_asset="BTC", to_asset="ETH", amount=amount
        ),
        "buy": lambda: accept(
            instant.quote_instant_buy, instant.execute_instant, asset="BTC", pay_asset="GBP", spend="150.55"
        ),
        "sell": lambda: accept(
            instant.quote_instant_sell, instant.execute_instant, asset="BTC", receive_asset="GBP", amount=amount
        ),
        "p2p": lambda: _p2p_round(sb, user, other, amount, key, cancel=rng_flag),
        "p2p_dispute": lambda: _p2p_dispute(sb, user, other, amount, key, to_buyer=rng_flag),
        "adjust": lambda: _approved(
            sb,
            adjustment.request_adjustment(
                pf, MAKER, user_id=user, asset="GBP", amount=adjust_amount, reason="chaos", idempotency_key=key
            ),
        ),
        "sweep": lambda: _approved(
            sb, treasury.request_fee_sweep(pf, MAKER, asset="BTC", amount="0.0001", reason="chaos", idempotency_key=key)
        ),
        "time": lambda: (
            sb.advance(timedelta(seconds=rng_seconds)),
            quotes.expire_due_quotes(pf, SYSTEM),
            p2p.cancel_timed_out(pf, SYSTEM),
        ),
    }
    return kind, operations[kind]


def _big_withdrawal(sb: Sandbox, user: str, key: str, approve: bool) -> None:
    document = withdrawal.request_withdrawal(
        sb.platform, SYSTEM, user_id=user, asset="BTC", amount="0.6", destination="bc1q", idempotency_key=key
    )
    if document["state"] == "awaiting_approval":
        if approve:
            approvals.approve(sb.platform, CHECKER, document["approval_id"], "chaos")
        else:
            approvals.reject(sb.platform, CHECKER_2, document["approval_id"], "chaos says no")


def _p2p_round(sb: Sandbox, seller: str, buyer: str, amount: str, key: str, cancel: bool) -> None:
    trade = p2p.open_trade(
        sb.platform, SYSTEM, seller=seller, buyer=buyer, asset="BTC", amount=amount, idempotency_key=key
    )
    if cancel:
        p2p.cancel_trade(sb.platform, SYSTEM, trade_id=trade["_id"], user_id=buyer)
    else:
        p2p.mark_paid(sb.platform, SYSTEM, trade_id=trade["_id"], buyer=buyer)
        p2p.release_trade(sb.platform, SYSTEM, trade_id=trade["_id"], seller=seller)


def _p2p_dispute(sb: Sandbox, seller: str, buyer: str, amount: str, key: str, to_buyer: bool) -> None:
    trade = p2p.open_trade(
        sb.platform, SYSTEM, seller=seller, buyer=buyer, asset="BTC", amount=amount, idempotency_key=key
    )
    if trade["state"] in ("open", "paid"):  # a retrying client skips what already happened
        p2p.open_dispute(sb.platform, SYSTEM, trade_id=trade["_id"], user_id=buyer, reason="chaos")
    p2p.resolve_dispute(
        sb.platform, CHECKER, trade_id=trade["_id"], to="buyer" if to_buyer else "seller", reason="chaos"
    )


def _approved(sb: Sandbox, request: dict) -> dict:
    """Approve a request unless a previous (crashed) attempt already did."""
    if request["state"] == "pending" and not request["approvals"]:
        return approvals.approve(sb.platform, CHECKER, request["_id"], "chaos")
    return approvals.resume_approved(sb.platform, SYSTEM) and request


@scenario("chaos")
def chaos_scenario(sb: Sandbox, seed: int = CHAOS_SEED, operations: int = CHAOS_OPERATIONS) -> None:
    pf, rng = sb.platform, random.Random(seed)
    pf.store.collection("user_accounts").insert_many(
        [
            {"user_id": "u1", "referred_by": "u0", "referral_tier": "golden"},
            {"user_id": "u2", "referred_by": "u0", "referral_tier": "standard"},
        ]
    )
    for user in USERS:
        sb.fund(user, "BTC", "1")
        sb.fund(user, "GBP", "500")
    for asset, value in (("BTC", "3"), ("ETH", "40"), ("GBP", "90000")):
        sb.top_up(asset, value)
    seen = [a for user in USERS for a in user_accounts(user, "BTC")] + platform_accounts("BTC", "ETH", "GBP")
    for index in range(operations):
        kind, operation = _chaos_operation(sb, rng, index)
        crash_at = rng.randint(1, CHAOS_CRASH_WRITE_MAX) if rng.randrange(100) < CHAOS_CRASH_PERCENT else None
        sb.step(
            f"op {index}: {kind}" + (f" (crash at write #{crash_at})" if crash_at else ""),
            seen,
            lambda operation=operation, crash_at=crash_at: _chaos_run(sb, operation, crash_at),
        )
    sb.step("final invariants", seen, lambda: _chaos_invariants(sb))


def _chaos_run(sb: Sandbox, operation: Callable[[], object], crash_at: int | None) -> str:
    pf = sb.platform
    notes = []
    if crash_at is not None:
        hook = CrashAt(crash_at, "after" if crash_at % 2 else "before")
        pf.store.fault_hook = hook
        try:
            operation()
        except SimulatedCrash as crash:
            notes.append(f"{crash}; recovered by resume_all and a retry")
        except LedgerError as error:
            notes.append(f"refused before the crash point ({error.code})")
        finally:
            pf.store.fault_hook = None
        if not hook.fired:
            notes.append(f"the operation has fewer than {crash_at} writes: no crash")
        recovery.resume_all(pf, SYSTEM, stale_after=timedelta(0))
    try:
        operation()
        notes.append("done")
    except LedgerError as error:
        notes.append(f"refused ({error.code}: {readable_message(error, pf.registry)[:160]})")
    return "; ".join(notes)


def _chaos_invariants(sb: Sandbox) -> str:
    pf = sb.platform
    recovery.resume_all(pf, SYSTEM, stale_after=timedelta(0))
    problems = fees_booked_once(pf.store)
    for trade in scan(pf.store.collection("p2p_trades")):
        if trade["state"] in p2p.CLOSED and sb.minor(acct.escrow(trade["_id"], trade["asset"])) != 0:
            problems.append(f"closed trade {trade['_id']} still holds escrow")
    reserved: dict[str, int] = {}
    for quote in scan(pf.store.collection("quotes")):
        if quote["state"] in ("open", "executing"):
            reserved[quote["reserved_asset"]] = reserved.get(quote["reserved_asset"], 0) + quote["reserved_minor"]
    for asset in ("BTC", "ETH", "GBP"):
        if sb.minor(acct.liquidity_reserved(asset)) != reserved.get(asset, 0):
            problems.append(
                f"{asset} reserved {sb.minor(acct.liquidity_reserved(asset))} ≠ open quotes {reserved.get(asset, 0)}"
            )
    verify = pf.ledger.audit.verify()
    if not verify.ok:
        problems.append(f"audit chain: {verify.problem}")
    if problems:
        raise ScenarioCheckError("; ".join(problems))
    return "fees booked once, closed escrows empty, reservations = open quotes, audit chain verifies"
