"""The public bundle: every user's proofs, each sealed to its user — equal-size records in a
power-of-two count, found only with the user's secret, identical on every build (its SHA-256
published with the roots), audited once, naming no one."""

from __future__ import annotations

import io
import json

import pytest

from core import liabilities
from core.base.errors import InvalidArgumentError, LedgerError, PermissionDeniedError, SnapshotNotFoundError, SnapshotTamperedError
from core.liabilities import bundle as bundle_module
from core.liabilities import tree
from tests.helpers import HOLDERS, fund_holders
from tests.principals import ADMIN, QA, SUPPORT
from tests.helpers import deposit


def build(platform, **arguments) -> bytes:
    out = io.BytesIO()
    liabilities.build_bundle(platform, ADMIN, out, **arguments)
    return out.getvalue()


def secret_of(platform, user: str) -> bytes:
    return bytes.fromhex(liabilities.reveal_user_secret(platform, SUPPORT, user, "ticket").replace("-", ""))


@pytest.fixture
def snapshot(platform):
    fund_holders(platform)
    return liabilities.take_snapshot(platform, ADMIN, split_parts=3)


def test_bundle_holds_every_users_signed_proof_sealed_to_them(platform, snapshot):
    data = build(platform)
    published = {a["asset"]: a for a in snapshot["assets"]}
    for user, assets in HOLDERS.items():
        secret = secret_of(platform, user)
        for asset in ("BTC", "ETH", "USDT"):
            proof = liabilities.open_bundle(data, secret, asset)
            if asset not in assets:
                assert proof is None
                continue
            check = liabilities.verify_proof(proof, published[asset]["root"], published[asset]["total"], user_id=user,
                                             public_key=snapshot["public_key"])
            assert check.ok and check.signed, check.reason
            assert proof == liabilities.user_proof_bundle(platform, SUPPORT, user, asset=asset)["proofs"][0]  # what support exports


def test_bundle_records_are_equal_sized_padded_and_name_no_one(platform, snapshot):
    data = build(platform)
    header, start = bundle_module.read_header(data)
    assert (len(data) - start) == header["record_count"] * header["record_bytes"]
    assert header["record_count"] == 8  # 5 (user, asset) records padded to a power of two: no exact count
    assert set(header) == {"format", "snapshot_id", "public_key", "split_parts", "height", "record_bytes", "record_count", "assets"}
    assert all(set(a) == {"asset", "scale", "leaf_count", "total", "root"} for a in header["assets"])
    tags = [data[start + i * header["record_bytes"]:start + i * header["record_bytes"] + 16] for i in range(header["record_count"])]
    assert tags == sorted(tags) and len(set(tags)) == len(tags)
    for user in HOLDERS:
        assert user.encode() not in data and user.encode().hex().encode() not in data
    for document in platform.store.collection("liabilities_users").find({}):
        assert bytes.fromhex(document["nonce"]) not in data


def test_bundle_is_the_same_file_on_every_build_and_its_digest_is_published(platform, snapshot):
    first, second = build(platform), build(platform)
    assert first == second
    import hashlib

    digest = hashlib.sha256(first).hexdigest()
    assert {row["bundle_sha256"] for row in liabilities.published_roots(platform, ADMIN)} == {digest}
    events = platform.store.collection("audit").find({"type": "liabilities.bundle_published"})
    assert len(events) == 1 and events[0]["after"]["sha256"] == digest and events[0]["actor"] == ADMIN.name


def test_bundle_refuses_when_stored_data_no_longer_matches(platform, snapshot):
    build(platform)
    raw = platform.store.raw("liabilities_snapshots")
    raw.update_one({"_id": snapshot["_id"]}, {"$set": {"bundle.sha256": "00" * 32}})
    with pytest.raises(SnapshotTamperedError, match="not the one published"):
        build(platform)
    chunk = platform.store.raw("liabilities_leaves").find_one({"asset": "BTC"})
    sums = list(chunk["sums"])
    sums[next(i for i, v in enumerate(sums) if v)] -= 1
    platform.store.raw("liabilities_leaves").update_one({"_id": chunk["_id"]}, {"$set": {"sums": sums}})
    with pytest.raises(SnapshotTamperedError, match="published root"):
        build(platform)


