"""Write tests/data/liabilities_forgeries.json: ONE corpus of honest and forged proofs that
both verifiers (core.liabilities.verify_proof / `python -m core liabilities verify`, and the
stand-alone tools/verify_liabilities.py) must judge the same way (tests/tools/test_verify_liabilities.py).

    PYTHONPATH=. .venv/bin/python tests/data/make_liabilities_forgeries.py

The snapshot is built by core with throw-away keys that are dropped when this script ends:
the file holds only public data (roots, the public key, proofs and their signatures), never
a secret. Each case: the proof, the command-line arguments a user gives, the exit code both
command-line verifiers must return (0 valid, 1 invalid, 2 usage) and, for 0/1, what
verify_proof must say. Every attack of issues 14 and 21 is a case.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from core import liabilities
from core.clock import ManualClock
from core.ledger import Store
from core.liabilities import keys as keys_module
from core.ledger import DEFAULT_REGISTRY
from core.liabilities.proofs import chunk_tree, leaf_path, proof_document, top_tree
from core.liabilities.snapshot import build_asset_tree
from core.liabilities.verify import minor_text
from core.permissions import Principal, Role
from core.platform import Platform
from tests.helpers import deposit

OUT = Path(__file__).with_name("liabilities_forgeries.json")
ADMIN = Principal(name="corpus-admin", role=Role.ADMIN)
SUPPORT = Principal(name="corpus-support", role=Role.SUPPORT)
CYRILLIC_BOB = "b\u043eb"  # bоb: the о is Cyrillic


def snapshot() -> tuple[dict, dict]:
    platform = Platform.open(Store.embedded_store("corpus"), ManualClock())
    for number in range(24):
        deposit(platform.ledger, f"u{number:04d}", f"{number + 1}.25", "BTC", key=f"corpus-{number}")
    deposit(platform.ledger, "alice", "1.5", "BTC", key="corpus-alice")
    deposit(platform.ledger, "bob", "2", "BTC", key="corpus-bob")
    deposit(platform.ledger, "bob", "100", "USDT", key="corpus-bob-usdt")
    taken = liabilities.take_snapshot(platform, ADMIN, split_parts=2, snapshot_id="corpus-2026-01", rng=random.Random(21))
    proofs = {user: {p["asset"]: p for p in liabilities.user_proof_bundle(platform, SUPPORT, user)["proofs"]} for user in ("alice", "bob")}
    return {a["asset"]: a for a in taken["assets"]} | {"public_key": taken["public_key"]}, proofs


def made_up_tree(published: dict, alice: dict) -> dict:
    """A self-consistent proof of a tree the exchange never published: alice alone, signed by another key."""
    forger = keys_module.LiabilitiesKeys(keys_module.Ed25519PrivateKey.generate(), b"\x01" * 32, throwaway=True)
    nonce = bytes.fromhex(alice["nonce"])
    built = build_asset_tree(alice["snapshot_id"], "BTC", {"alice": alice["balance_minor"]}, {"alice": nonce}, 1,
                             random.Random(5), DEFAULT_REGISTRY, public_key=forger.public_key)
    leaf = next({"index": i, "part": part, "sum": value} for i, (_, value, owner, part) in enumerate(built.leaves) if owner == "alice")
    chunk = chunk_tree(built.chunks[0], built.summary["chunk_size"])
    return proof_document(alice["snapshot_id"], built.summary, "alice", nonce, [(leaf, leaf_path(leaf["index"], chunk, top_tree(built.summary)))],
                          forger, forger.public_key.hex())


def cases(published: dict, proofs: dict) -> list[dict]:
    btc, usdt = published["BTC"], published["USDT"]
    alice, bob = proofs["alice"]["BTC"], proofs["bob"]["BTC"]
    args = {"user": "alice", "root": btc["root"], "total": str(btc["total"])}
    found: list[dict] = []

    def case(name: str, proof: object, exit_code: int, reason: str = "", **changes: object) -> None:
        given = {**args, **changes}
        found.append({"name": name, "proof": proof, "args": {k: v for k, v in given.items() if v is not None},
                      "exit": exit_code, "reason": reason})

    def forged(name: str, change, exit_code: int = 1, reason: str = "", base: dict = alice, **changes: object) -> None:
        proof = copy.deepcopy(base)
        change(proof)
        case(name, proof, exit_code, reason, **changes)

    displayed = f"{int(minor_text(btc['total'], 8).split('.')[0]):,}.{minor_text(btc['total'], 8).split('.')[1]}"
    case("honest proof", alice, 0)
    case("honest proof, total as displayed with thousands separators", alice, 0, total=displayed)
    case("honest proof, the balance the user sees (displayed)", alice, 0, balance="1.50000000")
    case("honest proof, the balance the user sees (minor units)", alice, 0, balance="150000000")
    case("honest proof, the published statement key pinned", alice, 0, public_key=published["public_key"])
    case("honest proof of bob", bob, 0, user="bob")
    # issue 21: what the tool prints must be committed
    forged("scale edited to 6 and balance to 150.000000 (issue 21)", lambda p: p.update(scale=6, balance="150.000000"), reason="signature")
    forged("balance text edited, minor units left alone", lambda p: p.update(balance="150.00000000"), reason="balance")
    forged("balance NaN text", lambda p: p.update(balance="sNaN"), reason="balance")
    forged("scale 10**9", lambda p: p.update(scale=10**9), reason="scale")
    forged("scale as text", lambda p: p.update(scale="8"), reason="scale")
    case("the balance the user sees differs from the tree's", alice, 1, "balance in the tree", balance="1.6")
    case("the balance the user gave has more decimals than the asset", alice, 1, "", balance="1.500000001")
    # issue 21: someone else's proof
    case("bob handed alice's proof (issue 21)", alice, 1, "another user", user="bob")
    case("a look-alike user id on the command line (Cyrillic o)", alice, 2, "not a valid user id", user=CYRILLIC_BOB)
    case("a user id with a trailing newline on the command line", alice, 2, "not a valid user id", user="alice\n")
    forged("proof relabelled with a look-alike user id", lambda p: p.update(user_id=CYRILLIC_BOB), reason="user id", user="bob")
    forged("proof relabelled to bob", lambda p: p.update(user_id="bob"), reason="signature", user="bob")
    # issue 21: no root, no check
    case("no --root", alice, 2, "give --root", root=None)
    case("no --total", alice, 2, "give --total", total=None)
    case("no --user", alice, 2, "give --user", user=None)
    fake = made_up_tree(published, alice)
    case("a made-up tree signed by another key, without --root (issue 21)", fake, 2, "give --root, --total", root=None, total=None)
    case("a made-up tree signed by another key, against the published root", fake, 1, "published root")
    case("a made-up tree, published statement key pinned", fake, 1, "", root=fake["root"], total=str(fake["total"]),
         public_key=published["public_key"])
    forged("statement key swapped, signature kept", lambda p: p.update(public_key=fake["public_key"]), reason="signature")
    forged("signature bit flipped", lambda p: p.update(signature=("0" if p["signature"][0] != "0" else "1") + p["signature"][1:]), reason="signature")
    forged("signature of another user's statement", lambda p: p.update(signature=bob["signature"]), reason="signature")
    # issue 21: tree size committed
    forged("leaf_count doubled with one more (zero) step", lambda p: (p.update(leaf_count=p["leaf_count"] * 2), [
        leaf["path"].append({"side": "right" if leaf["index"] < p["leaf_count"] // 2 else "left", "hash": "00" * 32, "sum": 0})
        for leaf in p["leaves"]]), reason="root")
    forged("leaf_count halved, the last step dropped", lambda p: (p.update(leaf_count=p["leaf_count"] // 2),
                                                                 [leaf["path"].pop() for leaf in p["leaves"]]))
    forged("total edited", lambda p: p.update(total=p["total"] + 1), reason="root", total=str(btc["total"] + 1))
    # issue 21: malformed input (core raised TypeError; the verifiers disagreed)
    forged("leaf index is a list", lambda p: p["leaves"][0].update(index=[0]), reason="index")
    forged("a leaf is an empty object", lambda p: p["leaves"].__setitem__(0, {}), reason="fields")
    forged("leaf hash null (an unknown field)", lambda p: p["leaves"][0].update(hash=None), reason="fields")
    forged("an extra top-level field", lambda p: p.update(note="trust me"), reason="fields")
    forged("a field missing", lambda p: p.pop("signature"), reason="fields")
    forged("sum NaN", lambda p: p["leaves"][0].update(sum=float("nan")), reason="integer")
    forged("sum as float", lambda p: p["leaves"][0]["path"][0].update(sum=1.0), reason="integer")
    forged("sum as text", lambda p: p["leaves"][0].update(sum="75000000"), reason="integer")
    forged("balance_minor as text", lambda p: p.update(balance_minor="150000000"), reason="balance_minor")
    forged("total true", lambda p: p.update(total=True), reason="integer")
    forged("leaf_count huge", lambda p: p.update(leaf_count=2**80), reason="leaf_count")
    forged("leaf_count not a power of two", lambda p: p.update(leaf_count=p["leaf_count"] - 1), reason="power of two")
    forged("nonce upper-case hex", lambda p: p.update(nonce=p["nonce"].upper()), reason="nonce")
    forged("nonce with spaces", lambda p: p.update(nonce=" ".join([p["nonce"][:32], p["nonce"][32:]])), reason="nonce")
    forged("root null", lambda p: p.update(root=None), reason="root")
    forged("leaves not a list", lambda p: p.update(leaves={"0": p["leaves"][0]}), reason="leaves")
    forged("no leaves", lambda p: p.update(leaves=[]), reason="leaves")
    forged("more leaves than a balance is split into", lambda p: p.update(leaves=p["leaves"] * 5), reason="leaves")
    forged("a leaf that is text", lambda p: p.update(leaves=["x"]), reason="fields")
    forged("user id with a lone surrogate", lambda p: p.update(user_id="bo\ud800b"), reason="user id")
    forged("user id with a trailing newline", lambda p: p.update(user_id="alice\n"), reason="user id")
    forged("user id empty", lambda p: p.update(user_id=""), reason="user id")
    forged("format 1", lambda p: p.update(format="proof-of-liabilities/1"), reason="not a proof-of-liabilities/2 proof")
    case("not a proof: a list", [alice], 1, "not a proof-of-liabilities/2 proof")
    case("not a proof: null", None, 1, "not a proof-of-liabilities/2 proof")
    case("not a proof: an empty object", {}, 1, "not a proof-of-liabilities/2 proof")
    # issue 14: the classic forgeries (Maxwell's flaw and friends), kept
    forged("a leaf's sum raised", lambda p: (p["leaves"][0].update(sum=p["leaves"][0]["sum"] + 1),
                                            p.update(balance_minor=p["balance_minor"] + 1, balance=minor_text(p["balance_minor"] + 1, 8))),
           reason="signature")
    forged("a sibling's sum lowered (Maxwell)", lambda p: p["leaves"][0]["path"][-1].update(sum=p["leaves"][0]["path"][-1]["sum"] - 1),
           reason="root and total")
    forged("a negative sibling sum", lambda p: p["leaves"][0]["path"][0].update(sum=-1), reason="negative")
    forged("a negative leaf sum", lambda p: p["leaves"][0].update(sum=-1), reason="negative")
    forged("a negative total", lambda p: p.update(total=-p["total"]), reason="negative")
    forged("a sibling sum that wraps 2**128", lambda p: p["leaves"][0]["path"][0].update(sum=2**128 - 1), reason="large")
    forged("siblings on the wrong side", lambda p: p["leaves"][0]["path"][0].update(
        side="left" if p["leaves"][0]["path"][0]["side"] == "right" else "right"), reason="side")
    forged("side up", lambda p: p["leaves"][0]["path"][0].update(side="up"), reason="side")
    forged("two path steps swapped", lambda p: p["leaves"][0]["path"].__setitem__(slice(0, 2), p["leaves"][0]["path"][1::-1]))
    forged("a step dropped", lambda p: p["leaves"][0]["path"].pop(), reason="steps")
    forged("index -1", lambda p: p["leaves"][0].update(index=-1), reason="index")
    forged("index moved", lambda p: p["leaves"][0].update(index=p["leaves"][0]["index"] ^ 1), reason="")
    forged("a leaf repeated", lambda p: p["leaves"].append(copy.deepcopy(p["leaves"][0])), reason="")
    forged("parts out of order", lambda p: p["leaves"].reverse(), reason="parts")
    forged("bob's leaves under alice's name", lambda p: p.update(leaves=copy.deepcopy(bob["leaves"]), balance_minor=bob["balance_minor"],
                                                                 balance=bob["balance"]), reason="signature")
    forged("another snapshot id", lambda p: p.update(snapshot_id="corpus-2026-02"), reason="signature")
    forged("relabelled to another asset", lambda p: p.update(asset="USDT"), reason="signature", root=usdt["root"], total=str(usdt["total"]))
    case("a proof checked against another asset's published root", alice, 1, "published root", root=usdt["root"], total=str(usdt["total"]))
    case("a root other than the published one", alice, 1, "published root", root="ab" * 32)
    case("a total other than the published one", alice, 1, "published total", total=str(btc["total"] - 1))
    case("the displayed total read as minor units", alice, 1, "published total", total=displayed.split(".")[0].replace(",", ""))
    case("a total with decimals beyond the asset's", alice, 1, "", total=displayed + "1")
    case("a total that is not a number", alice, 2, "4,817.78417847", total="1e9")
    case("a root that is not hexadecimal", alice, 2, "root (64 hexadecimal digits)", root="z" * 64)
    case("a statement key other than the published one", alice, 1, "key", public_key=fake["public_key"])
    return found


def main() -> None:
    published, proofs = snapshot()
    about = ("Honest and forged proof-of-liabilities/2 proofs, with the arguments a user gives and the exit code both "
             "verifiers must return. Written by tests/data/make_liabilities_forgeries.py; public data only.")
    corpus = {"about": about, "published": published, "cases": cases(published, proofs)}
    OUT.write_text(json.dumps(corpus, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(corpus['cases'])} cases to {OUT}")


if __name__ == "__main__":
    main()
