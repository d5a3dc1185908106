"""What must hold after every store operation, and at quiescence (EXACTLY_ONCE.md).

Read straight from the raw collections (no fault hook, no operation log), while every
actor is stopped at a gate, so the checker sees one consistent state.
"""

from __future__ import annotations

from collections import defaultdict

from core.ledger.accounts import AccountKind, parse_account_id
from core.ledger.audit import event_hash, order_key
from core.ledger.entries import GENESIS_HASH
from core.ledger.simulation.scheduler import Violation
from core.ledger.store import Store
from core.ledger.stripes import logical_id, part_range


class JournalView:
    """The checker's copy of the journal and the audit streams, refreshed only when they
    grew (entries are immutable apart from the `unprojected` flag, which the checks do not
    read; audit events are immutable)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entries: dict[str, dict] = {}
        self.events: list[dict] = []
        self.versions_seen: dict[str, int] = {}

    def refresh(self) -> None:
        raw = self.store.raw("entries")
        if raw.count_documents({}) != len(self.entries):
            self.entries = {d["_id"]: d for d in raw.find({}, {"unprojected": 0})}
        audit = self.store.raw("audit")
        if audit.count_documents({}) != len(self.events):
            self.events = list(audit.find({}))

    def chains(self) -> dict[str, dict[int, tuple[dict, dict]]]:
        """account → version → (entry, posting)."""
        chains: dict[str, dict[int, tuple[dict, dict]]] = defaultdict(dict)
        for entry in self.entries.values():
            for posting in entry["postings"]:
                version = posting["version"]
                if version in chains[posting["account"]]:
                    raise Violation(f"two entries claim {posting['account']}@{version}: "
                                    f"{chains[posting['account']][version][0]['_id']} and {entry['_id']}")
                chains[posting["account"]][version] = (entry, posting)
        return chains


def check_state(view: JournalView) -> None:
    """After every write: one entry per idempotency key; per account the claimed versions
    are 1..n with exact running balances and hash links; the projection sits at version
    n or n-1 (never further behind, never ahead, never moving backwards) and equals the
    journal prefix it claims; no constrained account is negative anywhere."""
    view.refresh()
    keys = [e["idempotency_key"] for e in view.entries.values()]
    if len(keys) != len(set(keys)):
        raise Violation("an idempotency key was journaled twice")
    chains = view.chains()
    balances = {d["_id"]: d for d in view.store.raw("balances").find({})}
    for account_id in set(chains) | set(balances):
        _check_account(account_id, chains.get(account_id, {}), balances.get(account_id), view.versions_seen)
    _check_holds_closed_once(view)
    _check_audit_streams(view)
    _check_flags(view, balances)


def _check_flags(view: JournalView, balances: dict[str, dict]) -> None:
    """The `unprojected` flag is cleared only once every leg is in: an unflagged entry whose
    projection lags is one no recovery will ever find."""
    flagged = {d["_id"] for d in view.store.raw("entries").find({"unprojected": True}, {"_id": 1})}
    for entry_id, entry in view.entries.items():
        if entry_id in flagged:
            continue
        for posting in entry["postings"]:
            version = (balances.get(posting["account"]) or {}).get("version", 0)
            if not isinstance(version, int) or version < posting["version"]:
                raise Violation(f"entry {entry_id} is no longer flagged unprojected but {posting['account']} "
                                f"is at version {version} of its claim {posting['version']}")


def _check_holds_closed_once(view: JournalView) -> None:
    """A hold closes by exactly one entry (release or consume, never both)."""
    closes: dict[str, list[str]] = defaultdict(list)
    for entry in view.entries.values():
        if entry.get("hold_id") is not None and entry.get("hold_action") in ("release", "consume"):
            closes[entry["hold_id"]].append(f"{entry['hold_action']} {entry['_id']}")
    for hold_id, closing in closes.items():
        if len(closing) > 1:
            raise Violation(f"hold {hold_id} was closed {len(closing)} times: {sorted(closing)}")


def _check_audit_streams(view: JournalView) -> None:
    """Every audit stream is one unbroken chain: sequence numbers 1..n, each event once,
    each linked to its predecessor, hashes and order keys exact; each event key once."""
    streams: dict[object, dict[int, dict]] = defaultdict(dict)
    keys: set[str] = set()
    for event in view.events:
        stream, seq = event.get("stream"), event.get("seq")
        if seq in streams[stream]:
            raise Violation(f"two audit events share stream {stream} seq {seq}")
        streams[stream][seq] = event
        if event["event_key"] in keys:
            raise Violation(f"audit event key {event['event_key']} was recorded twice")
        keys.add(event["event_key"])
    for stream, events in streams.items():
        prev_hash = GENESIS_HASH
        for seq in range(1, len(events) + 1):
            event = events.get(seq)
            if event is None:
                raise Violation(f"audit stream {stream} has no seq {seq} but {len(events)} events")
            if event["prev_hash"] != prev_hash or event_hash(event, prev_hash) != event["hash"]:
                raise Violation(f"audit stream {stream} seq {seq} does not follow its predecessor")
            if event["order"] != order_key(event["at"], stream, seq):
                raise Violation(f"audit stream {stream} seq {seq} has a wrong order key")
            prev_hash = event["hash"]


def _check_account(account_id: str, chain: dict[int, tuple[dict, dict]], balance: dict | None, seen: dict[str, int]) -> None:
    account = parse_account_id(account_id)
    running, prev_hash = 0, GENESIS_HASH
    for version in range(1, len(chain) + 1):
        if version not in chain:
            raise Violation(f"{account_id}: versions are not contiguous (no claim of version {version})")
        entry, posting = chain[version]
        running += posting["amount_minor"]
        if posting["balance_after"] != running:
            raise Violation(f"{account_id}@{version}: entry {entry['_id']} records {posting['balance_after']}, "
                            f"the postings before it sum to {running}")
        if posting["prev_hash"] != prev_hash:
            raise Violation(f"{account_id}@{version}: entry {entry['_id']} does not link to the previous entry")
        if running < 0 and not account.may_go_negative:
            raise Violation(f"{account_id}@{version}: entry {entry['_id']} takes a constrained account to {running}")
        low, high = part_range(account)
        if not low <= running <= high:
            raise Violation(f"{account_id}@{version}: entry {entry['_id']} takes a stored part out of its range ({running})")
        prev_hash = entry["entry_hash"]
    version = balance["version"] if balance else 0
    if version < seen.get(account_id, 0):
        raise Violation(f"{account_id}: projection moved back from version {seen[account_id]} to {version}")
    seen[account_id] = version
    if not (len(chain) - 1 <= version <= len(chain)):
        raise Violation(f"{account_id}: projection at version {version} but {len(chain)} versions are claimed")
    if balance is not None:
        want = chain[version][1]["balance_after"] if version else 0
        want_hash = chain[version][0]["entry_hash"] if version else GENESIS_HASH
        if balance["balance_minor"] != want or balance.get("head_hash") != want_hash:
            raise Violation(f"{account_id}: projection holds {balance['balance_minor']} at version {version}, "
                            f"the journal prefix says {want}")
        if balance["balance_minor"] < 0 and not account.may_go_negative:
            raise Violation(f"{account_id}: projection is negative ({balance['balance_minor']})")


def check_quiescent(view: JournalView) -> None:
    """After the final recovery: every entry projected, money conserved per asset."""
    check_state(view)
    chains = view.chains()
    balances = {d["_id"]: d for d in view.store.raw("balances").find({})}
    per_asset: dict[str, int] = defaultdict(int)
    for account_id, chain in chains.items():
        version = balances.get(account_id, {}).get("version", 0)
        if version != len(chain):
            raise Violation(f"{account_id}: after recovery the projection is at version {version} of {len(chain)}")
    for balance in balances.values():
        per_asset[balance["asset"]] += balance["balance_minor"]
    for asset, total in per_asset.items():
        if total != 0:
            raise Violation(f"{asset}: all accounts sum to {total}, not zero")
    if view.store.raw("entries").count_documents({"unprojected": True}):
        raise Violation("recovery left entries flagged unprojected")
    _check_holds_exact(view, balances)


HELD_KINDS = (AccountKind.USER_LOCKED.value, AccountKind.LIQUIDITY_RESERVED.value)


def _check_holds_exact(view: JournalView, balances: dict[str, dict]) -> None:
    """Holds move exactly what they placed: a closing entry takes the placed amount off the
    held account, and every held account (a user's locked balance, the float's reserved side,
    all stripes added up) equals the open holds on it."""
    placed: dict[str, dict] = {}
    closed: dict[str, dict] = {}
    for entry in view.entries.values():
        if entry.get("hold_id") is not None:
            (placed if entry.get("hold_action") == "place" else closed)[entry["hold_id"]] = entry
    held: dict[str, int] = defaultdict(int)
    for hold_id, place in placed.items():
        credit = [p for p in place["postings"] if p["amount_minor"] > 0]
        if credit[0]["kind"] not in HELD_KINDS:
            continue  # P2P escrow closes by its trade's entries: the flows' own checks judge it
        account, amount_minor = logical_id(credit[0]["account"]), sum(p["amount_minor"] for p in credit)
        close = closed.get(hold_id)
        if close is None:
            held[account] += amount_minor
            continue
        taken = -sum(p["amount_minor"] for p in close["postings"] if logical_id(p["account"]) == account)
        if taken != amount_minor:
            raise Violation(f"hold {hold_id} placed {amount_minor} on {account}, its {close['hold_action']} took {taken}")
    actual: dict[str, int] = defaultdict(int)
    for account_id, balance in balances.items():
        if balance["kind"] in HELD_KINDS:
            actual[logical_id(account_id)] += balance["balance_minor"]
    for account in set(held) | set(actual):
        if held.get(account, 0) != actual.get(account, 0):
            raise Violation(f"{account} holds {actual.get(account, 0)}, its open holds add up to {held.get(account, 0)}")
