"""Reading the rollups (the reports) and computing them from scratch (the integrity check,
the tests, bulk loads). See `core.rollups.fold` for how they are kept exact."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from core.base.errors import RollupContendedError
from core.ledger import Store, logical_id, scan
from core.rollups.fold import (
    ACTIVE,
    DAY_FIELDS,
    ENTRY_FIELDS,
    HEADS,
    PASSES,
    ROLLUPS,
    STATE,
    TOTALS,
    PassDelta,
    _day,
    _day_values,
    _heads,
    _never_folded,
    _settled,
    _state,
    active_generation,
    fold_links,
    update,
)

TAIL_READ_MAX = 2_000  # a reader folds first when more entries than this wait unfolded
SNAPSHOT_ATTEMPTS_MAX = 8  # a reader retries when passes complete under it
HELP_STEPS_MAX = 16  # fold steps a reader makes to shorten a long tail (bounded: the feed never empties under load)
TOTALS_READ_MAX = 5_000  # (kind, asset) pairs: a dozen kinds times the registry's assets
DAY_ROWS_READ_MAX = 50_000  # day rollups one report reads (accounts × days of a window)
STATE_READ_MAX = 64  # state documents a reader reads at once: "active" plus one per live generation (a rebuild drops old ones)


# -- reading (reports) --------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """Rollups as of the last completed pass, plus the entries after its watermark."""

    generation: int
    done_pass: int
    tail: list[dict]  # (posting, entry) links after the watermark not folded yet, in `_id` order

    def settled(self, document: dict | None) -> dict | None:
        return _settled(document, self.done_pass)


def snapshot(store: Store, accounts: list[str] | None = None) -> Snapshot:
    """The unfolded postings (only those of `accounts` when given), then the active
    generation's last completed pass. When more than TAIL_READ_MAX entries wait, this
    reader folds some first (helping, bounded), so a read stays bounded.

    Why the tail is read before the fold state (issue 19): a pass that completes between a
    state read and a later tail read clears its entries' `unfolded` flags, so the tail
    missed them while the rollups "as of" that state did not hold them yet (3 BTC returned
    for 5; with a gap-filled entry, half of it: an asset that did not sum to zero). Read the
    other way round, every entry is counted whole or not at all: one still flagged when the
    tail is read is in the tail, and the version filter against the heads (settled at the
    pass read afterwards) drops exactly the legs that pass holds; one cleared before was
    folded, whole, by a pass the state read sees; one inserted after the tail read is either
    folded whole by such a pass (a pass folds whole entries: core.rollups.fold._plan_for) or
    not counted at all. Per account that is a prefix of its chain.
    Raises: RollupContendedError when passes keep completing under the reader."""
    for _ in range(SNAPSHOT_ATTEMPTS_MAX):
        entries = store.collection("entries").find({"unfolded": True}, sort=[("_id", 1)], limit=TAIL_READ_MAX + 1,
                                                   projection=ENTRY_FIELDS)
        generation, state = _reader_state(store)
        if state is None:  # no pass yet for this generation: perhaps a journal the feed cannot see
            if _never_folded(store, generation):
                update(store, generation=generation)  # the first reader folds the journal once (helping)
                continue  # and reads the tail again: the fold cleared flags
            state = _state(store, generation)
        if len(entries) > TAIL_READ_MAX:
            update(store, generation=generation, passes_max=HELP_STEPS_MAX)
            continue
        done_pass = _done(state)
        links = [(p, e) for e in entries for p in e.get("postings", [])
                 if accounts is None or logical_id(str(p.get("account"))) in accounts]
        try:
            heads = {a: _settled(d, done_pass) for a, d in _heads(store, generation, sorted({p["account"] for p, _ in links}), always=True).items()}
        except RollupContendedError:
            continue
        tail = [(p, e) for p, e in links if p.get("version", 0) > ((heads.get(p["account"]) or {}).get("version", 0))]
        return Snapshot(generation, done_pass, tail)
    raise RollupContendedError("rollups kept moving while being read")


def _done(state: dict) -> int:
    """The last completed pass a state document names."""
    return state["pass"] if state["status"] == "done" else state["pass"] - 1


def _reader_state(store: Store) -> tuple[int, dict | None]:
    """The active generation and its state document (None when no pass ran for it) in one
    round trip: the state collection holds only "active" and one document per live
    generation, so a reader takes them all (bounded by STATE_READ_MAX) instead of asking twice."""
    documents = {d["_id"]: d for d in store.collection(STATE).find({"_id": {"$gte": ""}}, limit=STATE_READ_MAX)}
    generation = (documents.get(ACTIVE) or {}).get("generation", 1)
    return generation, documents.get(f"gen:{generation}")


def class_totals(store: Store) -> dict[tuple[str, str], int]:
    """Per (kind, asset): the sum of every account's balance, from rollups plus the tail.
    Raises: RollupContendedError."""
    for _ in range(SNAPSHOT_ATTEMPTS_MAX):
        view = snapshot(store)
        try:
            documents = [view.settled(d) for d in store.collection(TOTALS).find({"generation": view.generation}, limit=TOTALS_READ_MAX)]
        except RollupContendedError:
            continue
        result: dict[tuple[str, str], int] = defaultdict(int)
        for document in filter(None, documents):
            result[(document["kind"], document["asset"])] += document["balance_minor"]
        for posting, _ in view.tail:
            result[(posting["kind"], posting["asset"])] += posting["amount_minor"]
        return dict(result)
    raise RollupContendedError("rollups kept moving while being read")


def day_rows(store: Store, accounts: list[str], first_day: str, last_day: str) -> list[dict]:
    """Per (logical account, day in [first_day, last_day], entry type): movements in and
    out, from the rollups of `accounts` (every stored part of each) plus the tail. Rows:
    {account, asset, day, type, in_minor, out_minor}. Raises: RollupContendedError."""
    for _ in range(SNAPSHOT_ATTEMPTS_MAX):
        view = snapshot(store, accounts)
        query = {"generation": view.generation, "logical": {"$in": accounts}, "day": {"$gte": first_day, "$lte": last_day}}
        try:
            documents = [view.settled(d) for d in store.collection(ROLLUPS).find(query, limit=DAY_ROWS_READ_MAX)]
        except RollupContendedError:
            continue
        moved: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for document in filter(None, documents):
            for row in document["types"]:
                cell = moved[(document["logical"], document["asset"], document["day"], row["type"])]
                cell[0], cell[1] = cell[0] + row["in_minor"], cell[1] + row["out_minor"]
        for posting, entry in view.tail:
            if first_day <= _day(entry) <= last_day:
                cell = moved[(logical_id(posting["account"]), posting["asset"], _day(entry), entry["type"])]
                cell[0 if posting["amount_minor"] > 0 else 1] += abs(posting["amount_minor"])
        return [{"account": a, "asset": asset, "day": d, "type": t, "in_minor": v[0], "out_minor": v[1]}
                for (a, asset, d, t), v in sorted(moved.items())]
    raise RollupContendedError("rollups kept moving while being read")


# -- the journal, from scratch (tests and the integrity check) --------------------------------------------
def recompute(store: Store, heads: dict[str, int] | None = None) -> tuple[dict, dict, dict]:
    """Rollups computed from the whole journal in one scan: (days, heads, totals) with the
    same values the fold stores. With `heads` (account → version), only versions up to
    each account's head count (what the fold has covered so far)."""
    links: dict[str, list] = defaultdict(list)
    for entry in scan(store.collection("entries"), projection=ENTRY_FIELDS):
        for posting in entry.get("postings", []):
            if heads is None or posting.get("version", 0) <= heads.get(posting.get("account"), 0):
                links[posting["account"]].append((posting, entry))
    delta = PassDelta()
    for account in sorted(links):
        fold_links(delta, account, 0, 0, sorted(links[account], key=lambda link: link[0].get("version", 0)))
    days = {key: _day_values(None, moved) for key, moved in delta.days.items()}
    return days, delta.heads, {k: v for k, v in delta.totals.items()}


