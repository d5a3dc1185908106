"""Take and store a proof-of-liabilities snapshot: one Merkle-sum tree per asset.

Storage (collections declared in core.ledger.store.INDEXES):
- `liabilities_snapshots`: the published record — time, who took it, the journal
  position covered (core.liabilities.cut), and per asset the root, total, leaf count and
  the roots of its leaf chunks. Its insert is the commit point: nothing else is visible
  until it exists.
- `liabilities_leaves`: the leaves in shuffled order, LEAF_CHUNK_SIZE per document
  (commitments as bytes, sums as integers). A proof rebuilds one chunk's subtree and the
  small tree over the chunk roots, so it costs a few reads whatever the user count.
- `liabilities_users`: per user, the secret nonce, where their leaves are and which
  generation of verification secret their bundle records are sealed to. This is the only
  place a leaf is tied to a person; it never leaves the console except inside that user's
  own proof (an audited export, or their sealed record in the public bundle).
Format 2 (`FORMAT_VERSION`): leaves bind the scale, and the published root commits to the
tree's size, total, asset, snapshot, scale and statement key (core.liabilities.tree). No
user count is stored or published: the padded leaf count is all the tree says about it.
Snapshots are taken by an admin and audited (`liabilities.snapshot`, event key
`liabilities:snapshot:<id>`), so retrying after a crash records the action once.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import uuid
from operator import itemgetter
from dataclasses import dataclass

from core.platform.boundary import boundary
from core.base.errors import InvalidFlowInputError, SnapshotNotFoundError, ensure
from core.ledger import AssetRegistry, DuplicateKeyStoreError, Store
from core.liabilities import tree
from core.liabilities.cut import Cut, read_cut
from core.liabilities.keys import keys_for
from core.liabilities.reveal import reissued_generations
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

LEAF_CHUNK_SIZE = 4096  # leaves per stored document (a power of two); ~180 KB each
USER_INSERT_BATCH = 1_000
CHUNK_INSERT_BATCH = 16
SPLIT_PARTS_MAX = 8
SNAPSHOT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")
SNAPSHOT_LIST_MAX = 200
STATE_PUBLISHED = "published"
FORMAT_VERSION = 2


@dataclass
class AssetTree:
    """One asset's tree as built: what is published plus the documents to store."""

    summary: dict
    chunks: list[dict]
    leaves: list[tuple[bytes, int, str | None, int]]  # (commitment, sum, user or None for padding, part), in tree order

    def positions(self) -> dict[str, list[dict]]:
        """Where each user's leaves are: user -> [{asset, index, part, sum}]."""
        asset, result = self.summary["asset"], {}
        for index, (_, value, user_id, part) in enumerate(self.leaves):
            if user_id is not None:
                result.setdefault(user_id, []).append({"asset": asset, "index": index, "part": part, "sum": value})
        return result


def split_balance(balance: int, parts: int, rng: random.Random) -> list[int]:
    """Cut a balance into `parts` random non-negative pieces that add up to it exactly, so
    a sibling's sum reveals less about any one user's balance."""
    if parts <= 1 or balance < parts:
        return [balance]
    cuts = sorted(rng.randrange(balance + 1) for _ in range(parts - 1))
    return [high - low for low, high in zip([0, *cuts], [*cuts, balance])]


def chunk_id(snapshot: dict, asset: str, number: int) -> str:
    return f"{snapshot['_id']}:{snapshot.get('build', '')}:{asset}:{number:06d}"


def user_document_id(snapshot: dict, user_id: str) -> str:
    return f"{snapshot['_id']}:{snapshot.get('build', '')}:{user_id}"


