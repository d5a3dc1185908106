"""The benchmark's synthetic data sets: one chunk built through the public services, and
larger sets made of renamed copies of it.

The embedded store (mongomock) scans a whole collection on every query, so building
10,000 entries through the services would take many minutes and measure nothing that
transfers to a real server. Instead one chunk (`ChunkSize`) is built through the real
flows — deposits, swaps, instant buys and sells, withdrawals (one awaiting approval),
P2P trades, expired quotes, an adjustment, liquidity top-ups through approvals — and the
larger data set is that chunk plus renamed copies loaded with `insert_many`:

- every id is renamed per copy: user ids `u#####` shift by the chunk's user count; flow,
  approval and entry ids and audit event keys get fresh hex (a deterministic function of
  the original id and the copy number, so every reference stays consistent);
- every account's chain is threaded again over all copies (posting protocol v2): versions,
  `balance_after`, `prev_hash`, `claims` and `entry_hash` recomputed in the chunk's chain
  order, copy after copy — platform-owned accounts (fees, liquidity, external...) are
  shared by all copies, so their chains run through every copy — and the balance
  projections are the heads of those chains; the audit chain is re-linked (sequence
  numbers continue, `prev_hash`/`hash` chained again);
- derived collections (rollups, integrity runs and anchors, ledger anchors) are not
  copied: the rollups are bulk-loaded from the copied journal.

The result passes the platform integrity check like a data set built entirely through the
services (the benchmark reports that check's findings), with distinct ids everywhere.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from core import approvals
from core.audit import GENESIS_HASH, event_hash
from core.ledger.audit import order_key
from core.base.clock import ManualClock
from core import rollups
from core.ledger.entries import entry_hash
from core.base.errors import LedgerError
from core.flows import adjustment, deposit, instant, p2p, quotes, swap, treasury, withdrawal
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from core.ledger.selfcheck import scan
from core.ledger.store import Store

START = datetime(2026, 10, 1, 0, 0, 0)
MAKER = Principal(name="bench-maker", role=Role.ADMIN)
CHECKERS = (Principal(name="bench-checker-1", role=Role.ADMIN), Principal(name="bench-checker-2", role=Role.ADMIN))
INSERT_BATCH_SIZE = 2_000
REFERRED_SHARE = 0.4
GOLDEN_EVERY = 17
FLOAT_TOP_UP = {"USDT": "5000000", "BTC": "200", "GBP": "2000000", "ETH": "2000"}
TREASURY_ROUNDS = 6  # 24 top-ups: more than the Fees page lists, as on any platform with a history
DERIVED = ("integrity_runs", "integrity_state", "ledger_anchors", "rollups", "rollup_heads", "rollup_totals",
           "rollup_passes", "rollup_state", "balances")  # recomputed for the copies, never copied
# Ids the clone renames: user ids, flow/approval ids, entry ids, random audit event keys.
ID_PATTERN = re.compile(r"\b(?:u(?P<user>\d{5})|(?P<flow>dep|wd|q|p2p|apr)_(?P<flow_hex>[0-9a-f]{24})"
                        r"|E(?P<entry_time>\d{17})(?P<entry_hex>[0-9a-f]{10})|evt:(?P<event_hex>[0-9a-f]{32}))\b")


@dataclass(frozen=True)
class ChunkSize:
    users: int
    deposits_per_user: int
    actions_per_user: int
    seed: int = 2026


@dataclass
class Chunk:
    """What the chunk build produced, for the benchmark to reuse."""

    platform: Platform
    clock: ManualClock
    user_ids: list[str]
    unreferred: list[str]
    refusals: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    busiest: str = ""  # the user with the most holds (set by the benchmark)


def user_id_of(number: int) -> str:
    return f"u{number:05d}"


def approve_fully(platform: Platform, approval: dict) -> dict:
    """Approve with distinct checkers until the request executes (1 or 2 approvers)."""
    for checker in CHECKERS:
        if approval["state"] != "pending":
            break
        approval = approvals.approve(platform, checker, approval["_id"], "benchmark")
    return approval


def seed_directory(store: Store, user_ids: list[str], rng: random.Random) -> list[str]:
    """`users` and `user_accounts` (referral chains inside the chunk). Returns the users without a referrer."""
    users, accounts, unreferred = [], [], []
    for index, user_id in enumerate(user_ids):
        referred_by = rng.choice(user_ids[:index]) if index >= 3 and rng.random() < REFERRED_SHARE else None
        users.append({"user_id": user_id, "email": f"{user_id}@example.com", "name": f"Bench User {index + 1}",
                      "created_at": START - timedelta(days=30), "status": "active"})
        accounts.append({"user_id": user_id, "referred_by": referred_by,
                         "referral_tier": "golden" if (index + 1) % GOLDEN_EVERY == 0 else "standard"})
        if referred_by is None:
            unreferred.append(user_id)
    store.collection("users").insert_many(users)
    store.collection("user_accounts").insert_many(accounts)
    return unreferred


def fund(platform: Platform, user_id: str, asset: str, amount: str, key: str) -> dict:
    """A confirmed chain deposit (the real flow)."""
    return deposit.record_deposit(platform, SYSTEM, user_id=user_id, asset=asset, amount=amount, provider="bench",
                                  payment_id=key, confirmations=platform.config.confirmations_for(asset),
                                  idempotency_key=key)


def _money(rng: random.Random, low: int, high: int, scale: int) -> str:
    return str(Decimal(rng.randint(low, high)).scaleb(-scale))


def _actions(platform: Platform, clock: ManualClock, rng: random.Random, user: str, other: str,
             key: str) -> dict[str, Callable[[], object]]:
    """One user action of each kind, as closures over fresh idempotency keys."""
    def swap_usdt() -> None:
        q = swap.quote_swap(platform, SYSTEM, user_id=user, from_asset="USDT", to_asset="BTC",
                            amount=_money(rng, 50, 300, 0), idempotency_key=f"{key}-swap")
        swap.execute_swap(platform, SYSTEM, quote_id=q["_id"], user_id=user)

    def buy() -> None:
        q = instant.quote_instant_buy(platform, SYSTEM, user_id=user, asset="BTC", pay_asset="GBP",
                                      spend=_money(rng, 50, 300, 0), idempotency_key=f"{key}-buy")
        instant.execute_instant(platform, SYSTEM, quote_id=q["_id"], user_id=user)

    def sell() -> None:
        q = instant.quote_instant_sell(platform, SYSTEM, user_id=user, asset="BTC", receive_asset="GBP",
                                       amount=_money(rng, 10, 50, 4), idempotency_key=f"{key}-sell")
        instant.execute_instant(platform, SYSTEM, quote_id=q["_id"], user_id=user)

    def withdraw() -> None:
        withdrawal.request_withdrawal(platform, SYSTEM, user_id=user, asset="USDT", amount=_money(rng, 20, 200, 0),
                                      destination=f"addr-{user}", idempotency_key=f"{key}-wd")

    def trade() -> None:
        t = p2p.open_trade(platform, SYSTEM, seller=user, buyer=other, asset="USDT", amount=_money(rng, 20, 200, 0),
                           fiat_amount="GBP", idempotency_key=f"{key}-p2p")
        p2p.mark_paid(platform, SYSTEM, trade_id=t["_id"], buyer=other)
        p2p.release_trade(platform, SYSTEM, trade_id=t["_id"], seller=user)

    def expired_quote() -> None:
        q = swap.quote_swap(platform, SYSTEM, user_id=user, from_asset="BTC", to_asset="USDT",
                            amount=_money(rng, 10, 90, 4), idempotency_key=f"{key}-lapse")
        clock.advance(platform.config.quote_ttl + timedelta(seconds=1))
        quotes.expire_quote(platform, SYSTEM, q["_id"])

    return {"swap": swap_usdt, "instant_buy": buy, "instant_sell": sell, "withdrawal": withdraw, "p2p": trade,
            "expired_quote": expired_quote}


ACTION_WEIGHTS = {"swap": 3, "instant_buy": 2, "instant_sell": 2, "withdrawal": 2, "p2p": 2, "expired_quote": 1}


def build_chunk(size: ChunkSize, store: Store) -> Chunk:
    """Build one chunk through the public services in `store` (deterministic but for entry ids)."""
    rng = random.Random(size.seed)
    clock = ManualClock(START)
    platform = Platform.open(store, clock)
    user_ids = [user_id_of(n) for n in range(1, size.users + 1)]
    chunk = Chunk(platform, clock, user_ids, seed_directory(store, user_ids, rng))
    for round_number in range(TREASURY_ROUNDS):  # a history of top-ups: the Fees page's recent list is full
        for asset, value in FLOAT_TOP_UP.items():
            request = treasury.request_liquidity_topup(platform, MAKER, asset=asset, amount=value, reason="benchmark float",
                                                       idempotency_key=f"topup-{user_ids[0]}-{asset}-{round_number}")
            approve_fully(platform, request)
    for user in user_ids:
        for number in range(size.deposits_per_user):
            asset, value = [("USDT", _money(rng, 2000, 8000, 0)), ("BTC", _money(rng, 5, 40, 2)),
                            ("GBP", _money(rng, 1000, 5000, 0))][number % 3]
            clock.advance(timedelta(minutes=rng.randint(1, 20)))
            fund(platform, user, asset, value, f"pay-{user}-{number}")
    names, weights = list(ACTION_WEIGHTS), list(ACTION_WEIGHTS.values())
    for round_number in range(size.actions_per_user):
        for index, user in enumerate(user_ids):
            clock.advance(timedelta(minutes=rng.randint(1, 30)))
            name = rng.choices(names, weights)[0]
            other = user_ids[(index + 1 + rng.randrange(len(user_ids) - 1)) % len(user_ids)]
            try:
                _actions(platform, clock, rng, user, other, f"act-{user}-{round_number}")[name]()
                chunk.actions[name] = chunk.actions.get(name, 0) + 1
            except LedgerError:
                chunk.refusals += 1
        quotes.expire_due_quotes(platform, SYSTEM)  # the sweep a live platform runs: quotes a refusal left open
    _leave_open_work(platform, clock, user_ids)
    quotes.expire_due_quotes(platform, SYSTEM)
    return chunk


PENDING_REQUESTS_PER_CHUNK = 26  # one Approvals page (25 rows) and one more, in every chunk


def _leave_open_work(platform: Platform, clock: ManualClock, user_ids: list[str]) -> None:
    """What a live platform always has: a withdrawal awaiting approval, an open trade, an
    executed adjustment and a queue of pending ones (more than one Approvals page, so the page
    reads a full page at every size and documents read compare like with like)."""
    first, second = user_ids[0], user_ids[1 % len(user_ids)]
    clock.advance(timedelta(minutes=5))
    fund(platform, first, "USDT", "30000", f"pay-{first}-large")
    withdrawal.request_withdrawal(platform, SYSTEM, user_id=first, asset="USDT", amount="12000",
                                  destination=f"addr-{first}", idempotency_key=f"open-{first}-wd")
    if second != first:
        p2p.open_trade(platform, SYSTEM, seller=first, buyer=second, asset="USDT", amount="25",
                       idempotency_key=f"open-{first}-p2p")
    done = adjustment.request_adjustment(platform, MAKER, user_id=first, asset="USDT", amount="10",
                                         reason="goodwill credit", idempotency_key=f"adj-{first}-done")
    approve_fully(platform, done)
    adjustment.request_adjustment(platform, MAKER, user_id=second, asset="USDT", amount="-5", reason="fee correction",
                                  idempotency_key=f"adj-{second}-open")
    for number in range(PENDING_REQUESTS_PER_CHUNK):  # a full Approvals page at every size: the page reads one page
        adjustment.request_adjustment(platform, MAKER, user_id=user_ids[number % len(user_ids)], asset="USDT", amount="1",
                                      reason="goodwill credit", idempotency_key=f"adj-{first}-queue-{number}")


# -- copies ---------------------------------------------------------------------------------------------
def dump(store: Store) -> dict[str, list[dict]]:
    """Every document of every collection, in `_id` order."""
    return {name: list(scan(store.collection(name))) for name in store.collection_names()}


def _renamer(copy: int, users_per_chunk: int) -> Callable[[re.Match], str]:
    def fresh_hex(token: str, length: int) -> str:
        return hashlib.sha256(f"copy{copy}:{token}".encode()).hexdigest()[:length]

    def rename(match: re.Match) -> str:
        token = match.group(0)
        if match.group("user"):
            return user_id_of(int(match.group("user")) + copy * users_per_chunk)
        if match.group("flow"):
            return f"{match.group('flow')}_{fresh_hex(token, 24)}"
        if match.group("entry_time"):
            return f"E{match.group('entry_time')}{fresh_hex(token, 10)}"
        return f"evt:{fresh_hex(token, 32)}"
    return rename


def _renamed(value: object, rename: Callable[[re.Match], str]) -> object:
    if isinstance(value, str):
        return ID_PATTERN.sub(rename, value)
    if isinstance(value, dict):
        return {key: _renamed(item, rename) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, rename) for item in value]
    return value


def copy_of(original: dict[str, list[dict]], copy: int, users_per_chunk: int) -> dict[str, list[dict]]:
    """Copy number `copy` (≥ 1) of a dumped chunk: ids renamed (chains are threaded again
    and the audit chain re-linked by `build_copies`). Documents with a store-made `_id` get a new one."""
    rename = _renamer(copy, users_per_chunk)
    result: dict[str, list[dict]] = {}
    for name, documents in original.items():
        if name in DERIVED:
            continue
        renamed = []
        for document in documents:
            copied = _renamed(document, rename)
            if not isinstance(document["_id"], str):
                copied.pop("_id")
            renamed.append(copied)
        result[name] = renamed
    return result


def chain_order(entries: list[dict]) -> list[int]:
    """Indexes of `entries` in an order that respects every account's versions (each entry
    after the entries that claimed the earlier versions of its accounts)."""
    owner = {(p["account"], p["version"]): index for index, e in enumerate(entries) for p in e["postings"]}
    order, done, visiting = [], set(), set()
    for start in sorted(range(len(entries)), key=lambda i: (entries[i]["created_at"], entries[i]["_id"])):
        stack = [start]
        while stack:
            index = stack[-1]
            if index in done:
                stack.pop()
                continue
            waiting = [owner[(p["account"], p["version"] - 1)] for p in entries[index]["postings"]
                       if p["version"] > 1 and owner.get((p["account"], p["version"] - 1)) not in done
                       and (p["account"], p["version"] - 1) in owner]
            if waiting and index not in visiting:
                visiting.add(index)
                stack.extend(waiting)
                continue
            stack.pop()
            done.add(index)
            order.append(index)
    return order


def thread_chains(entries: list[dict], heads: dict[str, dict]) -> None:
    """Give `entries` (in chain order) the next versions of their accounts after `heads`
    (account → {version, balance_minor, head_hash}, updated in place), with balances after,
    previous hashes, claims and entry hashes recomputed."""
    for entry in entries:
        for posting in entry["postings"]:
            head = heads.setdefault(posting["account"], {"version": 0, "balance_minor": 0, "head_hash": "0" * 64,
                                                         "kind": posting["kind"], "owner": posting["owner"],
                                                         "asset": posting["asset"]})
            posting["version"] = head["version"] + 1
            posting["balance_after"] = head["balance_minor"] + posting["amount_minor"]
            posting["prev_hash"] = head["head_hash"]
        entry["claims"] = [f"{p['account']}@{p['version']}" for p in entry["postings"]]
        entry.pop("unprojected", None)
        entry.pop("unfolded", None)
        entry["entry_hash"] = entry_hash(entry)
        for posting in entry["postings"]:
            heads[posting["account"]].update(version=posting["version"], balance_minor=posting["balance_after"],
                                             head_hash=entry["entry_hash"])


def link_audit(events: list[dict], heads: dict[int, dict]) -> list[dict]:
    """Continue each audit stream after its head so far (`heads`: stream → newest event,
    updated in place): new sequence numbers, order keys and hashes."""
    linked = []
    for event in sorted(events, key=lambda e: (e["stream"], e["seq"])):
        head = heads.get(event["stream"])
        seq, prev_hash = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS_HASH)
        event = dict(event, seq=seq, prev_hash=prev_hash, order=order_key(event["at"], event["stream"], seq))
        event["hash"] = event_hash(event, prev_hash)
        heads[event["stream"]] = event
        linked.append(event)
    return linked


def build_copies(original: dict[str, list[dict]], copies: int, users_per_chunk: int, target: Store) -> None:
    """Load the chunk plus `copies - 1` renamed copies into the empty store `target`, every
    account chain threaded through the copies, then the balances (chain heads) and rollups.

    mongomock checks a unique index by scanning the collection on every insert, which makes
    a bulk load quadratic; so the indexes are dropped for the load and created again after
    it (creating a unique index checks every document once, so distinct ids are proven)."""
    for name in target.collection_names():
        target.raw(name).drop_indexes()
    order = chain_order(original.get("entries", []))
    heads: dict[str, dict] = {}
    audit_heads: dict[int, dict] = {}
    for event in sorted(original.get("audit", []), key=lambda e: (e["stream"], e["seq"])):
        audit_heads[event["stream"]] = event
    for copy in range(copies):
        copied = {name: [dict(d) for d in documents] for name, documents in original.items() if name not in DERIVED} \
            if copy == 0 else copy_of(original, copy, users_per_chunk)
        entries = copied.get("entries", [])
        entries = [dict(entries[i], postings=[dict(p) for p in entries[i]["postings"]]) for i in order]
        thread_chains(entries, heads)
        copied["entries"] = entries
        for name, documents in copied.items():
            if name == "audit" and copy > 0:
                documents = link_audit(documents, audit_heads)
            _insert(target, name, documents)
    _insert(target, "balances", [{"_id": account, **values} for account, values in sorted(heads.items())])
    target.ensure_indexes()
    rollups.bulk_load(target)


def _insert(store: Store, name: str, documents: list[dict]) -> None:
    for start in range(0, len(documents), INSERT_BATCH_SIZE):
        store.collection(name).insert_many([dict(d) for d in documents[start:start + INSERT_BATCH_SIZE]])
