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

from core.ledger import accounts as acct
from core import integrity
from core.base.clock import ManualClock, to_millis
from core.base.errors import ConfigurationError
from core.base.permissions import Principal, Role
from core.platform import Platform
from core.platform.settings import DEMO_SIZE_ENV
from core.ledger import Store
from core.demo.activity import DEMO_ASSETS, DEMO_END, DemoSize, build_demo_legacy, run_activity  # noqa: F401  (DEMO_ASSETS: the data set's assets)

SNAPSHOT_PATH = Path(__file__).resolve().parents[2] / "demo" / "snapshot.json.gz"
SNAPSHOT_DOCUMENTS_MAX = 20_000  # per collection: beyond this the embedded store gets slow
INSERT_BATCH_SIZE = 2_000
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dan", "Ella", "Femi", "Grace", "Hugo", "Isla", "Jack", "Kemi", "Leo",
               "Maya", "Noah", "Olu", "Priya", "Quinn", "Ravi", "Sofia", "Tom", "Uma", "Vik", "Wen", "Yara", "Zane")
LAST_NAMES = ("Adams", "Brown", "Clarke", "Davies", "Evans", "Fraser", "Green", "Hughes", "Iqbal", "Jones",
              "Khan", "Lewis", "Morgan", "Nwosu", "Owen", "Patel", "Reid", "Singh", "Taylor", "Walker")


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
