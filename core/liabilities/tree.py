"""The Merkle-sum tree of a proof of liabilities, in the fixed form of Maxwell's scheme.

Why this exact form: in the original scheme a node hashed only its children's hashes and
its own sum, so a custodian could publish a parent sum smaller than its children's (and
hide liabilities) without any user noticing. Here a node's hash commits to BOTH children's
hashes AND BOTH children's sums, the parent sum is their sum, and every sum is an integer
in minor units that must be non-negative and below 2**128. A user who checks their path
therefore checks every sum along it, and any reduction shows up as a different root.

Byte layout, format 2 (tools/verify_liabilities.py re-implements exactly this, and nothing else):
- commitment(user) = SHA256("PoL-user/2" 0x00 snapshot_id 0x00 asset 0x00 scale (1 byte) user_id 0x00
                            part (4 bytes, big-endian) nonce (32 bytes))
  ids are plain ASCII of fixed patterns (never NUL), so the separators make the encoding
  unambiguous; snapshot, asset, scale and user are bound into every leaf, so a leaf cannot
  be replayed in another asset's or snapshot's tree, shown under another name, or read
  with another number of decimals.
- leaf  = SHA256(0x00 commitment sum(16 bytes big-endian))
- node  = SHA256(0x01 left_hash left_sum(16) right_hash right_sum(16)); node sum = left + right
  (0x00 / 0x01 separate leaves from nodes, so a node can never pass for a leaf.)
- root  = SHA256("PoL-root/2" 0x00 snapshot_id 0x00 asset 0x00 scale(1) leaf_count(8) total(16)
                 public_key(32) tree_root(32)): the PUBLISHED root. It commits to the tree's
  size, its total, the asset, the snapshot, the scale and the key that signs statements, so
  none of them can be shown differently to different users under one published root.
- padding leaves have sum 0 and a commitment drawn from per-snapshot secret randomness,
  so they look exactly like a user's leaf and the tree does not reveal how many users it has.
- statement = "PoL-statement/2" 0x00 snapshot_id 0x00 asset 0x00 user_id 0x00 scale(1)
              balance(16) leaf_commitment(32) root(32), signed with Ed25519, where
  leaf_commitment = SHA256("PoL-leaves/2" 0x00 leaf hashes of the user, in part order).

Everything here is pure (no store) and linear: a tree of n leaves costs 2n SHA-256 calls
on a few dozen bytes each, level by level, with no recursion.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SUM_BYTES = 16
SUM_LIMIT = 1 << (8 * SUM_BYTES)  # every sum in the tree is 0 <= sum < 2**128
NONCE_BYTES = 32
HASH_BYTES = 32
PART_LIMIT = 1 << 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
USER_TAG = b"PoL-user/2\x00"
ROOT_TAG = b"PoL-root/2\x00"
STATEMENT_TAG = b"PoL-statement/2\x00"
LEAVES_TAG = b"PoL-leaves/2\x00"
SCALE_MAX = 18  # core.ledger.money.SCALE_MAX: one byte in every hash that binds it
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
PAD_TAG = b"PoL-pad\x00"
LEAVES_MAX = 1 << 26  # 67M leaves: far beyond any user base we serve; a bound, not a target


class TreeError(ValueError):
    """A tree or path was malformed (a bug in the caller: stored data is checked apart)."""


def check_sum(value: object, where: str) -> int:
    """The value as a tree sum. Raises: TreeError for a non-integer, negative or too large sum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TreeError(f"{where}: sum must be an integer of minor units, got {type(value).__name__}")
    if value < 0:
        raise TreeError(f"{where}: negative sum {value}")
    if value >= SUM_LIMIT:
        raise TreeError(f"{where}: sum {value} does not fit {SUM_BYTES} bytes")
    return value


def commitment_prefix(snapshot_id: str, asset: str, scale: int) -> bytes:
    """The constant head of every user commitment of one asset's tree."""
    return USER_TAG + snapshot_id.encode() + b"\x00" + asset.encode() + b"\x00" + scale.to_bytes(1, "big")


def user_commitment(snapshot_id: str, asset: str, scale: int, user_id: str, part: int, nonce: bytes) -> bytes:
    """H(user id, per-snapshot secret nonce), bound to the snapshot, the asset, its scale and the part."""
    assert len(nonce) == NONCE_BYTES and 0 <= part < PART_LIMIT and 0 <= scale <= SCALE_MAX, "made by core"
    return hashlib.sha256(commitment_prefix(snapshot_id, asset, scale) + user_id.encode() + b"\x00"
                          + part.to_bytes(4, "big") + nonce).digest()


def published_root(snapshot_id: str, asset: str, scale: int, leaf_count: int, total: int, public_key: bytes,
                   tree_root: bytes) -> bytes:
    """The root the exchange publishes: the tree's root sealed with its size, total, asset,
    snapshot, scale and statement key (see the module docstring)."""
    assert len(public_key) == PUBLIC_KEY_BYTES and len(tree_root) == HASH_BYTES and 0 < leaf_count <= LEAVES_MAX
    return hashlib.sha256(ROOT_TAG + snapshot_id.encode() + b"\x00" + asset.encode() + b"\x00" + scale.to_bytes(1, "big")
                          + leaf_count.to_bytes(8, "big") + total.to_bytes(SUM_BYTES, "big") + public_key + tree_root).digest()


def leaf_commitment(leaf_hashes: list[bytes]) -> bytes:
    """One hash over a user's leaves (in part order): what a signed statement names."""
    return hashlib.sha256(LEAVES_TAG + b"".join(leaf_hashes)).digest()


