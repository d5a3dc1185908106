"""Every public entry point, driven with hostile values (issue 11).

For each entry point a valid baseline call is built against one world (funded users, a
withdrawal awaiting approval with its hold, an open swap quote, an open P2P trade, a
pending approval); hypothesis then replaces ONE argument with a hostile value for that
parameter — `$`-operator dicts, lists, bytes, None, bools, floats, huge ints, NaN/Infinity
and exponent text, 40-digit decimals, strings with newlines, NUL, `$`, `.` or 10k
characters — and the call must raise a named LedgerError subclass without a single store
operation (the boundary refuses first) and leave every collection exactly as it was.

`FUZZ` must list exactly the public entry points: `test_fuzz_list_is_the_public_api`
discovers them (every public function of `core` with a `principal` parameter, every
flow `get_*` lookup, the Ledger's public methods) so a new one without a line here fails.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core import approvals
from core.approvals import ApprovalRequest
from core.audit import AuditFilter
from core.base.clock import ManualClock
from core.base.errors import LedgerError
from core.flows import p2p, swap, withdrawal
from core.flowtests.sandbox import SANDBOX_START, Sandbox
from core.ledger import accounts as acct
from core.ledger.engine import EntryFilter, Ledger
from core.ledger.money import amount
from core.ledger.store import Store
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from core.platform.boundary import precheck
from tests.principals import ADMIN

EXAMPLES_PER_FUNCTION = 12

# The Ledger's public methods that are fuzzed; the rest are named here with the reason.
LEDGER_NOT_FUZZED = {
    "post": "takes an EntryRequest, which make_request builds and validates; anything else is InvalidEntryError (tests/core/ledger/test_engine.py)",
    "recover": "takes only a duration with a default; a bad one is InvalidEntryError (tests/core/ledger/test_engine.py)",
    "project": "internal helper of post/recover (takes a stored document)",
    "flush": "takes no argument: clears the flags of entries this process projected",
}
# Functions with a `principal` parameter that are not entry points: the permission checks
# themselves, and helpers marked @internal (core.platform.boundary.internal) are skipped by discovery.
NOT_ENTRY_POINTS = {"core.base.permissions.check_principal", "core.base.permissions.require", "core.base.permissions.can"}
SKIPPED_MODULES = ("core.__main__", "core.flowtests.scenarios", "core.flowtests.sandbox", "core.flowtests.choreography",
                   "core.flowtests.simulation")  # the flow-test scenarios and their tools take a Sandbox

# -- hostile values -------------------------------------------------------------------------
OPERATOR_DICTS = st.sampled_from([{"$gt": ""}, {"$ne": None}, {"$regex": "^wd_"}, {"$where": "1"}, {"$in": ["a"]},
                                  {"$exists": True}, {"a": {"$gt": ""}}])
HUGE_INTS = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1))
GENERIC = st.one_of(
    OPERATOR_DICTS,
    st.sampled_from([[{"$ne": None}], [b"x"], [1.5], [["nested"]], (1.5,)]),
    st.binary(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    HUGE_INTS,
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), object(), bytearray(b"x")]),
)
ID_TEXT = ["k\n", "alice\n", "admin\n", "a\x00b", "", " ", "a b", "x" * 10_000, "é", "\t", "wd_1\r"]
NAME_TEXT = ID_TEXT + ["$gt", "a$b", "a/b", "a:b", "$where"]
ASSET_TEXT = ["btc", "BTC\n", "$ne", "", "B TC", "x" * 10_000, "NaN", "Infinity", "BTC.", "B$"]
AMOUNT_TEXT = ["NaN", "nan", "Infinity", "-Infinity", "sNaN", "inf", "1e3", "1E-999999999", "1e999999999", "2.5e1",
               "1.000000000000000000000000000001", "1" * 40, "0." + "0" * 38 + "1", "1,5", "0x10", "١", "", " ",
               "abc", "1.5\n", "x" * 10_000, "$gt", "1_000", "Decimal('1')"]
WORD_TEXT = ["Buyer", "$gt", "a\n", "", "x" * 10_000, "a b", "a\x00"]
TEXT_TEXT = ["a\x00b", "x" * 10_000, "\x1b[2J", "ok\rbad", "\x7f"]
MODEL_TEXT = ["admin", "system", "admin\n", "$gt", "user.available:alice:BTC", "{}"]
COUNT_BAD = [-1, -(2**63) - 1, 2**63, 2**70, True, False, 1.0, "1", Decimal(1), "1e3"]
SIGNED_BAD = [2**63, -(2**63) - 1, 2**70, True, 1.0, "1", Decimal(1)]
FLAG_BAD = ["true", 1, 0, "yes", "False"]
DOC_BAD = [{"$set": {}}, {"a.b": 1}, {"x": 2**70}, {"x": float("nan")}, {"x": b"b"}, {"x": {"$gt": ""}},
           {"x": object()}, "string", [1], {"x\n": 1}, {"": 1}]
DURATION_BAD = [timedelta(seconds=-1), timedelta(days=100_000), 60, "60s"]
MOMENT_BAD = ["2026-01-01", 0, 1.5, "yesterday"]

ID_NAMES = {"email", "wallet_address", "idempotency_key", "key", "hold_id", "entry_id", "request_id", "run_id", "quote_id", "trade_id",
            "deposit_id", "withdrawal_id", "source_entry_id", "payment_id", "flow_ref", "snapshot_id",
            "declaration_id", "scope"}
NAME_NAMES = {"user_id", "seller", "buyer", "actor", "username"}
ASSET_NAMES = {"asset", "from_asset", "to_asset", "pay_asset", "receive_asset"}
AMOUNT_NAMES = {"amount", "spend", "value"}
COUNT_NAMES = {"min_receive_minor", "approvals_required", "confirmations", "page", "page_size", "limit", "rows_max",
               "points", "placed_max", "split_parts"}
SIGNED_NAMES = {"amount_minor"}
FLAG_NAMES = {"record", "dry_run", "full"}
WORD_NAMES = {"kind", "state", "to", "entry_type", "field_name", "role"}
TEXT_NAMES = {"reason", "memo", "reference", "destination", "provider", "fiat_amount", "text", "evidence", "uri",
              "name", "password"}
DOC_NAMES = {"payload", "metadata", "snapshot", "people", "document", "query"}
DURATION_NAMES = {"stale_after", "stuck_after"}
MOMENT_NAMES = {"since", "until", "now", "as_of"}
LIST_NAMES = {"user_ids", "entry_ids", "names", "approved_by", "destinations", "extra_postings"}


# the hostile values of each kind of parameter, first match wins
HOSTILE_BY_NAME: list[tuple[set[str], list[Any]]] = [
    (ID_NAMES, ID_TEXT), (NAME_NAMES, NAME_TEXT), (ASSET_NAMES, ASSET_TEXT), (AMOUNT_NAMES, AMOUNT_TEXT + [True, False, 1.5]),
    (COUNT_NAMES, COUNT_BAD), (SIGNED_NAMES, SIGNED_BAD), (FLAG_NAMES, FLAG_BAD), (WORD_NAMES, WORD_TEXT),
    (TEXT_NAMES, TEXT_TEXT + [5, ["a"]]), (DOC_NAMES, DOC_BAD + [{"_id": {"$gt": ""}, "payload": {}}]),
    (DURATION_NAMES, DURATION_BAD), (MOMENT_NAMES, MOMENT_BAD),
]
SPECIAL_HOSTILE: dict[str, list[Any]] = {
    "approval": DOC_BAD + [{"_id": "apr_1", "payload": {}}, ApprovalRequest.model_construct(id={"$gt": ""}, payload={}),
                           ApprovalRequest.model_construct(id="apr_1")],  # executors take a valid typed request only
    "entry_filter": [EntryFilter(hold_id={"$gt": ""}), EntryFilter(user="alice\n"), EntryFilter(since="yesterday")],
    "audit_filter": [AuditFilter(actor={"$ne": None}), AuditFilter(user=["a"]), AuditFilter(since="2026-01-01")],
    **dict.fromkeys(("account", "source", "held"), MODEL_TEXT + [
        acct.Account.model_construct(kind=acct.AccountKind.USER_AVAILABLE, owner="alice\n", asset="BTC")]),
}


def hostile(parameter: str, optional: bool, function_name: str) -> st.SearchStrategy:
    """Values that are never valid for `parameter` (None only where it is not optional)."""
    if parameter == "source" and function_name.endswith("import_balances"):
        extra: list[Any] = WORD_TEXT  # the legacy import's source is a collection's name, a word
    else:
        extra = next((values for names, values in HOSTILE_BY_NAME if parameter in names), SPECIAL_HOSTILE.get(parameter, MODEL_TEXT))
    if parameter in FLAG_NAMES:
        generic = GENERIC
    else:
        generic = st.one_of(GENERIC, st.booleans())
    if parameter in AMOUNT_NAMES:  # small ints and plain Decimals are amounts; huge ones are not
        generic = st.one_of(OPERATOR_DICTS, st.binary(max_size=8), st.floats(allow_nan=True), HUGE_INTS,
                            st.sampled_from([Decimal("NaN"), Decimal("1e-40"), Decimal("1E+999999999"), [1], object()]))
    options = [generic, st.sampled_from(extra)]
    if not optional:
        options.append(st.none())
    return st.one_of(*options)


# -- the world --------------------------------------------------------------------------------
@dataclass
class World:
    platform: Platform
    store: Store
    clock: ManualClock
    valid: dict[str, Any]


def build_world() -> World:
    store = Store.embedded_store("hostile")
    clock = ManualClock(SANDBOX_START)
    platform = Platform.open(store, clock)
    sandbox = Sandbox(platform=platform, clock=clock)
    sandbox.fund("alice", "BTC", "10")
    sandbox.fund("bob", "BTC", "5")
    sandbox.fund("alice", "USDT", "10000")
    sandbox.top_up("BTC", "50")
    sandbox.top_up("USDT", "1000000")
    held = withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount="1",
                                         destination="bc1q-alice", idempotency_key="hostile-w1")
    assert held["state"] == "awaiting_approval", held["state"]
    quote = swap.quote_swap(platform, SYSTEM, user_id="alice", from_asset="BTC", to_asset="USDT", amount="0.1",
                            idempotency_key="hostile-q1")
    trade = p2p.open_trade(platform, SYSTEM, seller="alice", buyer="bob", asset="BTC", amount="0.1",
                           fiat_amount="GBP 3000", idempotency_key="hostile-t1")
    entry_id = platform.ledger.hold(held["_id"])[0].id
    now = clock.now()
    valid = {
        "platform": platform, "principal": ADMIN, "store": store, "log_store": store, "legacy": store,
        "user_id": "alice", "seller": "alice", "buyer": "bob", "user_ids": ["alice", "bob"], "actor": "ann",
        "account": acct.user_available("alice", "BTC"), "accounts": [acct.fees("BTC"), acct.user_available("alice", "BTC")], "source": acct.user_available("alice", "BTC"),
        "held": acct.user_locked("alice", "BTC"), "account_id": acct.user_available("alice", "BTC").id,
        "kind": "adjustment", "idempotency_key": "hostile-fresh-1", "key": "hostile-fresh-1",
        "hold_id": held["_id"], "entry_id": entry_id, "request_id": held["approval_id"], "run_id": "run_1",
        "quote_id": quote["_id"], "trade_id": trade["_id"], "deposit_id": "dep_1", "withdrawal_id": held["_id"],
        "source_entry_id": entry_id, "payment_id": "pay-1", "entry_ids": [entry_id], "snapshot_id": "snap_1",
        "declaration_id": "decl_1", "asset": "BTC", "from_asset": "BTC", "to_asset": "USDT", "pay_asset": "USDT",
        "receive_asset": "USDT", "amount": "0.1", "spend": "100", "value": "1",
        "destinations": [(acct.external("BTC"), amount("1", "BTC"))], "extra_postings": [],
        "amount_minor": 100, "approvals_required": 1, "confirmations": 6, "page": 0, "page_size": 10,
        "limit": 10, "rows_max": 100, "points": 10, "placed_max": 10, "split_parts": 1, "record": False,
        "dry_run": True, "full": False, "state": "pending", "scope": "platform", "to": "buyer", "entry_type": "hold.consume",
        "reason": "hostile test", "memo": "m", "reference": "ref-1", "destination": "bc1q", "provider": "chain",
        "fiat_amount": "GBP 10", "text": "alice", "wallet_address": "bc1q-reserve", "evidence": "statement",
        "payload": {"user_id": "alice"}, "metadata": {"note": "x"}, "approval": ApprovalRequest.from_document(
            platform.store.collection(approvals.COLLECTION).find_one({"_id": held["approval_id"]})),
        "requests": [{"_id": held["approval_id"], "kind": "withdrawal", "payload": {"user_id": "alice", "asset": "BTC",
                                                                                "amount_minor": 100_000_000}}],
        "people": {"usernames": {"ann": {"roles": ["admin"]}}}, "names": ["deposit"], "approved_by": ["ann"],
        "terms": swap.swap_terms(platform, "BTC", "USDT", "0.1"), "audit_filter": AuditFilter(),
        "entry_filter": EntryFilter(), "stale_after": timedelta(seconds=60), "stuck_after": timedelta(minutes=5),
        "since": now - timedelta(days=1), "until": now, "now": now, "as_of": now,
        "document": {"usernames": {}}, "username": "newuser", "name": "New User", "email": "new@example.com",
        "role": "admin", "password": "correct-horse-battery", "field_name": "type", "query": {}, "out": io.BytesIO(),
    }
    return World(platform, store, clock, valid)


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def everything(store: Store) -> dict[str, list]:
    """Every document of every collection: 'changed nothing' means all of it is equal."""
    return {name: sorted(store.raw(name).find(), key=lambda d: repr(d["_id"])) for name in store.collection_names()}


# -- the list of entry points ---------------------------------------------------------------------
Resolver = Callable[[World], Callable[..., Any]]
BASELINE_CHANGES: dict[str, dict[str, Any]] = {
    "Ledger.balances_of_kind": {"kind": acct.AccountKind.USER_AVAILABLE},
    "core.legacy.opening.import_balances": {"source": "wallets"},
    "core.approvals.view.request_warnings": {"kind": "withdrawal"},
}
NOT_FUZZED_PARAMETERS = {"self", "registry", "args", "kwargs"}  # registries are core-made objects


def _function(path: str) -> Resolver:
    module_name, _, name = path.rpartition(".")
    return lambda world: getattr(importlib.import_module(module_name), name)


def _method(name: str) -> Resolver:
    return lambda world: getattr(world.platform.ledger, name)


def discovered_entry_points() -> set[str]:
    """The public API this test must cover, found by walking `core`."""
    found = set()
    for info in pkgutil.walk_packages(core.__path__, "core."):
        if info.name.startswith(SKIPPED_MODULES):
            continue
        module = importlib.import_module(info.name)
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != info.name:
                continue
            if getattr(function, "__internal__", False):
                continue
            parameters = list(inspect.signature(function).parameters)
            if "principal" in parameters or (name.startswith("get_") and parameters[:1] == ["platform"]):
                found.add(f"{info.name}.{name}")
    found -= NOT_ENTRY_POINTS
    for name, member in vars(Ledger).items():
        if inspect.isfunction(member) and not name.startswith("_") and name not in LEDGER_NOT_FUZZED:
            found.add(f"Ledger.{name}")
    return found


# Entry points without a principal that take caller values: the money constructors and
# the console-account functions.
EXTRA_ENTRY_POINTS = {
    "core.ledger.money.amount", "core.ledger.money.positive_amount", "core.ledger.money.from_minor",
    "core.platform.logins.add_user", "core.platform.logins.set_role", "core.platform.logins.disable_user",
    "core.ledger.stripes.striping",
}
EXTRA_VALID = {"core.ledger.stripes.striping": {"counts": {"platform.fees": 8}},
               "core.ledger.money.from_minor": {"minor": 100}, "core.ledger.money.amount": {"value": "0.1"},
               "core.ledger.money.positive_amount": {"value": "0.1"}}


# The public entry points, written out: `test_fuzz_list_is_the_public_api` keeps this equal
# to what discovery finds, so a new public function fails until it is listed here (and is
# then fuzzed like the rest).
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "Ledger": ("balance", "balances_minor", "balances_of_kind", "consume_hold", "entries", "entry", "entry_by_key", "hold",
               "open_holds", "place_hold", "place_user_hold", "release_hold", "user_balances"),
    "core.approvals.decisions": ("approve", "expire_due", "get_approval", "list_approvals", "reject", "resume_approved"),
    "core.approvals.requests": ("open_request", "request_approval"),
    "core.approvals.view": ("adjustment_user", "balance_effects", "count_requests", "request_warnings"),
    "core.audit": ("export_audit", "export_audit_csv", "search_audit", "verify_audit", "witness_status"),
    "core.platform.directory": ("find_users", "get_user", "names_of", "referrals_of", "refresh_search_keys", "search_users",
                       "sync_search_keys"),
    "core.flows.adjustment": ("request_adjustment",),
    "core.flows.deposit": ("record_deposit", "request_manual_deposit", "resume_deposit"),
    "core.flows.instant": ("execute_instant", "quote_instant_buy", "quote_instant_sell"),
    "core.flows.p2p": ("cancel_timed_out", "cancel_trade", "get_trade", "mark_paid", "open_dispute", "open_trade",
                       "release_trade", "resolve_dispute", "resume_trade"),
    "core.flows.quotes": ("create_quote", "execute_quote", "expire_due_quotes", "expire_quote", "get_quote",
                          "resume_quote"),
    "core.flows.recovery": ("resume_all",),
    "core.flows.referral": ("pay_referral_commission",),
    "core.flows.swap": ("execute_swap", "quote_swap"),
    "core.flows.treasury": ("request_fee_sweep", "request_liquidity_topup", "request_liquidity_withdrawal"),
    "core.flows.withdrawal": ("get_withdrawal", "request_withdrawal", "resume_withdrawal"),
    "core.integrity.engine": ("check_platform", "check_user", "get_run", "history", "trend"),
    "core.integrity.repairs": ("execute_projection_repair", "request_projection_repair"),
    "core.ledger.money": ("amount", "from_minor", "positive_amount"),
    "core.ledger.stripes": ("striping",),
    "core.legacy.opening": ("import_balances",),
    "core.legacy.rebuild": ("execute_rebuild", "plan_rebuild", "request_rebuild"),
    "core.legacy.reconcile": ("reconcile_platform",),
    "core.liabilities.bundle": ("build_bundle",),
    "core.liabilities.proofs": ("user_proof_bundle", "verify_snapshot"),
    "core.liabilities.reserves": ("declare_reserve", "declared_reserves", "solvency"),
    "core.liabilities.reveal": ("reissue_user_secret", "reveal_user_secret"),
    "core.liabilities.snapshot": ("list_snapshots", "published_roots", "take_snapshot"),
    "core.reports": ("alerts", "audit_field_values", "count_audit_events", "fee_movements", "last_integrity",
                     "platform_totals", "treasury_entries"),
    "core.flowtests.runner": ("run_scenarios",),
    "core.platform.logins": ("add_user", "disable_user", "set_role"),
}
FUZZ: dict[str, Resolver] = {
    f"{owner}.{name}": (_method(name) if owner == "Ledger" else _function(f"{owner}.{name}"))
    for owner, names in ENTRY_POINTS.items() for name in names
}


def test_fuzz_list_is_the_public_api():
    discovered = discovered_entry_points() | EXTRA_ENTRY_POINTS
    assert set(FUZZ) == discovered, (
        f"not fuzzed: {sorted(discovered - set(FUZZ))}; no longer public: {sorted(set(FUZZ) - discovered)}")
    for name in discovered - EXTRA_ENTRY_POINTS:
        if not name.startswith("Ledger."):
            function = FUZZ[name](None)  # type: ignore[arg-type]
            assert getattr(function, "__boundary__", False), f"{name} has no @boundary: decorate it (core.platform.boundary)"


def test_boundary_table_covers_every_parameter():
    from core.platform import boundary as validation

    assert validation.UNCHECKED == []


def _baseline(name: str, function: Callable[..., Any], world: World) -> tuple[dict, list[tuple[str, bool]]]:
    """Valid keyword arguments for every parameter, and the (parameter, optional) pairs to fuzz."""
    valid = {**world.valid, **EXTRA_VALID.get(name, {}), **BASELINE_CHANGES.get(name, {})}
    kwargs, fuzzable = {}, []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in NOT_FUZZED_PARAMETERS or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = parameter.annotation if isinstance(parameter.annotation, str) else repr(parameter.annotation)
        optional = parameter.default is None or "None" in annotation.replace(" ", "").split("|")
        if parameter.name in valid:
            kwargs[parameter.name] = valid[parameter.name]
        elif parameter.default is parameter.empty:
            raise AssertionError(f"{name}: no valid baseline value for {parameter.name!r}; add one to build_world")
        fuzzable.append((parameter.name, optional))
    return kwargs, fuzzable


@pytest.mark.parametrize("name", sorted(FUZZ))
def test_hostile_values_are_refused_by_name_and_change_nothing(world, name):
    function = FUZZ[name](world)
    baseline, fuzzable = _baseline(name, function, world)
    if name.startswith(("core.ledger.money.", "core.platform.logins.", "core.ledger.stripes.")) is False:
        precheck(function, **baseline)  # the baseline itself passes the boundary: the hostile value is what is refused

    @settings(max_examples=EXAMPLES_PER_FUNCTION, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data())
    def drive(data):
        parameter, optional = data.draw(st.sampled_from(fuzzable), label="parameter")
        value = data.draw(hostile(parameter, optional, name), label="value")
        before = everything(world.store)
        touched: list[tuple[str, str]] = []
        world.store.fault_hook = lambda phase, collection, operation: touched.append((collection, operation))
        try:
            with pytest.raises(LedgerError) as refusal:
                function(**{**baseline, parameter: value})
        finally:
            world.store.fault_hook = None
        assert type(refusal.value) is not LedgerError, "a named subclass, not the base"
        assert touched == [], f"{name}({parameter}={value!r:.60}) reached the store before refusing: {touched[:3]}"
        assert everything(world.store) == before, f"{name}({parameter}={value!r:.60}) changed the store"

    drive()


# -- the first list, one test each ------------------------------------------------------
def test_operator_in_hold_id_pays_nothing_out(world):
    """`consume_hold(hold_id={"$gt": ""})` paid out a withdrawal's hold; `$ne`/`$regex` released holds."""
    before = everything(world.store)
    attacker = [(acct.external("BTC", "attacker"), amount("1", "BTC"))]
    for operator in ({"$gt": ""}, {"$ne": None}, {"$regex": "^wd_"}, ["wd_"], None):
        with pytest.raises(LedgerError):
            world.platform.ledger.consume_hold(hold_id=operator, actor="ann", destinations=attacker)
        with pytest.raises(LedgerError):
            world.platform.ledger.release_hold(hold_id=operator, actor="ann")
        with pytest.raises(LedgerError):
            world.platform.ledger.hold(operator)
    assert everything(world.store) == before
    assert world.platform.ledger.balance(acct.external("BTC", "attacker")).minor == 0


