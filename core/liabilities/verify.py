"""Check one inclusion proof — the same rules as the stand-alone `tools/verify_liabilities.py`,
written again here on top of core.liabilities.tree so the two implementations check each
other (tests/data/liabilities_forgeries.json is run through both).

A proof (JSON, format "proof-of-liabilities/2") has exactly these fields:
    {format, snapshot_id, asset, scale, user_id, nonce, balance_minor, balance, leaves,
     leaf_count, total, root, public_key, signature}
    leaves: [{index, part, sum, path: [{side, hash, sum}, ...]}, ...]  (parts 0, 1, ... in order)
`side` is where the SIBLING sits. Every field is checked or recomputed; a field that is not
in the list makes the proof invalid (nothing is shown that nothing checked):
- each leaf is recomputed from snapshot, asset, scale, user id, part, nonce and sum, and
  climbed to the tree root (every sum non-negative, below 2**128);
- the published root is recomputed from the tree root, leaf count, total, asset, snapshot,
  scale and public key, and must equal `root`;
- `balance_minor` must be the sum of the leaves and `balance` its exact text at `scale`;
- the exchange's Ed25519 signature over the statement must verify with `public_key`.
`verify_proof` never raises on malformed input: it returns a failed ProofCheck saying why.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from core.liabilities import tree
from core.liabilities.keys import verify_signature

FORMAT = "proof-of-liabilities/2"
PROOF_FIELDS = frozenset({"format", "snapshot_id", "asset", "scale", "user_id", "nonce", "balance_minor", "balance", "leaves",
                          "leaf_count", "total", "root", "public_key", "signature"})
LEAF_FIELDS = frozenset({"index", "part", "sum", "path"})
STEP_FIELDS = frozenset({"side", "hash", "sum"})
PARTS_MAX = 8  # core.liabilities.snapshot.SPLIT_PARTS_MAX: a proof has at most this many leaves
# ASCII only, matched whole (a trailing newline or a look-alike letter is another id)
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.@\-]{1,128}")
ASSET_PATTERN = re.compile(r"[A-Z0-9]{1,16}")
SNAPSHOT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
HEX32_PATTERN = re.compile(r"[0-9a-f]{64}")
HEX64_PATTERN = re.compile(r"[0-9a-f]{128}")
MINOR_PATTERN = re.compile(r"[0-9]{1,40}")
DISPLAY_PATTERN = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")


class Invalid(Exception):
    """The proof does not hold; the message says why. `signed`: the exchange's signature
    over the statement had verified before the failure (the file is evidence)."""

    def __init__(self, reason: str, *, signed: bool = False) -> None:
        super().__init__(reason)
        self.signed = signed


@dataclass(frozen=True)
class ProofCheck:
    ok: bool
    reason: str = ""
    root: str = ""
    total: int = 0
    balance_minor: int = 0
    scale: int = 0
    asset: str = ""
    user_id: str = ""
    snapshot_id: str = ""
    signed: bool = False  # the exchange's signature over the statement verified (evidence even if a later check failed)


def minor_text(minor: int, scale: int) -> str:
    """Exact decimal text of minor units at `scale` ("1.50000000"), by integer arithmetic only."""
    digits = str(minor).rjust(scale + 1, "0")
    return f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits


def grouped(text: str) -> str:
    """Thousands separators, as the console shows amounts ("4,817.78417847")."""
    whole, dot, fraction = text.partition(".")
    return f"{int(whole):,}{dot}{fraction}"


def parse_amount(text: str, scale: int) -> int | None:
    """Minor units from what a user types: bare digits are minor units; a number with a
    decimal point or thousands separators is the displayed form. None when it has more
    decimals than `scale` that are not zero (it cannot equal any amount of the asset).
    Raises: ValueError for text that is neither."""
    text = text.strip()
    if MINOR_PATTERN.fullmatch(text):
        return int(text)
    if not DISPLAY_PATTERN.fullmatch(text):
        raise ValueError(f"{text[:60]!r} is neither minor units (digits) nor a displayed amount such as 4,817.78417847")
    whole, _, fraction = text.replace(",", "").partition(".")
    if len(fraction) > scale:
        if fraction[scale:].strip("0"):
            return None
        fraction = fraction[:scale]
    return int(whole + fraction.ljust(scale, "0"))


def _text(proof: dict, name: str, pattern: re.Pattern[str]) -> str:
    value = proof[name]
    if type(value) is not str or not pattern.fullmatch(value):
        raise Invalid(f"field {name} is not a valid {name.replace('_', ' ')}")
    return value


def _integer(value: object, where: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value < high:
        raise Invalid(f"{where} must be an integer from {low} to {high - 1}")
    return value


def _hex(value: object, where: str, pattern: re.Pattern[str] = HEX32_PATTERN) -> bytes:
    if type(value) is not str or not pattern.fullmatch(value):
        raise Invalid(f"{where} is not {pattern.pattern.rsplit('{', 1)[1][:-1]} lower-case hexadecimal digits")
    return bytes.fromhex(value)


def _sum(value: object, where: str) -> int:
    if type(value) is not int:
        raise Invalid(f"{where}: the sum is not an integer")
    if value < 0:
        raise Invalid(f"{where}: the sum is negative ({value})")
    if value >= tree.SUM_LIMIT:
        raise Invalid(f"{where}: the sum is too large")
    return value


def _leaf(head: bytes, nonce: bytes, leaf: object, number: int, count: int, height: int) -> tuple[int, int, bytes, list]:
    """(index, sum, leaf hash, path) of one leaf, its form checked. Raises: Invalid."""
    where = f"leaf {number}"
    if type(leaf) is not dict or set(leaf) != LEAF_FIELDS:
        raise Invalid(f"{where} must have exactly the fields {', '.join(sorted(LEAF_FIELDS))}")
    index = _integer(leaf["index"], f"{where} index", 0, count)
    if type(leaf["part"]) is not int or leaf["part"] != number:
        raise Invalid(f"{where}: parts must be numbered 0, 1, ... in order")
    value, path = _sum(leaf["sum"], where), leaf["path"]
    if type(path) is not list or len(path) != height:
        raise Invalid(f"{where}: the path must have {height} steps")
    return index, value, tree.leaf_hash(hashlib.sha256(head + number.to_bytes(4, "big") + nonce).digest(), value), path


def _climb(number: int, index: int, node: bytes, node_sum: int, path: list) -> tuple[bytes, int]:
    """The tree root and total a leaf's path leads to. Raises: Invalid."""
    where = f"leaf {number}"
    for step, sibling in enumerate(path):
        side = "left" if index >> step & 1 else "right"
        if type(sibling) is not dict or set(sibling) != STEP_FIELDS or sibling["side"] != side:
            raise Invalid(f"{where}: step {step} must be {{side, hash, sum}} with its sibling on the {side}")
        other, other_sum = _hex(sibling["hash"], f"{where} step {step} hash"), _sum(sibling["sum"], f"{where} step {step}")
        node = tree.node_hash(other, other_sum, node, node_sum) if side == "left" else tree.node_hash(node, node_sum, other, other_sum)
        node_sum = _sum(node_sum + other_sum, f"{where} node at height {step + 1}")
    return node, node_sum