def build_asset_tree(snapshot_id: str, asset: str, users: dict[str, int], nonces: dict[str, bytes],
                     split_parts: int, rng: random.Random, registry: AssetRegistry, build: str = "", *,
                     public_key: bytes) -> AssetTree:
    """Leaves for every user (split, padded with zero leaves to a power of two, in a secret
    random order), then the chunk subtrees and the tree over the chunk roots.

    The order: leaves sorted by their commitment. Commitments hash secret nonces (and the
    padding's secret), so the order is uniformly random and unpredictable to anyone without
    the secrets — a shuffle without a million calls to a random number generator. The
    commitment is `tree.user_commitment`, inlined with its constant prefix hoisted (the test
    suite checks every proof against the stand-alone verifier)."""
    scale = registry.get(asset).scale
    prefix = tree.commitment_prefix(snapshot_id, asset, scale)
    sha = hashlib.sha256
    leaves: list[tuple[bytes, int, str | None, int]] = []
    for user_id, balance in users.items():
        head, nonce = prefix + user_id.encode() + b"\x00", nonces[user_id]
        pieces = split_balance(balance, split_parts, rng) if split_parts > 1 else (balance,)
        for part, value in enumerate(pieces):
            leaves.append((sha(head + part.to_bytes(4, "big") + nonce).digest(), value, user_id, part))
    size = tree.padded_size(len(leaves))
    pad_secret = rng.randbytes(tree.NONCE_BYTES)
    leaves += [(tree.padding_commitment(pad_secret, index), 0, None, 0) for index in range(size - len(leaves))]
    leaves.sort(key=itemgetter(0))
    chunk_size = min(LEAF_CHUNK_SIZE, size)
    chunk_roots: list[list] = []
    chunks: list[dict] = []
    for number, start in enumerate(range(0, size, chunk_size)):
        part_of = leaves[start:start + chunk_size]
        commitments, sums = [leaf[0] for leaf in part_of], [leaf[1] for leaf in part_of]
        subtree = tree.MerkleSumTree.from_leaves(commitments, sums)
        chunk_roots.append([subtree.root.hex(), subtree.total])
        chunks.append({"_id": chunk_id({"_id": snapshot_id, "build": build}, asset, number), "snapshot_id": snapshot_id,
                       "build": build, "asset": asset, "chunk": number,
                       "commitments": b"".join(commitments), "sums": sums})
    top = tree.MerkleSumTree([bytes.fromhex(h) for h, _ in chunk_roots], [s for _, s in chunk_roots])
    expected = sum(users.values())
    ensure(top.total == expected, f"tree total {top.total} != liabilities {expected}", asset=asset)  # paired check of the build
    root = tree.published_root(snapshot_id, asset, scale, size, top.total, public_key, top.root)
    summary = {"asset": asset, "scale": scale, "root": root.hex(), "tree_root": top.root.hex(), "total": top.total,
               "leaf_count": size, "chunk_size": chunk_size, "chunk_roots": chunk_roots}
    return AssetTree(summary, chunks, leaves)


def _snapshot_id(cut: Cut, platform: Platform) -> str:
    """Deterministic for one journal position and second: a retry of the same snapshot
    finds the first one instead of publishing a twin."""
    return f"pol-{platform.clock.now():%Y%m%dT%H%M%S}-{cut.versions_digest[:10]}"


@boundary
def take_snapshot(platform: Platform, principal: Principal, *, split_parts: int = 1, snapshot_id: str | None = None,
                  rng: random.Random | None = None) -> dict:
    """Read a consistent cut, build every asset's tree, store and publish it, audit it.

    Args:
        split_parts: split each balance across this many leaves (1..SPLIT_PARTS_MAX).
        snapshot_id: optional id (idempotency key); by default derived from the cut.
        rng: randomness for nonces, splits, padding and shuffling (tests pass a seeded
            one; the default is the operating system's secret randomness).
    Returns: the published snapshot document (an existing one when the id was taken).
    Raises: PermissionDeniedError, InvalidFlowInputError, ConfigurationError (no statement
        key on a real database), SnapshotContendedError, NegativeLiabilityError.
    """
    require(principal, Permission.MANAGE_LIABILITIES)
    if isinstance(split_parts, bool) or not isinstance(split_parts, int) or not 1 <= split_parts <= SPLIT_PARTS_MAX:
        raise InvalidFlowInputError(f"split_parts must be 1..{SPLIT_PARTS_MAX}", split_parts=repr(split_parts))
    if snapshot_id is not None and (not isinstance(snapshot_id, str) or not SNAPSHOT_ID_PATTERN.match(snapshot_id)):
        raise InvalidFlowInputError("snapshot id must be 1-64 of letters, digits, _.-", snapshot_id=repr(snapshot_id))
    store = platform.store
    keys = keys_for(store)  # refused before anything is read or written when the keys are missing
    if snapshot_id is not None and (existing := store.collection("liabilities_snapshots").find_one({"_id": snapshot_id})):
        _audit(platform, existing)
        return existing
    rng = rng or secrets.SystemRandom()
    # No recovery first: the cut takes an entry left half projected whole from the journal, and
    # recovery beside continuous posting keeps finding newly flagged entries (it chased the writers).
    cut = read_cut(store)
    snapshot_id = snapshot_id or _snapshot_id(cut, platform)
    if existing := store.collection("liabilities_snapshots").find_one({"_id": snapshot_id}):
        _audit(platform, existing)
        return existing
    build = uuid.uuid4().hex[:12]  # this attempt's documents: a concurrent or crashed attempt under the same id never mixes in
    users = sorted({user for per_asset in cut.liabilities.values() for user in per_asset})
    entropy = rng.randbytes(tree.NONCE_BYTES * len(users))  # one call: the OS random source is slow per call
    nonces = {user: entropy[i * tree.NONCE_BYTES:(i + 1) * tree.NONCE_BYTES] for i, user in enumerate(users)}
    summaries, positions = [], {user: [] for user in users}
    for asset, per_asset in cut.liabilities.items():
        built = build_asset_tree(snapshot_id, asset, per_asset, nonces, split_parts, rng, platform.registry, build,
                                 public_key=keys.public_key)
        for start in range(0, len(built.chunks), CHUNK_INSERT_BATCH):
            store.collection("liabilities_leaves").insert_many(built.chunks[start:start + CHUNK_INSERT_BATCH])
        for user, leaves in built.positions().items():
            positions[user] += leaves
        summaries.append(built.summary)
    document = {"_id": snapshot_id, "build": build, "format": FORMAT_VERSION, "state": STATE_PUBLISHED,
                "taken_at": platform.clock.now(), "taken_by": principal.name, "role": principal.role.value,
                "split_parts": split_parts, "public_key": keys.public_key.hex(), "cut": cut.position(), "assets": summaries}
    generations = reissued_generations(store)  # the secret generation each user's bundle records are sealed to
    user_documents = [{"_id": user_document_id(document, user), "snapshot_id": snapshot_id, "build": build, "user_id": user,
                       "nonce": nonces[user].hex(), "generation": generations.get(user, 1), "leaves": positions[user]}
                      for user in users]
    for start in range(0, len(user_documents), USER_INSERT_BATCH):
        store.collection("liabilities_users").insert_many(user_documents[start:start + USER_INSERT_BATCH])
    try:
        store.collection("liabilities_snapshots").insert_one(document)  # the commit point
    except DuplicateKeyStoreError:  # another attempt published this id first: its snapshot stands, ours is dropped
        _drop_builds(store, {"snapshot_id": snapshot_id, "build": build})
        document = get_snapshot(store, snapshot_id)
    else:  # documents of crashed or losing attempts under this id are orphans now
        _drop_builds(store, {"snapshot_id": snapshot_id, "build": {"$ne": build}})
    _audit(platform, document)
    return document


