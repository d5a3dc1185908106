"""The stand-alone verifier (tools/verify_liabilities.py) and core (verify_proof and
`python -m core liabilities verify`) judge ONE shared corpus of honest and forged proofs
(tests/data/liabilities_forgeries.json) the same way; the tool opens a user's record from the
public bundle with their secret; its Ed25519 and HKDF are checked against the RFCs' vectors
and against `cryptography`; it imports only the standard library and runs outside the project."""

from __future__ import annotations

import ast
import copy
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import liabilities
from core.cli import main as cli
from core.liabilities import bundle as bundle_module
from core.liabilities.verify import parse_amount
from tests.helpers import HOLDERS, fund_holders
from tests.principals import ADMIN, SUPPORT

pytestmark = pytest.mark.usefixtures("pol_keys")  # throw-away proof-of-liabilities keys (tests/conftest.py)
TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_liabilities.py"
CORPUS = json.loads((Path(__file__).resolve().parents[1] / "data" / "liabilities_forgeries.json").read_text())


def _tool():
    spec = importlib.util.spec_from_file_location("verify_liabilities", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()


def run_tool(*args: str, cwd: Path) -> tuple[int, str]:
    """The tool as a user runs it: a separate, isolated interpreter (-I: no project on the path)."""
    result = subprocess.run([sys.executable, "-I", str(TOOL), *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                            stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout + result.stderr


def argv(arguments: dict) -> list[str]:
    flags = {"user": "--user", "root": "--root", "total": "--total", "balance": "--balance", "public_key": "--public-key",
             "asset": "--asset"}
    return [item for name, value in arguments.items() for item in (flags[name], value)]


# -- the shared corpus --------------------------------------------------------------------------
def test_corpus_holds_every_attack_and_an_honest_base():
    names = {case["name"] for case in CORPUS["cases"]}
    for attack in ("scale edited to 6 and balance to 150.000000 (issue 21)", "bob handed alice's proof (issue 21)",
                   "a look-alike user id on the command line (Cyrillic o)", "no --root",
                   "a made-up tree signed by another key, without --root (issue 21)", "leaf_count doubled with one more (zero) step",
                   "leaf index is a list", "a leaf is an empty object", "leaf hash null (an unknown field)", "balance NaN text",
                   "scale 10**9", "a sibling's sum lowered (Maxwell)", "a negative sibling sum", "relabelled to another asset",
                   "honest proof, total as displayed with thousands separators", "bob's leaves under alice's name"):
        assert attack in names, attack
    honest = CORPUS["cases"][0]
    assert honest["exit"] == 0 and honest["proof"]["root"] == CORPUS["published"]["BTC"]["root"]
    assert sum(case["exit"] == 1 for case in CORPUS["cases"]) > 50
    assert "secret" not in json.dumps(CORPUS).lower()  # public data only: no secret, no field named like one


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[case["name"] for case in CORPUS["cases"]])
def test_corpus_both_verifiers_agree(case, tmp_path, capsys):
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(case["proof"]))
    arguments = argv(case["args"])
    code, output = run_tool(str(path), *arguments, cwd=tmp_path)
    assert code == case["exit"], output
    assert case["reason"] in output, output
    assert cli.main(["liabilities", "verify", str(path), *arguments]) == case["exit"]
    captured = capsys.readouterr()
    assert case["reason"] in captured.out + captured.err
    if case["exit"] == 2:
        return
    scale = liabilities.verify_proof(case["proof"]).scale or 8
    total = parse_amount(case["args"]["total"], scale)
    balance = parse_amount(case["args"]["balance"], scale) if "balance" in case["args"] else None
    check = liabilities.verify_proof(case["proof"], case["args"]["root"], -1 if total is None else total,
                                     user_id=case["args"]["user"], balance_minor=-1 if balance is None and "balance" in case["args"] else balance,
                                     public_key=case["args"].get("public_key"))
    assert check.ok == (case["exit"] == 0), check.reason
    assert case["reason"] in check.reason


def test_corpus_prints_only_what_the_root_commits(tmp_path):
    """Issue 21: a leaf of 1.5 BTC with scale 6 and balance "150.000000" printed "alice holds 150.000000"."""
    honest = next(c for c in CORPUS["cases"] if c["name"] == "honest proof")
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(honest["proof"]))
    code, output = run_tool(str(path), *argv(honest["args"]), cwd=tmp_path)
    assert code == 0 and "OK BTC: alice holds 1.50000000 BTC" in output, output
    forged = next(c for c in CORPUS["cases"] if c["name"].startswith("scale edited"))
    path.write_text(json.dumps(forged["proof"]))
    code, output = run_tool(str(path), *argv(forged["args"]), cwd=tmp_path)
    assert code == 1 and "150" not in output.split("INVALID")[0], output


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_verifiers_agree_on_random_mutations_and_core_never_raises(data):
    proof = copy.deepcopy(CORPUS["cases"][0]["proof"])
    json_values = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**130, max_value=2**130) | st.floats()
                               | st.text(max_size=70), lambda inner: st.lists(inner, max_size=3)
                               | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        container, key = _pick(data, proof)
        if isinstance(container, dict) and data.draw(st.booleans(), label="delete"):
            container.pop(key, None)
        else:
            container[key] = data.draw(json_values, label="value")
    check = liabilities.verify_proof(proof)  # never raises
    try:
        tool.verify(proof)
        tool_ok = True
    except tool.Invalid:
        tool_ok = False
    assert check.ok == tool_ok, check.reason