def test_forged_amount_and_huge_metadata_are_named_errors(world):
    from core.base.errors import AmountOverflowError, InvalidArgumentError
    from core.ledger.money import Amount

    before = everything(world.store)
    with pytest.raises(AmountOverflowError):
        Amount(asset="BTC", minor=2**70, scale=8)
    forged = Amount.model_construct(asset="BTC", minor=2**70, scale=8)
    with pytest.raises(AmountOverflowError):
        world.platform.ledger.place_hold(hold_id="forged-1", source=acct.user_available("alice", "BTC"),
                                         held=acct.user_locked("alice", "BTC"), amount=forged, actor="ann")
    with pytest.raises(InvalidArgumentError):
        world.platform.ledger.place_user_hold(hold_id="huge-meta", user_id="alice", asset="BTC", amount="0.1",
                                              actor="ann", metadata={"x": 2**70})
    assert everything(world.store) == before


def test_untyped_assets_and_principals_are_named_errors(world):
    from core.base.errors import InvalidPrincipalError, UnknownAssetError

    for asset in (None, 123, {"$ne": ""}, "btc"):
        with pytest.raises(UnknownAssetError):
            withdrawal.request_withdrawal(world.platform, SYSTEM, user_id="alice", asset=asset, amount="0.1",
                                          destination="x", idempotency_key="hostile-asset")
    for principal in (None, {"name": "admin", "role": "admin"}, "admin"):
        with pytest.raises(InvalidPrincipalError):
            approvals.approve(world.platform, principal, world.valid["request_id"], "ok")