def stored(store: Store, generation: int | None = None) -> tuple[dict, dict, dict]:
    """The stored rollups of a generation as of its last completed pass, shaped like `recompute`."""
    generation = generation or active_generation(store)
    state = _state(store, generation)
    done_pass = state["pass"] if state["status"] == "done" else state["pass"] - 1
    query = {"generation": generation}
    days = {}
    for document in filter(None, (_settled(d, done_pass) for d in scan(store.collection(ROLLUPS), query))):
        days[(document["account"], document["day"])] = {k: document[k] for k in DAY_FIELDS}
    heads = {d["account"]: {k: d[k] for k in ("version", "balance_minor", "kind", "owner", "asset")}
             for d in filter(None, (_settled(d, done_pass) for d in scan(store.collection(HEADS), query)))}
    totals = {(d["kind"], d["asset"]): d["balance_minor"]
              for d in filter(None, (_settled(d, done_pass) for d in scan(store.collection(TOTALS), query)))}
    return days, heads, totals


def bulk_load(store: Store) -> int:
    """Write the active generation from one scan of the journal, for a journal loaded in
    bulk (a migration, the benchmark's copied data sets) while nothing else writes: much
    cheaper than folding it pass by pass. Clears the `unfolded` flags. Returns the number
    of accounts. (`rebuild` is the safe way on a live store.)"""
    generation = active_generation(store)
    days, heads, totals = recompute(store)
    head_docs = [{"_id": f"{generation}|{a}", "generation": generation, "account": a, **h, "pass": 1, "before": None}
                 for a, h in heads.items()]
    day_docs = [{"_id": f"{generation}|{a}|{d}", "generation": generation, "account": a, "logical": logical_id(a), "day": d,
                 **{k: heads[a][k] for k in ("kind", "owner", "asset")}, **values, "pass": 1, "before": None}
                for (a, d), values in days.items()]
    total_docs = [{"_id": f"{generation}|{k}|{asset}", "generation": generation, "kind": k, "asset": asset,
                   "balance_minor": v, "pass": 1, "before": None} for (k, asset), v in totals.items()]
    for name, documents in ((HEADS, head_docs), (ROLLUPS, day_docs), (TOTALS, total_docs)):
        store.collection(name).delete_many({"generation": generation})
        for start in range(0, len(documents), 2_000):
            store.collection(name).insert_many(documents[start:start + 2_000])
    store.collection(PASSES).delete_many({"generation": generation})
    store.collection(PASSES).insert_one({"_id": f"{generation}|1", "generation": generation, "pass": 1, "plan": []})
    store.collection(STATE).update_one({"_id": f"gen:{generation}"}, {"$set": {
        "generation": generation, "pass": 1, "status": "done", "plan": [], "clear": [], "watermark": None}}, upsert=True)
    store.collection("entries").update_many({"unfolded": True}, {"$unset": {"unfolded": ""}})
    return len(heads)