def check(proof: object) -> ProofCheck:
    """Every rule of the format (see the module docstring). Raises: Invalid with the reason
    (its `signed` says whether the exchange's signature over the statement verified)."""
    if type(proof) is not dict or proof.get("format") != FORMAT:
        raise Invalid(f"not a {FORMAT} proof")
    if set(proof) != PROOF_FIELDS:
        odd = sorted(map(str, set(proof) ^ PROOF_FIELDS))
        raise Invalid(f"the proof must have exactly the fields of its format (differs in: {', '.join(odd)[:200]})")
    snapshot, asset = _text(proof, "snapshot_id", SNAPSHOT_ID_PATTERN), _text(proof, "asset", ASSET_PATTERN)
    user = _text(proof, "user_id", USER_ID_PATTERN)
    scale = _integer(proof["scale"], "scale", 0, tree.SCALE_MAX + 1)
    count = _integer(proof["leaf_count"], "leaf_count", 1, tree.LEAVES_MAX + 1)
    if count & (count - 1):
        raise Invalid("leaf_count must be a power of two")
    nonce, root, total = _hex(proof["nonce"], "nonce"), _hex(proof["root"], "root"), _sum(proof["total"], "total")
    public_key, signature = _hex(proof["public_key"], "public_key"), _hex(proof["signature"], "signature", HEX64_PATTERN)
    leaves = proof["leaves"]
    if type(leaves) is not list or not 1 <= len(leaves) <= PARTS_MAX:
        raise Invalid(f"the proof must have 1 to {PARTS_MAX} leaves")
    head = tree.commitment_prefix(snapshot, asset, scale) + user.encode() + b"\x00"
    checked = [_leaf(head, nonce, leaf, number, count, count.bit_length() - 1) for number, leaf in enumerate(leaves)]
    if len({index for index, _, _, _ in checked}) != len(checked):
        raise Invalid("two leaves have the same index")
    balance = sum(value for _, value, _, _ in checked)
    if type(proof["balance_minor"]) is not int or proof["balance_minor"] != balance:
        raise Invalid(f"the leaves add up to {balance}, not the stated balance_minor")
    if proof["balance"] != minor_text(balance, scale):
        raise Invalid(f"the stated balance is not {minor_text(balance, scale)}, the balance in the tree")
    message = tree.statement_message(snapshot, asset, user, scale, balance, tree.leaf_commitment([h for _, _, h, _ in checked]), root)
    if not verify_signature(public_key, signature, message):
        raise Invalid("the exchange's signature over this statement does not verify")
    for number, (index, value, own, path) in enumerate(checked):  # signed: from here on a failure is evidence
        try:
            reached, reached_total = _climb(number, index, own, value, path)
        except Invalid as error:
            raise Invalid(str(error), signed=True) from None
        if reached_total != total or tree.published_root(snapshot, asset, scale, count, total, public_key, reached) != root:
            raise Invalid(f"leaf {number}: the path does not lead to the proof's root and total", signed=True)
    return ProofCheck(True, root=root.hex(), total=total, balance_minor=balance, scale=scale, asset=asset, user_id=user,
                      snapshot_id=snapshot, signed=True)