def test_look_alike_names_are_refused(world):
    from core.base.errors import InvalidAccountError, InvalidEntryError, InvalidPrincipalError
    from core.ledger.entries import make_request

    with pytest.raises(InvalidAccountError):
        acct.user_available("alice\n", "BTC")
    with pytest.raises(InvalidEntryError):
        make_request(idempotency_key="k\n", type="test", actor="ann", postings=())
    with pytest.raises(InvalidPrincipalError):
        Principal(name="admin\n", role=Role.ADMIN)
    with pytest.raises(InvalidAccountError):
        withdrawal.request_withdrawal(world.platform, SYSTEM, user_id="alice\n", asset="BTC", amount="0.1",
                                      destination="x", idempotency_key="hostile-lookalike")


def test_look_alike_principal_cannot_approve_its_own_request(world):
    """A principal "admin\\n" once approved a request made by "admin" (maker-checker bypass)."""
    from core.base.errors import InvalidPrincipalError
    from core.flows import treasury

    maker = Principal(name="admin", role=Role.ADMIN)
    request = treasury.request_liquidity_topup(world.platform, maker, asset="BTC", amount="1", reason="float",
                                               idempotency_key="hostile-lookalike-approval")
    before = everything(world.store)
    for forged in (Principal.model_construct(name="admin\n", role=Role.ADMIN),
                   Principal.model_construct(name="admin ", role=Role.ADMIN),
                   Principal.model_construct(name="system", role=Role.ADMIN)):
        with pytest.raises(InvalidPrincipalError):
            approvals.approve(world.platform, forged, request["_id"], "looks fine")
    assert everything(world.store) == before
    assert approvals.get_approval(world.platform, ADMIN, request["_id"])["state"] == "pending"
