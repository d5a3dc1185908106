"""Per-account hash chains (posting protocol v2), verified a slice at a time.

Each posting carries the account `version` it claimed, the `balance_after` and the
`prev_hash` of that account's previous entry; the balance document holds `version`,
`balance_minor` and `head_hash`. So one account's chain can be verified from any verified
link onwards by reading only the entries that claimed the next versions (`claims`, a
unique index): versions contiguous, each `prev_hash` equal to the previous entry's hash,
each `entry_hash` recomputing, each `balance_after` the running sum, and the projection
at the last link (or one behind an entry still in flight). The first bad entry is named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.integrity.checks import FEE_DEBIT_TYPES, IntegrityFinding
from core.ledger import AccountKind, check_balanced, entry_hash
from core.ledger.accounts import stored_account
from core.ledger import Store
from core.ledger import entries_by_claims

CHAIN_GENESIS = "0" * 64  # the prev_hash of an account's first entry
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    """Where a verified chain stands: version, hash of that entry, balance after it."""

    version: int = 0
    entry_hash: str = CHAIN_GENESIS
    balance_minor: int = 0


@dataclass
class ChainSlice:
    """The result of verifying some accounts' chains from given links onwards."""

    findings: list[IntegrityFinding] = field(default_factory=list)
    heads: dict[str, Link] = field(default_factory=dict)  # account → last verified link
    entries: dict[str, dict] = field(default_factory=dict)  # entry id → entry (each checked once)


def entry_findings(entry: dict) -> list[IntegrityFinding]:
    """What one entry must satisfy on its own: balanced, unedited, and the fee wallet rule
    (a credit equals the fee it books; only referral payouts and sweeps debit it)."""
    entry_id, findings = entry["_id"], []
    for problem in check_balanced(entry):
        findings.append(IntegrityFinding("unbalanced_entry", "critical", entry_id, problem))
    try:
        edited = entry.get("entry_hash") != entry_hash(entry)
    except (TypeError, ValueError):
        edited = True
    if edited:
        findings.append(IntegrityFinding("entry_edited", "critical", entry_id,
                                         f"entry {entry_id} changed after it was written (hash differs)"))
    for posting in entry.get("postings", []):
        if posting.get("kind") != AccountKind.FEES.value or not isinstance(posting.get("amount_minor"), int):
            continue
        booked = (entry.get("metadata") or {}).get("fee_minor")
        amount_minor = posting["amount_minor"]
        if (amount_minor > 0 and booked != amount_minor) or (amount_minor < 0 and entry.get("type") not in FEE_DEBIT_TYPES):
            findings.append(IntegrityFinding(
                "fee_revenue_drift", "critical", entry_id,
                f"entry {entry_id} ({entry.get('type')}) moves {amount_minor} on {posting['account']} "
                f"but books a fee of {booked!r}", posting.get("asset"), booked if isinstance(booked, int) else 0,
                amount_minor, amount_minor - (booked if isinstance(booked, int) else 0), account=posting["account"]))
    return findings


def verify_links(account: str, start: Link, links: list[tuple[dict, dict]]) -> tuple[Link, IntegrityFinding | None]:
    """Walk `links` (posting, entry) of `account` from `start`. Returns the last good link
    and the finding naming the first bad entry (None when the slice is sound)."""
    head = start
    for posting, entry in links:
        entry_id, version = entry["_id"], head.version + 1
        problem = None
        if posting.get("version") != version:
            problem = f"entry {entry_id} claims version {posting.get('version')!r}, expected {version} (an entry was deleted, inserted or its claim edited)"
        elif posting.get("prev_hash") != head.entry_hash:
            problem = f"entry {entry_id} (version {version}) does not follow the previous entry (prev_hash differs)"
        elif not isinstance(posting.get("amount_minor"), int) or posting.get("balance_after") != head.balance_minor + posting["amount_minor"]:
            problem = (f"entry {entry_id} (version {version}) records a balance after of {posting.get('balance_after')!r}, "
                       f"the chain says {head.balance_minor + (posting.get('amount_minor') or 0)}")
        if problem:
            parsed = _parsed(account)
            return head, IntegrityFinding("chain_broken", "critical", entry_id, f"{account}: {problem}",
                                          parsed[0], account=account, user=parsed[1])
        head = Link(version, entry.get("entry_hash"), posting["balance_after"])
    return head, None


def _parsed(account: str) -> tuple[str | None, str | None]:
    try:
        parsed = stored_account(account)  # a stored id: its shape is what matters here
        return parsed.asset, parsed.owner if parsed.is_user else None
    except Exception:  # noqa: BLE001 — an edited account id is itself reported by the chain finding
        logger.debug("account id %.80r does not parse", account, exc_info=True)
        return None, None


