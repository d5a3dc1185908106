"""The public bundle: every user's proofs in one file, each sealed to its user.

Why: when proofs exist only through a per-user request, the exchange learns who checks —
and a custodian that cheats only users who never check is the known attack on proofs of
solvency. Per snapshot, everyone downloads the SAME file; a user opens only their own
records, with the verification secret they obtained once (core.liabilities.reveal), and
the exchange sees nothing of who opened what.

Construction (standard library only, so tools/verify_liabilities.py can open it):
- per (user, snapshot, asset): HKDF-SHA256 (RFC 5869) with IKM = the user's 32-byte secret,
  salt = "PoL-bundle/2" 0x00 snapshot_id, info = "PoL-record/2" 0x00 asset, 80 bytes →
  tag (16) | encryption key (32) | MAC key (32);
- encrypt-then-MAC: keystream block i = SHA-256(encryption key ‖ i as 8 bytes) (counter
  mode; fixed-length one-block inputs, as NIST Hash_DRBG generates output), the plaintext
  XOR the keystream; MAC = HMAC-SHA256(MAC key, "PoL-record-mac/2" 0x00 tag ciphertext).
  Each key encrypts exactly one record, so no nonce is needed. The MAC is checked before
  anything is decrypted (a changed record is refused, never misread).
- a record on disk is tag | ciphertext | MAC, all of one size (the largest proof the
  snapshot's split and tree height allow), sorted by tag; padding records (pseudo-random
  bytes only the exchange's secret key can produce) bring the count to a power of two.

File: b"proof-of-liabilities-bundle/2\\n", one line of JSON (the header: snapshot id,
statement key, per asset scale / leaf count / total / root, record size and count), then the
records. The tool finds a record by binary search on the tags (about 20 reads at 1M users).

Plaintext of a record (big-endian): user id length (1) | user id (128, zero-padded) |
nonce (32) | signature (64) | number of leaves (1) | per leaf: index (8) part (4) sum (16)
then per step sibling hash (32) sibling sum (16) | zeros to the record size. The opener
rebuilds the proof-of-liabilities/2 JSON from it and the header, and verifies it like any proof.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from core.base.errors import InvalidArgumentError, SnapshotTamperedError, ensure
from core.liabilities import tree
from core.liabilities.keys import LiabilitiesKeys, keystream_xor
from core.liabilities.proofs import load_chunk, snapshot_keys
from core.liabilities.snapshot import get_snapshot, user_document_id
from core.liabilities.verify import FORMAT, PARTS_MAX, USER_ID_PATTERN, minor_text, verify_proof
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.boundary import boundary

BUNDLE_FORMAT = "proof-of-liabilities-bundle/2"
MAGIC = (BUNDLE_FORMAT + "\n").encode()
HEADER_BYTES_MAX = 1 << 20
TAG_BYTES = 16
MAC_BYTES = 32
USER_ID_BYTES = 128
STEP_BYTES = tree.HASH_BYTES + tree.SUM_BYTES
LEAF_HEAD_BYTES = 8 + 4 + tree.SUM_BYTES
KDF_SALT = b"PoL-bundle/2\x00"
KDF_INFO = b"PoL-record/2\x00"
MAC_LABEL = b"PoL-record-mac/2\x00"
USER_READ_BATCH = 1_000
PAIRED_CHECKS = 4  # records opened and verified again right after sealing, per bundle


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand)."""
    assert 0 < length <= 255 * 32
    prk = hmac.digest(salt, ikm, "sha256")
    block, output = b"", b""
    for counter in range(1, (length + 31) // 32 + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        output += block
    return output[:length]


def record_keys(secret: bytes, snapshot_id: str, asset: str) -> tuple[bytes, bytes, bytes]:
    """(tag, encryption key, MAC key) of one user's record for one asset of one snapshot."""
    okm = hkdf_sha256(secret, KDF_SALT + snapshot_id.encode(), KDF_INFO + asset.encode(), TAG_BYTES + 64)
    return okm[:TAG_BYTES], okm[TAG_BYTES:TAG_BYTES + 32], okm[TAG_BYTES + 32:]


def seal(secret: bytes, snapshot_id: str, asset: str, plaintext: bytes) -> bytes:
    """tag | ciphertext | MAC."""
    tag, encryption_key, mac_key = record_keys(secret, snapshot_id, asset)
    ciphertext = keystream_xor(encryption_key, plaintext)
    return tag + ciphertext + hmac.digest(mac_key, MAC_LABEL + tag + ciphertext, "sha256")


def unseal(secret: bytes, snapshot_id: str, asset: str, record: bytes) -> bytes | None:
    """The plaintext, or None when the record is not this user's (or was changed)."""
    tag, encryption_key, mac_key = record_keys(secret, snapshot_id, asset)
    body, mac = record[TAG_BYTES:-MAC_BYTES], record[-MAC_BYTES:]
    if record[:TAG_BYTES] != tag or not hmac.compare_digest(mac, hmac.digest(mac_key, MAC_LABEL + tag + body, "sha256")):
        return None
    return keystream_xor(encryption_key, body)


def plaintext_bytes(split_parts: int, height: int) -> int:
    return 1 + USER_ID_BYTES + tree.NONCE_BYTES + tree.SIGNATURE_BYTES + 1 + split_parts * (LEAF_HEAD_BYTES + height * STEP_BYTES)


def encode_record(user_id: str, nonce: bytes, signature: bytes, leaves: list[tuple[int, int, int, list[tree.Sibling]]],
                  size: int) -> bytes:
    """The plaintext of one record; `leaves`: (index, part, sum, path) in part order."""
    user = user_id.encode()
    parts = [bytes([len(user)]), user.ljust(USER_ID_BYTES, b"\x00"), nonce, signature, bytes([len(leaves)])]
    for index, part, value, path in leaves:
        parts.append(index.to_bytes(8, "big") + part.to_bytes(4, "big") + value.to_bytes(tree.SUM_BYTES, "big"))
        parts.extend(step.hash + step.sum.to_bytes(tree.SUM_BYTES, "big") for step in path)
    data = b"".join(parts)
    ensure(len(data) <= size, "a record outgrew the bundle's record size", size=size, needed=len(data))
    return data.ljust(size, b"\x00")


def decode_record(plaintext: bytes, header: dict, asset: dict) -> dict | None:
    """The proof-of-liabilities/2 JSON a record holds (checked by verify_proof afterwards), or None if malformed."""
    height, at = asset["leaf_count"].bit_length() - 1, 0

    def take(count: int) -> bytes:
        nonlocal at
        at += count
        if at > len(plaintext):
            raise ValueError("short record")
        return plaintext[at - count:at]

    try:
        length = take(1)[0]
        user = take(USER_ID_BYTES)[:length].decode("ascii")
        nonce, signature, count = take(tree.NONCE_BYTES), take(tree.SIGNATURE_BYTES), take(1)[0]
        if not USER_ID_PATTERN.fullmatch(user) or not 1 <= count <= PARTS_MAX:
            return None
        leaves = []
        for _ in range(count):
            head = take(LEAF_HEAD_BYTES)
            path = []
            for step in range(height):
                raw = take(STEP_BYTES)
                side = "left" if int.from_bytes(head[:8], "big") >> step & 1 else "right"
                path.append({"side": side, "hash": raw[:tree.HASH_BYTES].hex(), "sum": int.from_bytes(raw[tree.HASH_BYTES:], "big")})
            leaves.append({"index": int.from_bytes(head[:8], "big"), "part": int.from_bytes(head[8:12], "big"),
                           "sum": int.from_bytes(head[12:], "big"), "path": path})
    except (ValueError, UnicodeError):
        return None
    balance = sum(leaf["sum"] for leaf in leaves)
    return {"format": FORMAT, "snapshot_id": header["snapshot_id"], "asset": asset["asset"], "scale": asset["scale"],
            "user_id": user, "nonce": nonce.hex(), "balance_minor": balance, "balance": minor_text(balance, asset["scale"]),
            "leaves": leaves, "leaf_count": asset["leaf_count"], "total": asset["total"], "root": asset["root"],
            "public_key": header["public_key"], "signature": signature.hex()}


@dataclass
class BundleAsset:
    """One asset's tree as the builder needs it: its published summary, chunk subtrees and top tree."""

    summary: dict
    chunks: list[tree.MerkleSumTree]
    top: tree.MerkleSumTree


@dataclass(frozen=True)
class BundleUser:
    """One user's part of a snapshot: nonce, secret generation and leaves {asset, index, part, sum}."""

    user_id: str
    nonce: bytes
    generation: int
    leaves: tuple[dict, ...]


@dataclass(frozen=True)
class BundleResult:
    sha256: str
    size_bytes: int
    record_count: int
    record_bytes: int


def bundle_header(snapshot_id: str, public_key: str, split_parts: int, assets: list[BundleAsset]) -> dict:
    height = max((a.summary["leaf_count"].bit_length() - 1 for a in assets), default=0)
    size = TAG_BYTES + plaintext_bytes(split_parts, height) + MAC_BYTES
    return {"format": BUNDLE_FORMAT, "snapshot_id": snapshot_id, "public_key": public_key, "split_parts": split_parts,
            "height": height, "record_bytes": size,
            "assets": [{key: a.summary[key] for key in ("asset", "scale", "leaf_count", "total", "root")} for a in assets]}


def _real_record(keys: LiabilitiesKeys, header: dict, asset: BundleAsset, user: BundleUser) -> bytes:
    summary, snapshot_id = asset.summary, header["snapshot_id"]
    chunk_size, leaves, hashes = summary["chunk_size"], [], []
    for leaf in sorted((leaf for leaf in user.leaves if leaf["asset"] == summary["asset"]), key=lambda item: item["part"]):
        number, offset = divmod(leaf["index"], chunk_size)
        chunk = asset.chunks[number]
        hashes.append(chunk.levels[0][0][offset])
        leaves.append((leaf["index"], leaf["part"], leaf["sum"], chunk.path(offset) + asset.top.path(number)))
    balance = sum(value for _, _, value, _ in leaves)
    message = tree.statement_message(snapshot_id, summary["asset"], user.user_id, summary["scale"], balance,
                                     tree.leaf_commitment(hashes), bytes.fromhex(summary["root"]))
    plaintext = encode_record(user.user_id, user.nonce, keys.sign(message), leaves, header["record_bytes"] - TAG_BYTES - MAC_BYTES)
    return seal(keys.user_secret(user.user_id, user.generation), snapshot_id, summary["asset"], plaintext)


def write_bundle(out: BinaryIO, keys: LiabilitiesKeys, header: dict, assets: list[BundleAsset],
                 users: Iterable[BundleUser]) -> BundleResult:
    """Seal every user's records, pad to a power of two, sort by tag and write the file.

    Memory: the trees and one small tuple per record; records are produced one at a time in
    tag order. The first PAIRED_CHECKS real records are opened and verified again (a bundle
    that does not verify is never written to the end). Raises: BrokenInvariantError."""
    snapshot_id, by_asset = header["snapshot_id"], {a.summary["asset"]: i for i, a in enumerate(assets)}
    people = list(users)
    entries: list[tuple[bytes, int, int]] = []  # (tag, user position or -1 for padding, asset position or padding number)
    for position, user in enumerate(people):
        secret = keys.user_secret(user.user_id, user.generation)
        for code in sorted({leaf["asset"] for leaf in user.leaves}):
            entries.append((record_keys(secret, snapshot_id, code)[0], position, by_asset[code]))
    record_count = tree.padded_size(len(entries))
    label = snapshot_id.encode() + b"\x00"
    for number in range(record_count - len(entries)):
        entries.append((keys.padding_bytes(label + number.to_bytes(8, "big"), TAG_BYTES), -1, number))
    entries.sort()
    ensure(all(entries[i][0] != entries[i + 1][0] for i in range(len(entries) - 1)), "two bundle records share a tag")
    header = {**header, "record_count": record_count}
    head = MAGIC + json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    digest, written, checked = hashlib.sha256(head), len(head), 0
    out.write(head)
    for tag, position, which in entries:
        if position < 0:
            record = keys.padding_bytes(label + which.to_bytes(8, "big"), header["record_bytes"])
        else:
            asset, user = assets[which], people[position]
            record = _real_record(keys, header, asset, user)
            if checked < PAIRED_CHECKS:
                checked += 1
                _paired_check(keys, header, asset, user, record)
        ensure(len(record) == header["record_bytes"] and record[:TAG_BYTES] == tag, "a bundle record has the wrong size or tag")
        out.write(record)
        digest.update(record)
        written += len(record)
    return BundleResult(digest.hexdigest(), written, record_count, header["record_bytes"])


def _paired_check(keys: LiabilitiesKeys, header: dict, asset: BundleAsset, user: BundleUser, record: bytes) -> None:
    plaintext = unseal(keys.user_secret(user.user_id, user.generation), header["snapshot_id"], asset.summary["asset"], record)
    proof = decode_record(plaintext, header, asset.summary) if plaintext is not None else None
    result = verify_proof(proof, asset.summary["root"], asset.summary["total"], user_id=user.user_id)
    if not result.ok:
        raise SnapshotTamperedError(f"a sealed record of {asset.summary['asset']} does not verify: {result.reason}",
                                    snapshot_id=header["snapshot_id"])


def read_header(data: bytes) -> tuple[dict, int]:
    """(header, offset of the first record) of a bundle held in memory. Raises: InvalidArgumentError."""
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + HEADER_BYTES_MAX)
    if not data.startswith(MAGIC) or end < 0:
        raise InvalidArgumentError(f"not a {BUNDLE_FORMAT} file")
    return json.loads(data[len(MAGIC):end]), end + 1


