"""The flows in the deterministic simulator (core.ledger.simulation; issue 10).

Actors are simulated processes running the real service functions under the seeded
scheduler (one store operation at a time, crashes at operation boundaries, clocks skewed
by minutes): depositors sending duplicate notices, several approvers (and rejecters) of
the same requests at once, many executors of the same swap and instant buy/sell quotes, P2P buyers, sellers and
two admins resolving the same disputes in opposite directions, withdrawers whose fees owe
referral commissions, a fee sweeper draining the fee wallet, recoverers, and the
stranded-hold sequence of issue 19: retriers sending the same withdrawal, P2P trade and
quote keys again and again while a shuffler spends the funds behind them and brings them
back (the user's balance, the float), so a retry can place a hold after its flow was
refused — and crash before releasing it. A crashed
actor restarts as a new process (new clock skew), runs recovery half of the time, and
retries the same request.

Every decision call that returns is checked at once: the document must carry *this*
caller's decision (a loser must get an error, never someone else's outcome). At
quiescence (after a final recovery) core.flowtests.simulation_checks verifies: each flow
and approval executed at most once and consistently with the journal, every state change
with exactly one audit event naming the real actor and decision, no owed commission
dropped, no hold left open behind a finished flow, money conserved per asset, the audit
chain intact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from core import approvals
from core.base.errors import LedgerError
from core.flows import adjustment, deposit, holds, instant, p2p, quotes, recovery, swap, treasury, withdrawal
from core.flowtests import simulation_checks as checks
from core.ledger import accounts as acct
from core.ledger import make_request
from core.ledger.simulation import (
    ActorContext,
    ManualBase,
    SimulatedCrash,
    SimulationResult,
    Violation,
    Workload,
    run_actors,
    run_simulation,
)
from core.ledger import Store
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform

DEFAULT_ACTORS = 11
DEFAULT_STEPS = 500
DEFAULT_CRASH_RATE = 0.02
DEFAULT_SKEW_MINUTES = 2  # quotes live 30 s and approvals 24 h: minutes of skew still let both race
MAKER = Principal(name="sim_maker", role=Role.ADMIN)
SETUP_CHECKERS = (Principal(name="sim_setup_checker", role=Role.ADMIN),
                  Principal(name="sim_setup_checker2", role=Role.ADMIN))
RESOLVERS = {"buyer": Principal(name="ann", role=Role.ADMIN), "seller": Principal(name="bob", role=Role.ADMIN)}
APPROVERS = (Principal(name="cat", role=Role.ADMIN), Principal(name="dov", role=Role.ADMIN),
             Principal(name="eli", role=Role.ADMIN))
SELLER, BUYER, TRADER, WITHDRAWER, REFERRER = "sam", "bea", "qui", "wes", "gus"
RETRIER, PARKING = "ria", "pat"  # the stranded-hold sequence: ria's funds and the float come and go
RETRY_MOVE_ON = 0.5  # after a call came back, a retrier moves to the next key this often (else sends it again)
RETRY_AMOUNT = "0.3"
TRADES = 4
QUOTES = 3
PAYMENTS = 4
ROLES = ("resolver-buyer", "resolver-seller", "executor", "approver", "buyer", "seller", "withdrawer", "sweeper",
         "retrier", "shuffler", "retrier", "retrier", "depositor", "recoverer", "shuffler", "executor", "approver",
         "withdrawer", "sweeper", "approver")
STRANDED_ROLES = ("retrier", "shuffler", "retrier", "shuffler", "recoverer", "retrier")  # the stranded-hold sequence alone


def setup(store: Store, base: ManualBase) -> dict:
    """The world every actor works on (built before the gate opens). Returns the pools."""
    platform = Platform.open(store, base)
    store.collection("user_accounts").insert_many([
        {"user_id": SELLER, "referred_by": REFERRER}, {"user_id": WITHDRAWER, "referred_by": REFERRER,
                                                        "referral_tier": "golden"},
        {"user_id": TRADER, "referred_by": REFERRER},
    ])
    for user, asset, amount in ((SELLER, "BTC", "2"), (TRADER, "BTC", "0.7"), (TRADER, "GBP", "900"),
                                (WITHDRAWER, "BTC", "1"), ("uma", "BTC", "1"), (RETRIER, "BTC", RETRY_AMOUNT)):
        deposit.record_deposit(platform, SYSTEM, user_id=user, asset=asset, amount=amount, provider="setup",
                               payment_id=f"setup-{user}-{asset}", confirmations=12,
                               idempotency_key=f"setup-{user}-{asset}")
    for asset, amount in (("ETH", "100"), ("BTC", "5"), ("GBP", "50000")):
        request = treasury.request_liquidity_topup(platform, MAKER, asset=asset, amount=amount, reason="float",
                                                   idempotency_key=f"float-{asset}")
        for checker in SETUP_CHECKERS[: request["approvals_required"]]:
            approvals.approve(platform, checker, request["_id"], "setup")
    trades = []
    for number in range(TRADES):
        trade = p2p.open_trade(platform, SYSTEM, seller=SELLER, buyer=BUYER, asset="BTC", amount="0.2",
                               idempotency_key=f"trade-{number}")
        if number % 2:
            p2p.mark_paid(platform, SYSTEM, trade_id=trade["_id"], buyer=BUYER)
            p2p.open_dispute(platform, SYSTEM, trade_id=trade["_id"], user_id=BUYER, reason="no release")
        trades.append(trade["_id"])
    quote_ids = [swap.quote_swap(platform, SYSTEM, user_id=TRADER, from_asset="BTC", to_asset="ETH", amount="0.3",
                                 idempotency_key=f"quote-{number}")["_id"] for number in range(QUOTES)]
    quote_ids.append(instant.quote_instant_buy(platform, SYSTEM, user_id=TRADER, asset="BTC", pay_asset="GBP",
                                               spend="500", idempotency_key="buy")["_id"])
    quote_ids.append(instant.quote_instant_sell(platform, SYSTEM, user_id=TRADER, asset="BTC", receive_asset="GBP",
                                                amount="0.05", idempotency_key="sell")["_id"])
    requests = [
        adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="0.5", reason="credit",
                                      idempotency_key="adj-credit")["_id"],
        adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="-0.8", reason="debit",
                                      idempotency_key="adj-debit")["_id"],
        adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="9", reason="two approvers",
                                      idempotency_key="adj-big")["_id"],
        deposit.request_manual_deposit(platform, MAKER, user_id="uma", asset="GBP", amount="100", reference="bank",
                                       reason="statement", idempotency_key="manual")["_id"],
        withdrawal.request_withdrawal(platform, SYSTEM, user_id=SELLER, asset="BTC", amount="0.6",
                                      destination="bc1q", idempotency_key="wd-big")["approval_id"],
    ]
    return {"trades": trades, "quotes": quote_ids, "requests": requests}


# -- actors ------------------------------------------------------------------------------------
def _backend(context: ActorContext) -> Principal:
    """The exchange backend as this actor's process sees it (a distinct name per actor, so
    the audit trail says which process decided)."""
    return Principal(name=f"backend_{context.name.replace('-', '_')}", role=Role.SYSTEM)


def _mine(document: dict, principal: Principal, name: str, to: str) -> dict:
    """A decision call returned: the document must carry this caller's own decision."""
    if not any(d.get("name") == name and d.get("by") == principal.name and d.get("to") == to
               for d in document.get("decisions") or []):
        winner = document.get("decision") or {}
        raise Violation(f"{principal.name} was told its {name} → {to} on {document['_id']} succeeded, but the "
                        f"document carries {winner.get('name')} → {winner.get('to')} by {winner.get('by')}")
    return document


