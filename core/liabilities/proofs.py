"""Inclusion proofs: build one for a user (signed statement included), export a user's proofs
for support (audited), and re-check a whole stored snapshot. The format and its checks are
in core.liabilities.verify; the sealed public bundle of every user's proofs is
core.liabilities.bundle.

A per-user export (JSON, format "proof-of-liabilities-export/2"):
    {format, snapshot_id, user_id, proofs: [<proof-of-liabilities/2>, ...]}   one proof per asset held
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from core.base.errors import ConfigurationError, ProofNotFoundError, SnapshotTamperedError
from core.ledger import check_owner_id
from core.liabilities import tree
from core.liabilities.keys import LiabilitiesKeys, keys_for
from core.liabilities.snapshot import FORMAT_VERSION, chunk_id, get_snapshot, user_document_id
from core.liabilities.verify import FORMAT, minor_text, verify_proof
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.boundary import boundary

EXPORT_FORMAT = "proof-of-liabilities-export/2"
VERIFY_BATCH_SIZE = 1_000


def top_tree(summary: dict) -> tree.MerkleSumTree:
    """The small tree over an asset's chunk roots (its root is the tree root under the published root)."""
    return tree.MerkleSumTree([bytes.fromhex(h) for h, _ in summary["chunk_roots"]], [s for _, s in summary["chunk_roots"]])


def chunk_tree(chunk: dict, chunk_size: int) -> tree.MerkleSumTree:
    """One stored chunk's subtree, rebuilt from its commitments and sums (sums re-checked)."""
    data = chunk["commitments"]
    commitments = [bytes(data[i:i + tree.HASH_BYTES]) for i in range(0, chunk_size * tree.HASH_BYTES, tree.HASH_BYTES)]
    return tree.MerkleSumTree.from_leaves(commitments, list(chunk["sums"]))


def leaf_path(index: int, chunk: tree.MerkleSumTree, top: tree.MerkleSumTree) -> list[tree.Sibling]:
    """The siblings of leaf `index`: through its chunk's subtree, then the tree over the chunk roots."""
    number, offset = divmod(index, chunk.leaf_count)
    return chunk.path(offset) + top.path(number)


def statement_signature(keys: LiabilitiesKeys, summary: dict, snapshot_id: str, user_id: str, balance: int,
                        leaf_hashes: list[bytes]) -> bytes:
    """The exchange's Ed25519 signature over one user's statement for one asset."""
    message = tree.statement_message(snapshot_id, summary["asset"], user_id, summary["scale"], balance,
                                     tree.leaf_commitment(leaf_hashes), bytes.fromhex(summary["root"]))
    return keys.sign(message)


def proof_document(snapshot_id: str, summary: dict, user_id: str, nonce: bytes, leaves: list[tuple[dict, list[tree.Sibling]]],
                   keys: LiabilitiesKeys, public_key: str) -> dict:
    """The proof JSON of one user and asset. `leaves`: ({index, part, sum}, path) in part order."""
    head = tree.commitment_prefix(snapshot_id, summary["asset"], summary["scale"]) + user_id.encode() + b"\x00"
    hashes = [tree.leaf_hash(hashlib.sha256(head + leaf["part"].to_bytes(4, "big") + nonce).digest(), leaf["sum"])
              for leaf, _ in leaves]
    balance = sum(leaf["sum"] for leaf, _ in leaves)
    return {"format": FORMAT, "snapshot_id": snapshot_id, "asset": summary["asset"], "scale": summary["scale"],
            "user_id": user_id, "nonce": nonce.hex(), "balance_minor": balance, "balance": minor_text(balance, summary["scale"]),
            "leaves": [{"index": leaf["index"], "part": leaf["part"], "sum": leaf["sum"], "path": [s.as_dict() for s in path]}
                       for leaf, path in leaves],
            "leaf_count": summary["leaf_count"], "total": summary["total"], "root": summary["root"], "public_key": public_key,
            "signature": statement_signature(keys, summary, snapshot_id, user_id, balance, hashes).hex()}