def _pick(data, proof):
    """A random (container, key) inside the proof."""
    container, key = proof, data.draw(st.sampled_from(sorted(proof)), label="field")
    while isinstance(container[key], (dict, list)) and container[key] and data.draw(st.booleans(), label="deeper"):
        container = container[key]
        key = data.draw(st.sampled_from(sorted(container) if isinstance(container, dict) else range(len(container))), label="key")
    return container, key


# -- live snapshots: honest proofs, the bundle ------------------------------------------------------
@pytest.fixture
def published(platform):
    """(roots by asset, proofs {user: {asset: proof}}, platform) of an honest snapshot with split leaves."""
    fund_holders(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN, split_parts=2)
    proofs = {user: {p["asset"]: p for p in liabilities.user_proof_bundle(platform, SUPPORT, user)["proofs"]} for user in HOLDERS}
    return {a["asset"]: a for a in snapshot["assets"]}, proofs, platform


def test_tool_accepts_every_honest_proof_and_the_export(tmp_path, published):
    roots, proofs, platform = published
    for user, per_asset in proofs.items():
        for asset, proof in per_asset.items():
            (tmp_path / "proof.json").write_text(json.dumps(proof))
            code, output = run_tool("proof.json", "--user", user, "--root", roots[asset]["root"], "--total", str(roots[asset]["total"]),
                                    cwd=tmp_path)
            assert code == 0 and f"OK {asset}: {user} holds" in output, output
    (tmp_path / "bob.json").write_text(liabilities.bundle_json(liabilities.user_proof_bundle(platform, SUPPORT, "bob")))
    code, output = run_tool("bob.json", "--user", "bob", "--root", roots["USDT"]["root"], "--total", "100.000001", "--asset", "USDT",
                            cwd=tmp_path)  # the total as the console shows it (bob's 100 and carol's 0.000001)
    assert code == 0 and "OK USDT: bob holds 100.000000 USDT" in output, output
    code, output = run_tool("bob.json", "--user", "bob", "--root", roots["USDT"]["root"], "--total", "100.000001", cwd=tmp_path)
    assert code == 2 and "--asset" in output  # two proofs: which one?
    code, output = run_tool("bob.json", "--user", "bob", "--root", roots["USDT"]["root"], "--total", "1", "--asset", "GBP", cwd=tmp_path)
    assert code == 1 and "no GBP proof" in output  # issue 21: an asset not in the file is not a pass


def _bundle(platform, tmp_path) -> Path:
    path = tmp_path / "bundle.bin"
    with path.open("wb") as out:
        liabilities.build_bundle(platform, ADMIN, out)
    return path


def _secret(platform, user: str, tmp_path) -> Path:
    path = tmp_path / f"{user}.secret"
    path.write_text(liabilities.reveal_user_secret(platform, SUPPORT, user, "ticket 42") + "\n")
    return path


