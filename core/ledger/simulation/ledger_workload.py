"""The engine's own workload: writers with shared and distinct idempotency keys and
client retries, depositors sending duplicate notices, hold placers/releasers/consumers,
and recoverers — any of them crashing at any operation and restarting with a new clock
skew, then recovering and retrying the same request."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from core.errors import ContentionError, HoldClosedError, HoldNotFoundError, InsufficientFundsError
from core.ledger import accounts as acct
from core.ledger.engine import Ledger
from core.ledger.entries import EntryRequest, make_request
from core.ledger.money import from_minor
from core.ledger.simulation.invariants import Violation
from core.ledger.simulation.runner import Script, Workload
from core.ledger.simulation.scheduler import ActorContext, ManualBase, SimulatedCrash
from core.ledger.store import Store

USERS = ("ann", "bo", "cy", "di")
ASSET = "BTC"
OPENING_MINOR = 30_000_000  # each user starts with 0.3 BTC
KEY_POOL = 24  # transfer keys are drawn from a small pool, so actors collide on keys
HOLD_POOL = 10
EXPECTED_REFUSALS = (InsufficientFundsError, HoldClosedError, HoldNotFoundError, ContentionError)
ROLES = ("writer", "writer", "recoverer", "holder", "depositor", "writer", "holder", "recoverer")

LedgerFactory = Callable[[Store, object], Ledger]


class CountingLedger(Ledger):
    """The real engine, counting claim attempts (each attempt plans once) per post."""

    posts = 0
    attempts = 0

    def post(self, request: EntryRequest):  # noqa: ANN201 - same as Ledger.post
        CountingLedger.posts += 1
        return super().post(request)

    def _plan(self, request, heads):  # noqa: ANN001, ANN202
        CountingLedger.attempts += 1
        return super()._plan(request, heads)


def transfer(number: int) -> EntryRequest:
    """The request behind key `t<number>`: the same key always means the same request."""
    source = USERS[number % len(USERS)]
    destination = USERS[(number + 1 + number // len(USERS)) % len(USERS)]
    if destination == source:
        destination = USERS[(number + 1) % len(USERS)]
    value = from_minor((number % 5 + 1) * 4_000_000, ASSET)
    return make_request(idempotency_key=f"t{number}", type="sim.transfer", actor="system", postings=(
        {"account": acct.user_available(source, ASSET), "amount": -value},
        {"account": acct.user_available(destination, ASSET), "amount": value}))


def hot_transfer(number: int) -> EntryRequest:
    """Every writer pays the same fee account: the hot-account workload."""
    source = USERS[number % len(USERS)]
    value = from_minor(1_000 + number, ASSET)
    return make_request(idempotency_key=f"hot{number}", type="sim.fee", actor="system", postings=(
        {"account": acct.user_available(source, ASSET), "amount": -value},
        {"account": acct.fees(ASSET), "amount": value}))


def deposit_notice(number: int) -> EntryRequest:
    value = from_minor((number % 3 + 1) * 5_000_000, ASSET)
    return make_request(idempotency_key=f"dep{number}", type="sim.deposit", actor="system", postings=(
        {"account": acct.external(ASSET), "amount": -value},
        {"account": acct.user_available(USERS[number % len(USERS)], ASSET), "amount": value}))


def _process(context: ActorContext, store: Store, factory: LedgerFactory) -> Ledger:
    """The actor's current process: a new Ledger (and clock) after every crash."""
    if context.state.get("incarnation") != context.incarnation:
        context.state["incarnation"] = context.incarnation
        context.state["ledger"] = factory(store, context.clock)
    return context.state["ledger"]


def _loop(context: ActorContext, store: Store, factory: LedgerFactory, action: Callable[[Ledger], None]) -> None:
    """Run `action` until the budget is spent; on a crash restart as a new process that
    first recovers (or not: a coin decides) and then carries on where it was."""
    while context.budget():
        try:
            ledger = _process(context, store, factory)
            if context.state.pop("just_restarted", False) and context.rng.random() < 0.5:
                ledger.recover()
            action(ledger)
        except SimulatedCrash:
            context.restart()
            context.state["just_restarted"] = True