def _act_resolver(side: str) -> Callable[[Platform, ActorContext, dict], Any]:
    def act(platform: Platform, context: ActorContext, pools: dict) -> Any:
        principal, trade_id = RESOLVERS[side], context.rng.choice(pools["trades"])
        done = p2p.resolve_dispute(platform, principal, trade_id=trade_id, to=side, reason=f"evidence for the {side}")
        return _mine(done, principal, "resolved", f"resolved_{side}")
    return act


# a trade party's moves, by the roll they take: (below this roll, the call, the decision's name and state)
PARTY_MOVES: dict[str, tuple[tuple[float, Callable[..., dict], dict, str, str], ...]] = {
    "buyer": ((0.4, p2p.mark_paid, {"buyer": BUYER}, "mark_paid", "paid"),
              (0.7, p2p.cancel_trade, {"user_id": BUYER}, "cancel", "cancelled"),
              (1.0, p2p.open_dispute, {"user_id": BUYER, "reason": "not released"}, "dispute", "disputed")),
    "seller": ((0.7, p2p.release_trade, {"seller": SELLER}, "release", "released"),
               (1.0, p2p.open_dispute, {"user_id": SELLER, "reason": "not paid"}, "dispute", "disputed")),
}


def _act_party(side: str) -> Callable[[Platform, ActorContext, dict], Any]:
    def act(platform: Platform, context: ActorContext, pools: dict) -> Any:
        principal, trade_id, roll = _backend(context), context.rng.choice(pools["trades"]), context.rng.random()
        call, terms, name, to = next(move[1:] for move in PARTY_MOVES[side] if roll < move[0])
        return _mine(call(platform, principal, trade_id=trade_id, **terms), principal, name, to)
    return act


