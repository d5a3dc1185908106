"""The stand-alone verifier (tools/verify_liabilities.py) and core's verify_proof accept every
honest proof and reject every forgery the issue names; the tool imports only the standard
library and runs outside the project."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import liabilities
from tests.core.test_liabilities_snapshot import ADMIN, SUPPORT, USERS, fund

TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_liabilities.py"


def _tool():
    spec = importlib.util.spec_from_file_location("verify_liabilities", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(tmp_path, document, *args) -> tuple[int, str]:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(document))
    result = subprocess.run([sys.executable, "-I", str(TOOL), str(path), *args], capture_output=True, text=True, cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def published(platform):
    """(snapshot, {user: {asset: proof}}) for an honest snapshot with split leaves."""
    fund(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN, split_parts=2)
    proofs = {user: {p["asset"]: p for p in liabilities.user_proof_bundle(platform, SUPPORT, user)["proofs"]} for user in USERS}
    return {a["asset"]: a for a in snapshot["assets"]}, proofs


def both_reject(tmp_path, proof, reason_part: str, root=None, total=None) -> None:
    """Core's verify_proof and the stand-alone tool both refuse, for the named reason."""
    check = liabilities.verify_proof(proof, root, total)
    assert not check.ok and reason_part in check.reason, check.reason
    args = [*(["--root", root] if root else []), *(["--total", str(total)] if total is not None else [])]
    code, output = run_tool(tmp_path, proof, *args)
    assert code == 1 and "INVALID" in output and reason_part in output, output


def test_verifier_accepts_every_honest_proof_and_the_bundle(tmp_path, platform, published):
    roots, proofs = published
    for user, per_asset in proofs.items():
        for asset, proof in per_asset.items():
            assert liabilities.verify_proof(proof, roots[asset]["root"], roots[asset]["total"]).ok
            code, output = run_tool(tmp_path, proof, "--root", roots[asset]["root"], "--total", str(roots[asset]["total"]))
            assert code == 0 and f"OK {asset}: {user} holds {proof['balance']}" in output, output
    bundle = liabilities.user_proof_bundle(platform, SUPPORT, "bob")
    code, output = run_tool(tmp_path, bundle)
    assert code == 0 and "OK BTC" in output and "OK USDT" in output and "compare each root" in output
    code, output = run_tool(tmp_path, bundle, "--asset", "USDT", "--root", roots["USDT"]["root"], "--total", str(roots["USDT"]["total"]))
    assert code == 0, output


def test_verifier_rejects_a_changed_balance(tmp_path, published):
    proof = copy.deepcopy(published[1]["bob"]["BTC"])
    proof["leaves"][0]["sum"] += 1
    proof["balance_minor"] += 1
    both_reject(tmp_path, proof, "does not match this user id, nonce and balance")
    del proof["leaves"][0]["hash"]  # without the leaf hash the path no longer reaches the root
    both_reject(tmp_path, proof, "root and total")
    stated = copy.deepcopy(published[1]["bob"]["BTC"])
    stated["balance_minor"] -= 1  # the text a person reads must be the balance in the tree
    both_reject(tmp_path, stated, "balance")


def test_verifier_rejects_a_changed_sibling_sum(tmp_path, published):
    proof = copy.deepcopy(published[1]["alice"]["BTC"])
    proof["leaves"][0]["path"][-1]["sum"] -= 1
    both_reject(tmp_path, proof, "root and total")


@pytest.mark.parametrize("where", ["sibling", "leaf", "total"])
def test_verifier_rejects_a_negative_sum_anywhere(tmp_path, published, where):
    proof = copy.deepcopy(published[1]["bob"]["USDT"])
    if where == "sibling":
        proof["leaves"][0]["path"][0]["sum"] = -1
    elif where == "leaf":
        proof["leaves"][0]["sum"] = -1
    else:
        proof["total"] = -proof["total"]
    both_reject(tmp_path, proof, "negative")