def test_tool_opens_each_users_own_record_from_the_bundle(tmp_path, published):
    roots, proofs, platform = published
    path = _bundle(platform, tmp_path)
    for user, per_asset in proofs.items():
        secret = _secret(platform, user, tmp_path)
        for asset, proof in per_asset.items():
            code, output = run_tool("--bundle", str(path), "--secret-file", str(secret), "--user", user, "--asset", asset,
                                    "--root", roots[asset]["root"], "--total", str(roots[asset]["total"]),
                                    "--balance", proof["balance"], "--save", f"{user}-{asset}.json", cwd=tmp_path)
            assert code == 0 and f"OK {asset}: {user} holds" in output, output
            saved = json.loads((tmp_path / f"{user}-{asset}.json").read_text())
            assert saved == proof  # the record holds exactly the proof support would export, signature included
    code, output = run_tool("--bundle", str(path), "--secret-file", "bob.secret", "--user", "bob", "--root", roots["BTC"]["root"],
                            "--total", str(roots["BTC"]["total"]), cwd=tmp_path)
    assert code == 2 and "BTC, USDT" in output  # records in two assets: name one


def test_tool_bundle_refuses_wrong_secrets_other_users_and_tampering(tmp_path, published):
    roots, _, platform = published
    path = _bundle(platform, tmp_path)
    alice, bob = _secret(platform, "alice", tmp_path), _secret(platform, "bob", tmp_path)
    common = ["--root", roots["BTC"]["root"], "--total", str(roots["BTC"]["total"]), "--asset", "BTC"]
    code, output = run_tool("--bundle", str(path), "--secret-file", str(bob), "--user", "alice", *common, cwd=tmp_path)
    assert code == 1 and "another user" in output  # bob's record is bob's
    (tmp_path / "wrong.secret").write_text("00" * 32)
    code, output = run_tool("--bundle", str(path), "--secret-file", "wrong.secret", "--user", "alice", *common, cwd=tmp_path)
    assert code == 1 and "no record" in output
    code, output = run_tool("--bundle", str(path), "--secret-file", str(alice), "--user", "alice", *common[:4], "--asset", "GBP",
                            cwd=tmp_path)
    assert code == 1 and "no GBP" in output
    data = bytearray(path.read_bytes())
    header, start = bundle_module.read_header(bytes(data))
    for position in range(start + 20, len(data), header["record_bytes"]):
        data[position] ^= 1  # one bit of every record's ciphertext
    (tmp_path / "tampered.bin").write_bytes(bytes(data))
    code, output = run_tool("--bundle", "tampered.bin", "--secret-file", str(alice), "--user", "alice", *common, cwd=tmp_path)
    assert code == 1 and "no record" in output  # the MAC refuses it; nothing is misread
    (tmp_path / "short.bin").write_bytes(bytes(data[:start + 10]))
    assert run_tool("--bundle", "short.bin", "--secret-file", str(alice), "--user", "alice", *common, cwd=tmp_path)[0] == 1
    (tmp_path / "junk.bin").write_bytes(b"junk\n{}\n")
    assert run_tool("--bundle", "junk.bin", "--secret-file", str(alice), "--user", "alice", *common, cwd=tmp_path)[0] == 2
    (tmp_path / "bad.secret").write_text("not hex")
    assert run_tool("--bundle", str(path), "--secret-file", "bad.secret", "--user", "alice", *common, cwd=tmp_path)[0] == 2
    assert run_tool("--bundle", str(path), "--user", "alice", *common, cwd=tmp_path)[0] == 2  # no terminal, nothing piped: refused
    piped = subprocess.run([sys.executable, "-I", str(TOOL), "--bundle", str(path), "--user", "alice", *common], cwd=tmp_path,
                           input=alice.read_text(), capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "OK BTC: alice holds" in piped.stdout  # the secret piped in


def test_tool_usage_errors(tmp_path, published):
    roots, proofs, _ = published
    (tmp_path / "p.json").write_text(json.dumps(proofs["alice"]["BTC"]))
    common = ["--root", roots["BTC"]["root"], "--total", str(roots["BTC"]["total"])]
    assert run_tool("missing.json", "--user", "alice", *common, cwd=tmp_path)[0] == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert run_tool("bad.json", "--user", "alice", *common, cwd=tmp_path)[0] == 1
    code, output = run_tool("p.json", "--user", "alice", "--root", roots["BTC"]["root"], cwd=tmp_path)
    assert code == 2 and "--total" in output and "PUBLISHED" in output
    assert run_tool("--user", "alice", *common, cwd=tmp_path)[0] == 2  # neither a file nor --bundle
    assert run_tool("p.json", "--bundle", "b.bin", "--user", "alice", *common, cwd=tmp_path)[0] == 2  # both


def test_tool_imports_only_the_standard_library_and_stays_readable():
    imported = set()
    for node in ast.walk(ast.parse(TOOL.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names), imported
    assert len(TOOL.read_text().splitlines()) < 450  # small enough to read before running


def test_both_implementations_agree_on_a_live_proof(published):
    roots, proofs, _ = published
    result = tool.verify(proofs["dave"]["ETH"])
    check = liabilities.verify_proof(proofs["dave"]["ETH"])
    assert (result["root"], result["total"], result["balance"]) == (check.root, check.total, check.balance_minor)
    assert (check.root, check.total) == (roots["ETH"]["root"], roots["ETH"]["total"])


# -- the primitives against their standards -------------------------------------------------------
RFC8032 = [  # RFC 8032 section 7.1, TEST 1, 2, 3: (secret key, public key, message, signature)
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "", "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72", "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82", "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret, public, message, signature", RFC8032)
def test_ed25519_rfc8032_vectors(secret, public, message, signature):
    public, message, signature = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert tool.ed25519_verify(public, message, signature)
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))  # the vectors are what cryptography makes too
    assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == public and key.sign(message) == signature
    assert not tool.ed25519_verify(public, message + b"x", signature)
    assert not tool.ed25519_verify(public, message, signature[:32] + (int.from_bytes(signature[32:], "little")
                                                                        + tool.L).to_bytes(32, "little"))  # S + L: not canonical
    assert not tool.ed25519_verify(b"\xff" * 31 + b"\x7f", message, signature)  # y >= p: not a point encoding
    assert not tool.ed25519_verify(public[:31], message, signature) and not tool.ed25519_verify(public, message, signature[:63])


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200), st.integers(min_value=-1, max_value=511))
def test_ed25519_agrees_with_cryptography(seed, message, flipped_bit):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public, signature = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw), bytearray(key.sign(message))
    if flipped_bit >= 0:
        signature[flipped_bit // 8] ^= 1 << flipped_bit % 8
    from core.liabilities.keys import verify_signature

    assert tool.ed25519_verify(public, message, bytes(signature)) == verify_signature(public, bytes(signature), message) == (flipped_bit < 0)


def test_hkdf_rfc5869_vector_and_cryptography():
    ikm, salt, info = bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA))  # RFC 5869 A.1
    expected = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    assert tool.hkdf(ikm, salt, info, 42).hex() == bundle_module.hkdf_sha256(ikm, salt, info, 42).hex() == expected
    for length in (16, 32, 80, 100):
        ikm, salt, info = os.urandom(32), os.urandom(20), os.urandom(12)
        reference = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
        assert tool.hkdf(ikm, salt, info, length) == bundle_module.hkdf_sha256(ikm, salt, info, length) == reference


def test_tool_and_core_open_the_same_sealed_record():
    secret, plaintext = os.urandom(32), os.urandom(300)
    record = bundle_module.seal(secret, "s1", "BTC", plaintext)
    assert tool.open_record(record, secret, "s1", "BTC") == bundle_module.unseal(secret, "s1", "BTC", record) == plaintext
    assert tool.open_record(record, secret, "s1", "ETH") is None and tool.open_record(record, secret, "s2", "BTC") is None
    assert tool.open_record(record, os.urandom(32), "s1", "BTC") is None
    changed = bytearray(record)
    changed[40] ^= 1
    assert tool.open_record(bytes(changed), secret, "s1", "BTC") is None and bundle_module.unseal(secret, "s1", "BTC", bytes(changed)) is None
    assert io.BytesIO(record).read(16) == bundle_module.record_keys(secret, "s1", "BTC")[0]