def verify_slices(store: Store, ranges: dict[str, tuple[int, int]]) -> ChainSlice:
    """Verify each account's versions (start, end] given the verified link at `start`
    (read too, for its hash and balance; version 0 is the genesis). Reads only the entries
    that claimed those versions, in `$in` batches."""
    claims = [f"{a}@{v}" for a, (start, end) in ranges.items() for v in range(max(start, 1), end + 1)]
    entries = entries_by_claims(store, claims)
    result = ChainSlice()
    by_account: dict[str, list] = {a: [] for a in ranges}
    for entry in entries:
        result.entries[entry["_id"]] = entry
        for posting in entry.get("postings", []):
            if posting.get("account") in by_account:
                by_account[posting["account"]].append((posting, entry))
    for entry in result.entries.values():
        result.findings += entry_findings(entry)
    for account, (start, end) in sorted(ranges.items()):
        links = sorted(by_account[account], key=lambda link: link[0].get("version") if isinstance(link[0].get("version"), int) else -1)
        origin = Link()
        if start > 0:
            anchor = [link for link in links if link[0].get("version") == start]
            if not anchor:
                result.findings.append(IntegrityFinding("chain_broken", "critical", f"{account}@{start}",
                                                        f"{account}: version {start} is missing from the journal", account=account))
                continue
            posting, entry = anchor[0]
            origin = Link(start, entry.get("entry_hash"), posting.get("balance_after"))
        body = [link for link in links if not (isinstance(link[0].get("version"), int) and link[0]["version"] <= start)]
        head, finding = verify_links(account, origin, body)
        if finding is not None:
            result.findings.append(finding)
        elif head.version < end:
            result.findings.append(IntegrityFinding("chain_broken", "critical", f"{account}@{head.version + 1}",
                                                    f"{account}: version {head.version + 1} is missing from the journal",
                                                    account=account))
        result.heads[account] = head
    return result


def projection_findings(store: Store, heads: dict[str, Link], entries: dict[str, dict], now: datetime,
                        stuck_after: timedelta) -> list[IntegrityFinding]:
    """Each account's projection against its verified chain head: equal, or one version
    behind an entry still in flight (younger than `stuck_after`); never negative when the
    kind forbids it. A projection ahead of the head (newer entries) is left to the next run."""
    accounts = sorted(heads)
    balances: dict[str, dict] = {}
    for start in range(0, len(accounts), 500):
        chunk = accounts[start:start + 500]
        balances.update({d["_id"]: d for d in store.collection("balances").find({"_id": {"$in": chunk}}, limit=len(chunk))})
    by_hash = {e.get("entry_hash"): e for e in entries.values()}
    findings = []
    for account in accounts:
        head, document = heads[account], balances.get(account) or {"version": 0, "balance_minor": 0, "head_hash": CHAIN_GENESIS}
        version = document.get("version", 0)
        asset, user = _parsed(account)
        if version == head.version:
            if document.get("balance_minor") != head.balance_minor or document.get("head_hash") != head.entry_hash:
                findings.append(IntegrityFinding(
                    "projection_mismatch", "critical", account,
                    f"{account} holds {document.get('balance_minor')} at version {version}, the journal says {head.balance_minor}",
                    asset, head.balance_minor, document.get("balance_minor"),
                    (document.get("balance_minor") or 0) - head.balance_minor, account=account, user=user))
        elif version < head.version:
            last = by_hash.get(head.entry_hash)
            young = last is not None and isinstance(last.get("created_at"), datetime) and last["created_at"] > now - stuck_after
            if not (version == head.version - 1 and young):
                findings.append(IntegrityFinding(
                    "stuck_entry", "critical", last["_id"] if last is not None else account,
                    f"{account} is projected at version {version} but the journal is at {head.version}: run `python -m core recover`",
                    asset, head.balance_minor, document.get("balance_minor"), account=account, user=user))
        balance = document.get("balance_minor")
        try:
            constrained = not stored_account(account).may_go_negative
        except Exception:  # noqa: BLE001 — an unparsable id is reported by its own finding; no sign rule to apply
            logger.debug("account id %.80r does not parse: its sign is not checked", account, exc_info=True)
            constrained = False
        if constrained and isinstance(balance, int) and balance < 0:
            findings.append(IntegrityFinding("negative_balance", "critical", account, f"{account} is negative ({balance})",
                                             asset, 0, balance, balance, account=account, user=user))
    return findings