def test_verifier_rejects_a_root_or_total_other_than_the_published_one(tmp_path, published):
    roots, proofs = published
    proof = proofs["bob"]["BTC"]
    both_reject(tmp_path, proof, "published root", root=roots["USDT"]["root"])
    both_reject(tmp_path, proof, "published total", root=roots["BTC"]["root"], total=roots["BTC"]["total"] + 1)
    forged = copy.deepcopy(proof)
    forged["root"], forged["total"] = roots["USDT"]["root"], roots["USDT"]["total"]  # claims another tree's root
    both_reject(tmp_path, forged, "root and total")


def test_verifier_rejects_a_proof_for_another_asset(tmp_path, published):
    roots, proofs = published
    both_reject(tmp_path, proofs["bob"]["USDT"], "published root", root=roots["BTC"]["root"], total=roots["BTC"]["total"])
    relabelled = copy.deepcopy(proofs["bob"]["USDT"])
    relabelled["asset"] = "BTC"  # the asset is bound into every leaf
    both_reject(tmp_path, relabelled, "does not match this user id")


def test_verifier_rejects_a_leaf_of_another_user(tmp_path, published):
    proofs = published[1]
    renamed = copy.deepcopy(proofs["alice"]["BTC"])
    renamed["user_id"] = "bob"
    both_reject(tmp_path, renamed, "does not match this user id")
    borrowed = copy.deepcopy(proofs["alice"]["BTC"])
    borrowed["leaves"] = copy.deepcopy(proofs["bob"]["BTC"]["leaves"])  # bob's bigger leaves under alice's name
    borrowed["balance_minor"] = proofs["bob"]["BTC"]["balance_minor"]
    del borrowed["balance"]
    both_reject(tmp_path, borrowed, "does not match this user id")


@pytest.mark.parametrize("mutate", [
    lambda p: p.update(format="other"), lambda p: p.update(nonce="zz"), lambda p: p.update(leaf_count=3),
    lambda p: p["leaves"][0]["path"].pop(), lambda p: p["leaves"][0]["path"][0].update(side="up"),
    lambda p: p["leaves"][0].update(index=-1), lambda p: p["leaves"][0]["path"][0].update(sum=1.0),
    lambda p: p["leaves"].append(copy.deepcopy(p["leaves"][0])), lambda p: p.update(leaves=[]),
    lambda p: p.update(user_id="bo\ud800b"), lambda p: p.update(leaves=["x"]), lambda p: p.update(total=True),
])
def test_verifier_rejects_malformed_proofs(tmp_path, published, mutate):
    proof = copy.deepcopy(published[1]["bob"]["BTC"])
    mutate(proof)
    assert not liabilities.verify_proof(proof).ok
    assert run_tool(tmp_path, proof)[0] == 1


def test_verifier_usage_errors(tmp_path, published):
    assert subprocess.run([sys.executable, str(TOOL), str(tmp_path / "missing.json")], capture_output=True).returncode == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert subprocess.run([sys.executable, str(TOOL), str(tmp_path / "bad.json")], capture_output=True).returncode == 1
    bundle = {"format": liabilities.BUNDLE_FORMAT, "proofs": list(published[1]["bob"].values())}
    code, output = run_tool(tmp_path, bundle, "--root", "00" * 32)  # two proofs: which one is meant?
    assert code == 1 and "--asset" in output


def test_verifier_imports_only_the_standard_library():
    imported = set()
    for node in ast.walk(ast.parse(TOOL.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names), imported
    assert len(TOOL.read_text().splitlines()) < 200  # small enough to read before running


def test_verifier_implementations_agree_on_the_same_proof(published):
    tool = _tool()
    roots, proofs = published
    proof = proofs["dave"]["ETH"]
    assert tool.verify(proof) == (roots["ETH"]["root"], roots["ETH"]["total"])
    check = liabilities.verify_proof(proof)
    assert (check.root, check.total) == (roots["ETH"]["root"], roots["ETH"]["total"])
