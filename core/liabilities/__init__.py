"""Proof of liabilities (issues 14 and 21): a Merkle-sum snapshot every user can verify,
without trusting what they are shown and without the exchange learning who checks.

- `take_snapshot` reads a consistent cut of every user's liability (core.liabilities.cut),
  builds one Merkle-sum tree per asset (core.liabilities.tree) and publishes its root —
  which commits to the tree's size, total, asset, scale, snapshot and statement key;
- `build_bundle` writes the public bundle: every user's signed proof, sealed to that user
  (core.liabilities.bundle); `reveal_user_secret` shows a user the secret that opens theirs,
  once, audited; `reissue_user_secret` replaces a lost or exposed one;
- `user_proof_bundle` exports one user's proofs for support (audited), `verify_proof` checks
  one (never raises), `verify_snapshot` re-checks a stored snapshot against what it published;
- `declare_reserve` / `solvency` put liabilities beside the platform's own holdings and
  the reserves an admin declares with evidence.
The stand-alone verifier for users is tools/verify_liabilities.py (standard library only).
See docs/proof-of-liabilities.md for what the proof shows, what it reveals and what it does not.
"""

from core.liabilities.bundle import BUNDLE_FORMAT, BundleResult, build_bundle, open_bundle
from core.liabilities.cut import Cut, read_cut
from core.liabilities.keys import LiabilitiesKeys, keys_for
from core.liabilities.proofs import EXPORT_FORMAT, SnapshotCheck, bundle_json, user_proof_bundle, verify_snapshot
from core.liabilities.reserves import SolvencyRow, declare_reserve, declared_reserves, solvency
from core.liabilities.reveal import reissue_user_secret, reveal_user_secret
from core.liabilities.snapshot import (
    SPLIT_PARTS_MAX,
    get_snapshot,
    list_snapshots,
    published_roots,
    roots_csv,
    take_snapshot,
)
from core.liabilities.verify import FORMAT, ProofCheck, parse_amount, verify_proof

__all__ = [
    "BUNDLE_FORMAT",
    "EXPORT_FORMAT",
    "FORMAT",
    "SPLIT_PARTS_MAX",
    "BundleResult",
    "Cut",
    "LiabilitiesKeys",
    "ProofCheck",
    "SnapshotCheck",
    "SolvencyRow",
    "build_bundle",
    "bundle_json",
    "declare_reserve",
    "declared_reserves",
    "get_snapshot",
    "keys_for",
    "list_snapshots",
    "open_bundle",
    "parse_amount",
    "published_roots",
    "read_cut",
    "reissue_user_secret",
    "reveal_user_secret",
    "roots_csv",
    "solvency",
    "take_snapshot",
    "user_proof_bundle",
    "verify_proof",
    "verify_snapshot",
]
