"""The engine's own workload: writers with shared and distinct idempotency keys, client
retries and retries with a different body under the same key; depositors sending duplicate
notices; traders and reservers on the striped hot accounts (fee wallet, float, reserved
float, external — a few stripes each, so writers collide on them and debits split across
them); sweepers; hold placers, releasers and consumers racing on the same holds; audit
appenders on a few streams; and recoverers — any of them crashing at any operation and
restarting with a new clock skew, then recovering (or not) and retrying the same request.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from core.base.errors import ContentionError, HoldClosedError, HoldNotFoundError, IdempotencyConflictError, InsufficientFundsError
from core.ledger import accounts as acct
from core.ledger.engine import Ledger
from core.ledger.entries import EntryRequest, make_request, request_hash
from core.ledger.money import from_minor
from core.ledger.simulation.invariants import Violation
from core.ledger.simulation.runner import SIMULATION_START, Script, Workload
from core.ledger.simulation.scheduler import ActorContext, ManualBase, SimulatedCrash
from core.ledger.store import Store
from core.ledger.stripes import Striping, family_query, logical_id, striping

USERS = ("ann", "bo", "cy", "di")
HOT_USERS = tuple(f"payer{n}" for n in range(64))
ASSET = "BTC"
OPENING_MINOR = 30_000_000  # each user starts with 0.3 BTC
FLOAT_STRIPE_MINOR = 8_000_000  # each of the float's stripes starts with 0.08 BTC (payouts often need two)
KEY_POOL = 24  # transfer keys are drawn from a small pool, so actors collide on keys
TRADE_POOL = 30
HOLD_POOL = 4
RESERVATION_POOL = 4
HOLD_EPOCH = timedelta(minutes=4)
SWEEP_POOL = 10
EVENT_POOL = 12
EXPECTED_REFUSALS = (InsufficientFundsError, HoldClosedError, HoldNotFoundError, ContentionError)
ROLES = ("writer", "trader", "recoverer", "auditor", "reserver", "holder", "depositor", "sweeper",
         "trader", "writer", "recoverer", "reserver")
SIM_AUDIT_STREAMS = 2


def sim_striping(stripes: int | None = None) -> Striping:
    """A few stripes per hot kind (so writers collide and debits split), or `stripes` for all."""
    if stripes is not None:
        return striping({kind: stripes for kind in ("platform.fees", "platform.liquidity", "platform.liquidity_reserved", "external")})
    return striping({"platform.fees": 3, "platform.liquidity": 3, "platform.liquidity_reserved": 2, "external": 2})


LedgerFactory = Callable[..., Ledger]


class CountingLedger(Ledger):
    """The real engine, counting claim attempts (each attempt plans once) per post."""

    posts = 0
    attempts = 0

    def post(self, request: EntryRequest):  # noqa: ANN201 - same as Ledger.post
        CountingLedger.posts += 1
        return super().post(request)

    def _plan(self, request, legs, heads):  # noqa: ANN001, ANN202
        CountingLedger.attempts += 1
        return super()._plan(request, legs, heads)


def _request(key: str, entry_type: str, legs: tuple[tuple[acct.Account, int], ...]) -> EntryRequest:
    return make_request(idempotency_key=key, type=entry_type, actor="system",
                        postings=tuple({"account": account, "amount": from_minor(minor, ASSET)} for account, minor in legs))


def transfer(number: int, variant: bool = False) -> EntryRequest:
    """The request behind key `t<number>`: the same key always means the same request —
    unless `variant`, a different body under the same key (a buggy client's retry)."""
    source = USERS[number % len(USERS)]
    destination = USERS[(number + 1 + number // len(USERS)) % len(USERS)]
    if destination == source:
        destination = USERS[(number + 1) % len(USERS)]
    minor = (number % 5 + 1) * 4_000_000 + (1 if variant else 0)
    return _request(f"t{number}", "sim.transfer", ((acct.user_available(source, ASSET), -minor),
                                                   (acct.user_available(destination, ASSET), minor)))


def hot_transfer(number: int, variant: bool = False) -> EntryRequest:
    """Every writer pays the same fee wallet, each from one of many users: the hot-account
    workload (only the fee wallet is shared)."""
    minor = 1_000 + number + (1 if variant else 0)
    payer = acct.user_available(HOT_USERS[number % len(HOT_USERS)], ASSET)
    return _request(f"hot{number}", "sim.fee", ((payer, -minor), (acct.fees(ASSET), minor)))


def deposit_notice(number: int, variant: bool = False) -> EntryRequest:
    minor = (number % 3 + 1) * 5_000_000 + (1 if variant else 0)
    return _request(f"dep{number}", "sim.deposit", ((acct.external(ASSET), -minor), (acct.user_available(USERS[number % len(USERS)], ASSET), minor)))


def trade(number: int, variant: bool = False) -> EntryRequest:
    """A trade on the hot accounts: a buy (user pays the float and a fee), a payout from the
    float (a checked debit of a striped account: often split across stripes), or a
    commission out of the fee wallet."""
    user, extra = acct.user_available(USERS[number % len(USERS)], ASSET), 1 if variant else 0
    if number % 3 == 0:
        paid = (number % 7 + 1) * 1_000_000 + extra
        fee = paid // 100
        return _request(f"tr{number}", "sim.buy", ((user, -paid), (acct.fees(ASSET), fee), (acct.liquidity(ASSET), paid - fee)))
    if number % 3 == 1:
        minor = (number % 5 + 1) * 5_000_000 + extra
        return _request(f"tr{number}", "sim.payout", ((acct.liquidity(ASSET), -minor), (user, minor)))
    minor = 40_000 + number + extra
    return _request(f"tr{number}", "sim.commission", ((acct.fees(ASSET), -minor), (user, minor)))


def sweep(number: int, variant: bool = False) -> EntryRequest:
    minor = (number % 3 + 1) * 60_000 + (1 if variant else 0)
    return _request(f"sw{number}", "sim.sweep", ((acct.fees(ASSET), -minor), (acct.external(ASSET), minor)))


def _process(context: ActorContext, store: Store, factory: LedgerFactory, ledger_options: dict) -> Ledger:
    """The actor's current process: a new Ledger (and clock) after every crash."""
    if context.state.get("incarnation") != context.incarnation:
        context.state["incarnation"] = context.incarnation
        context.state["ledger"] = factory(store, context.clock, **ledger_options)
    return context.state["ledger"]


def _loop(context: ActorContext, store: Store, factory: LedgerFactory, ledger_options: dict,
          action: Callable[[Ledger], None]) -> None:
    """Run `action` until the budget is spent; on a crash restart as a new process that
    first recovers (or not: a coin decides) and then carries on where it was."""
    while context.budget():
        try:
            ledger = _process(context, store, factory, ledger_options)
            if context.state.pop("just_restarted", False) and context.rng.random() < 0.5:
                ledger.recover()
            action(ledger)
        except SimulatedCrash:
            context.restart()
            context.state["just_restarted"] = True


def writer_script(store: Store, factory: LedgerFactory, options: dict, request_of: Callable[..., EntryRequest], pool: int,
                  before: Callable[[Ledger], None] | None = None) -> Script:
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            if before is not None and context.rng.random() < 0.3:
                before(ledger)
            number = context.state.get("retry")
            if number is None:
                number = context.rng.randrange(pool)
            context.state["retry"] = number  # survives a crash: the restarted client retries it
            request = request_of(number, variant=context.rng.random() < 0.08)  # now and then a different body, same key
            try:
                entry = ledger.post(request)
            except (*EXPECTED_REFUSALS, IdempotencyConflictError):
                pass
            else:
                if entry.request_hash != request_hash(request):
                    raise Violation(f"post of key {request.idempotency_key} returned entry {entry.id} of another request")
            context.state["retry"] = number if context.rng.random() < 0.25 else None  # a client retry
        _loop(context, store, factory, options, act)
    return script


def logical_reads(store: Store) -> Callable[[Ledger], None]:
    """Read the hot accounts' logical balances and check each against every stored part
    (a read that misses a stripe is caught here; no other actor runs between the engine's
    read and this check)."""
    def check(ledger: Ledger) -> None:
        for account in (acct.liquidity(ASSET), acct.fees(ASSET), acct.liquidity_reserved(ASSET), acct.external(ASSET)):
            seen = ledger.balance(account).minor
            parts = sum(d["balance_minor"] for d in store.raw("balances").find(family_query(account)))
            if seen != parts:
                raise Violation(f"logical read of {account.id} returned {seen}, its stored parts hold {parts}")
    return check


def recoverer_script(store: Store, factory: LedgerFactory, options: dict) -> Script:
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            stale_after = timedelta(minutes=context.rng.choice((0, 0, 1, 5)))  # time decides when, never whether
            report = ledger.recover(stale_after=stale_after)
            if report.poisoned:
                raise Violation(f"recovery found poisoned entries: {report.poisoned}")
        _loop(context, store, factory, options, act)
    return script


def holder_script(store: Store, factory: LedgerFactory, options: dict, *, float_holds: bool = False) -> Script:
    """User holds (available → locked), or reservations on the float (float → reserved);
    placers, releasers and consumers race on the same small set of hold ids."""
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            number = context.rng.randrange(RESERVATION_POOL if float_holds else HOLD_POOL)
            user = USERS[number % 2]  # two holds per user: a second close of one finds the other's funds
            # a few holds at a time, renewed every HOLD_EPOCH of simulated time: actors race on the same ones
            epoch = int((context.base.now() - SIMULATION_START) / HOLD_EPOCH)
            hold_id = f"{'r' if float_holds else 'h'}{epoch}x{number}"
            choice = context.rng.random()
            try:
                if choice < 0.45:
                    if float_holds:
                        ledger.place_hold(hold_id=hold_id, source=acct.liquidity(ASSET), held=acct.liquidity_reserved(ASSET),
                                          amount=from_minor((number % 4 + 1) * 4_000_000, ASSET), actor="system")
                        ledger.audit.append(type="sim.reservation", actor="system", target=hold_id, event_key=f"res:{hold_id}")
                    else:
                        ledger.place_user_hold(hold_id=hold_id, user_id=user, asset=ASSET, amount=from_minor(2_000_000 + number, ASSET),
                                               actor="system")
                else:
                    actions = ["release", "consume"] if choice < 0.75 else ["consume", "release"]
                    if context.rng.random() < 0.5:
                        actions = actions[:1]  # otherwise the other party races it: exactly one may close the hold
                    for action in actions:
                        _close(ledger, hold_id, action, acct.user_available(user, ASSET) if float_holds else acct.external(ASSET))
            except EXPECTED_REFUSALS:
                pass
        _loop(context, store, factory, options, act)
    return script


def _close(ledger: Ledger, hold_id: str, action: str, destination: acct.Account) -> None:
    """Release a hold, or consume it to `destination`; a hold already closed refuses (named)."""
    try:
        if action == "release":
            ledger.release_hold(hold_id=hold_id, actor="system")
        else:
            place, _ = ledger.hold(hold_id)
            value = from_minor(sum(p.amount_minor for p in place.postings if p.amount_minor > 0), ASSET)
            ledger.consume_hold(hold_id=hold_id, actor="system", destinations=[(destination, value)])
    except EXPECTED_REFUSALS:
        pass


def auditor_script(store: Store, factory: LedgerFactory, options: dict) -> Script:
    """Console and flow events: some keyed (recorded exactly once), some not."""
    def script(context: ActorContext) -> None:
        def act(ledger: Ledger) -> None:
            number = context.rng.randrange(EVENT_POOL)
            ledger.audit.append(type="sim.event", actor="system", target=f"t{number}",
                                event_key=f"ev{number}" if number % 2 else None)
        _loop(context, store, factory, options, act)
    return script


def ledger_workload(actors: int, factory: LedgerFactory = CountingLedger, hot: bool = False,
                    stripes: int | None = None) -> Callable[[random.Random], Workload]:
    """K actors with the roles in ROLES (cycled); `hot=True` makes every writer pay one fee
    wallet, to measure retries per posting on a hot account (`stripes` sets the stripe count
    of every hot kind; by default a few each)."""
    options = {"striping": sim_striping(stripes), "audit_streams": SIM_AUDIT_STREAMS}

    def build(rng: random.Random) -> Workload:
        store_ref: dict[str, Store] = {}

        def setup(store: Store, base: ManualBase) -> None:
            store_ref["store"] = store
            CountingLedger.posts = CountingLedger.attempts = 0
            ledger = Ledger(store, base, **options)
            for user in HOT_USERS if hot else USERS:
                ledger.post(_request(f"open:{user}", "sim.opening", ((acct.external(ASSET), -OPENING_MINOR),
                                                                     (acct.user_available(user, ASSET), OPENING_MINOR))))
            for stripe in range(options["striping"].count(acct.AccountKind.LIQUIDITY)):
                ledger._affinity.stripe = stripe  # set-up spreads the float over its stripes
                ledger.post(_request(f"float:{stripe}", "sim.float", ((acct.opening(ASSET), -FLOAT_STRIPE_MINOR),
                                                                      (acct.liquidity(ASSET), FLOAT_STRIPE_MINOR))))
            ledger.flush()

        def script_for(role: str) -> Script:
            def lazy(context: ActorContext) -> None:
                store = store_ref["store"]
                if hot:
                    return writer_script(store, factory, options, hot_transfer, 10_000)(context)
                return {"writer": lambda: writer_script(store, factory, options, transfer, KEY_POOL),
                        "depositor": lambda: writer_script(store, factory, options, deposit_notice, 6),
                        "sweeper": lambda: writer_script(store, factory, options, sweep, SWEEP_POOL),
                        "trader": lambda: writer_script(store, factory, options, trade, TRADE_POOL, before=logical_reads(store)),
                        "recoverer": lambda: recoverer_script(store, factory, options),
                        "auditor": lambda: auditor_script(store, factory, options),
                        "reserver": lambda: holder_script(store, factory, options, float_holds=True),
                        "holder": lambda: holder_script(store, factory, options)}[role]()(context)
            return lazy

        seen: dict[str, int] = {}

        def finish(store: Store, base: ManualBase) -> None:
            report = Ledger(store, base, **options).recover()
            if report.poisoned:
                raise Violation(f"final recovery found poisoned entries: {report.poisoned}")
            entries = list(store.raw("entries").find({}, {"postings.account": 1}))
            seen["split_debits"] = sum(len({p["account"] for p in e["postings"]}) > len({logical_id(p["account"]) for p in e["postings"]})
                                       for e in entries)
            seen["stripes_used"] = len({p["account"] for e in entries for p in e["postings"] if "#" in p["account"]})
            seen["audit_streams_used"] = len(store.raw("audit").distinct("stream"))

        def stats() -> dict:
            posts = max(CountingLedger.posts, 1)
            return {"posts": CountingLedger.posts, "claim_attempts": CountingLedger.attempts,
                    "retries_per_post": round((CountingLedger.attempts - CountingLedger.posts) / posts, 3), **seen}

        scripts = [(f"{ROLES[i % len(ROLES)]}-{i}", script_for(ROLES[i % len(ROLES)])) for i in range(actors)]
        return Workload(setup=setup, scripts=scripts, finish=finish, stats=stats)

    return build