def statement_message(snapshot_id: str, asset: str, user_id: str, scale: int, balance: int, leaves: bytes, root: bytes) -> bytes:
    """The bytes the exchange signs for one user and asset (Ed25519)."""
    return (STATEMENT_TAG + snapshot_id.encode() + b"\x00" + asset.encode() + b"\x00" + user_id.encode() + b"\x00"
            + scale.to_bytes(1, "big") + balance.to_bytes(SUM_BYTES, "big") + leaves + root)


def padding_commitment(secret: bytes, index: int) -> bytes:
    """A padding leaf's commitment: indistinguishable from a user's without the secret."""
    return hashlib.sha256(PAD_TAG + secret + index.to_bytes(8, "big")).digest()


def leaf_hash(commitment: bytes, sum_minor: int) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + commitment + sum_minor.to_bytes(SUM_BYTES, "big")).digest()


def node_hash(left_hash: bytes, left_sum: int, right_hash: bytes, right_sum: int) -> bytes:
    return hashlib.sha256(
        NODE_PREFIX + left_hash + left_sum.to_bytes(SUM_BYTES, "big") + right_hash + right_sum.to_bytes(SUM_BYTES, "big")
    ).digest()


def padded_size(count: int) -> int:
    """The smallest power of two >= count (at least 1)."""
    if count > LEAVES_MAX:
        raise TreeError(f"{count} leaves exceed the limit {LEAVES_MAX}")
    size = 1
    while size < count:
        size *= 2
    return size


def leaf_level(commitments: list[bytes], sums: list[int]) -> tuple[list[bytes], list[int]]:
    """Leaf hashes of (commitment, sum) pairs; every sum is checked first."""
    if len(commitments) != len(sums):
        raise TreeError("as many sums as commitments are needed")
    if not all(type(value) is int for value in sums) or (sums and (min(sums) < 0 or max(sums) >= SUM_LIMIT)):
        for position, value in enumerate(sums):  # the slow path only names the first bad sum
            check_sum(value, f"leaf {position}")
    sha = hashlib.sha256
    hashes = [sha(LEAF_PREFIX + c + s.to_bytes(SUM_BYTES, "big")).digest() for c, s in zip(commitments, sums)]
    return hashes, list(sums)


def parent_level(hashes: list[bytes], sums: list[int]) -> tuple[list[bytes], list[int]]:
    """One level up: pairs (0,1), (2,3), ... Raises: TreeError on an odd level or a sum overflow."""
    if len(hashes) % 2 or len(hashes) != len(sums):
        raise TreeError("a level must have an even number of nodes, each with a sum")
    sha = hashlib.sha256
    parents: list[bytes] = []
    parent_sums: list[int] = []
    for position in range(0, len(hashes), 2):
        left_sum, right_sum = sums[position], sums[position + 1]
        total = left_sum + right_sum
        if total >= SUM_LIMIT:
            raise TreeError(f"sum {total} does not fit {SUM_BYTES} bytes")
        parents.append(sha(NODE_PREFIX + hashes[position] + left_sum.to_bytes(SUM_BYTES, "big")
                           + hashes[position + 1] + right_sum.to_bytes(SUM_BYTES, "big")).digest())
        parent_sums.append(total)
    return parents, parent_sums


@dataclass(frozen=True)
class Sibling:
    """One step of an inclusion path: the sibling's hash and sum, and its side."""

    side: str  # "left" or "right": where the SIBLING sits
    hash: bytes
    sum: int

    def as_dict(self) -> dict:
        return {"side": self.side, "hash": self.hash.hex(), "sum": self.sum}


class MerkleSumTree:
    """Every level of a tree over a power-of-two number of leaves (bottom level first)."""

    def __init__(self, leaf_hashes: list[bytes], sums: list[int]) -> None:
        if not leaf_hashes or len(leaf_hashes) & (len(leaf_hashes) - 1):
            raise TreeError(f"a tree needs a power-of-two number of leaves, got {len(leaf_hashes)}")
        levels = [(list(leaf_hashes), list(sums))]
        while len(levels[-1][0]) > 1:
            levels.append(parent_level(*levels[-1]))
        self.levels = levels

    @classmethod
    def from_leaves(cls, commitments: list[bytes], sums: list[int]) -> MerkleSumTree:
        return cls(*leaf_level(commitments, sums))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0][0]

    @property
    def total(self) -> int:
        return self.levels[-1][1][0]

    @property
    def leaf_count(self) -> int:
        return len(self.levels[0][0])

    def path(self, index: int) -> list[Sibling]:
        """The siblings from the leaf at `index` up to (not including) the root."""
        if not 0 <= index < self.leaf_count:
            raise TreeError(f"no leaf {index} in a tree of {self.leaf_count}")
        result = []
        for hashes, sums in self.levels[:-1]:
            sibling = index ^ 1
            result.append(Sibling("right" if sibling > index else "left", hashes[sibling], sums[sibling]))
            index //= 2
        return result


def climb(leaf: bytes, leaf_sum: int, path: list[Sibling]) -> tuple[bytes, int]:
    """The (root, total) a path leads to from a leaf, checking every sum on the way.

    Raises: TreeError for a negative or oversized sum or an unknown side.
    """
    current, total = leaf, check_sum(leaf_sum, "leaf")
    for height, sibling in enumerate(path):
        value = check_sum(sibling.sum, f"sibling at height {height}")
        if sibling.side == "left":
            current = node_hash(sibling.hash, value, current, total)
        elif sibling.side == "right":
            current = node_hash(current, total, sibling.hash, value)
        else:
            raise TreeError(f"sibling at height {height}: side must be left or right")
        total += value
        check_sum(total, f"node at height {height + 1}")
    return current, total
