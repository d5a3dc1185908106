"""A realistic dirty legacy database, generated in code (tests, the demo, the flow runner).

`build_legacy_fixture(store, ledger_platform=None, seed=...)` writes the old platform's
collections (LEGACY_PLATFORM.md) into `store` and returns a `FixtureManifest` naming what
was planted: every kind of dirt the production dump showed (float noise, int32 zeros,
duplicates, `user_id` "None", missing fields, timestamps as dates / ISO with offsets / two
naive formats, suffixed currency codes, PLATFORM_FEES counter documents, system owners,
money as text, an unknown currency) and drift of known size between the collections.

With `ledger_platform`, the true balances are also booked in that ledger (deposits, and a
hold for the locked part), so the ledger is the reference and the planted drift is exactly
what reconcile must find.

Floats: the old platform stored BSON doubles, so this generator writes doubles on purpose
(that is the dirt under test). They never reach the ledger: the bridge converts each one
with `Decimal(repr(x))` at the boundary.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from core.ledger import accounts as acct
from core.ledger import make_request
from core.ledger import DEFAULT_REGISTRY, from_minor
from core.ledger import Store

USERS_COUNT = 8
TRADERS = range(2, 6)  # users who also have trader_balances
INTERNAL_USERS = range(0, 6)  # users who also have internal_balances
CRYPTO_ASSETS = ("BTC", "ETH", "USDT")
FIXTURE_ACTOR = "legacy-fixture"
BASE_TIME = datetime(2025, 6, 1, 12, 0, 0)


@dataclass(frozen=True)
class PlantedDrift:
    user: str
    currency: str
    collection: str
    field: str
    expected_minor: int
    actual_minor: int

    @property
    def difference_minor(self) -> int:
        return self.actual_minor - self.expected_minor


@dataclass
class FixtureManifest:
    """What the generator planted, for tests and the demo to check against."""

    seed: int
    users: list[str]
    truth: dict[tuple[str, str], tuple[int, int]]  # (user, asset) → (available, locked) minor units
    drift: list[PlantedDrift] = field(default_factory=list)
    noise: list[tuple[str, str, str, str]] = field(default_factory=list)  # (collection, user, asset, field)
    dirt: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, collection, owner)
    system_owners: tuple[str, ...] = ("admin_wallet", "PLATFORM_TREASURY_WALLET", "PLATFORM_FEES", "ADMIN_LIQUIDITY")
    documents: dict[str, int] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # password hashes and salts written to `users`
    booked_in_ledger: bool = False


def _double(minor: int, asset: str) -> float:
    scale = DEFAULT_REGISTRY.get(asset).scale
    return float(Decimal(minor).scaleb(-scale))


def _noisy(value: float) -> float:
    """The next double up: the binary noise the old writers left (e.g. 0.0015300000000000001)."""
    return math.nextafter(value, math.inf)


class _Writer:
    """Collects documents per collection before one insert_many each."""

    def __init__(self, manifest: FixtureManifest) -> None:
        self.manifest, self.documents = manifest, {}
        self.stale: list[dict] = []  # planted duplicates: never compared, so their noise is not reported

    def add(self, collection: str, document: dict) -> dict:
        self.documents.setdefault(collection, []).append(document)
        return document


def _compute_noise(writer: _Writer, users: list[str]) -> None:
    """Every money field of a compared user document whose double carries sub-minor noise."""
    from core.legacy.bridge import SPECS, normalise_currency

    for name, spec in SPECS.items():
        for document in writer.documents.get(name, []):
            owner = document.get(spec.owner_field)
            asset, _ = normalise_currency(document.get("currency"), DEFAULT_REGISTRY)
            if owner not in users or asset is None or any(document is stale for stale in writer.stale):
                continue
            for stored in spec.fields.values():
                value = document.get(stored)
                if isinstance(value, float):
                    exact = Decimal(repr(value)).scaleb(DEFAULT_REGISTRY.get(asset).scale)
                    if exact != exact.to_integral_value():
                        writer.manifest.noise.append((name, owner, asset, stored))


def _truth(rng: random.Random, users: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    truth = {}
    for index, user in enumerate(users):
        assets = ["BTC", "USDT"] + (["ETH"] if index < 4 or index == 7 else []) + (["GBP"] if 2 <= index <= 5 else [])
        for asset in assets:
            scale = DEFAULT_REGISTRY.get(asset).scale
            unit = 10 ** (scale - 2)  # a hundredth of a major unit, in minor units (every scale here is ≥ 2)
            available = rng.randint(1, 99_999) * unit + (rng.randint(0, unit - 1) if unit > 1 else 0)
            locked = rng.randint(1, 500) * unit if index % 2 or asset == "ETH" else 0
            truth[(user, asset)] = (available, locked)
    truth[(users[7], "ETH")] = (0, 0)  # an emptied balance: the old code wrote int32 zeros
    return truth


def _timestamp(index: int, shape: int) -> object:
    moment = BASE_TIME + timedelta(hours=index)
    return [
        moment,
        moment.replace(tzinfo=timezone(timedelta(hours=1))).isoformat(),
        moment.strftime("%Y-%m-%d %H:%M:%S"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%f"),
    ][shape % 4]


def _balance_documents(writer: _Writer, users: list[str], truth: dict) -> None:
    for number, ((user, asset), (available, locked)) in enumerate(sorted(truth.items())):
        index = users.index(user)
        total = available + locked
        zero = 0 if locked == 0 and index % 2 == 0 else _double(locked, asset)  # int32 zeros
        wallet_total = _double(available, asset) + (
            _double(locked, asset) if locked else 0.0
        )  # float sum: natural noise
        wallet = writer.add(
            "wallets",
            {
                "user_id": user,
                "currency": asset,
                "available_balance": _double(available, asset),
                "locked_balance": zero,
                "total_balance": wallet_total,
                "created_at": _timestamp(number, 1),
                "last_updated": _timestamp(number + 24, 0),
            },
        )
        if available == 0 and locked == 0:
            wallet.update(available_balance=0, total_balance=0)
        if asset in CRYPTO_ASSETS:
            currency = "USDTTRC20" if (index, asset) == (1, "USDT") else asset
            writer.add(
                "crypto_balances",
                {
                    "user_id": user,
                    "currency": currency,
                    "locked_balance": _double(locked, asset),
                    "balance": _double(total, asset),
                    "last_updated": _timestamp(number + 24, 2),
                },
            )
        if index in TRADERS:
            writer.add(
                "trader_balances",
                {
                    "trader_id": user,
                    "currency": asset,
                    "available_balance": _double(available, asset),
                    "locked_balance": _double(locked, asset),
                    "total_balance": _double(total, asset),
                    "updated_at": _timestamp(number + 24, 1),
                },
            )
        if index in INTERNAL_USERS:
            internal = {
                "user_id": user,
                "currency": asset,
                "locked_balance": _double(locked, asset),
                "balance": _double(total, asset),
            }
            if index % 2:
                internal["available_balance"] = _double(available, asset)
            internal["updated_at" if number % 2 else "last_updated"] = _timestamp(number + 24, 3 if number % 2 else 0)
            writer.add("internal_balances", internal)


def _find(writer: _Writer, collection: str, owner: str, asset: str, owner_field: str = "user_id") -> dict:
    return next(d for d in writer.documents[collection] if d.get(owner_field) == owner and d.get("currency") == asset)


def _plant_dirt(writer: _Writer, users: list[str], truth: dict) -> None:
    m = writer.manifest
    # float noise below one minor unit
    for collection, user, asset, name in (
        ("wallets", users[0], "BTC", "available_balance"),
        ("crypto_balances", users[1], "BTC", "balance"),
    ):
        document = _find(writer, collection, user, asset)
        document[name] = _noisy(document[name])
    # duplicates: an older copy (stale numbers) beside the current one
    for collection, user, asset in (("crypto_balances", users[2], "BTC"), ("internal_balances", users[3], "USDT")):
        current = _find(writer, collection, user, asset)
        stale = {k: v for k, v in current.items() if k not in ("updated_at", "last_updated")}
        stale.update({"balance": current["balance"] / 2, "updated_at": BASE_TIME - timedelta(days=30)})
        writer.stale.append(writer.add(collection, stale))
        m.dirt.append(("duplicate", collection, user))
    # `balance` written as the available amount by one writer
    user, asset = next(
        (u, a)
        for (u, a), (_, locked) in sorted(truth.items())
        if locked
        and a in CRYPTO_ASSETS
        and users.index(u) in (0, 1, 6, 7)
        and (users.index(u), a) != (1, "USDT")
        and (u, a) != (users[1], "BTC")
    )
    _find(writer, "crypto_balances", user, asset)["balance"] = _double(truth[(user, asset)][0], asset)
    m.dirt.append(("balance_is_available", "crypto_balances", user))
    # money as text, a missing field, an unparseable timestamp, an unknown currency
    _find(writer, "internal_balances", users[4], "BTC")["locked_balance"] = str(
        Decimal(truth[(users[4], "BTC")][1]).scaleb(-8)
    )
    m.dirt.append(("mixed_type", "internal_balances", users[4]))
    del _find(writer, "trader_balances", users[5], "BTC", "trader_id")["locked_balance"]
    m.dirt.append(("missing_field", "trader_balances", users[5]))
    _find(writer, "wallets", users[6], "USDT")["last_updated"] = "last tuesday"
    m.dirt.append(("bad_timestamp", "wallets", users[6]))
    writer.add(
        "wallets",
        {"user_id": users[0], "currency": "BNB", "available_balance": 1.25, "locked_balance": 0, "total_balance": 1.25},
    )
    m.dirt.append(("unknown_currency", "wallets", users[0]))
    m.dirt += [
        ("suffixed_currency", "crypto_balances", users[1]),
        ("missing_field", "crypto_balances", users[0]),
        ("string_timestamp", "crypto_balances", users[0]),
        ("mixed_type", "wallets", users[0]),
    ]
    # nobody's balances, fee counters, system owners
    writer.add(
        "wallets",
        {"user_id": "None", "currency": "BTC", "available_balance": 0.5, "locked_balance": 0, "total_balance": 0.5},
    )
    writer.add("crypto_balances", {"user_id": "None", "currency": "USDT", "balance": 12.000000000000002})
    m.dirt += [("null_owner", "wallets", "None"), ("null_owner", "crypto_balances", "None")]
    for asset, fees in (("BTC", 0.0015300000000000001), ("USDT", 431.77000000000004)):
        writer.add(
            "internal_balances",
            {
                "user_id": "PLATFORM_FEES",
                "currency": asset,
                "total_fees": fees,
                "swap_fees": fees / 2,
                "instant_buy_fees": fees / 4,
                "referral_commissions_paid": fees / 10,
                "last_updated": BASE_TIME,
            },
        )
        writer.add(
            "wallets",
            {
                "user_id": "admin_wallet",
                "currency": asset,
                "available_balance": fees * 2,
                "locked_balance": 0,
                "total_balance": fees * 2,
                "last_updated": BASE_TIME,
            },
        )
    writer.add(
        "wallets",
        {
            "user_id": "PLATFORM_TREASURY_WALLET",
            "currency": "USDT",
            "available_balance": 250000.0,
            "locked_balance": 0.0,
            "total_balance": 250000.0,
        },
    )
    writer.add(
        "trader_balances",
        {
            "trader_id": "ADMIN_LIQUIDITY",
            "currency": "USDT",
            "available_balance": 50000.0,
            "locked_balance": 0.0,
            "total_balance": 50000.0,
            "updated_at": "2025-06-01T12:00:00+00:00",
        },
    )
    m.dirt += [
        ("fee_counter", "internal_balances", "PLATFORM_FEES"),
        ("system_owner", "wallets", "admin_wallet"),
        ("system_owner", "wallets", "PLATFORM_TREASURY_WALLET"),
        ("system_owner", "trader_balances", "ADMIN_LIQUIDITY"),
    ]


# (user index, asset, collection, stored field(s), logical field, delta in major units)
DRIFT_PLAN = (
    (2, "ETH", "crypto_balances", ("locked_balance",), "locked", Decimal("0.05")),
    (3, "USDT", "trader_balances", ("available_balance", "total_balance"), None, Decimal("-12.5")),
    (4, "BTC", "internal_balances", ("balance",), "total", Decimal("0.001")),
    (5, "GBP", "wallets", ("available_balance", "total_balance"), None, Decimal("10.00")),
)


def _plant_drift(writer: _Writer, users: list[str], truth: dict) -> None:
    for index, asset, collection, names, _, delta in DRIFT_PLAN:
        user, scale = users[index], DEFAULT_REGISTRY.get(asset).scale
        owner_field = "trader_id" if collection == "trader_balances" else "user_id"
        document = _find(writer, collection, user, asset, owner_field)
        available, locked = truth[(user, asset)]
        for name in names:
            expected = {"available_balance": available, "locked_balance": locked}.get(name, available + locked)
            actual = expected + int(delta.scaleb(scale))
            document[name] = _double(actual, asset)
            writer.manifest.drift.append(PlantedDrift(user, asset, collection, name, expected, actual))


def _directory(writer: _Writer, rng: random.Random, users: list[str]) -> None:
    for index, user in enumerate(users):
        password_hash, salt = (
            f"$2b$12${uuid.UUID(int=rng.getrandbits(128)).hex}",
            uuid.UUID(int=rng.getrandbits(128)).hex,
        )
        writer.manifest.secrets += [password_hash, salt]
        writer.add(
            "users",
            {
                "user_id": user,
                "email": f"user{index}@example.com",
                "name": f"Legacy User {index}",
                "password_hash": password_hash,
                "salt": salt,
                "role": "admin" if index == 0 else "user",
                **({"is_admin": True} if index == 0 else {}),
                "created_at": _timestamp(index, index),
            },
        )
        writer.add(
            "user_accounts",
            {
                "user_id": user,
                "referred_by": users[0] if index in (2, 3) else None,
                "referral_tier": "golden" if index == 0 else "standard",
            },
        )
    writer.add(
        "admin_liquidity_wallets",
        {
            "currency": "USDT",
            "balance": 50000.0,
            "available": 49000.0,
            "reserved": 1000.0,
            "created_at": BASE_TIME,
            "updated_at": "2025-06-01 12:00:00",
        },
    )
    writer.add(
        "fee_transactions",
        {
            "user_id": users[2],
            "transaction_type": "swap",
            "fee_type": "swap_fee",
            "amount": 100.0,
            "fee_amount": 1.5,
            "fee_percent": 1.5,
            "admin_fee": 1.2,
            "referrer_commission": 0.30000000000000004,
            "referrer_id": users[0],
            "currency": "USDT",
            "reference_id": "swap_1",
            "timestamp": BASE_TIME,
        },
    )
    writer.add(
        "admin_revenue",
        {
            "revenue_id": "rev_1",
            "source": "swap",
            "revenue_type": "fee",
            "currency": "USDT",
            "amount": 1.5,
            "net_profit": 1.2,
            "referral_commission_paid": 0.3,
            "user_id": users[2],
            "related_transaction_id": "swap_1",
            "timestamp": "2025-06-01T12:00:00+00:00",
        },
    )


def _book_truth(platform, seed: int, truth: dict) -> None:
    """The ledger's side: each true balance as a deposit, the locked part as an open hold."""
    for (user, asset), (available, locked) in sorted(truth.items()):
        if available + locked == 0:
            continue
        value = from_minor(available + locked, asset, platform.registry)
        platform.ledger.post(
            make_request(
                idempotency_key=f"legacy-fixture:{seed}:{user}:{asset}",
                type="deposit",
                actor=FIXTURE_ACTOR,
                postings=(
                    {"account": acct.external(asset), "amount": -value},
                    {"account": acct.user_available(user, asset), "amount": value},
                ),
            )
        )
        if locked:
            platform.ledger.place_user_hold(
                hold_id=f"legacy-fixture:{seed}:{user}:{asset}",
                user_id=user,
                asset=asset,
                amount=from_minor(locked, asset, platform.registry),
                actor=FIXTURE_ACTOR,
            )


def build_legacy_fixture(store: Store, ledger_platform=None, seed: int = 20250601) -> FixtureManifest:
    """Write a dirty legacy database into `store`; book the truth in `ledger_platform` if given.

    Deterministic for a seed. Returns the manifest of what was planted.
    """
    rng = random.Random(seed)
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(USERS_COUNT)]
    truth = _truth(rng, users)
    manifest = FixtureManifest(seed=seed, users=users, truth=truth)
    writer = _Writer(manifest)
    _balance_documents(writer, users, truth)
    _plant_dirt(writer, users, truth)
    _plant_drift(writer, users, truth)
    _directory(writer, rng, users)
    _compute_noise(writer, users)
    for collection, documents in writer.documents.items():
        store.collection(collection).insert_many(documents)
        manifest.documents[collection] = len(documents)
    if ledger_platform is not None:
        _book_truth(ledger_platform, seed, truth)
        manifest.booked_in_ledger = True
    return manifest
