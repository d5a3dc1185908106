"""What must hold after every store operation, and at quiescence (EXACTLY_ONCE.md).

Read straight from the raw collections (no fault hook, no operation log), while every
actor is stopped at a gate, so the checker sees one consistent state.
"""

from __future__ import annotations

from collections import defaultdict

from core.ledger.accounts import parse_account_id
from core.ledger.entries import GENESIS_HASH
from core.ledger.simulation.scheduler import Violation
from core.ledger.store import Store


class JournalView:
    """The checker's copy of the journal, refreshed only when it grew (entries are
    immutable apart from the `unprojected` flag, which the checks do not read)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entries: dict[str, dict] = {}
        self.versions_seen: dict[str, int] = {}

    def refresh(self) -> None:
        raw = self.store.raw("entries")
        if raw.count_documents({}) != len(self.entries):
            self.entries = {d["_id"]: d for d in raw.find({}, {"unprojected": 0})}

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