def writer_script(store: Store, factory: LedgerFactory, request_of: Callable[[int], EntryRequest], pool: int) -> Script:
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            number = context.state.get("retry")
            if number is None:
                number = context.rng.randrange(pool)
            context.state["retry"] = number  # survives a crash: the restarted client retries it
            try:
                ledger.post(request_of(number))
            except EXPECTED_REFUSALS:
                pass
            context.state["retry"] = number if context.rng.random() < 0.25 else None  # a client retry
        _loop(context, store, factory, act)
    return script


def recoverer_script(store: Store, factory: LedgerFactory) -> Script:
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            stale_after = timedelta(minutes=context.rng.choice((0, 0, 1, 5)))  # time decides when, never whether
            report = ledger.recover(stale_after=stale_after)
            if report.poisoned:
                raise Violation(f"recovery found poisoned entries: {report.poisoned}")
        _loop(context, store, factory, act)
    return script


def holder_script(store: Store, factory: LedgerFactory) -> Script:
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            number = context.rng.randrange(HOLD_POOL)
            hold_id, user = f"h{number}", USERS[number % len(USERS)]
            choice = context.rng.random()
            try:
                if choice < 0.45:
                    ledger.place_user_hold(hold_id=hold_id, user_id=user, asset=ASSET, amount=from_minor(2_000_000 + number, ASSET),
                                           actor="system")
                elif choice < 0.75:
                    ledger.release_hold(hold_id=hold_id, actor="system")
                else:
                    place, _ = ledger.hold(hold_id)
                    value = from_minor(next(p.amount_minor for p in place.postings if p.amount_minor > 0), ASSET)
                    ledger.consume_hold(hold_id=hold_id, actor="system", destinations=[(acct.external(ASSET), value)])
            except EXPECTED_REFUSALS:
                pass
        _loop(context, store, factory, act)
    return script


def ledger_workload(actors: int, factory: LedgerFactory = CountingLedger, hot: bool = False) -> Callable[[random.Random], Workload]:
    """K actors with the roles in ROLES (cycled); `hot=True` makes every writer pay one
    fee account, to measure retries per posting on a hot account."""

    def build(rng: random.Random) -> Workload:
        store_ref: dict[str, Store] = {}

        def setup(store: Store, base: ManualBase) -> None:
            store_ref["store"] = store
            CountingLedger.posts = CountingLedger.attempts = 0
            ledger = Ledger(store, base)
            for user in USERS:
                ledger.post(make_request(idempotency_key=f"open:{user}", type="sim.opening", actor="system", postings=(
                    {"account": acct.external(ASSET), "amount": -from_minor(OPENING_MINOR, ASSET)},
                    {"account": acct.user_available(user, ASSET), "amount": from_minor(OPENING_MINOR, ASSET)})))

        def script_for(role: str) -> Script:
            def lazy(context: ActorContext) -> None:
                store = store_ref["store"]
                if hot:
                    return writer_script(store, factory, hot_transfer, 10_000)(context)
                return {"writer": lambda: writer_script(store, factory, transfer, KEY_POOL),
                        "depositor": lambda: writer_script(store, factory, deposit_notice, 6),
                        "recoverer": lambda: recoverer_script(store, factory),
                        "holder": lambda: holder_script(store, factory)}[role]()(context)
            return lazy

        def finish(store: Store, base: ManualBase) -> None:
            report = Ledger(store, base).recover()
            if report.poisoned:
                raise Violation(f"final recovery found poisoned entries: {report.poisoned}")

        def stats() -> dict:
            posts = max(CountingLedger.posts, 1)
            return {"posts": CountingLedger.posts, "claim_attempts": CountingLedger.attempts,
                    "retries_per_post": round((CountingLedger.attempts - CountingLedger.posts) / posts, 3)}

        scripts = [(f"{ROLES[i % len(ROLES)]}-{i}", script_for(ROLES[i % len(ROLES)])) for i in range(actors)]
        return Workload(setup=setup, scripts=scripts, finish=finish, stats=stats)

    return build
