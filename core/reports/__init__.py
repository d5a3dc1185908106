"""Read models for the console: platform totals, fee revenue, alerts.

Totals and fee movements come from the daily rollups (`core.rollups`) plus at most the
entries not folded yet, so a page reads O(days shown + new entries) documents whatever the
size of the journal (issue 15); every time series is bounded by a time window. Amounts
stay integers of minor units; pages format them with `display()`.

The fee wallet (`platform.fees`) and the liquidity float (`platform.liquidity` plus
`platform.liquidity_reserved`) are reported separately on purpose: the old admin page
added them together and showed the treasury float as revenue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.audit import AuditFilter
from core.platform.boundary import boundary, moment, raising
from core.ledger import AccountKind
from core.base.errors import InvalidStateError
from core.ledger import AssetRegistry, from_minor
from core.base.permissions import Permission, Principal, require
from core import rollups
from core.platform import COUNT_SHOWN_MAX, Platform
from core.ledger import STUCK_AFTER, entry_id_floor

REVENUE_WINDOW_MAX = timedelta(days=366)
REVENUE_WINDOW_DEFAULT = timedelta(days=60)
RECENT_TREASURY_MAX = 20  # the Fees page's "recent sweeps and liquidity moves"
STUCK_SCAN_MAX = 200  # entries awaiting recovery the alert looks at (recovery runs at start-up and clears them)
FEE_DEBIT_TYPES = ("referral.commission", "treasury.fee_sweep")  # the only debits of the fee wallet
TREASURY_TYPES = ("treasury.fee_sweep", "treasury.liquidity_topup", "treasury.liquidity_withdrawal")

# Which account kinds make up each column of the per-asset totals.
TOTAL_COLUMNS: dict[str, tuple[AccountKind, ...]] = {
    "user_liabilities": (AccountKind.USER_AVAILABLE, AccountKind.USER_LOCKED),
    "fee_wallet": (AccountKind.FEES,),
    "liquidity_free": (AccountKind.LIQUIDITY,),
    "liquidity_reserved": (AccountKind.LIQUIDITY_RESERVED,),
    "escrow": (AccountKind.ESCROW,),
    "external": (AccountKind.EXTERNAL,),
    "adjustments": (AccountKind.ADJUSTMENTS,),
    "opening": (AccountKind.OPENING,),
}


@dataclass(frozen=True)
class AssetTotals:
    """Per asset, minor units. `external`, `adjustments` and `opening` are counterparties
    (negative when money came in); the other columns are money the platform holds."""

    asset: str
    user_liabilities: int = 0
    fee_wallet: int = 0
    liquidity_free: int = 0
    liquidity_reserved: int = 0
    escrow: int = 0
    external: int = 0
    adjustments: int = 0
    opening: int = 0

    @property
    def liquidity_total(self) -> int:
        return self.liquidity_free + self.liquidity_reserved

    @property
    def zero_sum(self) -> int:
        """Sum of every column: zero when the books balance for this asset."""
        return sum(getattr(self, name) for name in TOTAL_COLUMNS)

    def as_dict(self) -> dict:
        row = {"asset": self.asset, **{name: getattr(self, name) for name in TOTAL_COLUMNS}}
        row["liquidity_total"] = self.liquidity_total
        return row


@dataclass(frozen=True)
class RevenuePoint:
    day: str      # YYYY-MM-DD (UTC)
    asset: str
    entry_type: str
    amount_minor: int  # credits to the fee wallet (>0) or payouts/sweeps (<0)


@dataclass
class Alerts:
    pending_approvals: int | None  # None: approvals are not available on this installation
    stuck_entries: int
    last_integrity: dict | None = None
    notes: list[str] = field(default_factory=list)


def display(minor: int, asset: str, registry: AssetRegistry) -> str:
    """Exact decimal text of a minor-unit amount, e.g. 150000 USDT -> '0.150000'."""
    return from_minor(minor, asset, registry).text()


@boundary
def platform_totals(platform: Platform, principal: Principal) -> list[AssetTotals]:
    """Per asset: user liabilities, fee wallet, liquidity free/reserved, escrow, external...

    From the rollup totals per (kind, asset) plus the entries not folded yet (a constant
    number of reads of bounded size). Raises: PermissionDeniedError.
    """
    require(principal, Permission.READ_PLATFORM)
    kind_to_column = {kind.value: column for column, kinds in TOTAL_COLUMNS.items() for kind in kinds}
    per_asset: dict[str, dict[str, int]] = {}
    for (kind, asset), total in rollups.class_totals(platform.store).items():
        column = kind_to_column.get(kind)
        if column is None:
            continue
        values = per_asset.setdefault(asset, {})
        values[column] = values.get(column, 0) + total
    return [AssetTotals(asset=asset, **per_asset[asset]) for asset in sorted(per_asset)]


def _window(since: datetime, until: datetime) -> None:
    if not isinstance(since, datetime) or not isinstance(until, datetime) or until <= since:
        raise InvalidStateError("the time window needs since < until", since=str(since), until=str(until))
    if until - since > REVENUE_WINDOW_MAX:
        raise InvalidStateError(f"the time window may span at most {REVENUE_WINDOW_MAX.days} days")


@boundary(since=raising(moment, InvalidStateError), until=raising(moment, InvalidStateError))
def fee_movements(platform: Platform, principal: Principal, since: datetime, until: datetime) -> list[RevenuePoint]:
    """Every movement of the fee wallet on the UTC days from `since` to `until` (exclusive),
    grouped by day, asset and entry type — whole days, as the daily rollups keep them.

    Reads the fee accounts' day rollups in the window plus the fee entries not folded yet;
    bounded by the window (at most REVENUE_WINDOW_MAX). Raises: PermissionDeniedError,
    InvalidStateError.
    """
    require(principal, Permission.READ_PLATFORM)
    _window(since, until)
    fee_accounts = [f"{AccountKind.FEES.value}:platform:{code}" for code in platform.registry.codes()]
    last_day = (until - timedelta(microseconds=1)).strftime("%Y-%m-%d")
    rows = rollups.day_rows(platform.store, fee_accounts, since.strftime("%Y-%m-%d"), last_day)
    points = [RevenuePoint(r["day"], r["asset"], r["type"], r["in_minor"] - r["out_minor"]) for r in rows]
    return sorted((p for p in points if p.amount_minor), key=lambda p: (p.day, p.asset, p.entry_type))


def revenue_by_flow(points: list[RevenuePoint]) -> list[dict]:
    """Fee income per (asset, flow) from `fee_movements` output; payouts and sweeps apart."""
    totals: dict[tuple[str, str], int] = {}
    for point in points:
        totals[(point.asset, point.entry_type)] = totals.get((point.asset, point.entry_type), 0) + point.amount_minor
    return [{"asset": asset, "entry_type": entry_type, "amount_minor": minor,
             "kind": "payout" if entry_type in FEE_DEBIT_TYPES else "income"}
            for (asset, entry_type), minor in sorted(totals.items())]


def daily_revenue(points: list[RevenuePoint], asset: str) -> list[dict]:
    """Net fee-wallet change per day for one asset (income minus payouts and sweeps)."""
    days: dict[str, dict[str, int]] = {}
    for point in points:
        if point.asset != asset:
            continue
        day = days.setdefault(point.day, {"income_minor": 0, "payout_minor": 0})
        day["payout_minor" if point.entry_type in FEE_DEBIT_TYPES else "income_minor"] += point.amount_minor
    return [{"day": day, **values, "net_minor": values["income_minor"] + values["payout_minor"]} for day, values in sorted(days.items())]


@boundary
def treasury_entries(platform: Platform, principal: Principal, *, limit: int = RECENT_TREASURY_MAX) -> list[dict]:
    """The latest sweeps and liquidity moves (served by the `type` index), newest first."""
    require(principal, Permission.READ_PLATFORM)
    limit = max(1, min(int(limit), RECENT_TREASURY_MAX))
    documents = platform.store.collection("entries").find(
        {"type": {"$in": list(TREASURY_TYPES)}}, sort=[("created_at", -1)], limit=limit,
        projection={"_id": 1, "type": 1, "created_at": 1, "state": 1, "postings": 1, "actor": 1, "memo": 1},
    )
    return documents


@boundary
def stuck_entries(platform: Platform, now: datetime, stuck_after: timedelta = STUCK_AFTER) -> int:
    """Journaled entries older than `stuck_after` whose projection has not caught up (at most
    STUCK_SCAN_MAX looked at): `python -m core recover` finishes them.

    The sparse `unprojected` index holds the entries in flight (their writers clear the flag in
    batches once projected) and those a crash left; entry ids are time-ordered, so the read
    walks only the flagged entries older than `stuck_after` — however many are in flight now.
    Of those, an entry is stuck when an account's projection is still below the version it
    claimed (a flagged entry whose legs are all in is waiting for its flag to be cleared).
    """
    entries = platform.store.collection("entries").find(
        {"unprojected": True, "_id": {"$lt": entry_id_floor(now - stuck_after)}}, sort=[("unprojected", 1), ("_id", 1)],
        limit=STUCK_SCAN_MAX, projection={"postings.account": 1, "postings.version": 1})
    accounts = sorted({p["account"] for e in entries for p in e.get("postings", [])})
    versions = {d["_id"]: d.get("version", 0) for d in platform.store.collection("balances").find(
        {"_id": {"$in": accounts}}, projection={"version": 1}, limit=max(1, len(accounts)))} if accounts else {}
    return sum(any(versions.get(p["account"], 0) < p.get("version", 0) for p in e.get("postings", [])) for e in entries)


@boundary
def alerts(platform: Platform, principal: Principal) -> Alerts:
    """What needs an admin's attention now: pending approvals, stuck entries, the last
    integrity run. Each part is one bounded, indexed read. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_PLATFORM)
    now = platform.clock.now()
    result = Alerts(pending_approvals=pending_approvals(platform), stuck_entries=stuck_entries(platform, now))
    result.last_integrity = last_integrity(platform, principal)
    if result.stuck_entries:
        result.notes.append(f"{result.stuck_entries} entries are stuck mid-protocol: run `python -m core recover`.")
    if result.last_integrity is not None and not result.last_integrity.get("ok"):
        count = result.last_integrity.get("findings")
        result.notes.append(f"The last integrity run found {count} problem{'' if count == 1 else 's'}: see Integrity.")
    return result