def _act_executor(platform: Platform, context: ActorContext, pools: dict) -> Any:
    principal, quote_id = _backend(context), context.rng.choice(pools["quotes"])
    if context.rng.random() < 0.8:
        return quotes.execute_quote(platform, principal, quote_id=quote_id, user_id=TRADER)
    return quotes.expire_quote(platform, principal, quote_id)


def _act_approver(platform: Platform, context: ActorContext, pools: dict) -> Any:
    principal, request_id = context.rng.choice(APPROVERS), context.rng.choice(pools["requests"])
    if context.rng.random() < 0.15:
        done = approvals.reject(platform, principal, request_id, "not convinced")
        if done["rejected_by"] != principal.name:
            raise Violation(f"{principal.name}'s rejection of {request_id} 'succeeded' but {done['rejected_by']} rejected it")
        return done
    done = approvals.approve(platform, principal, request_id, "checked")
    if not any(vote["by"] == principal.name for vote in done["approvals"]):
        raise Violation(f"{principal.name}'s approval of {request_id} 'succeeded' without its vote")
    return done


def _act_depositor(platform: Platform, context: ActorContext, pools: dict) -> Any:
    number = context.rng.randrange(PAYMENTS)
    return deposit.record_deposit(platform, _backend(context), user_id=BUYER, asset="BTC",
                                  amount=str(Decimal(number + 1) / 100), provider="chain",
                                  payment_id=f"tx{number}:0", confirmations=context.rng.randint(0, 3),
                                  idempotency_key=f"notice-{number}-{context.rng.randrange(3)}")


def _act_withdrawer(platform: Platform, context: ActorContext, pools: dict) -> Any:
    number = context.rng.randrange(6)
    return withdrawal.request_withdrawal(platform, _backend(context), user_id=WITHDRAWER, asset="BTC",
                                         amount=str(Decimal(number + 1) / 100), destination="bc1q",
                                         idempotency_key=f"wd-{number}")


def _act_sweeper(platform: Platform, context: ActorContext, pools: dict) -> Any:
    fees = platform.ledger.balance(acct.fees("BTC"))
    if not fees.minor:
        return None
    number = context.rng.randrange(1_000_000)
    request = treasury.request_fee_sweep(platform, MAKER, asset="BTC", amount=fees.text(), reason="sweep",
                                         idempotency_key=f"sweep-{context.name}-{number}")
    return approvals.approve(platform, context.rng.choice(APPROVERS), request["_id"], "sweep")


def _act_retrier(platform: Platform, context: ActorContext, pools: dict) -> Any:
    """Send ria's current key again — a withdrawal, a P2P trade or a quote, by turns. Every
    retrier walks the same sequence of keys, moving to the next once in a while after a call
    came back, so several send one key at once: while the shuffler has
    her funds (or the float) away, a first call is refused and fails its flow, and a retry
    that read the flow before may place the hold once the funds are back."""
    principal = _backend(context)
    number = context.state.get("key", 0) + context.rng.randrange(2)  # two neighbouring keys race for ria's funds
    kind = ("wd", "trade", "quote")[number % 3]
    key = f"ria-{kind}-{number}"
    try:
        if kind == "wd":
            return withdrawal.request_withdrawal(platform, principal, user_id=RETRIER, asset="BTC",
                                                 amount=RETRY_AMOUNT, destination="bc1q", idempotency_key=key)
        if kind == "trade":
            return p2p.open_trade(platform, principal, seller=RETRIER, buyer=BUYER, asset="BTC", amount=RETRY_AMOUNT,
                                  idempotency_key=key)
        return swap.quote_swap(platform, principal, user_id=RETRIER, from_asset="BTC", to_asset="ETH",
                               amount=RETRY_AMOUNT, idempotency_key=key)
    finally:
        if context.rng.random() < RETRY_MOVE_ON:
            context.state["key"] = context.state.get("key", 0) + 1


