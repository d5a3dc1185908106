"""Consistent cuts of the journal and its projections, read while postings go on (issue 19).

No reader can stop the writers, and no read of many documents is atomic (no transactions:
standalone server, replica set and embedded store alike). What makes a read consistent
anyway is the posting protocol's shape:
- an entry is one document, inserted before any of its legs is projected;
- a projection moves from version v to v + 1 only by a compare-and-set, so it always holds
  an exact prefix of its account's journal chain, and a claim on v + 1 is only made once v
  is projected — a projection is at most one version behind the claims of its account;
- each posting carries its `version` and `balance_after`, so an account can be rolled
  forward to any version by reading the entries that claimed it (`claims`, unique index).

Two readers build on it:
1. `JournalRead` + `close_journal`: a reader that scans the journal (the self-check, the
   full platform check, the per-user check) may miss an entry inserted behind its cursor
   while it sees a later one of the same account (an id from a slower clock). It closes
   the read: every version below one it saw is fetched by its claim, and the place of every
   hold whose close it saw is fetched by the hold id — a version nobody claims after that
   is a real hole. One targeted read per round, none on a quiet journal.
2. `read_projections`: a consistent cut of a set of projections (the liabilities snapshot,
   the reserved float a reservation check confirms). Collect #1, the entries flagged
   `unprojected`, collect #2: an entry that straddles collect #1 (some legs inside, some
   above) was inserted before #1 ended, so each leg above is at most one version above
   collect #2 — then it was still flagged when the flags were read — or among the versions
   collect #2 moved over (read by claims). Each straddling entry is taken in whole by
   rolling its accounts forward (`balance_after`), round after round until nothing
   straddles. The result is the journal's sum at one position: per account a prefix of
   its chain, and no entry half in it. It never retries, so it finishes under any load.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from core.base.errors import CutNotClosedError
from core.ledger.entries import claim_of
from core.ledger.store import Store

IN_BATCH_MAX = 500  # claims or hold ids per `$in` read
CLOSE_ROUNDS_MAX = 64  # targeted read rounds; each fetches only entries inserted while the reader read
MISSING_PER_ACCOUNT_MAX = 1_000  # versions one account may miss in one round (a forged huge version is a finding, not a read)
FLAGGED_READ_MAX = 50_000  # entries flagged `unprojected` one cut inspects (core.ledger.store.QUERY_LIMIT_MAX)
CLOSES = ("release", "consume")


def entries_by_claims(store: Store, claims: list[str], projection: dict | None = None) -> list[dict]:
    """The entries owning `claims` (batched `$in` on the unique `claims` index), each once."""
    found: dict[str, dict] = {}
    for start in range(0, len(claims), IN_BATCH_MAX):
        chunk = claims[start:start + IN_BATCH_MAX]
        for document in store.collection("entries").find({"claims": {"$in": chunk}}, limit=len(chunk), projection=projection):
            found[document["_id"]] = document
    return list(found.values())


def places_of(store: Store, hold_ids: list[str]) -> list[dict]:
    """The placing entries of `hold_ids` (the `hold_id` index)."""
    found: list[dict] = []
    for start in range(0, len(hold_ids), IN_BATCH_MAX):
        chunk = hold_ids[start:start + IN_BATCH_MAX]
        found += store.collection("entries").find({"hold_id": {"$in": chunk}, "hold_action": "place"}, limit=len(chunk))
    return found


# -- 1. closing a scan of the journal -------------------------------------------------------------------
@dataclass
class JournalRead:
    """What a journal reader has seen: entry ids, each account's versions, holds placed and
    closed. `in_scope(account)` limits the accounts whose chains must be closed (a per-user
    read closes only that user's accounts)."""

    in_scope: Callable[[str], bool] = lambda account: True
    seen: set[str] = field(default_factory=set)
    versions: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    placed: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)

    def add(self, entry: dict) -> bool:
        """Record `entry`; False when it was seen already."""
        if entry["_id"] in self.seen:
            return False
        self.seen.add(entry["_id"])
        for posting in entry.get("postings") or []:
            if not isinstance(posting, dict):
                continue  # a malformed entry: the reader's own checks report it
            account, version = posting.get("account"), posting.get("version")
            if isinstance(account, str) and isinstance(version, int) and not isinstance(version, bool) and self.in_scope(account):
                self.versions[account].add(version)
        hold_id = entry.get("hold_id")
        if isinstance(hold_id, str):
            (self.placed if entry.get("hold_action") == "place" else self.closed).add(hold_id)
        return True

    def missing_claims(self) -> list[str]:
        """Every version below the newest one seen of an account, not seen itself."""
        claims = []
        for account, versions in self.versions.items():
            top = max(versions)
            missing = [v for v in range(1, min(top, len(versions) + MISSING_PER_ACCOUNT_MAX) + 1) if v not in versions]
            claims += [claim_of(account, v) for v in missing[:MISSING_PER_ACCOUNT_MAX]]
        return claims

    def missing_places(self) -> list[str]:
        """Holds whose close was seen and whose place was not (the place was inserted first)."""
        return sorted(self.closed - self.placed)