def verify_proof(proof: object, root: str | None = None, total: int | None = None, *, user_id: str | None = None,
                 balance_minor: int | None = None, public_key: str | None = None) -> ProofCheck:
    """Check one proof, and what the user knows against it: the PUBLISHED root and total, their
    own user id, the balance they see, the published statement key (each optional here; the
    command-line verifiers require user, root and total). Never raises on malformed input."""
    try:
        result = check(proof)
    except Invalid as error:
        return ProofCheck(False, str(error), signed=error.signed)
    expected = [
        (user_id, lambda v: type(v) is str and v == result.user_id, f"this proof is for another user, not {user_id!r}"),
        (root, lambda v: type(v) is str and v.strip().lower() == result.root, "the root is not the published root"),
        (total, lambda v: type(v) is int and v == result.total, f"the total {result.total} is not the published total {total}"),
        (balance_minor, lambda v: type(v) is int and v == result.balance_minor,
         f"the balance in the tree is {minor_text(result.balance_minor, result.scale)}, not the balance you gave"),
        (public_key, lambda v: type(v) is str and v.strip().lower() == proof["public_key"],  # type: ignore[index]
         "the statement is signed with a key other than the published one"),
    ]
    for value, holds, reason in expected:  # a proof of someone else is no evidence of anything about you
        if value is not None and not holds(value):
            return ProofCheck(False, reason, result.root, result.total, result.balance_minor, result.scale, result.asset,
                              result.user_id, result.snapshot_id, signed=value is not user_id)
    return result