def _drop_builds(store: Store, query: dict) -> None:
    for name in ("liabilities_leaves", "liabilities_users"):
        store.collection(name).delete_many(query)


def _audit(platform: Platform, document: dict) -> None:
    roots = {a["asset"]: {"root": a["root"], "total": a["total"], "leaf_count": a["leaf_count"]} for a in document["assets"]}
    platform.ledger.audit.append(type="liabilities.snapshot", actor=document["taken_by"], role=document["role"],
                                 target=document["_id"], after={"roots": roots, "public_key": document.get("public_key")},
                                 data={"cut": document["cut"], "split_parts": document["split_parts"]},
                                 event_key=f"liabilities:snapshot:{document['_id']}")


def get_snapshot(store: Store, snapshot_id: str | None = None) -> dict:
    """The snapshot with that id, or the newest. Raises: SnapshotNotFoundError."""
    snapshots = store.collection("liabilities_snapshots")
    if snapshot_id is None:
        found = snapshots.find_one({}, sort=[("taken_at", -1)])
    elif isinstance(snapshot_id, str) and SNAPSHOT_ID_PATTERN.match(snapshot_id):
        found = snapshots.find_one({"_id": snapshot_id})
    else:
        found = None
    if found is None:
        raise SnapshotNotFoundError("no liabilities snapshot" + (f" {snapshot_id!r}" if snapshot_id else " has been taken yet"),
                                    snapshot_id=repr(snapshot_id))
    return found


@boundary
def list_snapshots(platform: Platform, principal: Principal, limit: int = 50) -> list[dict]:
    """Newest first, without the chunk roots (what a history table and a roots file need)."""
    require(principal, Permission.READ_PLATFORM)
    limit = max(1, min(int(limit), SNAPSHOT_LIST_MAX))
    documents = platform.store.collection("liabilities_snapshots").find(
        {}, sort=[("taken_at", -1)], limit=limit, projection={"assets.chunk_roots": 0})
    return documents


ROOT_FIELDS = ("snapshot_id", "taken_at", "asset", "scale", "root", "total", "leaf_count", "public_key", "bundle_sha256")


@boundary
def published_roots(platform: Platform, principal: Principal, limit: int = 50) -> list[dict]:
    """One row per (snapshot, asset), newest snapshot first: what the exchange publishes so
    users can compare the root and total of their proof — with the statement key and, once
    built, the bundle's SHA-256. No user count (the padded leaf count is public anyway).
    Raises: PermissionDeniedError."""
    rows = []
    for snapshot in list_snapshots(platform, principal, limit):
        for summary in snapshot["assets"]:
            rows.append({"snapshot_id": snapshot["_id"], "taken_at": f"{snapshot['taken_at']:%Y-%m-%dT%H:%M:%S}Z",
                         "asset": summary["asset"], "scale": summary["scale"], "root": summary["root"],
                         "total": summary["total"], "leaf_count": summary["leaf_count"],
                         "public_key": snapshot.get("public_key", ""), "bundle_sha256": (snapshot.get("bundle") or {}).get("sha256", "")})
    return rows


def roots_csv(rows: list[dict]) -> str:
    """The published roots as CSV (no field can hold a comma: ids, codes, hex, integers)."""
    return "\n".join([",".join(ROOT_FIELDS)] + [",".join(str(row[name]) for name in ROOT_FIELDS) for row in rows]) + "\n"
