"""Property-based test: random postings, holds, replays and crashes keep every invariant."""

from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.ledger import accounts as acct
from core.base.clock import ManualClock
from core.base.errors import HoldClosedError, HoldNotFoundError, InsufficientFundsError
from core.ledger.engine import Ledger
from core.ledger.money import from_minor
from core.ledger.selfcheck import self_check
from tests.helpers import Crash, CrashAt, make_test_store, transfer_request

USERS = ("u1", "u2", "u3")
ASSETS = ("BTC", "GBP")

minor = st.integers(min_value=1, max_value=300)
deposit_op = st.tuples(st.just("deposit"), st.sampled_from(USERS), st.sampled_from(ASSETS), st.integers(100, 1000))
operation = st.one_of(
    deposit_op,
    st.tuples(st.just("transfer"), st.sampled_from(USERS), st.sampled_from(USERS), st.sampled_from(ASSETS), minor),
    st.tuples(st.just("hold"), st.sampled_from(USERS), st.sampled_from(ASSETS), minor),
    st.tuples(st.just("release"), st.integers(0, 3)),
    st.tuples(st.just("consume"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("replay"), st.integers(0, 30)),
)
step = st.tuples(operation, st.none() | st.tuples(st.integers(0, 9), st.sampled_from(["before", "after"])))


class Model:
    """What the balances must be, computed without the engine."""

    def __init__(self):
        self.available = {(u, a): 0 for u in USERS for a in ASSETS}
        self.locked = dict.fromkeys(self.available, 0)
        self.holds = []  # [user, asset, minor, state]
        self.hold_ids = []  # hold id of each entry of `holds`
        self.succeeded = set()  # numbers of operations that succeeded

    def predict(self, op):
        kind = op[0]
        if kind == "deposit":
            return "ok"
        if kind == "transfer":
            _, source, destination, asset, value = op
            return "ok" if source == destination or self.available[source, asset] >= value else "insufficient"
        if kind == "hold":
            return "ok" if self.available[op[1], op[2]] >= op[3] else "insufficient"
        index = op[1]
        if index >= len(self.holds) or self.holds[index][3] == "rejected":  # refused: nothing was journaled
            return "not_found"
        state = self.holds[index][3]
        if state == "open":
            return "ok"
        return "again" if state == closing_signature(op) else "closed"  # the same close is an idempotent replay


def closing_signature(op):
    return ("closed",) + tuple(op[:1]) + tuple(op[2:])


def perform(ledger, model, number, op):
    """Run one operation against the engine with keys derived from its number."""
    kind = op[0]
    if kind == "deposit":
        _, user, asset, value = op
        ledger.post(transfer_request(f"op{number}", acct.external(asset), acct.user_available(user, asset), from_minor(value, asset).text(), "deposit"))
    elif kind == "transfer":
        _, source, destination, asset, value = op
        if source != destination:
            ledger.post(transfer_request(f"op{number}", acct.user_available(source, asset), acct.user_available(destination, asset), from_minor(value, asset).text()))
    elif kind == "hold":
        ledger.place_user_hold(hold_id=f"h{number}", user_id=op[1], asset=op[2], amount=from_minor(op[3], op[2]).text(), actor="system")
    else:
        index = op[1]
        hold_id = model.hold_ids[index] if index < len(model.hold_ids) else "none"
        if kind == "release":
            ledger.release_hold(hold_id=hold_id, actor="system")
        elif index >= len(model.holds):
            ledger.consume_hold(hold_id=hold_id, actor="system", destinations=[(acct.fees("BTC"), from_minor(1, "BTC"))])
        else:
            user, asset, value, _ = model.holds[index]
            fee = min(op[2], value)
            destinations = [(acct.external(asset), from_minor(value - fee, asset))] if value > fee else []
            destinations += [(acct.fees(asset), from_minor(fee, asset))] if fee else []
            ledger.consume_hold(hold_id=hold_id, actor="system", destinations=destinations)


def apply_to_model(model, number, op, outcome):
    kind = op[0]
    if kind == "hold":
        model.holds.append([op[1], op[2], op[3], "open" if outcome == "ok" else "rejected"])
        model.hold_ids.append(f"h{number}")
    if outcome != "ok":
        return
    if kind == "deposit":
        model.available[op[1], op[2]] += op[3]
    elif kind == "transfer" and op[1] != op[2]:
        model.available[op[1], op[3]] -= op[4]
        model.available[op[2], op[3]] += op[4]
    elif kind == "hold":
        model.available[op[1], op[2]] -= op[3]
        model.locked[op[1], op[2]] += op[3]
    elif kind in ("release", "consume"):
        user, asset, value, _ = model.holds[op[1]]
        model.holds[op[1]][3] = closing_signature(op)
        model.locked[user, asset] -= value
        if kind == "release":
            model.available[user, asset] += value


def retried_to_success(model, number, op):
    """A once-refused transfer or hold went through on a retry of the same key."""
    model.succeeded.add(number)
    if op[0] == "hold":
        model.holds[model.hold_ids.index(f"h{number}")][3] = "open"
        model.available[op[1], op[2]] -= op[3]
        model.locked[op[1], op[2]] += op[3]
    elif op[1] != op[2]:
        model.available[op[1], op[3]] -= op[4]
        model.available[op[2], op[3]] += op[4]


def outcome_of(ledger, model, number, op):
    try:
        perform(ledger, model, number, op)
        return "ok"
    except InsufficientFundsError:
        return "insufficient"
    except HoldNotFoundError:
        return "not_found"
    except HoldClosedError:
        return "closed"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(deposit_op, st.none()), min_size=2, max_size=6), st.lists(step, min_size=1, max_size=25))