def snapshot_keys(platform: Platform, snapshot: dict) -> LiabilitiesKeys:
    """The configured keys, if they are the ones this snapshot's roots commit to.
    Raises: ConfigurationError (no keys, or the statement key was changed since)."""
    keys = keys_for(platform.store)
    if snapshot.get("format") != FORMAT_VERSION:
        raise ProofNotFoundError(f"snapshot {snapshot['_id']} was taken in an older format: take a new snapshot",
                                 snapshot_id=snapshot["_id"])
    if keys.public_key.hex() != snapshot["public_key"]:
        raise ConfigurationError(f"the configured statement key is not the key snapshot {snapshot['_id']} committed to "
                                 f"({snapshot['public_key'][:16]}…): proofs of it cannot be signed", snapshot_id=snapshot["_id"])
    return keys


def load_chunk(platform: Platform, snapshot: dict, summary: dict, number: int) -> tree.MerkleSumTree:
    """A stored leaf chunk's subtree. Raises: SnapshotTamperedError (missing or malformed)."""
    chunk = platform.store.collection("liabilities_leaves").find_one({"_id": chunk_id(snapshot, summary["asset"], number)})
    if chunk is None:
        raise SnapshotTamperedError(f"leaf chunk {number} of {summary['asset']} is missing", snapshot_id=snapshot["_id"])
    try:
        return chunk_tree(chunk, summary["chunk_size"])
    except (tree.TreeError, KeyError, TypeError) as error:
        raise SnapshotTamperedError(f"leaf chunk {number} of {summary['asset']} is malformed: {error}",
                                    snapshot_id=snapshot["_id"]) from None


