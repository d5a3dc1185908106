"""Every index the product declares, by collection, and the record of one store round
trip. The store creates the indexes; the planner (core.ledger.planner) judges each
recorded operation against them, as a real server's planner would."""

from __future__ import annotations

from dataclasses import dataclass, field

Term = tuple[str, str]  # (field, how it is matched: eq, in, null, range, prefix, regex, other)


@dataclass(frozen=True)
class IndexSpec:
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    sparse: bool = False  # only documents that have the field are indexed (e.g. a flag)

    @property
    def name(self) -> str:
        return "_".join(f"{key}_{direction}" for key, direction in self.keys)


def _index(*keys: str, unique: bool = False, sparse: bool = False) -> IndexSpec:
    return IndexSpec(tuple((key.lstrip("-"), -1 if key.startswith("-") else 1) for key in keys), unique, sparse)


# Documents whose state change still has its audit event to append (every flow and approval).
OUTBOX_INDEX = _index("audit_outbox.event_key", sparse=True)
# What the sweeps over finished flows (quotes, P2P trades, withdrawals) look up.
FINISHED_FLOW_INDEXES = (
    _index("state", "referral_done"),  # finished flows whose referral commission is still owed
    _index("state", "hold_placers"),  # terminal flows a hold may still be placed behind (core.flows.holds)
    OUTBOX_INDEX,
)

