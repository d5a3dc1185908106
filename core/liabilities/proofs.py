"""Inclusion proofs: build one for a user, check one (the same rules as the stand-alone
`tools/verify_liabilities.py`, written again here on top of core.liabilities.tree so the
two implementations check each other in the tests), and re-check a whole stored snapshot.

A proof (JSON, format "proof-of-liabilities/1"):
    {format, snapshot_id, taken_at, asset, scale, user_id, nonce, balance_minor, balance,
     leaves: [{index, part, sum, hash, path: [{side, hash, sum}, ...]}], leaf_count, root, total}
`side` is where the SIBLING sits. `balance_minor` is the sum of the user's leaves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from core.validation import boundary
from core.errors import ProofNotFoundError, SnapshotTamperedError
from core.ledger import AssetRegistry, check_owner_id, from_minor
from core.liabilities import tree
from core.liabilities.snapshot import chunk_id, get_snapshot, user_document_id
from core.permissions import Permission, Principal, require
from core.platform import Platform

FORMAT = "proof-of-liabilities/1"
BUNDLE_FORMAT = "proof-of-liabilities-bundle/1"
VERIFY_BATCH_SIZE = 1_000


def top_tree(summary: dict) -> tree.MerkleSumTree:
    """The small tree over an asset's chunk roots (its root is the published root)."""
    return tree.MerkleSumTree([bytes.fromhex(h) for h, _ in summary["chunk_roots"]], [s for _, s in summary["chunk_roots"]])


def chunk_tree(chunk: dict, chunk_size: int) -> tree.MerkleSumTree:
    """One stored chunk's subtree, rebuilt from its commitments and sums (sums re-checked)."""
    data = chunk["commitments"]
    commitments = [bytes(data[i:i + tree.HASH_BYTES]) for i in range(0, chunk_size * tree.HASH_BYTES, tree.HASH_BYTES)]
    return tree.MerkleSumTree.from_leaves(commitments, list(chunk["sums"]))


def proof_leaf(snapshot_id: str, asset: str, user_id: str, nonce: bytes, leaf: dict, chunk: tree.MerkleSumTree,
               top: tree.MerkleSumTree) -> dict:
    """One leaf of a proof: its position, part, sum, hash and the path through its chunk's
    subtree and then the tree over the chunk roots."""
    number, offset = divmod(leaf["index"], chunk.leaf_count)
    commitment = tree.user_commitment(snapshot_id, asset, user_id, leaf["part"], nonce)
    return {"index": leaf["index"], "part": leaf["part"], "sum": leaf["sum"], "hash": tree.leaf_hash(commitment, leaf["sum"]).hex(),
            "path": [sibling.as_dict() for sibling in chunk.path(offset) + top.path(number)]}


def proof_document(snapshot: dict, summary: dict, user_id: str, nonce: bytes, leaves: list[dict], registry: AssetRegistry) -> dict:
    """The proof JSON of one user and asset (see the module docstring for the format)."""
    balance = sum(leaf["sum"] for leaf in leaves)
    return {"format": FORMAT, "snapshot_id": snapshot["_id"], "taken_at": f"{snapshot['taken_at']:%Y-%m-%dT%H:%M:%S}Z",
            "asset": summary["asset"], "scale": summary["scale"], "user_id": user_id, "nonce": nonce.hex(),
            "balance_minor": balance, "balance": from_minor(balance, summary["asset"], registry).text(),
            "leaves": leaves, "leaf_count": summary["leaf_count"], "root": summary["root"], "total": summary["total"]}


def build_proofs(platform: Platform, user_id: str, snapshot: dict, asset: str | None = None) -> list[dict]:
    """One proof per asset the user held. Reads: the user's document and one leaf chunk per
    leaf. Raises: ProofNotFoundError, SnapshotTamperedError (a stored leaf no longer matches
    the published root)."""
    store = platform.store
    person = store.collection("liabilities_users").find_one({"_id": user_document_id(snapshot, user_id)})
    leaves = [leaf for leaf in (person or {}).get("leaves", []) if asset is None or leaf["asset"] == asset]
    if not leaves:
        raise ProofNotFoundError(f"{user_id} has no {asset or 'liability'} in snapshot {snapshot['_id']}",
                                 user_id=user_id, snapshot_id=snapshot["_id"], asset=asset)
    nonce = bytes.fromhex(person["nonce"])
    proofs = []
    for summary in snapshot["assets"]:
        mine = [leaf for leaf in leaves if leaf["asset"] == summary["asset"]]
        if not mine:
            continue
        top, chunk_size, proof_leaves = top_tree(summary), summary["chunk_size"], []
        for leaf in sorted(mine, key=lambda item: item["part"]):
            number = leaf["index"] // chunk_size
            chunk = store.collection("liabilities_leaves").find_one({"_id": chunk_id(snapshot, summary["asset"], number)})
            if chunk is None:
                raise SnapshotTamperedError(f"leaf chunk {number} of {summary['asset']} is missing", snapshot_id=snapshot["_id"])
            try:
                subtree = chunk_tree(chunk, chunk_size)
            except (tree.TreeError, KeyError, TypeError) as error:
                raise SnapshotTamperedError(f"leaf chunk {number} of {summary['asset']} is malformed: {error}",
                                            snapshot_id=snapshot["_id"]) from None
            proof_leaves.append(proof_leaf(snapshot["_id"], summary["asset"], user_id, nonce, leaf, subtree, top))
        proof = proof_document(snapshot, summary, user_id, nonce, proof_leaves, platform.registry)
        result = verify_proof(proof)
        if not result.ok:  # the paired check: never hand out a proof that does not verify
            raise SnapshotTamperedError(f"stored leaves of {summary['asset']} no longer match the published root: {result.reason}",
                                        snapshot_id=snapshot["_id"], asset=summary["asset"])
        proofs.append(proof)
    return proofs