def close_journal(store: Store, read: JournalRead, absorb: Callable[[dict], None]) -> int:
    """Fetch what `read` must contain to be a consistent cut — the versions below ones it
    saw and the places of closes it saw — and `absorb` each new entry, round after round
    (a fetched entry may reveal further holes). A version still missing afterwards is a
    real hole, left to the caller's chain check. Returns the targeted reads made.
    Raises: CutNotClosedError (reason "rounds") after CLOSE_ROUNDS_MAX rounds."""
    asked_claims: set[str] = set()
    asked_holds: set[str] = set()
    reads = 0
    for _ in range(CLOSE_ROUNDS_MAX):
        claims = [c for c in read.missing_claims() if c not in asked_claims]
        holds = [h for h in read.missing_places() if h not in asked_holds]
        if not claims and not holds:
            return reads
        asked_claims.update(claims)
        asked_holds.update(holds)
        found = entries_by_claims(store, claims) if claims else []
        found += places_of(store, holds) if holds else []
        reads += (len(claims) + IN_BATCH_MAX - 1) // IN_BATCH_MAX + (len(holds) + IN_BATCH_MAX - 1) // IN_BATCH_MAX
        for entry in found:
            if read.add(entry):
                absorb(entry)
    raise CutNotClosedError(f"the journal read could not be closed in {CLOSE_ROUNDS_MAX} rounds", reason="rounds")


# -- 2. a consistent cut of a set of projections ----------------------------------------------------------
@dataclass
class ProjectionCut:
    """Per stored account: version, balance and head hash at one consistent position
    (`kind`, `owner`, `asset` too). `rolled`: accounts the closure moved past collect #1."""

    positions: dict[str, dict]
    rolled: dict[str, int] = field(default_factory=dict)
    flagged: int = 0  # entries flagged `unprojected` inspected
    moved: int = 0  # entries read because collect #2 moved past collect #1
    entries: dict[str, dict] = field(default_factory=dict)  # every entry the closure read (flagged, moved, fetched)


Collect = Callable[[dict | None], dict[str, dict]]
PostingFilter = Callable[[dict], bool]


def read_projections(store: Store, collect: Collect, in_scope: PostingFilter, *, flagged_max: int = FLAGGED_READ_MAX) -> ProjectionCut:
    """A consistent cut of the projections `collect(projection)` returns (by id), judged on
    the postings `in_scope` keeps (module docstring, 2). Cost: 2 collects and 1 read of the
    flagged entries; plus, only when something moved or was in flight, the entries claiming
    the versions collect #2 moved over and the closure's rounds.
    Raises: CutNotClosedError — reason "flagged" (flagged_max or more entries await
        recovery), "gap" (a claimed version is missing from the journal), "rounds"."""
    first = collect(None)
    flagged = store.collection("entries").find({"unprojected": True}, limit=flagged_max, projection={"postings": 1, "entry_hash": 1})
    if len(flagged) >= flagged_max:
        raise CutNotClosedError(f"{flagged_max} or more journal entries await recovery", reason="flagged", flagged_entries=len(flagged))
    second = collect({"version": 1})
    version_at = {account: _version(document) for account, document in first.items()}
    moved_claims = [claim_of(account, v) for account, document in sorted(second.items())
                    for v in range(version_at.get(account, 0) + 1, _version(document) + 1)]
    moved = entries_by_claims(store, moved_claims, {"postings": 1, "entry_hash": 1}) if moved_claims else []
    cut = ProjectionCut(positions={}, flagged=len(flagged), moved=len(moved))
    cut.entries = {e["_id"]: e for e in [*flagged, *moved]}
    _close_projections(store, cut, version_at, in_scope)
    for account, document in first.items():
        if account not in cut.rolled:
            cut.positions[account] = document
    return cut


def _version(document: dict | None) -> int:
    version = (document or {}).get("version", 0)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def _close_projections(store: Store, cut: ProjectionCut, version_at: dict[str, int], in_scope: PostingFilter) -> None:
    """Roll accounts forward until no known entry has in-scope legs both inside the cut
    (version ≤ the account's cut version) and above it. Fills `cut.rolled` and the rolled
    accounts' positions from the postings (`balance_after`, the entry's hash)."""
    for _ in range(CLOSE_ROUNDS_MAX):
        owners = {claim_of(p["account"], p["version"]): (p, e) for e in cut.entries.values()
                  for p in e.get("postings") or [] if in_scope(p)}
        targets: dict[str, int] = {}
        for entry in cut.entries.values():
            legs = [p for p in entry.get("postings") or [] if in_scope(p)]
            inside = [p["version"] <= version_at.get(p["account"], 0) for p in legs]
            if any(inside) and not all(inside):
                for posting, is_inside in zip(legs, inside):
                    if not is_inside:
                        targets[posting["account"]] = max(targets.get(posting["account"], 0), posting["version"])
        if not targets:
            return
        wanted = [claim_of(a, v) for a, top in sorted(targets.items()) for v in range(version_at.get(a, 0) + 1, top + 1)
                  if claim_of(a, v) not in owners]
        if wanted:
            found = entries_by_claims(store, wanted, {"postings": 1, "entry_hash": 1})
            cut.entries.update({e["_id"]: e for e in found})
            owned = {claim_of(p["account"], p["version"]) for e in found for p in e.get("postings") or [] if in_scope(p)}
            gaps = [claim for claim in wanted if claim not in owned]
            if gaps:
                raise CutNotClosedError(f"journal versions {', '.join(gaps[:5])} are claimed by no entry", reason="gap", claims=gaps[:20])
            continue  # the fetched entries may straddle too: judge them with the rest
        for account, top in targets.items():
            posting, entry = owners[claim_of(account, top)]
            version_at[account] = top
            cut.rolled[account] = top
            cut.positions[account] = {"_id": account, "version": top, "balance_minor": posting["balance_after"],
                                      "head_hash": entry.get("entry_hash"), "kind": posting.get("kind"),
                                      "owner": posting.get("owner"), "asset": posting.get("asset")}
    raise CutNotClosedError(f"the projections could not be closed in {CLOSE_ROUNDS_MAX} rounds", reason="rounds")