# Every index the product needs, by collection. Created idempotently by `ensure_indexes`;
# the index-coverage check accepts a query only if one of these (or `_id`) serves it.
INDEXES: dict[str, list[IndexSpec]] = {
    "entries": [
        _index("idempotency_key", unique=True),
        _index("claims", unique=True),  # "<account>@<version>": one entry owns each version
        _index("unprojected", "_id", sparse=True),  # entries recovery still has to confirm, in id order
        _index("unfolded", "_id", sparse=True),  # entries core.rollups has not folded yet, in id order
        # (field, created_at, _id): the pages sort by (created_at, _id), served without a blocking sort
        _index("accounts", "-created_at", "-_id"),
        _index("user_ids", "-created_at", "-_id"),
        _index("user_ids", "hold_action", "-created_at", "-_id"),  # a user's hold placements, newest first (open_holds)
        _index("type", "-created_at", "-_id"),
        _index("state", "created_at", "_id"),
        _index("-created_at", "-_id"),
        _index("hold_id", "-created_at", "-_id"),
        _index("flow_ref", "-created_at", "-_id"),
        _index("accounts", "_id"),  # scans of one account's entries in id order (repairs)
        _index("user_ids", "_id"),  # the per-user integrity check's scan
    ],
    "balances": [
        _index("owner", "asset", "kind"),  # a user's balances; every stored part of one logical account (core.ledger.stripes)
        _index("kind", "asset"),
        _index("kind", "_id"),  # scans of one kind in id order
    ],
    "audit": [  # core.ledger.audit: streams of hash chains; `order` = time, stream, seq (display order)
        _index("stream", "seq", unique=True),
        _index("event_key", unique=True),
        _index("-order"),  # the trail newest first; a time window is a range of `order`
        _index("actor", "-order"),
        _index("type", "-order"),
        _index("family", "-order"),  # "approval.*": every type of a family, newest first
        _index("target", "-order"),
        _index("user", "-order"),
    ],
    "approvals": [  # core.approvals
        _index("idempotency_key", unique=True),
        _index("state", "-requested_at", "-_id"),
        _index("kind", "-requested_at", "-_id"),
        _index("-requested_at", "-_id"),
        _index("state", "expires_at"),  # expire_due: the pending requests that are due
        _index("state", "close_done"),  # expire_due: close hooks a crash cut short
        _index("state", "result"),  # resume_approved: approved without a result (null: a whole-value key)
        _index("state", "result.ok"),  # resume_approved: approved with a failed result
        _index("state", "approvals.by"),  # resume_approved: pending requests that carry votes
        OUTBOX_INDEX,
    ],
    "quotes": [  # core.flows.quotes
        _index("state", "expires_at"),
        _index("state", "_id"),  # sweeps scan a state in id order
        _index("user", "-created_at"),
        *FINISHED_FLOW_INDEXES,
    ],
    "p2p_trades": [  # core.flows.p2p
        _index("state", "payment_due_at"),
        _index("state", "_id"),
        _index("seller", "-created_at"),
        _index("buyer", "-created_at"),
        *FINISHED_FLOW_INDEXES,
    ],
    "withdrawals": [  # core.flows.withdrawal
        _index("state", "created_at"),
        _index("state", "_id"),
        _index("user", "-created_at"),
        *FINISHED_FLOW_INDEXES,
    ],
    "deposits": [  # core.flows.deposit
        _index("state", "created_at"),
        _index("state", "_id"),
        _index("user", "-created_at"),
        OUTBOX_INDEX,
    ],
    "users": [  # the exchange's user directory (read-only, not ours to constrain; core.platform.directory)
        _index("user_id"),
        _index("email"),
        _index("name"),
    ],
    "directory_search": [_index("keys", "_id")],  # our search keys, built from `users` (core.platform.directory)
    "user_accounts": [  # referral data (read-only; core.platform.directory)
        _index("user_id"),
        _index("referred_by", "user_id"),
    ],
    "ledger_anchors": [  # core.ledger.anchor: account heads fixed by integrity runs, one anchor's chunks in order
        _index("anchor", "_id"),
    ],
    "integrity_runs": [  # core.integrity
        _index("-started_at", "-_id"),
        _index("scope", "-started_at", "-_id"),
    ],
    "rollups": [_index("generation", "account", "day"), _index("generation", "logical", "day"),  # core.rollups: per stored account and day
                _index("generation", "_id")],
    "rollup_heads": [_index("generation", "_id")],
    "rollup_totals": [_index("generation", "kind", "asset"), _index("generation", "_id")],
    "rollup_passes": [_index("generation", "pass")],
    "liabilities_snapshots": [_index("-taken_at")],  # core.liabilities
    "liabilities_leaves": [_index("snapshot_id", "asset", "chunk")],
    "liabilities_users": [_index("snapshot_id", "user_id")],
    "liabilities_reserves": [_index("asset", "-as_of"), _index("-declared_at")],
    "liabilities_user_secrets": [_index("generation")],  # re-issued verification secrets (never the secret)
    # The legacy platform's collections (core.legacy, on LEGACY_DB): never unique — its
    # data has duplicates, and the bridge must read it as it is.
    "wallets": [_index("user_id", "currency")],
    "crypto_balances": [_index("user_id", "currency")],
    "trader_balances": [_index("trader_id", "currency")],
    "internal_balances": [_index("user_id", "currency")],
}


@dataclass(frozen=True)
class OperationRecord:
    """One store round trip: collection, operation, the shape of its query and what it read.

    `branches` is the filter in disjunctive form: one conjunction of (field, how) terms per
    `$or` branch (one branch without `$or`), so each branch can be judged on its own;
    `sort` the requested order with directions. `documents` counts the documents the
    operation returned or matched; `keys_examined`, `documents_examined` and `index` are
    what a real server would examine and use (`core.ledger.planner.examine`), filled in
    only while the log's `examine` is on (none of these is part of the shape: equal shapes
    compare equal)."""

    collection: str
    operation: str
    filter_fields: tuple[str, ...]
    sort_fields: tuple[str, ...]
    branches: tuple[tuple[Term, ...], ...] = ((),)
    sort: tuple[tuple[str, int], ...] = ()
    documents: int = field(default=0, compare=False)
    keys_examined: int | None = field(default=None, compare=False)
    documents_examined: int | None = field(default=None, compare=False)
    index: str | None = field(default=None, compare=False)
