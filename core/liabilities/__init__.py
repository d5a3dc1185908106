"""Proof of liabilities (issue 14): a Merkle-sum snapshot every user can verify.

- `take_snapshot` reads a consistent cut of every user's liability (core.liabilities.cut),
  builds one Merkle-sum tree per asset (core.liabilities.tree) and publishes it, audited;
- `user_proof_bundle` gives a user's inclusion proofs (JSON), `verify_proof` checks one,
  `verify_snapshot` re-checks a stored snapshot against what it published;
- `declare_reserve` / `solvency` put liabilities beside the platform's own holdings and
  the reserves an admin declares with evidence.
The stand-alone verifier for users is tools/verify_liabilities.py (standard library only).
See docs/proof-of-liabilities.md for what the proof shows and what it does not.
"""

from core.liabilities.cut import CUT_ATTEMPTS_MAX, Cut, read_cut
from core.liabilities.proofs import (
    BUNDLE_FORMAT,
    FORMAT,
    ProofCheck,
    SnapshotCheck,
    bundle_json,
    user_proof_bundle,
    verify_proof,
    verify_snapshot,
)
from core.liabilities.reserves import SolvencyRow, declare_reserve, declared_reserves, solvency
from core.liabilities.snapshot import (
    SPLIT_PARTS_MAX,
    get_snapshot,
    list_snapshots,
    published_roots,
    roots_csv,
    take_snapshot,
)

__all__ = [
    "BUNDLE_FORMAT", "CUT_ATTEMPTS_MAX", "FORMAT", "SPLIT_PARTS_MAX", "Cut", "ProofCheck", "SnapshotCheck", "SolvencyRow",
    "bundle_json", "declare_reserve", "declared_reserves", "get_snapshot", "list_snapshots", "published_roots", "read_cut",
    "roots_csv", "solvency", "take_snapshot", "user_proof_bundle", "verify_proof", "verify_snapshot",
]
