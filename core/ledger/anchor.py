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
ANCHOR_EVENTS_MAX = 5_000  # delta anchors read back to the newest full one (a full run a day keeps this small)
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


def take_anchor(store: Store, audit: AuditLog, *, actor: str, role: str, anchor_id: str,
                accounts: list[str] | None = None) -> dict:
    """Fix account heads into the audit trail and return the `ledger.anchor` event (keyed by
    the anchor id, so a retry records it once).

    With `accounts=None` a **full** anchor: every account's head, Merkle root over all.
    With `accounts` (those whose version moved since the last anchor — what an incremental
    integrity run verified) a **delta** anchor: only their heads, and a root chained to the
    previous anchor's, `H(previous root ‖ root of the delta)`, so every run can anchor at the
    cost of what changed. With no previous anchor a delta becomes a full one."""
    previous = _newest_anchor_events(store, 1)
    if accounts is not None and previous:
        heads = _heads_of(store, sorted(set(accounts)))
        delta_root = heads_root(heads)
        root = hashlib.sha256(bytes.fromhex(previous[0]["data"]["root"]) + bytes.fromhex(delta_root)).hexdigest()
        data = {"kind": "delta", "base": previous[0]["data"]["anchor_id"], "delta_root": delta_root}
    else:
        heads = current_heads(store)
        root = heads_root(heads)
        data = {"kind": "full"}
    chunks = [{"_id": f"{anchor_id}:{n}", "anchor": anchor_id, "heads": [list(h) for h in heads[i:i + ANCHOR_CHUNK_HEADS]]}
              for n, i in enumerate(range(0, len(heads), ANCHOR_CHUNK_HEADS))]
    collection = store.collection("ledger_anchors")
    if chunks and not collection.find_one({"_id": f"{anchor_id}:0"}, projection={"_id": 1}):
        collection.insert_many(chunks)
    audit_heads = {str(stream): [seq, head_hash] for stream, (seq, head_hash) in sorted(audit.heads().items())}
    event, _ = audit.append(type=ANCHOR_EVENT_TYPE, actor=actor, role=role, target=anchor_id, event_key=f"anchor:{anchor_id}",
                            data={"anchor_id": anchor_id, "root": root, "accounts": len(heads), "chunks": len(chunks), **data,
                                  "audit_heads": audit_heads})
    return event


def _heads_of(store: Store, accounts: list[str]) -> list[tuple[str, int, str]]:
    heads = []
    for start in range(0, len(accounts), VERIFY_BATCH_CLAIMS):
        batch = accounts[start:start + VERIFY_BATCH_CLAIMS]
        heads += [(d["_id"], d.get("version", 0), d.get("head_hash", GENESIS_HASH)) for d in store.collection("balances").find(
            {"_id": {"$in": batch}}, projection={"version": 1, "head_hash": 1}, limit=len(batch))]
    return sorted(heads)


def _newest_anchor_events(store: Store, limit: int) -> list[dict]:
    return store.collection("audit").find({"type": ANCHOR_EVENT_TYPE}, sort=[("order", -1)], limit=limit)


def _stored_heads(store: Store, anchor_id: str) -> list[tuple[str, int, str]]:
    heads: list[tuple[str, int, str]] = []
    for chunk in store.collection("ledger_anchors").find({"anchor": anchor_id}, sort=[("_id", 1)], limit=ANCHOR_CHUNKS_MAX):
        heads += [tuple(h) for h in chunk["heads"]]
    return heads


def verify_anchor(store: Store, audit: AuditLog) -> AnchorCheck:
    """Check the anchors since the newest full one: each stored set of heads still gives the
    root its audit event committed to (deltas chained to their base), and every anchored
    head — the newest per account — is still the entry owning that account version,
    unedited. O(accounts anchored since the last full anchor)."""
    events = _newest_anchor_events(store, ANCHOR_EVENTS_MAX)
    since_full: list[dict] = []
    for event in events:
        since_full.append(event)
        if event["data"].get("kind", "full") == "full":
            break
    if not since_full:
        return AnchorCheck(None, True)
    since_full.reverse()
    check = AnchorCheck(since_full[-1]["data"]["anchor_id"], True)
    latest: dict[str, tuple[int, str]] = {}
    previous_root = None
    for event in since_full:
        data = event["data"]
        heads = _stored_heads(store, data["anchor_id"])
        if data.get("kind", "full") == "full":
            ok = heads_root(heads) == data["root"]
        else:
            delta_root = heads_root(heads)
            ok = (delta_root == data.get("delta_root") and previous_root is not None and data["root"] ==
                  hashlib.sha256(bytes.fromhex(previous_root) + bytes.fromhex(delta_root)).hexdigest())
        if not ok or len(heads) != data["accounts"]:
            check.problems.append(f"anchor {data['anchor_id']}: stored heads do not give the root its audit event recorded")
        previous_root = data["root"]
        latest.update({account: (version, head_hash) for account, version, head_hash in heads})
    anchored = sorted((account, version, head_hash) for account, (version, head_hash) in latest.items() if version > 0)
    for start in range(0, len(anchored), VERIFY_BATCH_CLAIMS):
        batch = anchored[start:start + VERIFY_BATCH_CLAIMS]
        owners = {}
        for entry in store.collection("entries").find({"claims": {"$in": [claim_of(a, v) for a, v, _ in batch]}}, limit=len(batch)):
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