@boundary
def pending_approvals(platform: Platform) -> int | None:
    """Pending maker-checker requests, counted up to COUNT_SHOWN_MAX + 1 (more means "more
    than COUNT_SHOWN_MAX"; served by the approvals `state` index)."""
    return platform.store.collection("approvals").count_documents({"state": "pending"}, limit=COUNT_SHOWN_MAX + 1)


@boundary
def last_integrity(platform: Platform, principal: Principal) -> dict | None:
    """The newest stored platform integrity run as {ok, findings, at, severity, run_id} (the
    run's id lets the Overview link to its findings), or None."""
    from core import integrity  # imported here: integrity builds on the ledger, reports only reads it

    points = integrity.trend(platform, principal, points=1, scope="platform")
    if not points:
        return None
    last = points[-1]
    return {"ok": last["ok"], "findings": last["critical"] + last["warning"], "at": last["started_at"], "severity": last["severity"],
            "run_id": last["run_id"]}


AUDIT_VALUE_FIELDS = ("type", "actor")  # audit fields the console offers as a pick list
AUDIT_VALUES_MAX = 500  # distinct values listed at most
AUDIT_COUNT_MAX = 100_000  # an audit page count is exact up to this


AUDIT_VOCABULARY = "audit_vocabulary"  # the pick lists' values and, per audit stream, the last event folded into them
VOCABULARY_SYNC_MAX = 5_000  # new events one read folds in (a backlog catches up in steps of this)
VOCABULARY_START_UP_STEPS_MAX = 2_000  # the console's start-up folds up to 10 million events in one go


