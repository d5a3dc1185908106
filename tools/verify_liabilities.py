#!/usr/bin/env python3
"""Check that your balance is included in the exchange's proof of liabilities.

    python3 verify_liabilities.py proof.json [--root HEX --total N] [--asset CODE]

Uses only the Python standard library and nothing from the exchange, so you can read
every line before you run it. Exit code 0: the proof is valid; 1: it is not (the reason
is printed); 2: the command line or the file could not be read.

What it checks: your leaf is recomputed from YOUR user id, the nonce and the balance (so
it cannot be someone else's leaf or a smaller balance), then hashed up the path to the
root. Every node commits to both children's hashes and both children's sums, and every
sum must be a non-negative integer, so no part of the tree can subtract from the total.
Give --root and --total as PUBLISHED by the exchange: a proof can only show that you are
inside the tree whose root you compare it with.

Hashes (SHA-256): commitment = H("PoL-user" 0 snapshot 0 asset 0 user 0 part:4 nonce:32);
leaf = H(0x00 commitment sum:16); node = H(0x01 left left_sum:16 right right_sum:16).
"""

import argparse
import hashlib
import json
import sys
from decimal import Decimal, InvalidOperation

FORMAT = "proof-of-liabilities/1"
BUNDLE_FORMAT = "proof-of-liabilities-bundle/1"
SUM_LIMIT = 1 << 128


class Invalid(Exception):
    """The proof does not hold; the message says why."""


def h(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def checked_sum(value, where):
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{where}: the sum is not an integer")
    if value < 0:
        raise Invalid(f"{where}: the sum is negative ({value})")
    if value >= SUM_LIMIT:
        raise Invalid(f"{where}: the sum is too large")
    return value


def text(proof, name):
    value = proof.get(name)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise Invalid(f"field {name!r} is missing or not text")
    try:
        value.encode("utf-8")
    except UnicodeError:
        raise Invalid(f"field {name!r} is not valid text") from None
    return value


def hex_bytes(value, where):
    try:
        data = bytes.fromhex(value)
    except (TypeError, ValueError):
        raise Invalid(f"{where} is not hexadecimal") from None
    if len(data) != 32:
        raise Invalid(f"{where} is not 32 bytes")
    return data


def verify(proof):
    """Check one proof. Returns (root hex, total). Raises Invalid with the reason."""
    if not isinstance(proof, dict) or proof.get("format") != FORMAT:
        raise Invalid(f"not a {FORMAT} proof")
    snapshot, asset, user = text(proof, "snapshot_id"), text(proof, "asset"), text(proof, "user_id")
    nonce = hex_bytes(proof.get("nonce"), "nonce")
    count = proof.get("leaf_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or count & (count - 1):
        raise Invalid("leaf_count must be a power of two")
    height = count.bit_length() - 1
    root, total = hex_bytes(proof.get("root"), "root"), checked_sum(proof.get("total"), "total")
    leaves = proof.get("leaves")
    if not isinstance(leaves, list) or not leaves:
        raise Invalid("the proof has no leaves")
    seen, balance = set(), 0
    for number, leaf in enumerate(leaves):
        where = f"leaf {number}"
        if not isinstance(leaf, dict):
            raise Invalid(f"{where} is not an object")
        index, part, path = leaf.get("index"), leaf.get("part"), leaf.get("path")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count or index in seen:
            raise Invalid(f"{where}: bad or repeated index")
        if not isinstance(part, int) or isinstance(part, bool) or not 0 <= part < 1 << 32:
            raise Invalid(f"{where}: bad part number")
        if not isinstance(path, list) or len(path) != height:
            raise Invalid(f"{where}: the path must have {height} steps")
        seen.add(index)
        value = checked_sum(leaf.get("sum"), where)
        commitment = h(b"PoL-user\x00", snapshot.encode(), b"\x00", asset.encode(), b"\x00", user.encode(), b"\x00",
                       part.to_bytes(4, "big"), nonce)
        node = h(b"\x00", commitment, value.to_bytes(16, "big"))
        if "hash" in leaf and leaf["hash"] != node.hex():
            raise Invalid(f"{where}: the leaf does not match this user id, nonce and balance")
        node_sum = value
        for step, sibling in enumerate(path):
            side = "left" if index >> step & 1 else "right"
            if not isinstance(sibling, dict) or sibling.get("side") != side:
                raise Invalid(f"{where}: step {step} must have its sibling on the {side}")
            other = hex_bytes(sibling.get("hash"), f"{where} step {step} hash")
            other_sum = checked_sum(sibling.get("sum"), f"{where} step {step}")
            if side == "left":
                node = h(b"\x01", other, other_sum.to_bytes(16, "big"), node, node_sum.to_bytes(16, "big"))
            else:
                node = h(b"\x01", node, node_sum.to_bytes(16, "big"), other, other_sum.to_bytes(16, "big"))
            node_sum = checked_sum(node_sum + other_sum, f"{where} node at height {step + 1}")
        if node != root or node_sum != total:
            raise Invalid(f"{where}: the path does not lead to the proof's root and total")
        balance += value
    stated_minor = proof.get("balance_minor")
    if isinstance(stated_minor, bool) or stated_minor != balance:
        raise Invalid(f"the leaves add up to {balance}, not the stated balance_minor")
    if "balance" in proof:
        try:
            stated = Decimal(str(proof["balance"])).scaleb(int(proof["scale"]))
        except (InvalidOperation, KeyError, TypeError, ValueError):
            raise Invalid("the stated balance or scale is malformed") from None
        if stated != balance:
            raise Invalid(f"the stated balance {proof['balance']} is not the balance in the tree")
    return root.hex(), total


def main(argv=None):
    parser = argparse.ArgumentParser(description="Verify a proof-of-liabilities inclusion proof.")
    parser.add_argument("proof", help="the proof file (JSON) the exchange gave you")
    parser.add_argument("--root", help="the root hash the exchange PUBLISHED for this asset")
    parser.add_argument("--total", type=int, help="the total (minor units) PUBLISHED for this asset")
    parser.add_argument("--asset", help="which asset of a multi-asset file --root/--total refer to")
    args = parser.parse_args(argv)
    try:
        with open(args.proof, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as error:
        print(f"cannot read {args.proof}: {error.strerror}", file=sys.stderr)
        return 2
    except ValueError:
        print("INVALID: the file is not JSON", file=sys.stderr)
        return 1
    proofs = document.get("proofs") if isinstance(document, dict) and document.get("format") == BUNDLE_FORMAT else [document]
    try:
        if not isinstance(proofs, list) or not proofs:
            raise Invalid("the file holds no proof")
        chosen = [p for p in proofs if not args.asset or (isinstance(p, dict) and p.get("asset") == args.asset)]
        if (args.root or args.total is not None) and len(chosen) != 1:
            raise Invalid("--root/--total need exactly one proof: name it with --asset")
        for proof in proofs:
            root, total = verify(proof)
            if proof in chosen and args.root is not None and root != args.root.strip().lower():
                raise Invalid(f"{proof['asset']}: the root {root} is not the published root")
            if proof in chosen and args.total is not None and total != args.total:
                raise Invalid(f"{proof['asset']}: the total {total} is not the published total {args.total}")
            print(f"OK {proof['asset']}: {proof['user_id']} holds {proof.get('balance', proof['balance_minor'])} "
                  f"in snapshot {proof['snapshot_id']}; root {root}, total {total} minor units")
    except Invalid as reason:
        print(f"INVALID: {reason}", file=sys.stderr)
        return 1
    if args.root is None and args.total is None:
        print("Now compare each root and total above with the ones the exchange published.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