def build_proofs(platform: Platform, user_id: str, snapshot: dict, asset: str | None = None) -> list[dict]:
    """One signed proof per asset the user held. Reads: the user's document and one leaf
    chunk per leaf. Raises: ProofNotFoundError, ConfigurationError (keys), SnapshotTamperedError
    (a stored leaf no longer matches the published root)."""
    keys = snapshot_keys(platform, snapshot)
    person = platform.store.collection("liabilities_users").find_one({"_id": user_document_id(snapshot, user_id)})
    leaves = [leaf for leaf in (person or {}).get("leaves", []) if asset is None or leaf["asset"] == asset]
    if not leaves:
        raise ProofNotFoundError(f"{user_id} has no {asset or 'liability'} in snapshot {snapshot['_id']}",
                                 user_id=user_id, snapshot_id=snapshot["_id"], asset=asset)
    nonce = bytes.fromhex(person["nonce"])
    proofs = []
    for summary in snapshot["assets"]:
        mine = sorted((leaf for leaf in leaves if leaf["asset"] == summary["asset"]), key=lambda item: item["part"])
        if not mine:
            continue
        top = top_tree(summary)
        paths = [(leaf, leaf_path(leaf["index"], load_chunk(platform, snapshot, summary, leaf["index"] // summary["chunk_size"]), top))
                 for leaf in mine]
        proof = proof_document(snapshot["_id"], summary, user_id, nonce, paths, keys, snapshot["public_key"])
        result = verify_proof(proof, summary["root"], summary["total"], user_id=user_id)
        if not result.ok:  # the paired check: never hand out a proof that does not verify
            raise SnapshotTamperedError(f"stored leaves of {summary['asset']} no longer match the published root: {result.reason}",
                                        snapshot_id=snapshot["_id"], asset=summary["asset"])
        proofs.append(proof)
    return proofs


@boundary
def user_proof_bundle(platform: Platform, principal: Principal, user_id: str, *, snapshot_id: str | None = None,
                      asset: str | None = None) -> dict:
    """Every proof of one user in a snapshot (default: the newest), as one JSON-ready export
    (format EXPORT_FORMAT) — support's way to hand a user their proofs.

    Handing out a proof discloses the user's nonce, so it is audited (`liabilities.proof_exported`).
    Raises: PermissionDeniedError, InvalidAccountError (malformed user id),
        SnapshotNotFoundError, ProofNotFoundError, ConfigurationError, SnapshotTamperedError.
    """
    require(principal, Permission.READ_USERS)
    check_owner_id(user_id)
    snapshot = get_snapshot(platform.store, snapshot_id)
    proofs = build_proofs(platform, user_id, snapshot, asset)
    platform.ledger.audit.append(type="liabilities.proof_exported", actor=principal.name, role=principal.role.value,
                                 target=snapshot["_id"], user=user_id, data={"assets": [p["asset"] for p in proofs]})
    return {"format": EXPORT_FORMAT, "snapshot_id": snapshot["_id"], "user_id": user_id, "proofs": proofs}


def bundle_json(bundle: dict) -> str:
    return json.dumps(bundle, indent=2, sort_keys=True)


@dataclass
class SnapshotCheck:
    snapshot_id: str
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    leaves_checked: int = 0
    users_checked: int = 0


@boundary
def verify_snapshot(platform: Platform, principal: Principal, snapshot_id: str | None = None) -> SnapshotCheck:
    """Rebuild every asset's tree from the stored leaves and compare with what was published;
    check every user's recorded leaves against the stored ones and that users' sums add up
    to each total (so padding holds nothing). Raises: PermissionDeniedError, SnapshotNotFoundError."""
    require(principal, Permission.READ_PLATFORM)
    snapshot = get_snapshot(platform.store, snapshot_id)
    check = SnapshotCheck(snapshot["_id"])
    if snapshot.get("format") != FORMAT_VERSION:
        check.ok, check.problems = False, [f"snapshot {snapshot['_id']} was taken in an older format (no committed root)"]
        return check
    sums: dict[str, list[int]] = {}
    for summary in snapshot["assets"]:
        asset, chunk_size = summary["asset"], summary["chunk_size"]
        chunk_roots, asset_sums = [], []
        for number in range(summary["leaf_count"] // chunk_size):
            chunk = platform.store.collection("liabilities_leaves").find_one({"_id": chunk_id(snapshot, asset, number)})
            try:
                if chunk is None:
                    raise tree.TreeError("missing")
                subtree = chunk_tree(chunk, chunk_size)
            except (tree.TreeError, KeyError, TypeError) as error:
                check.problems.append(f"{asset} chunk {number}: {error}")
                chunk_roots.append(["00" * 32, 0])
                asset_sums += [0] * chunk_size
                continue
            chunk_roots.append([subtree.root.hex(), subtree.total])
            asset_sums += list(chunk["sums"])
            check.leaves_checked += chunk_size
        if chunk_roots != summary["chunk_roots"]:
            check.problems.append(f"{asset}: stored leaves do not give the published chunk roots")
        top = top_tree({"chunk_roots": chunk_roots})
        root = tree.published_root(snapshot["_id"], asset, summary["scale"], summary["leaf_count"], top.total,
                                   bytes.fromhex(snapshot["public_key"]), top.root)
        if root.hex() != summary["root"] or top.total != summary["total"]:
            check.problems.append(f"{asset}: stored leaves give root {root.hex()} total {top.total}, "
                                  f"published {summary['root']} total {summary['total']}")
        sums[asset] = asset_sums
    user_totals: dict[str, int] = {asset: 0 for asset in sums}
    prefix = user_document_id(snapshot, "")  # "<id>:<build>:": this build's users are one _id range
    after, before = prefix, prefix[:-1] + ";"
    while True:
        batch = platform.store.collection("liabilities_users").find(
            {"_id": {"$gt": after, "$lt": before}}, sort=[("_id", 1)], limit=VERIFY_BATCH_SIZE)
        for person in batch:
            for leaf in person["leaves"]:
                stored = sums.get(leaf["asset"], [])
                if not 0 <= leaf["index"] < len(stored) or stored[leaf["index"]] != leaf["sum"]:
                    check.problems.append(f"{person['user_id']}: leaf {leaf['index']} of {leaf['asset']} differs from the stored leaf")
                user_totals[leaf["asset"]] = user_totals.get(leaf["asset"], 0) + leaf["sum"]
        check.users_checked += len(batch)
        if len(batch) < VERIFY_BATCH_SIZE:
            break
        after = batch[-1]["_id"]
    for summary in snapshot["assets"]:
        if user_totals.get(summary["asset"], 0) != summary["total"]:
            check.problems.append(f"{summary['asset']}: users' leaves add up to {user_totals.get(summary['asset'], 0)}, "
                                  f"not the total {summary['total']}")
    check.ok = not check.problems
    return check