@boundary
def audit_field_values(platform: Platform, principal: Principal, field_name: str) -> list[str]:
    """The distinct values of an audit field (event types, actors), for pick lists.

    Kept in one vocabulary document with, per audit stream, the last sequence number folded
    into it: a read folds in only the events appended since (O(new events), never a scan of
    the trail; a backlog — the first read of a large trail — in steps of VOCABULARY_SYNC_MAX).
    Raises: PermissionDeniedError, InvalidStateError (a field not offered)."""
    require(principal, Permission.READ_AUDIT)
    if field_name not in AUDIT_VALUE_FIELDS:
        raise InvalidStateError(f"audit values are listed for {', '.join(AUDIT_VALUE_FIELDS)} only", field=str(field_name))
    vocabulary = sync_audit_vocabulary(platform)
    return sorted(str(value) for value in vocabulary.get(field_name, []) if isinstance(value, str))[:AUDIT_VALUES_MAX]


def sync_audit_vocabulary(platform: Platform, steps_max: int = 1) -> dict:
    """Fold the events appended since the last sync into the vocabulary (each stream from
    its watermark, at most `steps_max` × VOCABULARY_SYNC_MAX events). Safe beside any number
    of syncs and appenders: values are added with `$addToSet`, watermarks moved with `$max`,
    both order-independent. Returns the vocabulary (fields → values)."""
    collection = platform.store.collection(AUDIT_VOCABULARY)
    state = collection.find_one({"_id": "audit"}) or {}
    values = {name: set(state.get(name) or []) for name in AUDIT_VALUE_FIELDS}
    marks = {int(stream): seq for stream, seq in (state.get("marks") or {}).items()}
    for _ in range(steps_max):
        behind = [(stream, seq) for stream, (seq, _) in sorted(platform.ledger.audit.heads().items()) if seq > marks.get(stream, 0)]
        if not behind:
            break
        branches = [{"stream": stream, "seq": {"$gt": marks.get(stream, 0), "$lte": seq}} for stream, seq in behind]
        events = platform.store.collection("audit").find(
            branches[0] if len(branches) == 1 else {"$or": branches}, sort=[("stream", 1), ("seq", 1)],
            projection={"stream": 1, "seq": 1, **{name: 1 for name in AUDIT_VALUE_FIELDS}}, limit=VOCABULARY_SYNC_MAX)
        if not events:  # a head without its events: the chain was cut (integrity reports it)
            break
        added = {name: sorted({e.get(name) for e in events if isinstance(e.get(name), str)} - values[name]) for name in AUDIT_VALUE_FIELDS}
        moved = {f"marks.{e['stream']}": e["seq"] for e in events}  # sorted by (stream, seq): the last one per stream wins
        collection.update_one({"_id": "audit"}, {"$addToSet": {name: {"$each": items} for name, items in added.items()},
                                                  "$max": moved}, upsert=True)
        for name, items in added.items():
            values[name].update(items)
        marks.update({int(key.split(".")[1]): seq for key, seq in moved.items()})
        if len(events) < VOCABULARY_SYNC_MAX:
            break
    return {name: sorted(items) for name, items in values.items()}


@boundary
def count_audit_events(platform: Platform, principal: Principal, audit_filter: AuditFilter, *,
                       limit: int = COUNT_SHOWN_MAX + 1) -> int:
    """How many events `audit_filter` matches, exact up to `limit` (a count walks the keys
    of the index the filter leads; a time window is a range of `order`). A page counts up to
    COUNT_SHOWN_MAX + 1 and says "more than" past it; the CSV's staleness check counts up to
    the export's own limit. Raises: PermissionDeniedError, InvalidFilterError."""
    require(principal, Permission.READ_AUDIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= AUDIT_COUNT_MAX:
        raise InvalidStateError(f"limit must be 1..{AUDIT_COUNT_MAX}", limit=repr(limit)[:20])
    query = audit_filter.query()
    return platform.store.collection("audit").count_documents(query or {"order": {"$gte": ""}}, limit=limit)