@boundary
def user_proof_bundle(platform: Platform, principal: Principal, user_id: str, *, snapshot_id: str | None = None,
                      asset: str | None = None) -> dict:
    """Every proof of one user in a snapshot (default: the newest), as one JSON-ready bundle.

    Handing out a proof discloses the user's nonce, so it is audited (`liabilities.proof_exported`).
    Raises: PermissionDeniedError, InvalidAccountError (malformed user id),
        SnapshotNotFoundError, ProofNotFoundError, SnapshotTamperedError.
    """
    require(principal, Permission.READ_USERS)
    check_owner_id(user_id)
    snapshot = get_snapshot(platform.store, snapshot_id)
    proofs = build_proofs(platform, user_id, snapshot, asset)
    platform.ledger.audit.append(type="liabilities.proof_exported", actor=principal.name, role=principal.role.value,
                                 target=snapshot["_id"], user=user_id, data={"assets": [p["asset"] for p in proofs]})
    return {"format": BUNDLE_FORMAT, "snapshot_id": snapshot["_id"], "user_id": user_id, "proofs": proofs}


def bundle_json(bundle: dict) -> str:
    return json.dumps(bundle, indent=2, sort_keys=True)


@dataclass(frozen=True)
class ProofCheck:
    ok: bool
    reason: str = ""
    root: str = ""
    total: int = 0


def _hex32(value: object, where: str) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        data = b""
    if len(data) != tree.HASH_BYTES:
        raise tree.TreeError(f"{where} is not 32 bytes of hexadecimal")
    return data


def _check_leaf(proof: dict, leaf: object, nonce: bytes, height: int, count: int) -> tuple[bytes, int, int]:
    """(root, total, sum) a leaf's path leads to. Raises: tree.TreeError with the reason."""
    if not isinstance(leaf, dict) or not isinstance(leaf.get("path"), list) or len(leaf["path"]) != height:
        raise tree.TreeError(f"each leaf needs a path of {height} steps")
    index, part = leaf.get("index"), leaf.get("part")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, part)) or not 0 <= index < count \
            or not 0 <= part < tree.PART_LIMIT:
        raise tree.TreeError("bad leaf index or part")
    value = tree.check_sum(leaf.get("sum"), "leaf")
    commitment = tree.user_commitment(proof["snapshot_id"], proof["asset"], proof["user_id"], part, nonce)
    if leaf.get("hash") not in (None, tree.leaf_hash(commitment, value).hex()):
        raise tree.TreeError("the leaf does not match this user id, nonce and balance")
    path = []
    for step, sibling in enumerate(leaf["path"]):
        side = "left" if index >> step & 1 else "right"
        if not isinstance(sibling, dict) or sibling.get("side") != side:
            raise tree.TreeError(f"step {step} must have its sibling on the {side}")
        path.append(tree.Sibling(side, _hex32(sibling.get("hash"), f"step {step} hash"), sibling.get("sum")))
    root, total = tree.climb(tree.leaf_hash(commitment, value), value, path)
    return root, total, value


def verify_proof(proof: object, root: str | None = None, total: int | None = None) -> ProofCheck:
    """Check one proof against its own root and total, and against the published ones if given."""
    try:
        if not isinstance(proof, dict) or proof.get("format") != FORMAT:
            raise tree.TreeError(f"not a {FORMAT} proof")
        for name in ("snapshot_id", "asset", "user_id"):
            if not isinstance(proof.get(name), str) or not proof[name] or "\x00" in proof[name]:
                raise tree.TreeError(f"field {name} is missing")
        nonce, own_root = _hex32(proof.get("nonce"), "nonce"), _hex32(proof.get("root"), "root")
        own_total, count = tree.check_sum(proof.get("total"), "total"), proof.get("leaf_count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1 or count & (count - 1):
            raise tree.TreeError("leaf_count must be a power of two")
        leaves = proof.get("leaves")
        if not isinstance(leaves, list) or not leaves or len({leaf.get("index") for leaf in leaves if isinstance(leaf, dict)}) != len(leaves):
            raise tree.TreeError("the proof needs distinct leaves")
        balance = 0
        for leaf in leaves:
            reached, reached_total, value = _check_leaf(proof, leaf, nonce, count.bit_length() - 1, count)
            if reached != own_root or reached_total != own_total:
                raise tree.TreeError("a path does not lead to the proof's root and total")
            balance += value
        if isinstance(proof.get("balance_minor"), bool) or proof.get("balance_minor") != balance:
            raise tree.TreeError(f"the leaves add up to {balance}, not the stated balance")
        if root is not None and own_root.hex() != root.strip().lower():
            raise tree.TreeError("the root is not the published root")
        if total is not None and own_total != total:
            raise tree.TreeError(f"the total {own_total} is not the published total {total}")
    except tree.TreeError as error:
        return ProofCheck(False, str(error))
    except UnicodeError:  # an id that cannot be encoded cannot be the one hashed into the leaf
        return ProofCheck(False, "an id in the proof is not valid text")
    return ProofCheck(True, root=own_root.hex(), total=own_total)


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
        if top.root.hex() != summary["root"] or top.total != summary["total"]:
            check.problems.append(f"{asset}: stored leaves give root {top.root.hex()} total {top.total}, "
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
