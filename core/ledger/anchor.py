"""Anchors: the heads of every account's hash chain, fixed into the audit trail.

Each account is its own hash chain (an entry's posting carries the previous entry's hash
on that account; the projection holds the newest). Editing, deleting or reordering an
entry breaks its account's chain. What a chain alone cannot show is a consistent rewrite
of an account's newest entries together with its projection. An anchor closes that: it
stores every account's (version, head hash), commits to them with a Merkle root in an
audit event (which the audit chain and its witness file protect), and `verify_anchor`
later checks that each anchored head is still the entry that owns that account version.
Integrity runs take an anchor each time, so nothing older than the last run can be
rewritten unseen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from core.ledger.audit import AuditLog
from core.ledger.entries import GENESIS_HASH, claim_of, entry_hash
from core.ledger.selfcheck import scan
from core.ledger.store import Store

ANCHOR_CHUNK_HEADS = 5_000  # heads per stored chunk (a document stays far below 16 MB)
VERIFY_BATCH_CLAIMS = 500
ANCHOR_CHUNKS_MAX = 10_000  # 50 million accounts
ANCHOR_EVENT_TYPE = "ledger.anchor"


def _leaf(account: str, version: int, head_hash: str) -> bytes:
    return hashlib.sha256(f"{account}\x1f{version}\x1f{head_hash}".encode()).digest()


def heads_root(heads: list[tuple[str, int, str]]) -> str:
    """Merkle root (SHA-256, odd node carried up) of the heads sorted by account."""
    level = [_leaf(*head) for head in sorted(heads)]
    if not level:
        return GENESIS_HASH
    while len(level) > 1:
        level = [hashlib.sha256(level[i] + level[i + 1]).digest() if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0].hex()


def current_heads(store: Store) -> list[tuple[str, int, str]]:
    """(account, version, head hash) of every projection, in account order."""
    return [(d["_id"], d.get("version", 0), d.get("head_hash", GENESIS_HASH))
            for d in scan(store.collection("balances"), projection={"version": 1, "head_hash": 1})]


@dataclass
class AnchorCheck:
    anchor_id: str | None
    ok: bool
    accounts_checked: int = 0
    problems: list[str] = field(default_factory=list)


def take_anchor(store: Store, audit: AuditLog, *, actor: str, role: str, anchor_id: str) -> dict:
    """Store every account head under `anchor_id` and append the `ledger.anchor` event
    (keyed by the anchor id, so a retry records it once). Returns the event."""
    heads = current_heads(store)
    root = heads_root(heads)
    chunks = [{"_id": f"{anchor_id}:{n}", "anchor": anchor_id, "heads": [list(h) for h in heads[i:i + ANCHOR_CHUNK_HEADS]]}
              for n, i in enumerate(range(0, len(heads), ANCHOR_CHUNK_HEADS))]
    collection = store.collection("ledger_anchors")
    if not collection.find_one({"_id": f"{anchor_id}:0"}, projection={"_id": 1}):
        collection.insert_many(chunks)
    head = audit.head()
    event, _ = audit.append(type=ANCHOR_EVENT_TYPE, actor=actor, role=role, target=anchor_id, event_key=f"anchor:{anchor_id}",
                            data={"anchor_id": anchor_id, "root": root, "accounts": len(heads), "chunks": len(chunks),
                                  "audit_head_seq": head["seq"] if head else 0, "audit_head_hash": head["hash"] if head else GENESIS_HASH})
    return event


def verify_anchor(store: Store, audit: AuditLog, anchor_id: str | None = None) -> AnchorCheck:
    """Check the newest anchor (or `anchor_id`): its stored heads still give the root the
    audit event committed to, and each anchored head is still the entry owning that
    account version, unedited."""
    events = store.collection("audit").find({"type": ANCHOR_EVENT_TYPE} if anchor_id is None else
                                            {"type": ANCHOR_EVENT_TYPE, "target": anchor_id}, sort=[("seq", -1)], limit=1)
    if not events:
        return AnchorCheck(anchor_id, True)
    data = events[0]["data"]
    check = AnchorCheck(data["anchor_id"], True)
    heads: list[tuple[str, int, str]] = []
    for chunk in store.collection("ledger_anchors").find({"anchor": data["anchor_id"]}, sort=[("_id", 1)], limit=ANCHOR_CHUNKS_MAX):
        heads += [tuple(h) for h in chunk["heads"]]
    if heads_root(heads) != data["root"] or len(heads) != data["accounts"]:
        check.problems.append(f"anchor {data['anchor_id']}: stored heads do not give the root its audit event recorded")
    for start in range(0, len(heads), VERIFY_BATCH_CLAIMS):
        batch = [h for h in heads[start:start + VERIFY_BATCH_CLAIMS] if h[1] > 0]
        owners = {}
        for entry in store.collection("entries").find({"claims": {"$in": [claim_of(a, v) for a, v, _ in batch]}}, limit=len(batch) or 1):
            for claim in entry.get("claims", []):
                owners[claim] = entry
        for account, version, head_hash in batch:
            entry = owners.get(claim_of(account, version))
            if entry is None:
                check.problems.append(f"{account}: the entry anchored at version {version} is gone")
            elif entry.get("entry_hash") != head_hash or entry_hash(entry) != head_hash:
                check.problems.append(f"{account}: entry {entry['_id']} at version {version} is not the one anchored")
        check.accounts_checked += len(batch)
    check.ok = not check.problems
    return check