def _act_shuffler(platform: Platform, context: ActorContext, pools: dict) -> Any:
    """Spend ria's BTC (or the free ETH float) and bring it back, pay ria a new deposit, or
    cancel one of her open trades (its escrow comes back to her)."""
    number, choice = context.rng.randrange(1_000_000), context.rng.random()
    if choice < 0.3:
        return deposit.record_deposit(platform, _backend(context), user_id=RETRIER, asset="BTC", amount=RETRY_AMOUNT,
                                      provider="chain", payment_id=f"ria-{number}:0", confirmations=12,
                                      idempotency_key=f"ria-{number}:0")
    if choice < 0.6:
        trades = platform.store.collection(p2p.COLLECTION).find({"seller": RETRIER, "state": "open"}, limit=1)
        return p2p.cancel_trade(platform, _backend(context), trade_id=trades[0]["_id"], user_id=BUYER) if trades else None
    pairs = ((acct.user_available(RETRIER, "BTC"), acct.user_available(PARKING, "BTC")),
             (acct.liquidity("ETH"), acct.user_available(PARKING, "ETH")))
    home, away = pairs[int(choice < 0.8)]
    source, destination = (home, away) if platform.ledger.balance(away).minor == 0 else (away, home)
    value = platform.ledger.balance(source)
    if not value.minor:
        return None
    return platform.ledger.post(make_request(
        idempotency_key=f"shuffle-{context.name}-{number}", type="sim.shuffle", actor=_backend(context).name,
        postings=({"account": source, "amount": -value}, {"account": destination, "amount": value})))


def _recover(platform: Platform, world: dict) -> Any:
    report = recovery.resume_all(platform, SYSTEM)
    if report.holds_released:
        _count(world, "recovery: stranded holds released")
    return report


def _act_recoverer(platform: Platform, context: ActorContext, pools: dict) -> Any:
    choice = context.rng.random()
    if choice < 0.5:
        return _recover(platform, context.state["world"])
    if choice < 0.7:
        return p2p.cancel_timed_out(platform, _backend(context))
    if choice < 0.85:
        return approvals.expire_due(platform, SYSTEM)
    return quotes.expire_due_quotes(platform, _backend(context))


ACTIONS: dict[str, Callable[[Platform, ActorContext, dict], Any]] = {
    "resolver-buyer": _act_resolver("buyer"), "resolver-seller": _act_resolver("seller"), "buyer": _act_party("buyer"),
    "seller": _act_party("seller"), "executor": _act_executor, "approver": _act_approver, "depositor": _act_depositor,
    "withdrawer": _act_withdrawer, "sweeper": _act_sweeper, "recoverer": _act_recoverer,
    "retrier": _act_retrier, "shuffler": _act_shuffler,
}


def _script(role: str, world: dict) -> Callable[[ActorContext], None]:
    """Loop the role's action until the budget is spent. Named refusals (a lost race, a
    short balance, a closed trade) are expected; anything else is a finding. After a crash
    the actor restarts with a new clock, recovers half of the time, and retries the same
    request (its seeded generator state is replayed from the saved one)."""

    def script(context: ActorContext) -> None:
        retry_state = None
        context.state["world"] = world
        while context.budget():
            platform = Platform.open(world["store"], context.clock)
            try:
                if context.state.pop("restarted", False) and context.rng.random() < 0.5:
                    _recover(platform, world)
                if retry_state is not None:
                    context.rng.setstate(retry_state)  # the same request again
                retry_state = context.rng.getstate()
                ACTIONS[role](platform, context, world["pools"])
                retry_state = None
                _count(world, f"{role}: ok")
            except LedgerError as error:
                retry_state = None
                _count(world, f"{role}: {error.code}")
            except SimulatedCrash:
                context.restart()
                context.state["restarted"] = True
                _count(world, "crashes")

    return script


def _count(world: dict, outcome: str) -> None:
    """Outcomes per role, for the run's stats (shows the races really happened)."""
    outcomes = world.setdefault("outcomes", {})
    outcomes[outcome] = outcomes.get(outcome, 0) + 1


def _count_journal(world: dict, store: Store) -> None:
    """What the run left in the journal and the trail (stats: owed commissions, payouts...)."""
    audit, entries = store.raw("audit"), store.raw("entries")
    for label, count in (("audit: referral owed", audit.count_documents({"type": "referral.owed"})),
                         ("journal: referral commissions", entries.count_documents({"type": "referral.commission"})),
                         ("journal: fee sweeps", entries.count_documents({"type": "treasury.fee_sweep"})),
                         ("journal: holds released behind refused flows",
                          entries.count_documents({"type": holds.RELEASE_TYPE, "memo": holds.RELEASE_MEMO})),
                         ("journal: quote executions", entries.count_documents({"hold_action": "consume",
                                                                                  "flow_ref": {"$regex": "^q_"}}))):
        _count(world, label) if count else None
        world.setdefault("outcomes", {})[label] = count


