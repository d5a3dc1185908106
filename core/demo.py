"""Demo data for the embedded store: built once through the real services, loaded fast.

The embedded store scans every collection on every query (see ENVIRONMENT.md), so
generating thousands of entries at console start-up would take minutes. Instead
`python -m core demo seed --out demo/snapshot.json.gz` runs the real flow services with a
`ManualClock` (deterministic: fixed seed, fixed start date) and writes every collection
to a compressed snapshot; the console loads it with `insert_many` in a second or two.
Dates stay as generated: the 60 days of activity end on `DEMO_END` (no shifting), so
"last 60 days" views in the console are relative to that date.

Tests and the browser test use a small live-generated data set instead
(`LEDGER_DEMO_SIZE=small`), which takes a few seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from decimal import Decimal

from core.ledger import accounts as acct
from core import approvals, integrity
from core.legacy import rebuild as legacy_rebuild
from core.clock import ManualClock, to_millis
from core.errors import ConfigurationError, LedgerError
from core.flows import adjustment, deposit, instant, p2p, quotes, swap, treasury, withdrawal
from core.ledger import from_minor
from core.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from core.ledger import Store

DEMO_SIZE_ENV = "LEDGER_DEMO_SIZE"
SNAPSHOT_PATH = Path(__file__).resolve().parent.parent / "demo" / "snapshot.json.gz"
DEMO_END = datetime(2026, 11, 1, 0, 0, 0)
SNAPSHOT_DOCUMENTS_MAX = 20_000  # per collection: beyond this the embedded store gets slow
INSERT_BATCH_SIZE = 2_000
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dan", "Ella", "Femi", "Grace", "Hugo", "Isla", "Jack", "Kemi", "Leo",
               "Maya", "Noah", "Olu", "Priya", "Quinn", "Ravi", "Sofia", "Tom", "Uma", "Vik", "Wen", "Yara", "Zane")
LAST_NAMES = ("Adams", "Brown", "Clarke", "Davies", "Evans", "Fraser", "Green", "Hughes", "Iqbal", "Jones",
              "Khan", "Lewis", "Morgan", "Nwosu", "Owen", "Patel", "Reid", "Singh", "Taylor", "Walker")


@dataclass(frozen=True)
class DemoSize:
    users: int
    days: int
    seed: int = 2026


SIZES: dict[str, DemoSize] = {
    "full": DemoSize(users=120, days=60),
    "small": DemoSize(users=12, days=4),
}


def user_id_of(number: int) -> str:
    return f"u{number:04d}"


def seed_directory(store: Store, size: DemoSize, rng: random.Random, start: datetime) -> list[str]:
    """Seed `users` {user_id, email, name} and `user_accounts` {user_id, referred_by,
    referral_tier}: referral chains (each user may be referred by an earlier one) and a few
    golden-tier referrers. No password fields: the directory never has them in the demo."""
    users, accounts, ids = [], [], []
    for number in range(1, size.users + 1):
        user_id = user_id_of(number)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        users.append({"user_id": user_id, "email": f"{first.lower()}.{last.lower()}{number}@example.com",
                      "name": f"{first} {last}", "created_at": start - timedelta(days=rng.randint(1, 400)),
                      "country": rng.choice(("GB", "GB", "GB", "IE", "NG", "DE")), "status": "active"})
        referred_by = user_id_of(rng.randint(1, number - 1)) if number > 3 and rng.random() < 0.45 else None
        tier = "golden" if number % 17 == 0 else "standard"
        accounts.append({"user_id": user_id, "referred_by": referred_by, "referral_tier": tier})
        ids.append(user_id)
    store.collection("users").insert_many(users)
    store.collection("user_accounts").insert_many(accounts)
    return ids


# -- snapshot ------------------------------------------------------------------------------------
def _encode(value: object, floats_allowed: bool = False) -> object:
    """JSON-ready copy; datetimes tagged. Floats exist only in the legacy database (its dirt)."""
    if isinstance(value, datetime):
        return {"$dt": value.strftime("%Y-%m-%dT%H:%M:%S.%f")}
    if isinstance(value, dict):
        return {key: _encode(item, floats_allowed) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item, floats_allowed) for item in value]
    assert floats_allowed or not isinstance(value, float), "no floats in the ledger's documents"
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.strptime(value["$dt"], "%Y-%m-%dT%H:%M:%S.%f")
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _portable(document: dict) -> dict:
    """Drop a server-made ObjectId `_id` (audit events, legacy documents): the loading
    store makes a new one, in the same insertion order; nothing refers to it."""
    if isinstance(document.get("_id"), (str, int)):
        return document
    return {key: value for key, value in document.items() if key != "_id"}


def _dump(store: Store, floats_allowed: bool) -> dict[str, list]:
    from core.ledger import scan

    collections: dict[str, list] = {}
    for name in store.collection_names():
        documents = list(scan(store.collection(name)))
        if len(documents) > SNAPSHOT_DOCUMENTS_MAX:
            raise ConfigurationError(f"{name} has {len(documents)} documents; the snapshot allows {SNAPSHOT_DOCUMENTS_MAX}")
        collections[name] = [_encode(_portable(d), floats_allowed) for d in documents]
    return collections


def write_snapshot(platform: Platform, path: Path, meta: dict) -> dict[str, int]:
    """Write every collection (sorted by `_id`, deterministic) to gzip JSON, the legacy
    database beside the ledger's — with no entry flagged `unprojected` (everything is
    projected and confirmed first, so loading it leaves recovery nothing to do).
    Returns document counts."""
    report = platform.ledger.recover()
    if report.poisoned:
        raise ConfigurationError(f"the demo ledger has entries that cannot be projected: {sorted(report.poisoned)[:5]}")
    collections = _dump(platform.store, floats_allowed=False)
    legacy = _dump(platform.legacy, floats_allowed=True) if platform.legacy is not None else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"meta": meta, "collections": collections, "legacy": legacy}, sort_keys=True, separators=(",", ":"))
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream:
        stream.write(payload.encode())  # no name, no time in the header: same data, same bytes
    return {name: len(documents) for name, documents in collections.items()}


def load_snapshot(store: Store, path: Path) -> tuple[dict, Store | None]:
    """Insert a snapshot's collections into an empty embedded store (and its legacy
    database into a sibling). Returns (meta, legacy store or None).
    Raises: ConfigurationError for a missing snapshot or a non-embedded store."""
    if not store.embedded:
        raise ConfigurationError("demo data goes only into the embedded store")
    if not path.exists():
        raise ConfigurationError(f"no demo snapshot at {path}: run `python -m core demo seed`")
    with gzip.open(path, "rb") as stream:
        payload = json.loads(stream.read().decode())
    _insert_all(store, payload["collections"])
    legacy = None
    if payload.get("legacy"):
        legacy = store.sibling("legacy")
        _insert_all(legacy, payload["legacy"])
    return payload["meta"], legacy


def _insert_all(store: Store, collections: dict[str, list]) -> None:
    """Bulk-load, then build the indexes. mongomock checks a unique index by scanning the
    collection on every insert (quadratic: ~30 s for the demo); building the indexes once
    afterwards checks uniqueness in one pass (<1 s) and still refuses duplicates."""
    assert store.embedded, "demo data goes only into the embedded store"
    for name in collections:
        store.raw(name).drop_indexes()
    for name, documents in collections.items():
        for start in range(0, len(documents), INSERT_BATCH_SIZE):
            store.collection(name).insert_many([_decode(d) for d in documents[start:start + INSERT_BATCH_SIZE]])
    store.ensure_indexes()


# -- generation ------------------------------------------------------------------------------------
@dataclass
class DemoSummary:
    users: int
    entries: int
    meta: dict


def generate(size: DemoSize, store: Store | None = None) -> tuple[Platform, DemoSummary]:
    """Build the demo data set in a fresh embedded store through the real services."""
    store = store or Store.embedded_store("demo")
    rng = random.Random(size.seed)
    start = DEMO_END - timedelta(days=size.days)
    clock = ManualClock(start)
    platform = Platform.open(store, clock)
    user_ids = seed_directory(store, size, rng, start)
    activity = run_activity(platform, clock, user_ids, size, rng)
    meta = {"generated_for": DEMO_END.strftime("%Y-%m-%d"), "users": size.users, "days": size.days, "seed": size.seed, **activity}
    return platform, DemoSummary(size.users, store.collection("entries").count_documents({"state": {"$in": ["applied", "rejected"]}}), meta)


class DemoClock:
    """The demo's time: the data's last moment, then moving on with the wall clock, so
    console actions get real, increasing times and requests still expire (after hours)."""

    def __init__(self, start: datetime) -> None:
        self._start, self._origin = start, time.monotonic()

    def now(self) -> datetime:
        return to_millis(self._start + timedelta(seconds=time.monotonic() - self._origin))


def open_demo_platform(store: Store, size_name: str) -> Platform:
    """The console's embedded platform: the committed snapshot, or a live-generated size.
    Raises: ConfigurationError for an unknown size or a missing snapshot."""
    if size_name == "snapshot":
        meta, legacy = load_snapshot(store, SNAPSHOT_PATH)
    elif size_name in SIZES:
        generated, summary = generate(SIZES[size_name], store)
        meta, legacy = summary.meta, generated.legacy
    else:
        raise ConfigurationError(f"{DEMO_SIZE_ENV} must be 'snapshot' or one of {', '.join(SIZES)}")
    # the console's time starts a second after the data's last moment, so nothing done in the console (support's
    # check of the planted fault, first of all) shares a millisecond with the stored history it must sort after
    platform = Platform.open(store, DemoClock(datetime.strptime(meta["clock_end"], "%Y-%m-%dT%H:%M:%S") + CONSOLE_CLOCK_GAP))
    platform.legacy = legacy
    if size_name == "snapshot":
        plant_projection_drift(platform)
    return platform


DRIFT_ACCOUNT_KIND = acct.AccountKind.USER_AVAILABLE
DRIFT_ASSET = "BTC"
DRIFT_MINOR = 1
SUPPORT_MAKER = Principal(name="support", role=Role.SUPPORT)
CONSOLE_CLOCK_GAP = timedelta(seconds=1)


def plant_projection_drift(platform: Platform) -> str:
    """The one deliberate fault of the console demo: a user's BTC projection is moved one
    satoshi behind the engine's back — what the old platform's direct `$set` writers did —
    and support has asked for it to be rebuilt from the journal. So the Integrity page has a
    true finding to show and the Approvals queue holds a projection repair.
    Returns the account id."""
    first = platform.store.collection("balances").find(
        {"kind": DRIFT_ACCOUNT_KIND.value, "asset": DRIFT_ASSET, "balance_minor": {"$gt": DRIFT_MINOR}},
        sort=[("_id", 1)], limit=1)
    assert first, "the demo snapshot has BTC holders"
    account_id = first[0]["_id"]
    platform.store.collection("balances").update_one({"_id": account_id}, {"$inc": {"balance_minor": DRIFT_MINOR}})
    integrity.check_platform(platform, SUPPORT_MAKER, full=True)  # support's check found it (the newest stored run)...
    integrity.request_projection_repair(platform, SUPPORT_MAKER, account_id,  # ...and asked for the repair
                                        "demo: BTC balance written outside the ledger by a legacy code path")
    return account_id


def cmd_demo_seed(args: argparse.Namespace) -> int:
    size = SIZES[args.size]
    if args.users or args.days:
        size = DemoSize(users=args.users or size.users, days=args.days or size.days, seed=size.seed)
    platform, summary = generate(size)
    counts = write_snapshot(platform, Path(args.out), summary.meta)
    print(json.dumps({"out": args.out, "collections": counts, "meta": summary.meta}, indent=2, sort_keys=True))
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="demo data for the embedded store")
    actions = demo.add_subparsers(dest="demo_command", required=True)
    seed = actions.add_parser("seed", help="generate demo data through the real services and write a snapshot")
    seed.add_argument("--out", default=str(SNAPSHOT_PATH))
    seed.add_argument("--size", choices=sorted(SIZES), default="full")
    seed.add_argument("--users", type=int, default=0)
    seed.add_argument("--days", type=int, default=0)
    seed.set_defaults(handler=cmd_demo_seed)




# -- activity through the real flow services ----------------------------------------------------------
DEMO_ASSETS = ("BTC", "ETH", "USDT", "USDC", "SOL", "LTC", "GBP")
FLOAT_TOP_UP = {"BTC": "40", "ETH": "600", "USDT": "2500000", "USDC": "1500000", "SOL": "12000", "LTC": "20000", "GBP": "2000000"}
DEPOSIT_RANGE_MAJOR = {"BTC": ("0.01", "0.8"), "ETH": ("0.1", "9"), "USDT": ("50", "9000"), "USDC": ("50", "7000"),
                       "SOL": ("1", "90"), "LTC": ("1", "90"), "GBP": ("20", "5000")}
EVENT_WEIGHTS = (("deposit", 5), ("withdrawal", 3), ("swap", 4), ("instant_buy", 3), ("instant_sell", 2),
                 ("p2p", 3), ("expired_quote", 1))
TREASURY_MAKER = Principal(name="ops.treasury", role=Role.ADMIN)
CHECKERS = (Principal(name="admin2", role=Role.ADMIN), Principal(name="ops.checker", role=Role.ADMIN))
DISPUTE_DESK = Principal(name="ops.disputes", role=Role.ADMIN)


class _Activity:
    """Drives the flows for the demo; counts what happened and what core refused."""

    def __init__(self, platform: Platform, clock: ManualClock, user_ids: list[str], rng: random.Random) -> None:
        self.platform, self.clock, self.user_ids, self.rng = platform, clock, user_ids, rng
        self.counts: dict[str, int] = {}
        self.serial = 0

    def key(self, what: str) -> str:
        self.serial += 1
        return f"demo:{what}:{self.serial}"

    def attempt(self, name: str, action) -> object:
        """Run one flow step; a refusal (insufficient funds, a moved price...) is part of life."""
        try:
            result = action()
        except LedgerError as error:
            self.counts[f"refused.{error.code}"] = self.counts.get(f"refused.{error.code}", 0) + 1
            return None
        self.counts[name] = self.counts.get(name, 0) + 1
        return result

    def amount_text(self, asset: str, low: str, high: str) -> str:
        scale = self.platform.registry.get(asset).scale
        step = 10 ** max(scale - 4, 0)  # keep demo amounts readable (at most 4 decimals)
        low_minor, high_minor = (int(Decimal(v) * 10 ** scale) for v in (low, high))
        return from_minor(self.rng.randint(low_minor // step, high_minor // step) * step, asset, self.platform.registry).text()

    def available(self, user_id: str, asset: str) -> int:
        return self.platform.ledger.balance(acct.user_available(user_id, asset)).minor

    def share_of(self, user_id: str, asset: str, low: int, high: int) -> str | None:
        """A random `low`..`high` percent of the user's available balance, or None if empty."""
        minor = self.available(user_id, asset) * self.rng.randint(low, high) // 100
        step = 10 ** max(self.platform.registry.get(asset).scale - 4, 0)
        minor = minor // step * step
        return from_minor(minor, asset, self.platform.registry).text() if minor > 0 else None

    def approve(self, request: dict | None) -> None:
        for checker in CHECKERS:
            if request is None or request.get("state") != "pending":
                return
            request = self.attempt("approval.approve", lambda c=checker: approvals.approve(self.platform, c, request["_id"], "demo: checked"))

    def held_asset(self, user_id: str) -> str | None:
        held = [a for a, b in self.platform.ledger.user_balances(user_id).items() if b.available.minor > 0]
        return self.rng.choice(held) if held else None

    # -- one event of each kind ------------------------------------------------------------------
    def deposit(self, user_id: str, asset: str | None = None) -> None:
        asset = asset or self.rng.choice(DEMO_ASSETS)
        value = self.amount_text(asset, *DEPOSIT_RANGE_MAJOR[asset])
        payment = self.key("payment")
        self.attempt("deposit", lambda: deposit.record_deposit(
            self.platform, SYSTEM, user_id=user_id, asset=asset, amount=value, provider="demo-chain", payment_id=payment,
            confirmations=self.platform.config.confirmations_for(asset), idempotency_key=payment))

    def withdrawal(self, user_id: str) -> None:
        asset = self.held_asset(user_id)
        value = asset and self.share_of(user_id, asset, 5, 30)
        if value:
            self.attempt("withdrawal", lambda: withdrawal.request_withdrawal(
                self.platform, SYSTEM, user_id=user_id, asset=asset, amount=value, destination=f"addr-{user_id}-{asset.lower()}",
                idempotency_key=self.key("withdrawal")))

    def swap(self, user_id: str) -> None:
        asset = self.held_asset(user_id)
        value = asset and self.share_of(user_id, asset, 10, 40)
        if value:
            target = self.rng.choice([a for a in DEMO_ASSETS if a != asset])
            quote = self.attempt("swap.quote", lambda: swap.quote_swap(self.platform, SYSTEM, user_id=user_id, from_asset=asset,
                                                                          to_asset=target, amount=value, idempotency_key=self.key("swap")))
            if quote:
                self.attempt("swap", lambda: swap.execute_swap(self.platform, SYSTEM, quote_id=quote["_id"], user_id=user_id))

    def instant(self, user_id: str, side: str, execute: bool = True) -> None:
        if side == "buy":
            pay = self.rng.choice(("GBP", "USDT"))
            spend = self.share_of(user_id, pay, 10, 40)
            asset = self.rng.choice(("BTC", "ETH", "SOL", "LTC"))
            make = spend and (lambda: instant.quote_instant_buy(self.platform, SYSTEM, user_id=user_id, asset=asset, pay_asset=pay,
                                                                spend=spend, idempotency_key=self.key("buy")))
        else:
            asset = self.rng.choice(("BTC", "ETH", "SOL", "LTC"))
            value = self.share_of(user_id, asset, 10, 50)
            make = value and (lambda: instant.quote_instant_sell(self.platform, SYSTEM, user_id=user_id, asset=asset,
                                                                 receive_asset=self.rng.choice(("GBP", "USDT")), amount=value,
                                                                 idempotency_key=self.key("sell")))
        quote = make and self.attempt(f"instant_{side}.quote", make)
        if quote and execute:
            self.attempt(f"instant_{side}", lambda: instant.execute_instant(self.platform, SYSTEM, quote_id=quote["_id"], user_id=user_id))

    def expired_quote(self, user_id: str) -> None:
        self.instant(user_id, "buy", execute=False)  # left open: the expiry sweep returns the reservation
        self.clock.advance(self.platform.config.quote_ttl + timedelta(seconds=1))
        self.attempt("quote.expiry_sweep", lambda: quotes.expire_due_quotes(self.platform, SYSTEM))

    def p2p(self, seller: str, ending: str = "") -> dict | None:
        held = [a for a in DEMO_ASSETS if a != "GBP" and self.available(seller, a) > 0]  # P2P sells crypto for fiat
        asset = self.rng.choice(held) if held else "BTC"
        value = self.share_of(seller, asset, 10, 50)
        buyer = self.rng.choice([u for u in self.user_ids if u != seller])
        trade = value and self.attempt("p2p.open", lambda: p2p.open_trade(self.platform, SYSTEM, seller=seller, buyer=buyer, asset=asset,
                                                                          amount=value, fiat_amount=f"GBP {self.rng.randint(20, 9000)}",
                                                                          idempotency_key=self.key("p2p")))
        if not trade or ending == "open":
            return trade
        ending = ending or self.rng.choice(("release",) * 6 + ("cancel", "dispute_buyer", "dispute_seller"))
        trade_id = trade["_id"]
        if ending == "cancel":
            return self.attempt("p2p.cancel", lambda: p2p.cancel_trade(self.platform, SYSTEM, trade_id=trade_id, user_id=buyer))
        self.clock.advance(timedelta(minutes=self.rng.randint(2, 20)))
        trade = self.attempt("p2p.paid", lambda: p2p.mark_paid(self.platform, SYSTEM, trade_id=trade_id, buyer=buyer))
        if ending == "paid" or trade is None:
            return trade
        if ending == "release":
            return self.attempt("p2p.release", lambda: p2p.release_trade(self.platform, SYSTEM, trade_id=trade_id, seller=seller))
        trade = self.attempt("p2p.dispute", lambda: p2p.open_dispute(self.platform, SYSTEM, trade_id=trade_id, user_id=buyer,
                                                                      reason="seller says no payment arrived"))
        if ending == "dispute" or trade is None:
            return trade
        side = "buyer" if ending == "dispute_buyer" else "seller"
        return self.attempt("p2p.resolve", lambda: p2p.resolve_dispute(self.platform, DISPUTE_DESK, trade_id=trade_id, to=side,
                                                                        reason=f"bank statement checked: {side} is right"))

    # -- treasury and approvals ---------------------------------------------------------------------
    def treasury(self, kind: str, asset: str, value: str, approve: bool = True) -> dict | None:
        request_of = {"topup": treasury.request_liquidity_topup, "sweep": treasury.request_fee_sweep,
                      "withdraw": treasury.request_liquidity_withdrawal}[kind]
        request = self.attempt(f"treasury.{kind}.request", lambda: request_of(
            self.platform, TREASURY_MAKER, asset=asset, amount=value, reason=f"demo: {kind} {value} {asset}", idempotency_key=self.key(kind)))
        if approve:
            self.approve(request)
        return request

    def sweep_fees(self, share_percent: int = 60) -> None:
        for asset in DEMO_ASSETS:
            minor = self.platform.ledger.balance(acct.fees(asset)).minor * share_percent // 100
            if minor > 0:
                self.treasury("sweep", asset, from_minor(minor, asset, self.platform.registry).text())

    def adjustment(self, user_id: str, approve: bool = True) -> dict | None:
        asset = self.rng.choice(("GBP", "USDT"))
        request = self.attempt("adjustment.request", lambda: adjustment.request_adjustment(
            self.platform, TREASURY_MAKER, user_id=user_id, asset=asset, amount=self.amount_text(asset, "5", "50"),
            reason="demo: goodwill credit after a support ticket", idempotency_key=self.key("adjustment")))
        if approve:
            self.approve(request)
        return request

    def day(self, number: int, events: int) -> None:
        kinds, weights = zip(*EVENT_WEIGHTS)
        for _ in range(events):
            self.clock.advance(timedelta(minutes=self.rng.randint(5, 1440 // max(events, 1))))
            user_id = self.rng.choice(self.user_ids)
            kind = self.rng.choices(kinds, weights)[0]
            if kind in ("instant_buy", "instant_sell"):
                self.instant(user_id, kind.removeprefix("instant_"))
            else:
                getattr(self, kind)(user_id)
        self.attempt("p2p.timeouts", lambda: p2p.cancel_timed_out(self.platform, SYSTEM))
        if number % 14 == 13:
            self.sweep_fees()
        if number % 9 == 4:
            self.adjustment(self.rng.choice(self.user_ids))

    def final_state(self) -> None:
        """What the console should have to show on the last day: open and paid P2P trades,
        open disputes, and pending approvals of every kind a person can request."""
        sellers = [u for u in self.user_ids if self.platform.ledger.user_balances(u)]
        for ending in ("open", "open", "open", "paid", "paid", "dispute", "dispute"):
            self.p2p(self.rng.choice(sellers), ending)
        rich = max(self.user_ids, key=lambda u: self.available(u, "BTC"))
        big = self.share_of(rich, "BTC", 95, 95)
        if big and Decimal(big) > self.platform.config.approval_threshold["BTC"]:
            self.attempt("withdrawal.pending", lambda: withdrawal.request_withdrawal(
                self.platform, SYSTEM, user_id=rich, asset="BTC", amount=big, destination="bc1-demo-cold-storage",
                idempotency_key=self.key("withdrawal")))
        self.attempt("deposit.manual.pending", lambda: deposit.request_manual_deposit(
            self.platform, TREASURY_MAKER, user_id=self.rng.choice(self.user_ids), asset="GBP", amount="2500.00",
            reference="FPS 7731-2290", reason="bank transfer seen on the statement", idempotency_key=self.key("manual")))
        self.adjustment(self.rng.choice(self.user_ids), approve=False)
        fee_asset = "USDT"
        fee_minor = self.platform.ledger.balance(acct.fees(fee_asset)).minor // 2
        if fee_minor > 0:
            self.treasury("sweep", fee_asset, from_minor(fee_minor, fee_asset, self.platform.registry).text(), approve=False)
        self.treasury("topup", "ETH", "150", approve=False)
        self.treasury("withdraw", "GBP", "250000", approve=False)
        rejected = self.treasury("topup", "SOL", "999999", approve=False)
        if rejected:
            self.attempt("approval.reject", lambda: approvals.reject(self.platform, CHECKERS[0], rejected["_id"], "amount looks like a typo"))


def run_activity(platform: Platform, clock: ManualClock, user_ids: list[str], size: DemoSize, rng: random.Random) -> dict:
    """Every flow type over `size.days` days, with the ManualClock moving through each day."""
    activity = _Activity(platform, clock, user_ids, rng)
    for asset in DEMO_ASSETS:
        activity.treasury("topup", asset, FLOAT_TOP_UP[asset])
    for user_id in user_ids:  # everyone starts with one or two deposits
        for asset in rng.sample(DEMO_ASSETS, rng.randint(1, 2)):
            clock.advance(timedelta(minutes=rng.randint(1, 30)))
            activity.deposit(user_id, asset)
    events_per_day = max(4, size.users // 5)
    for number in range(size.days):
        clock.set(DEMO_END - timedelta(days=size.days - number))
        activity.day(number, events_per_day)
        if number in (size.days // 3, 2 * size.days // 3):
            activity.attempt("integrity.run", lambda: integrity.check_platform(platform, CHECKERS[1]))
    clock.set(DEMO_END - timedelta(hours=2))
    activity.final_state()
    legacy_note = build_demo_legacy(platform, activity)
    clock.set(DEMO_END)
    activity.attempt("integrity.run", lambda: integrity.check_platform(platform, CHECKERS[1]))
    return {"clock_end": clock.now().strftime("%Y-%m-%dT%H:%M:%S"), "legacy": legacy_note,
            "events": dict(sorted(activity.counts.items()))}


def build_demo_legacy(platform: Platform, activity: _Activity) -> str:
    """A legacy database mirroring the ledger with a little planted drift (core.legacy.fixture),
    and a pending rebuild request for it. Returns a note for the snapshot's meta."""
    try:
        from core.legacy.fixture import build_legacy_fixture
    except ImportError:
        return "unavailable: core.legacy.fixture is not installed"
    legacy = platform.store.sibling("legacy")
    manifest = build_legacy_fixture(legacy, ledger_platform=platform)
    platform.legacy = legacy
    people = legacy.collection("users").find({"user_id": {"$in": manifest.users}}, limit=len(manifest.users),
                                              projection={"_id": 0, "user_id": 1, "email": 1, "name": 1})
    platform.store.collection("users").insert_many([{**person, "status": "active", "country": "GB"} for person in people])
    platform.store.collection("user_accounts").insert_many([{"user_id": u, "referred_by": None, "referral_tier": "standard"} for u in manifest.users])
    activity.attempt("legacy.rebuild.pending", lambda: legacy_rebuild.request_rebuild(
        platform, TREASURY_MAKER, legacy, "demo: rewrite the drifted legacy balances from the ledger"))
    return "built"
