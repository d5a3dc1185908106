#!/usr/bin/env python3
"""Check that your balance is in the exchange's proof of liabilities — as the exchange published it.

    python3 verify_liabilities.py --bundle BUNDLE.bin --user ID --root HEX --total AMOUNT [--asset CODE]
                                  [--balance AMOUNT] [--public-key HEX] [--secret-file FILE] [--save PROOF.json]
    python3 verify_liabilities.py PROOF.json --user ID --root HEX --total AMOUNT [--asset CODE] [--balance AMOUNT]

Uses only the Python standard library and nothing from the exchange: read it before you run it.
Exit 0: valid; 1: not valid (the reason is printed); 2: the command line or a file could not be used.

--user is YOUR user id (exact, plain ASCII): a proof of someone else is refused. --root and
--total are what the exchange PUBLISHED for the asset (a proof only shows you are inside the
tree whose root you compare it with); --total and --balance take minor units (digits only) or
the amount as displayed ("4,817.78417847"). The bundle is the one public file everyone
downloads: your record is found and opened with your verification secret (asked for, or read
from --secret-file), so nobody learns that you checked. Everything printed is computed from
what the root commits to: your leaves (snapshot, asset, scale, user id, nonce, amount), the
tree's size and total, and the key that signed your statement (Ed25519, checked here in pure
Python), so a failed check leaves you a statement the exchange cannot deny (--save keeps it).
Byte layout: docs/proof-of-liabilities.md.
"""

import argparse
import getpass
import hashlib
import hmac
import json
import re
import sys

FORMAT, BUNDLE = "proof-of-liabilities/2", "proof-of-liabilities-bundle/2"
FIELDS = {"format", "snapshot_id", "asset", "scale", "user_id", "nonce", "balance_minor", "balance", "leaves", "leaf_count",
          "total", "root", "public_key", "signature"}
USER, ASSET, SNAPSHOT = re.compile(r"[A-Za-z0-9_.@\-]{1,128}"), re.compile(r"[A-Z0-9]{1,16}"), re.compile(r"[A-Za-z0-9_.\-]{1,64}")
HEX64, HEX128 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{128}")
MINOR, DISPLAY = re.compile(r"[0-9]{1,40}"), re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
SUM_LIMIT, LEAVES_MAX, PARTS_MAX, SCALE_MAX = 1 << 128, 1 << 26, 8, 18
TAG, MAC, UID = 16, 32, 128  # bundle record: tag | ciphertext | MAC; user id field width


class Invalid(Exception):
    """The proof does not hold; the message says why."""


class Usage(Exception):
    """The command line or a file cannot be used."""