def flow_workload(actors: int = DEFAULT_ACTORS, roles: tuple[str, ...] = ROLES) -> Callable[[random.Random], Workload]:
    """K actors with the roles in `roles` (cycled)."""

    def build(rng: random.Random) -> Workload:
        world: dict = {}

        def set_up(store: Store, base: ManualBase) -> None:
            world["store"], world["base"], world["pools"] = store, base, setup(store, base)

        def finish(store: Store, base: ManualBase) -> None:
            platform = Platform.open(store, base)
            for _ in range(2):  # the second pass finds nothing left (or reports what cannot finish)
                report = _recover(platform, world)
            if report.failed or report.entries_poisoned:
                raise Violation(f"final recovery could not finish: {report.failed or report.entries_poisoned}")

        scripts = [(f"{roles[i % len(roles)]}-{i}", _script(roles[i % len(roles)], world)) for i in range(actors)]
        return Workload(setup=set_up, scripts=scripts, finish=finish,
                        at_quiescence=[lambda store: checks.check_flows(Platform.open(store, world["base"])),
                                       lambda store: _count_journal(world, store)],
                        stats=lambda: {"workload": "flows", "outcomes": dict(sorted(world.get("outcomes", {}).items()))})

    return build


def simulate_flows(seed: int, *, actors: int = DEFAULT_ACTORS, steps: int = DEFAULT_STEPS,
                   crash_rate: float = DEFAULT_CRASH_RATE, skew_minutes: int = DEFAULT_SKEW_MINUTES,
                   mutant: str | None = None, roles: tuple[str, ...] = ROLES) -> SimulationResult:
    """One seeded run of the flow workload (optionally with a known-bad flow layer).
    Raises: KeyError for an unknown mutant name."""
    with (FLOW_MUTANTS[mutant]() if mutant else _nothing()):
        result = run_simulation(seed, flow_workload(actors, roles), steps=steps, crash_rate=crash_rate,
                                skew_minutes=skew_minutes)
    result.command = (f"simulate_flows({seed}, actors={actors}, steps={steps}, crash_rate={crash_rate}, "
                      f"skew_minutes={skew_minutes}, mutant={mutant!r}"
                      + (f", roles={roles!r})" if roles != ROLES else ")"))
    return result


@contextmanager
def _nothing():
    yield


# -- mutants: known-bad flow layers the simulator must catch --------------------------------------
@contextmanager
def transition_ignoring_target():
    """The dispute bug of issue 10: a decision whose compare-and-set lost returns the
    current document whenever its state equals the target (`closing`), without comparing
    the decision, and the caller then appends "its" decision event."""
    from core.flows import common

    def decide(platform, collection, document, to_state, wanted, *, allowed_from, what, extra=None, match=None,
               event_type=None, user=None, error=None):  # noqa: ANN001, ANN202 - the mutant mirrors common.decide
        changed, made = None, wanted.model_dump()
        for state in allowed_from:
            changed = collection.find_one_and_update(
                {"_id": document.id, "state": state, **(match or {})},
                {"$set": {"state": to_state, "decision": made, **(extra or {})}, "$push": {"decisions": made}})
            if changed is not None:
                break
        current = common.load(collection, document.id, what) if changed is None else common.stored(collection, changed)
        if changed is None and current.state != to_state:
            raise (error if isinstance(error, type) else common.FlowDecisionConflictError)(
                f"{what} {document.id} is {current.state}", state=current.state)
        platform.ledger.audit.append(type=event_type or f"{what}.{wanted.name}", actor=wanted.by,
                                     role=wanted.role, target=document.id, after={"state": to_state},
                                     data={"decision": wanted.name, "to": wanted.to, "party": wanted.party},
                                     event_key=f"{what}:{document.id}:{wanted.name}")
        return current

    saved = (p2p.decide, quotes.decide)
    p2p.decide = quotes.decide = decide
    try:
        yield
    finally:
        p2p.decide, quotes.decide = saved


FLOW_MUTANTS: dict[str, Callable[[], Any]] = {"transition_ignoring_target": transition_ignoring_target}


# -- the flow-test runner's concurrency scenarios run through the same scheduler -------------------
def run_scheduled(store: Store, base: Any, scripts: list[tuple[str, Callable[[ActorContext], None]]], seed: int,
                  crash_rate: float = 0.0, steps: int = DEFAULT_STEPS) -> str | None:
    """Run `scripts` as actors on an existing store (a flow-test sandbox) under the seeded
    scheduler: one store operation at a time, the interleaving chosen by `seed`, the
    engine's invariants checked after every write. Returns the violation, or None."""
    from core.ledger.simulation.invariants import JournalView, check_state

    view = JournalView(store)
    return run_actors(store, random.Random(seed), scripts, base=base, crash_rate=crash_rate, steps=steps, skew_minutes=0,
                      after_write=lambda: check_state(view)).failure