def test_random_operations_keep_every_invariant(opening, steps):
    steps = opening + steps
    store, clock = make_test_store(), ManualClock()
    ledger, model = Ledger(store, clock), Model()
    done = []  # (number, op) performed so far
    try:
        for number, (op, crash) in enumerate(steps):
            if op[0] == "replay":
                if not done:
                    continue
                replay_number, replayed = done[op[1] % len(done)]
                if replayed[0] in ("release", "consume"):
                    continue  # covered by the 'again' prediction above; hold indexes are positional
                if replay_number not in model.succeeded and replayed[0] in ("transfer", "hold"):
                    # a refused request journaled nothing: its retry is a fresh attempt, judged on today's balances
                    predicted = model.predict(replayed)
                    result = outcome_of(ledger, model, replay_number, replayed)
                    assert result == predicted, (replayed, result, predicted)
                    if result == "ok":
                        retried_to_success(model, replay_number, replayed)
                    continue
                result = outcome_of(ledger, model, replay_number, replayed)
                if replay_number in model.succeeded:
                    assert result == "ok"  # a replay of a success returns the original success
                continue
            if op[0] in ("release", "consume") and model.holds:
                op = (op[0], op[1] % len(model.holds), *op[2:])  # aim at a hold that exists
            predicted = model.predict(op)
            if crash is not None:
                store.fault_hook = CrashAt(*crash)
                try:
                    outcome_of(ledger, model, number, op)
                except Crash:
                    event("crashed mid-operation")
                store.fault_hook = None
                clock.advance(timedelta(minutes=5))
                ledger.recover()
            result = outcome_of(ledger, model, number, op)  # the client (re)tries
            if predicted == "again":
                assert result == "ok", (op, result)
                continue
            assert result == predicted, (op, result, predicted)
            event(f"{op[0]}: {result}")
            apply_to_model(model, number, op, result)
            if result == "ok":
                model.succeeded.add(number)
            done.append((number, op))
        for (user, asset), value in model.available.items():
            balance = ledger.user_balances(user).get(asset)
            assert (balance.available.minor if balance else 0) == value
            assert (balance.locked.minor if balance else 0) == model.locked[user, asset]
        report = self_check(store, clock.now())
        assert report.ok, report.findings
        assert not report.in_flight
        assert ledger.audit.verify().ok
    finally:
        if not store.embedded:
            store.drop()



def test_model_starts_empty():
    model = Model()
    assert model.predict(("transfer", "u1", "u2", "BTC", 1)) == "insufficient"
    assert model.predict(("release", 0)) == "not_found"