def h(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


# -- Ed25519 verification (RFC 8032, section 5.1.7), pure Python ----------------------------
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
I = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e, f = (y1 + x1) * (y2 + x2) - (y1 - x1) * (y2 - x2), 2 * z1 * z2 - 2 * D * t1 * t2
    g, k = 2 * z1 * z2 + 2 * D * t1 * t2, (y1 + x1) * (y2 + x2) + (y1 - x1) * (y2 - x2)
    return e * f % P, g * k % P, f * g % P, e * k % P


def _mul(n, point):
    result = (0, 1, 1, 0)
    while n:
        if n & 1:
            result = _add(result, point)
        point, n = _add(point, point), n >> 1
    return result


def _decode(data):
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return None
    u = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(u, (P + 3) // 8, P)
    if (x * x - u) % P:
        x = x * I % P
    if (x * x - u) % P or (x == 0 and sign):
        return None
    x = P - x if x & 1 != sign else x
    return x, y, 1, x * y % P


def _encode(point):
    x, y, z, _ = point
    inverse = pow(z, P - 2, P)
    x, y = x * inverse % P, y * inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


BASE = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def ed25519_verify(public_key, message, signature):
    """True when `signature` is a valid Ed25519 signature of `message` under `public_key`."""
    point = _decode(public_key) if len(public_key) == 32 and len(signature) == 64 else None
    s = int.from_bytes(signature[32:], "little")
    if point is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    negated = ((P - point[0]) % P, point[1], point[2], (P - point[3]) % P)
    return _encode(_add(_mul(s, BASE), _mul(k, negated))) == signature[:32]


# -- the proof --------------------------------------------------------------------------------
def minor_text(minor, scale):
    digits = str(minor).rjust(scale + 1, "0")
    return f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits


def shown(minor, scale):
    whole, dot, fraction = minor_text(minor, scale).partition(".")
    return f"{int(whole):,}{dot}{fraction}"


def amount(text, scale):
    """Minor units from digits, or from a displayed amount; None if it has more decimals than the asset."""
    if MINOR.fullmatch(text):
        return int(text)
    whole, _, fraction = text.replace(",", "").partition(".")
    if fraction[scale:].strip("0"):
        return None
    return int(whole + fraction[:scale].ljust(scale, "0"))


def text(proof, name, pattern):
    if type(proof[name]) is not str or not pattern.fullmatch(proof[name]):
        raise Invalid(f"field {name} is not a valid {name.replace('_', ' ')}")
    return proof[name]


def integer(value, where, low, high):
    if type(value) is not int or not low <= value < high:
        raise Invalid(f"{where} must be an integer from {low} to {high - 1}")
    return value


def hexa(value, where, pattern=HEX64):
    if type(value) is not str or not pattern.fullmatch(value):
        raise Invalid(f"{where} is not lower-case hexadecimal of the right length")
    return bytes.fromhex(value)


def amount_sum(value, where):
    if type(value) is not int:
        raise Invalid(f"{where}: the sum is not an integer")
    if value < 0:
        raise Invalid(f"{where}: the sum is negative ({value})")
    if value >= SUM_LIMIT:
        raise Invalid(f"{where}: the sum is too large")
    return value


def verify(proof):
    """Check one proof against itself: every field is checked or recomputed. Returns a dict of
    what it proves. Raises Invalid (with `.signed` when the statement's signature had verified)."""
    if type(proof) is not dict or proof.get("format") != FORMAT:
        raise Invalid(f"not a {FORMAT} proof")
    if set(proof) != FIELDS:
        raise Invalid("the proof must have exactly the fields of its format")
    snapshot, asset, user = text(proof, "snapshot_id", SNAPSHOT), text(proof, "asset", ASSET), text(proof, "user_id", USER)
    scale, count = integer(proof["scale"], "scale", 0, SCALE_MAX + 1), integer(proof["leaf_count"], "leaf_count", 1, LEAVES_MAX + 1)
    if count & (count - 1):
        raise Invalid("leaf_count must be a power of two")
    nonce, root, total = hexa(proof["nonce"], "nonce"), hexa(proof["root"], "root"), amount_sum(proof["total"], "total")
    key, signature = hexa(proof["public_key"], "public_key"), hexa(proof["signature"], "signature", HEX128)
    leaves, height = proof["leaves"], count.bit_length() - 1
    if type(leaves) is not list or not 1 <= len(leaves) <= PARTS_MAX:
        raise Invalid(f"the proof must have 1 to {PARTS_MAX} leaves")
    head = b"PoL-user/2\0" + snapshot.encode() + b"\0" + asset.encode() + b"\0" + bytes([scale]) + user.encode() + b"\0"
    hashes, indexes, balance = [], set(), 0
    for number, leaf in enumerate(leaves):
        if type(leaf) is not dict or set(leaf) != {"index", "part", "sum", "path"}:
            raise Invalid(f"leaf {number} must have exactly the fields index, part, path, sum")
        index, value = integer(leaf["index"], f"leaf {number} index", 0, count), amount_sum(leaf["sum"], f"leaf {number}")
        if type(leaf["part"]) is not int or leaf["part"] != number:
            raise Invalid(f"leaf {number}: parts must be numbered 0, 1, ... in order")
        if type(leaf["path"]) is not list or len(leaf["path"]) != height:
            raise Invalid(f"leaf {number}: the path must have {height} steps")
        hashes.append(h(b"\0", h(head, number.to_bytes(4, "big"), nonce), value.to_bytes(16, "big")))
        indexes.add(index)
        balance += value
    if len(indexes) != len(leaves):
        raise Invalid("two leaves have the same index")
    if type(proof["balance_minor"]) is not int or proof["balance_minor"] != balance:
        raise Invalid(f"the leaves add up to {balance}, not the stated balance_minor")
    if proof["balance"] != minor_text(balance, scale):
        raise Invalid(f"the stated balance is not {minor_text(balance, scale)}, the balance in the tree")
    statement = (b"PoL-statement/2\0" + snapshot.encode() + b"\0" + asset.encode() + b"\0" + user.encode() + b"\0"
                 + bytes([scale]) + balance.to_bytes(16, "big") + h(b"PoL-leaves/2\0", *hashes) + root)
    if not ed25519_verify(key, statement, signature):
        raise Invalid("the exchange's signature over this statement does not verify")
    try:
        for number, leaf in enumerate(leaves):
            node, node_sum = hashes[number], leaf["sum"]
            for step, sibling in enumerate(leaf["path"]):
                side = "left" if leaf["index"] >> step & 1 else "right"
                if type(sibling) is not dict or set(sibling) != {"side", "hash", "sum"} or sibling["side"] != side:
                    raise Invalid(f"leaf {number}: step {step} must be {{side, hash, sum}} with its sibling on the {side}")
                other, other_sum = hexa(sibling["hash"], f"leaf {number} step {step} hash"), amount_sum(sibling["sum"], f"leaf {number} step {step}")
                pair = (other, other_sum, node, node_sum) if side == "left" else (node, node_sum, other, other_sum)
                node = h(b"\1", pair[0], pair[1].to_bytes(16, "big"), pair[2], pair[3].to_bytes(16, "big"))
                node_sum = amount_sum(node_sum + other_sum, f"leaf {number} node at height {step + 1}")
            sealed = h(b"PoL-root/2\0", snapshot.encode(), b"\0", asset.encode(), b"\0", bytes([scale]), count.to_bytes(8, "big"),
                       total.to_bytes(16, "big"), key, node)
            if node_sum != total or sealed != root:
                raise Invalid(f"leaf {number}: the path does not lead to the proof's root and total")
    except Invalid as error:
        error.signed = True
        raise
    return {"snapshot": snapshot, "asset": asset, "user": user, "scale": scale, "balance": balance, "total": total,
            "root": root.hex(), "leaf_count": count, "key": key.hex()}


# -- the bundle -------------------------------------------------------------------------------
def hkdf(ikm, salt, info, length):
    """RFC 5869 HKDF-SHA256."""
    prk, block, output = hmac.digest(salt, ikm, "sha256"), b"", b""
    for counter in range(1, (length + 31) // 32 + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        output += block
    return output[:length]


def open_record(record, secret, snapshot, asset):
    """The plaintext of your record (HKDF-SHA256 keys; HMAC-SHA256 checked before decrypting), or None."""
    keys = hkdf(secret, b"PoL-bundle/2\0" + snapshot.encode(), b"PoL-record/2\0" + asset.encode(), TAG + 64)
    body, mac = record[TAG:-MAC], record[-MAC:]
    if record[:TAG] != keys[:TAG] or not hmac.compare_digest(mac, hmac.digest(keys[48:], b"PoL-record-mac/2\0" + record[:-MAC], "sha256")):
        return None
    stream = b"".join(h(keys[16:48], n.to_bytes(8, "big")) for n in range((len(body) + 31) // 32))  # SHA-256 counter mode
    return (int.from_bytes(body, "big") ^ int.from_bytes(stream[:len(body)], "big")).to_bytes(len(body), "big")


def decode(plain, header, summary):
    """The proof a record holds, in the proof file's form (checked by verify() like any proof)."""
    height, at = summary["leaf_count"].bit_length() - 1, 0

    def take(size):
        nonlocal at
        at += size
        if at > len(plain):
            raise Invalid("your record is malformed")
        return plain[at - size:at]

    length = take(1)[0]
    user = take(UID)[:length].decode("ascii", "replace")
    nonce, signature, count, leaves = take(32), take(64), take(1)[0], []
    for _ in range(count if 1 <= count <= PARTS_MAX else 0):
        index, part, value = int.from_bytes(take(8), "big"), int.from_bytes(take(4), "big"), int.from_bytes(take(16), "big")
        path = [{"side": "left" if index >> step & 1 else "right", "hash": take(32).hex(), "sum": int.from_bytes(take(16), "big")}
                for step in range(height)]
        leaves.append({"index": index, "part": part, "sum": value, "path": path})
    balance = sum(leaf["sum"] for leaf in leaves)
    return {"format": FORMAT, "snapshot_id": header["snapshot_id"], "asset": summary["asset"], "scale": summary["scale"],
            "user_id": user, "nonce": nonce.hex(), "balance_minor": balance, "balance": minor_text(balance, summary["scale"]),
            "leaves": leaves, "leaf_count": summary["leaf_count"], "total": summary["total"], "root": summary["root"],
            "public_key": header["public_key"], "signature": signature.hex()}


def from_bundle(path, secret, asset):
    """{asset: proof} of the records your secret opens (binary search on the sorted tags)."""
    try:
        with open(path, "rb") as file:
            if file.readline(64) != (BUNDLE + "\n").encode():
                raise Usage(f"{path} is not a {BUNDLE} file")
            header, start = json.loads(file.readline(1 << 20)), file.tell()
            size, count = header["record_bytes"], header["record_count"]
            found = {}
            for summary in header["assets"]:
                if asset and summary["asset"] != asset:
                    continue
                tag = hkdf(secret, b"PoL-bundle/2\0" + header["snapshot_id"].encode(), b"PoL-record/2\0" + summary["asset"].encode(), TAG)
                low, high = 0, count  # the first record whose tag is not below yours
                while low < high:
                    middle = (low + high) // 2
                    file.seek(start + middle * size)
                    if file.read(TAG) < tag:
                        low = middle + 1
                    else:
                        high = middle
                file.seek(start + low * size)
                plain = open_record(file.read(size), secret, header["snapshot_id"], summary["asset"])
                if plain is not None:
                    found[summary["asset"]] = decode(plain, header, summary)
            return found, [a["asset"] for a in header["assets"]]
    except OSError as error:
        raise Usage(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise Usage(f"{path} is not a readable {BUNDLE} file") from None


def load(args):
    """{asset: proof} from the proof file or the bundle, and the assets the file has."""
    if args.bundle:
        try:
            if args.secret_file:
                raw = open(args.secret_file, encoding="utf-8").read(1000)
            else:  # asked for without echo at a terminal; read from a pipe otherwise
                raw = getpass.getpass("Your verification secret: ") if sys.stdin.isatty() else sys.stdin.readline(1000)
            secret = bytes.fromhex(re.sub(r"[\s-]", "", raw))
        except OSError as error:
            raise Usage(f"cannot read {args.secret_file}: {error.strerror}") from None
        except (ValueError, EOFError):
            raise Usage("the secret is not the hexadecimal text support gave you") from None
        if len(secret) != 32:
            raise Usage("the secret is not the 64 hexadecimal digits support gave you")
        return from_bundle(args.bundle, secret, args.asset)
    try:
        with open(args.proof, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as error:
        raise Usage(f"cannot read {args.proof}: {error.strerror}") from None
    except (ValueError, RecursionError):
        raise Invalid("the file is not JSON") from None
    proofs = document.get("proofs") if type(document) is dict and "proofs" in document else [document]
    proofs = proofs if type(proofs) is list and proofs else [None]
    if not args.asset and len(proofs) > 1:
        raise Usage("the file holds several proofs: name the one --root/--total refer to with --asset")
    if not args.asset:
        return {"": proofs[0]}, [""]
    chosen = [p for p in proofs if type(p) is dict and p.get("asset") == args.asset]
    return {args.asset: chosen[0]} if len(chosen) == 1 else {}, [p.get("asset") for p in proofs if type(p) is dict]


def check(args):
    found, assets = load(args)
    if args.asset and args.asset not in assets:
        raise Invalid(f"this file has no {args.asset} proof (it has: {', '.join(map(str, assets)) or 'none'})")
    if not found:
        raise Invalid("no record in this bundle opens with your secret: a wrong secret, or no balance in this snapshot"
                      if args.bundle else f"this file holds no single {args.asset} proof")
    if len(found) > 1:
        raise Usage(f"you have records in {', '.join(sorted(found))}: name the one --root/--total refer to with --asset")
    (proof,) = found.values()
    if args.save:
        with open(args.save, "w", encoding="utf-8") as file:
            json.dump(proof, file, indent=2, sort_keys=True)
    result = verify(proof)
    if result["user"] != args.user:
        raise Invalid(f"this proof is for another user ({result['user']!r}), not {args.user!r}")
    problems = []
    if result["root"] != args.root.lower():
        problems.append(f"the root {result['root']} is not the published root")
    total, balance = amount(args.total, result["scale"]), amount(args.balance, result["scale"]) if args.balance else None
    if total != result["total"]:
        problems.append(f"the total {shown(result['total'], result['scale'])} {result['asset']} ({result['total']} minor units) "
                        f"is not the published total you gave ({args.total})")
    if args.balance and balance != result["balance"]:
        problems.append(f"the balance in the tree is {shown(result['balance'], result['scale'])}, not {args.balance}")
    if args.public_key and args.public_key.lower() != result["key"]:
        problems.append("the statement is signed with a key other than the published one")
    if problems:
        error = Invalid("; ".join(problems))
        error.signed = True
        raise error
    return result


def main(argv=None):
    def pattern(regex, what):
        def parse(value):
            if not regex.fullmatch(value.strip() if regex is not USER else value):
                raise argparse.ArgumentTypeError(f"{value[:60]!r} is not a valid {what}")
            return value.strip()
        return parse

    parser = argparse.ArgumentParser(description="Verify your balance in the exchange's proof of liabilities.")
    parser.add_argument("proof", nargs="?", help="a proof file (JSON) support gave you; or use --bundle")
    parser.add_argument("--bundle", help="the public bundle file of the snapshot (everyone downloads the same one)")
    parser.add_argument("--secret-file", help="a file holding your verification secret (default: asked for, or read from a pipe)")
    parser.add_argument("--user", type=pattern(USER, "user id (plain ASCII letters, digits, _ . @ -)"), help="YOUR user id")
    parser.add_argument("--root", type=pattern(re.compile(r"[0-9a-fA-F]{64}"), "root (64 hexadecimal digits)"),
                        help="the root the exchange PUBLISHED for this asset")
    amount_text = pattern(re.compile(f"{MINOR.pattern}|{DISPLAY.pattern}"), "amount: minor units or as displayed, e.g. 4,817.78417847")
    parser.add_argument("--total", type=amount_text, help="the total PUBLISHED for this asset: minor units, or as displayed")
    parser.add_argument("--balance", type=amount_text, help="the balance you see in your account (optional)")
    parser.add_argument("--public-key", type=pattern(re.compile(r"[0-9a-fA-F]{64}"), "public key (64 hexadecimal digits)"),
                        help="the statement key the exchange PUBLISHED (optional: the root commits to it)")
    parser.add_argument("--asset", type=pattern(ASSET, "asset code"), help="the asset to check (when you hold several)")
    parser.add_argument("--save", help="write the proof you checked to this file (keep it: the signed statement is evidence)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    missing = [flag for flag, value in (("--user", args.user), ("--root", args.root), ("--total", args.total)) if value is None]
    if missing or bool(args.proof) == bool(args.bundle):
        print(f"error: give {', '.join(missing) or 'a proof file or --bundle (one of them)'}. A proof only shows that YOUR "
              "balance is inside the tree whose root and total the exchange PUBLISHED: compare with those.", file=sys.stderr)
        return 2
    try:
        result = check(args)
    except Usage as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    except Invalid as reason:
        print(f"INVALID: {reason}", file=sys.stderr)
        if getattr(reason, "signed", False):
            print("The exchange signed the statement in this proof (snapshot, asset, your balance, your leaves): keep "
                  + ("the proof file" if args.proof else "it (--save FILE writes it out)") + " as evidence.", file=sys.stderr)
        return 1
    print(f"OK {result['asset']}: {result['user']} holds {shown(result['balance'], result['scale'])} {result['asset']} "
          f"in snapshot {result['snapshot']}\n  published root {result['root']} and total {shown(result['total'], result['scale'])} "
          f"{result['asset']} match; the tree has {result['leaf_count']:,} leaves (users' and padding)\n"
          f"  statement signed by the exchange's key {result['key']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