def test_bundle_record_sealing_refuses_a_changed_record():
    secret, plaintext = b"\x11" * 32, bytes(range(200))
    record = bundle_module.seal(secret, "s1", "BTC", plaintext)
    assert bundle_module.unseal(secret, "s1", "BTC", record) == plaintext
    assert record[16:-32] != plaintext and len(record) == 16 + 200 + 32
    for position in (0, 20, len(record) - 1):  # tag, ciphertext, MAC
        changed = bytearray(record)
        changed[position] ^= 0x80
        assert bundle_module.unseal(secret, "s1", "BTC", bytes(changed)) is None
    assert bundle_module.unseal(b"\x12" * 32, "s1", "BTC", record) is None
    assert bundle_module.unseal(secret, "s1", "ETH", record) is None and bundle_module.unseal(secret, "s2", "BTC", record) is None


def test_bundle_of_a_reissued_secret_opens_with_the_new_one_only_from_the_next_snapshot(platform, clock, snapshot):
    from datetime import timedelta

    old = secret_of(platform, "bob")
    first = build(platform)
    new = bytes.fromhex(liabilities.reissue_user_secret(platform, ADMIN, "bob", "secret exposed").replace("-", ""))
    assert new != old and liabilities.open_bundle(first, old, "BTC") is not None  # earlier bundles keep their secret
    clock.advance(timedelta(days=1))
    deposit(platform.ledger, "erin", "1", "BTC")
    liabilities.take_snapshot(platform, ADMIN)
    second = build(platform)
    assert liabilities.open_bundle(second, old, "BTC") is None
    assert liabilities.open_bundle(second, new, "BTC")["user_id"] == "bob"


@pytest.mark.parametrize("who", [SUPPORT, QA])
def test_bundle_is_admin_only(platform, snapshot, who):
    with pytest.raises(PermissionDeniedError):
        liabilities.build_bundle(platform, who, io.BytesIO())


def test_bundle_refuses_a_bad_target_or_snapshot_before_touching_the_store(platform, snapshot):
    for bad in ("bundle.bin", b"", None, 5, {"write": 1}):
        with pytest.raises(InvalidArgumentError):
            liabilities.build_bundle(platform, ADMIN, bad)
    with pytest.raises(SnapshotNotFoundError):
        liabilities.build_bundle(platform, ADMIN, io.BytesIO(), snapshot_id="missing")
    with pytest.raises(LedgerError):
        liabilities.build_bundle(platform, ADMIN, io.BytesIO(), snapshot_id={"$gt": ""})
    assert platform.store.collection("audit").count_documents({"type": "liabilities.bundle_published"}) == 0


def test_bundle_of_an_empty_snapshot_is_one_padding_record(platform):
    liabilities.take_snapshot(platform, ADMIN)
    header, start = bundle_module.read_header(build(platform))
    assert header["assets"] == [] and header["record_count"] == 1


def test_bundle_record_size_fits_the_largest_proof_the_snapshot_allows():
    assert bundle_module.plaintext_bytes(1, 20) == 1 + 128 + 32 + 64 + 1 + (28 + 20 * 48)
    leaves = [(7, part, 5, [tree.Sibling("right", b"\x01" * 32, 3)] * 4) for part in range(2)]
    data = bundle_module.encode_record("alice", b"\x02" * 32, b"\x03" * 64, leaves, bundle_module.plaintext_bytes(2, 4))
    header = {"snapshot_id": "s1", "public_key": "04" * 32}
    proof = bundle_module.decode_record(data, header, {"asset": "BTC", "scale": 8, "leaf_count": 16, "total": 10, "root": "05" * 32})
    assert proof["user_id"] == "alice" and [leaf["part"] for leaf in proof["leaves"]] == [0, 1] and proof["balance"] == "0.00000010"
    assert json.dumps(proof)  # plain JSON, like an exported proof
    assert bundle_module.decode_record(b"\x00" * 10, header, {"asset": "BTC", "scale": 8, "leaf_count": 16, "total": 0, "root": ""}) is None