def open_bundle(data: bytes, secret: bytes, asset: str) -> dict | None:
    """The proof sealed to `secret` for `asset` in a bundle held in memory (tests, small
    bundles; the stand-alone tool reads files by binary search), or None if there is none."""
    header, start = read_header(data)
    summary = next((a for a in header["assets"] if a["asset"] == asset), None)
    if summary is None:
        return None
    tag = record_keys(secret, header["snapshot_id"], asset)[0]
    size, low, high = header["record_bytes"], 0, header["record_count"]
    while low < high:
        middle = (low + high) // 2
        if data[start + middle * size:start + middle * size + TAG_BYTES] < tag:
            low = middle + 1
        else:
            high = middle
    record = data[start + low * size:start + (low + 1) * size]
    plaintext = unseal(secret, header["snapshot_id"], asset, record) if len(record) == size else None
    return decode_record(plaintext, header, summary) if plaintext is not None else None


# -- from the store ---------------------------------------------------------------------------
def _writable(value: object, name: str) -> None:
    if not callable(getattr(value, "write", None)) or isinstance(value, (str, bytes, bytearray)):
        raise InvalidArgumentError(f"{name} must be a binary file opened for writing", parameter=name)


def _stored_assets(platform: Platform, snapshot: dict) -> list[BundleAsset]:
    """Every asset's chunk subtrees, checked against the published root (paired check)."""
    assets = []
    for summary in snapshot["assets"]:
        chunks = [load_chunk(platform, snapshot, summary, number) for number in range(summary["leaf_count"] // summary["chunk_size"])]
        top = tree.MerkleSumTree([c.root for c in chunks], [c.total for c in chunks])
        root = tree.published_root(snapshot["_id"], summary["asset"], summary["scale"], summary["leaf_count"], top.total,
                                   bytes.fromhex(snapshot["public_key"]), top.root)
        if root.hex() != summary["root"] or top.total != summary["total"]:
            raise SnapshotTamperedError(f"stored leaves of {summary['asset']} no longer give the published root",
                                        snapshot_id=snapshot["_id"], asset=summary["asset"])
        assets.append(BundleAsset(summary, chunks, top))
    return assets


def _stored_users(platform: Platform, snapshot: dict) -> Iterable[BundleUser]:
    prefix = user_document_id(snapshot, "")  # this build's users are one _id range
    after, before = prefix, prefix[:-1] + ";"
    while True:
        batch = platform.store.collection("liabilities_users").find(
            {"_id": {"$gt": after, "$lt": before}}, sort=[("_id", 1)], limit=USER_READ_BATCH)
        for person in batch:
            yield BundleUser(person["user_id"], bytes.fromhex(person["nonce"]), person.get("generation", 1),
                             tuple({k: leaf[k] for k in ("asset", "index", "part", "sum")} for leaf in person["leaves"]))
        if len(batch) < USER_READ_BATCH:
            return
        after = batch[-1]["_id"]


@boundary(out=_writable)
def build_bundle(platform: Platform, principal: Principal, out: BinaryIO, *, snapshot_id: str | None = None) -> BundleResult:
    """Write the public bundle of a snapshot (default: the newest) to `out`.

    The bundle is a pure function of the stored snapshot and the keys, so every build of it
    is byte-for-byte the same: the first build records its SHA-256 on the snapshot (published
    with the roots) and is audited once (`liabilities.bundle_published`); a later build that
    gives another digest is refused. Reads every leaf chunk and every user of the snapshot.
    Raises: PermissionDeniedError, SnapshotNotFoundError, ProofNotFoundError (older format),
        ConfigurationError (keys), SnapshotTamperedError.
    """
    require(principal, Permission.MANAGE_LIABILITIES)
    snapshot = get_snapshot(platform.store, snapshot_id)
    keys = snapshot_keys(platform, snapshot)
    assets = _stored_assets(platform, snapshot)
    header = bundle_header(snapshot["_id"], snapshot["public_key"], snapshot["split_parts"], assets)
    result = write_bundle(out, keys, header, assets, _stored_users(platform, snapshot))
    recorded = {"sha256": result.sha256, "size_bytes": result.size_bytes, "record_count": result.record_count}
    snapshots = platform.store.collection("liabilities_snapshots")
    if snapshots.find_one_and_update({"_id": snapshot["_id"], "bundle": {"$exists": False}}, {"$set": {"bundle": recorded}}) is None:
        published = (snapshots.find_one({"_id": snapshot["_id"]}) or {}).get("bundle") or {}
        if published.get("sha256") != result.sha256:
            raise SnapshotTamperedError(f"the bundle of {snapshot['_id']} built now ({result.sha256[:16]}…) is not the one "
                                        f"published ({str(published.get('sha256'))[:16]}…)", snapshot_id=snapshot["_id"])
    platform.ledger.audit.append(type="liabilities.bundle_published", actor=principal.name, role=principal.role.value,
                                 target=snapshot["_id"], after=recorded, event_key=f"liabilities:bundle:{snapshot['_id']}")
    return result
