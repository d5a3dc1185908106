"""Daily rollups of the journal (issue 15): what the console's reports read instead of raw entries.

Per account and UTC day a rollup holds the movements in and out by entry type, the closing
balance and the version it closed at; per account a *head* holds the version folded so far;
per (kind, asset) a *total* holds the sum of those heads. Reports read these plus at most
the entries after the watermark (`snapshot`), so a page costs O(days shown + new entries),
never O(journal).

How they stay exactly right with any number of concurrent runners (EXACTLY_ONCE.md's
discipline, no timing, no blind `$inc`):
- The fold advances in numbered *passes* serialised by one state document per generation.
  A pass is first *planned* by a compare-and-set on that document (`pass: k, status: done`
  → `pass: k+1, status: planned`) that stores the plan: per account the version range
  (from, to] to fold and the balance at `from`. The plan is derived from the per-account
  version chains (`claims`), so it is the same whoever executes it.
- Any runner may execute a planned pass (helping). Each derived document is written with
  the filter `pass < k+1` and the values computed from the document it read (whose pass is
  ≤ k, since pass k+1 starts only after pass k is done): a second executor matches nothing,
  a crashed one is finished by the next. The document keeps `before` (its values before
  the pass) so readers can see a consistent "as of pass k" while pass k+1 is half written.
- Then the pass is marked done by a compare-and-set, which moves the watermark.
Which entries are new is found from the journal in `_id` order after the watermark; an
account whose versions jump past its head has the missing versions fetched by `claims`
(gap fill), so nothing is folded twice or skipped within an account's chain. A plan is
closed over whole entries (`_close_targets`): a gap-filled entry has all its legs folded by
the same pass, so no entry is ever half folded and a reader may read the unfolded tail
before the fold state (core.rollups.read.snapshot, issue 19). An entry that
lands late *and* on an account that never moves again is folded by `sweep` (run by the
full integrity check) — latency, never double counting.

`rebuild` folds a fresh *generation* from the first entry, then switches the `active`
pointer and deletes the old generation: runners still folding the old one cannot touch it.

This module folds; `core.rollups.read` serves the reports and the from-scratch
recomputation, `core.rollups.cli` the commands.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from core.base.errors import RollupChainError, RollupContendedError
from core.ledger import DuplicateKeyStoreError, Store, entries_by_claims, logical_id, parse_account_id, scan

ROLLUPS, HEADS, TOTALS, STATE, PASSES = "rollups", "rollup_heads", "rollup_totals", "rollup_state", "rollup_passes"
PASS_ENTRIES_MAX = 500  # new entries one pass reads from the journal
PASS_ACCOUNTS_MAX = 500  # accounts one sweep pass plans
IN_BATCH_MAX = 500  # ids or claims per `$in` query
PASSES_PER_RUN_MAX = 100_000  # `update` stops after this many passes (a run is bounded)
PLAN_ATTEMPTS_MAX = 64
PLAN_CLOSE_ROUNDS_MAX = 256  # rounds closing a plan over whole entries (each reads only entries older than the feed's)
ACTIVE = "active"
ENTRY_FIELDS = {"postings": 1, "created_at": 1, "type": 1, "claims": 1}


def _day(entry: dict) -> str:
    return entry["created_at"].strftime("%Y-%m-%d")


def _claim(account: str, version: int) -> str:
    return f"{account}@{version}"


# -- state ------------------------------------------------------------------------------------------------
def active_generation(store: Store) -> int:
    """The generation readers use (1 until the first rebuild)."""
    document = store.collection(STATE).find_one({"_id": ACTIVE})
    return document["generation"] if document else 1


def _state(store: Store, generation: int) -> dict:
    document = store.collection(STATE).find_one({"_id": f"gen:{generation}"})
    return document or {"_id": f"gen:{generation}", "pass": 0, "status": "done", "watermark": None, "plan": [], "clear": []}


def _heads(store: Store, generation: int, accounts: list[str], *, always: bool = False) -> dict[str, dict]:
    """Head documents of `accounts` in `generation` (batched `$in` by `_id`). With `always`,
    one query is issued even for no accounts, so a reader's round trips do not depend on
    whether anything waits unfolded."""
    found: dict[str, dict] = {}
    for start in range(0, max(len(accounts), int(always)), IN_BATCH_MAX):
        ids = [f"{generation}|{a}" for a in accounts[start:start + IN_BATCH_MAX]]
        for document in store.collection(HEADS).find({"_id": {"$in": ids}}, limit=max(1, len(ids))):
            found[document["account"]] = document
    return found


# -- planning ---------------------------------------------------------------------------------------------
def _settled(document: dict | None, done_pass: int) -> dict | None:
    """A derived document's values as of `done_pass` (its `before` while the next pass is
    half written). Raises RollupContendedError when a later pass already rewrote it."""
    if document is None or document["pass"] <= done_pass:
        return document
    if document["pass"] == done_pass + 1:
        before = document.get("before")
        return None if before is None else {**document, **before, "pass": done_pass}
    raise RollupContendedError("rollups moved on while being read", pass_=str(document["pass"]))


def _plan_from_feed(store: Store, generation: int, state: dict) -> tuple[list[list], list[str]] | None:
    """The next pass from the entries still flagged `unfolded` (a sparse index: only they are
    read): per account (from, to], and the ids whose flag the pass clears. None when none wait."""
    feed = store.collection("entries").find({"unfolded": True}, sort=[("_id", 1)], limit=PASS_ENTRIES_MAX,
                                            projection={"postings.account": 1, "postings.version": 1})
    if not feed:
        return None
    targets: dict[str, int] = {}
    for entry in feed:
        for posting in entry.get("postings", []):
            if isinstance(posting.get("version"), int):
                targets[posting["account"]] = max(targets.get(posting["account"], 0), posting["version"])
    return _plan_for(store, generation, state, targets, feed), [entry["_id"] for entry in feed]


def _plan_for(store: Store, generation: int, state: dict, targets: dict[str, int], known: list[dict] = ()) -> list[list]:
    """[account, from_version, from_balance, to_version] for every account behind its target,
    closed over whole entries: an entry owning a version a pass folds on one account has all
    its legs folded by that same pass (`_close_targets`), so no pass ever leaves an entry half
    folded — which is what lets a reader take the unfolded tail and then the fold state
    (core.rollups.read.snapshot) and still count every entry whole or not at all."""
    done_pass = state["pass"] if state["status"] == "done" else state["pass"] - 1
    heads = _close_targets(store, generation, done_pass, targets, known)
    plan = []
    for account in sorted(targets):
        head = heads.get(account) or {"version": 0, "balance_minor": 0}
        if targets[account] > head["version"]:
            plan.append([account, head["version"], head["balance_minor"], targets[account]])
    return plan


def _close_targets(store: Store, generation: int, done_pass: int, targets: dict[str, int], known: list[dict]) -> dict[str, dict | None]:
    """Extend `targets` (in place) until every entry owning a version in some account's
    (head, target] has each of its legs within its account's (head, target] or at or below
    its head. Reads the heads of the accounts involved, and — only for versions no `known`
    entry owns (a gap: an entry outside the feed, or a sweep's accounts) — the entries by
    their claims. Returns the heads settled at `done_pass`. A version nobody claims is left
    to the pass, which refuses it (RollupChainError). Raises: RollupContendedError."""
    heads: dict[str, dict | None] = {}
    owned = {_claim(p["account"], p["version"]): entry for entry in known for p in entry.get("postings", [])
             if isinstance(p.get("version"), int)}
    asked: set[str] = set()
    for _ in range(PLAN_CLOSE_ROUNDS_MAX):
        unread = sorted(a for a in targets if a not in heads)
        if unread:
            found = _heads(store, generation, unread)
            heads.update({a: _settled(found.get(a), done_pass) for a in unread})
        entries = {id(e): e for claim, e in owned.items()}
        wanted = []
        for account, target in targets.items():
            for version in range(((heads[account] or {}).get("version", 0)) + 1, target + 1):
                claim = _claim(account, version)
                if claim not in owned and claim not in asked:
                    wanted.append(claim)
        grew = _extend(targets, heads, entries.values())
        if not wanted and not grew:
            return heads
        asked.update(wanted)
        for entry in entries_by_claims(store, wanted, projection={"postings.account": 1, "postings.version": 1}) if wanted else []:
            owned.update({_claim(p["account"], p["version"]): entry for p in entry.get("postings", []) if isinstance(p.get("version"), int)})
    raise RollupContendedError("a pass's plan could not be closed over whole entries", rounds=str(PLAN_CLOSE_ROUNDS_MAX))


def _extend(targets: dict[str, int], heads: dict[str, dict | None], entries: object) -> bool:
    """Raise each account's target to every leg above its head of an entry some target
    covers. Returns whether a target moved."""
    grew = False
    for entry in entries:
        legs = [p for p in entry.get("postings", []) if isinstance(p.get("version"), int)]
        covered = any(p["account"] in targets and ((heads.get(p["account"]) or {}).get("version", 0)) < p["version"] <= targets[p["account"]]
                      for p in legs)
        if not covered:
            continue
        for posting in legs:
            account, version = posting["account"], posting["version"]
            head = (heads.get(account) or {}).get("version", 0) if account in heads else None
            if (head is None or version > head) and version > targets.get(account, 0):
                targets[account] = version
                grew = True
    return grew


def _start_pass(store: Store, generation: int, state: dict, plan: list[list], cleared: list[str]) -> bool:
    """Compare-and-set the state from `done` at pass k to `planned` at k+1. Returns whether we won."""
    update = {"$set": {"pass": state["pass"] + 1, "status": "planned", "plan": plan, "clear": cleared,
                       "generation": generation}}
    guard = {"_id": state["_id"], "pass": state["pass"], "status": "done"}
    if state["pass"] > 0:
        return store.collection(STATE).update_one(guard, update) > 0
    try:  # the first pass creates the state document: a duplicate means another runner did
        store.collection(STATE).update_one(guard, update, upsert=True)
        return True
    except DuplicateKeyStoreError:
        return False


# -- executing a pass -------------------------------------------------------------------------------------
@dataclass
class PassDelta:
    """What one pass adds: per (account, day) movements, per account the new head, per (kind, asset) the change."""

    days: dict[tuple[str, str], dict] = field(default_factory=dict)
    heads: dict[str, dict] = field(default_factory=dict)
    totals: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


def links_of(entries: list[dict], account: str) -> list[tuple[dict, dict]]:
    """(posting, entry) of `account` in `entries`, in version order."""
    links = [(p, e) for e in entries for p in e.get("postings", []) if p.get("account") == account]
    return sorted(links, key=lambda link: link[0].get("version", 0))


def fold_links(delta: PassDelta, account: str, from_version: int, from_balance: int,
               links: list[tuple[dict, dict]]) -> None:
    """Fold one account's links (versions from+1.. in order) into `delta`.
    Raises RollupChainError when the versions are not contiguous (an entry is missing)."""
    parsed = parse_account_id(account)
    version, balance = from_version, from_balance
    for posting, entry in links:
        if posting.get("version") != version + 1:
            raise RollupChainError(f"{account}: version {version + 1} is missing from the journal",
                                   account=account, version=str(version + 1))
        version, amount_minor = version + 1, posting["amount_minor"]
        balance = posting["balance_after"]
        day = delta.days.setdefault((account, _day(entry)), {"types": {}, "closing_minor": 0, "closing_version": 0})
        moved = day["types"].setdefault(entry["type"], [0, 0, 0])
        moved[0 if amount_minor > 0 else 1] += abs(amount_minor)
        moved[2] += 1
        day["closing_minor"], day["closing_version"] = balance, version
    delta.heads[account] = {"version": version, "balance_minor": balance, "kind": parsed.kind.value,
                            "owner": parsed.owner, "asset": parsed.asset}
    delta.totals[(parsed.kind.value, parsed.asset)] += balance - from_balance


def pass_delta(store: Store, plan: list[list]) -> PassDelta:
    """Read the plan's entries by their claims and fold them."""
    claims = [_claim(a, v) for a, start, _, end in plan for v in range(start + 1, end + 1)]
    entries = entries_by_claims(store, claims)
    by_account: dict[str, list] = defaultdict(list)
    wanted = {a: (start, end) for a, start, _, end in plan}
    for entry in entries:
        for posting in entry.get("postings", []):
            span = wanted.get(posting.get("account"))
            if span and span[0] < posting.get("version", 0) <= span[1]:
                by_account[posting["account"]].append((posting, entry))
    delta = PassDelta()
    for account, start, balance, _ in plan:
        fold_links(delta, account, start, balance, sorted(by_account[account], key=lambda link: link[0]["version"]))
    return delta


def _day_values(old: dict | None, moved: dict) -> dict:
    types = {row["type"]: [row["in_minor"], row["out_minor"], row["entries"]] for row in (old or {}).get("types", [])}
    for entry_type, (into, out, count) in moved["types"].items():
        row = types.setdefault(entry_type, [0, 0, 0])
        row[0], row[1], row[2] = row[0] + into, row[1] + out, row[2] + count
    rows = [{"type": t, "in_minor": v[0], "out_minor": v[1], "entries": v[2]} for t, v in sorted(types.items())]
    return {"types": rows, "in_minor": sum(r["in_minor"] for r in rows), "out_minor": sum(r["out_minor"] for r in rows),
            "entries": sum(r["entries"] for r in rows), "closing_minor": moved["closing_minor"],
            "closing_version": moved["closing_version"]}


def _write(store: Store, name: str, pass_number: int, documents: dict[str, tuple[dict, dict | None]]) -> None:
    """Write each derived document for `pass_number` at most once: the filter `pass < k` makes a
    second writer (or a replay after a crash) a no-op; `before` keeps the previous values."""
    for document_id, (values, before) in sorted(documents.items()):
        update = {"$set": {**values, "pass": pass_number, "before": before}}
        try:
            store.collection(name).update_one({"_id": document_id, "pass": {"$lt": pass_number}}, update, upsert=True)
        except DuplicateKeyStoreError:
            pass  # written for this pass already by another runner


def _existing(store: Store, name: str, ids: list[str]) -> dict[str, dict]:
    found = {}
    for start in range(0, len(ids), IN_BATCH_MAX):
        chunk = ids[start:start + IN_BATCH_MAX]
        found.update({d["_id"]: d for d in store.collection(name).find({"_id": {"$in": chunk}}, limit=len(chunk))})
    return found


def _settled_values(document: dict | None, pass_number: int, fields: tuple[str, ...]) -> dict | None:
    """The values a document held before `pass_number` (None: it did not exist)."""
    if document is None:
        return None
    source = document.get("before") if document["pass"] >= pass_number else document
    return None if source is None else {k: source[k] for k in fields if k in source}


DAY_FIELDS = ("types", "in_minor", "out_minor", "entries", "closing_minor", "closing_version")


def execute_pass(store: Store, generation: int, state: dict) -> None:
    """Write the planned pass's rollups, totals and heads (each at most once), then mark it done."""
    number, delta = state["pass"], pass_delta(store, state["plan"])
    day_ids = {f"{generation}|{a}|{d}": (a, d) for a, d in delta.days}
    old_days = _existing(store, ROLLUPS, sorted(day_ids))
    days = {}
    for document_id, (account, day) in day_ids.items():
        before = _settled_values(old_days.get(document_id), number, DAY_FIELDS)
        head = delta.heads[account]
        fixed = {"generation": generation, "account": account, "logical": logical_id(account), "day": day,
                 **{k: head[k] for k in ("kind", "owner", "asset")}}
        days[document_id] = ({**fixed, **_day_values(before, delta.days[(account, day)])}, before)
    _write(store, ROLLUPS, number, days)
    total_ids = {f"{generation}|{k}|{a}": (k, a) for k, a in delta.totals}
    old_totals = _existing(store, TOTALS, sorted(total_ids))
    totals = {}
    for document_id, (kind, asset) in total_ids.items():
        before = _settled_values(old_totals.get(document_id), number, ("balance_minor",))
        value = (before or {}).get("balance_minor", 0) + delta.totals[(kind, asset)]
        totals[document_id] = ({"generation": generation, "kind": kind, "asset": asset, "balance_minor": value}, before)
    _write(store, TOTALS, number, totals)
    heads = {}
    for account, start, balance, _ in state["plan"]:
        before = {"version": start, "balance_minor": balance} if start else None
        heads[f"{generation}|{account}"] = ({"generation": generation, "account": account, **delta.heads[account]}, before)
    _write(store, HEADS, number, heads)
    try:  # what changed in this pass, for the incremental integrity check (same content whoever writes it)
        store.collection(PASSES).insert_one({"_id": f"{generation}|{number}", "generation": generation, "pass": number,
                                             "plan": state["plan"]})
    except DuplicateKeyStoreError:
        pass
    cleared = state.get("clear") or []
    watermark = max(cleared) if cleared else state.get("watermark")
    store.collection(STATE).update_one(
        {"_id": state["_id"], "pass": number, "status": "planned"},
        {"$set": {"status": "done", "watermark": watermark, "plan": [], "clear": []}})
    if cleared and generation == active_generation(store):
        store.collection("entries").update_many({"_id": {"$in": cleared}, "unfolded": True}, {"$unset": {"unfolded": ""}})


# -- running ----------------------------------------------------------------------------------------------
@dataclass
class FoldReport:
    passes: int = 0
    accounts: int = 0
    generation: int = 1
    caught_up: bool = False


def update(store: Store, *, generation: int | None = None, passes_max: int = PASSES_PER_RUN_MAX) -> FoldReport:
    """Fold every entry still flagged `unfolded` (helping a half-done pass first). Safe to
    run beside any number of other runners. A generation that was never folded while the
    journal holds entries (a store from before the rollups, a bulk load) is first folded from
    the balances' versions (`sweep`'s planning: O(journal), once).
    Raises RollupChainError when an account's chain has a hole (the integrity check names
    the entry)."""
    generation = generation or active_generation(store)
    report = FoldReport(generation=generation)
    if _never_folded(store, generation):
        _fold_accounts_behind(store, generation, report)
    return _fold(store, generation, passes_max, report)


def _never_folded(store: Store, generation: int) -> bool:
    """No pass ever ran for `generation` and the journal's first entry carries no `unfolded`
    flag (entries from before the rollups, or loaded in bulk): the feed alone cannot see them."""
    if store.collection(STATE).find_one({"_id": f"gen:{generation}"}, projection={"_id": 1}) is not None:
        return False
    first = store.collection("entries").find_one({}, sort=[("_id", 1)], projection={"unfolded": 1})
    return first is not None and not first.get("unfolded")


def _fold(store: Store, generation: int, passes_max: int, report: FoldReport) -> FoldReport:
    """Passes from the `unfolded` feed until it is empty (or `passes_max`)."""
    for _ in range(passes_max):
        state = _state(store, generation)
        if state["status"] == "planned":
            execute_pass(store, generation, state)
            continue
        planned = _plan_from_feed(store, generation, state)
        if planned is None:
            report.caught_up = True
            return report
        plan, cleared = planned
        if not plan:  # every waiting entry is folded already (a crash before its flag was cleared)
            if generation != active_generation(store):
                report.caught_up = True  # a generation being rebuilt never clears the shared flags
                return report
            store.collection("entries").update_many({"_id": {"$in": cleared}, "unfolded": True}, {"$unset": {"unfolded": ""}})
            continue
        if _start_pass(store, generation, state, plan, cleared):
            report.passes, report.accounts = report.passes + 1, report.accounts + len(plan)
    return report


def _fold_accounts_behind(store: Store, generation: int, report: FoldReport) -> bool:
    """Plan passes for every account whose projection is ahead of its head. Reads every
    balance and head: O(accounts). Returns whether any account was behind."""
    heads = {d["account"]: d["version"] for d in scan(store.collection(HEADS), {"generation": generation})}
    behind = {d["_id"]: d["version"] for d in scan(store.collection("balances"), projection={"version": 1})
              if isinstance(d.get("version"), int) and d["version"] > heads.get(d["_id"], 0)}
    accounts = sorted(behind)
    for start in range(0, len(accounts), PASS_ACCOUNTS_MAX):
        targets = {a: behind[a] for a in accounts[start:start + PASS_ACCOUNTS_MAX]}
        for _ in range(PLAN_ATTEMPTS_MAX):
            state = _state(store, generation)
            if state["status"] == "planned":
                execute_pass(store, generation, state)
                continue
            plan = _plan_for(store, generation, state, targets)
            if not plan or _start_pass(store, generation, state, plan, []):
                report.passes, report.accounts = report.passes + bool(plan), report.accounts + len(plan)
                break
    return bool(accounts)


def sweep(store: Store, *, generation: int | None = None, passes_max: int = PASSES_PER_RUN_MAX) -> FoldReport:
    """Fold what the journal feed cannot see: an account whose projection is ahead of its
    head (entries journaled without the `unfolded` flag: before the rollups existed, or
    loaded in bulk). Reads every balance and head: O(accounts), for the full check's schedule.
    `passes_max` bounds each feed fold (under continuous posting the feed never empties)."""
    generation = generation or active_generation(store)
    report = _fold(store, generation, passes_max, FoldReport(generation=generation))
    if _fold_accounts_behind(store, generation, report):
        _fold(store, generation, passes_max, report)
    return report


def rebuild(store: Store) -> FoldReport:
    """Fold a new generation from the first entry, make it active, drop the older ones.
    Runners still folding an old generation write only that generation's documents."""
    counter = store.collection(STATE).find_one_and_update(
        {"_id": ACTIVE}, {"$inc": {"rebuilds": 1}, "$setOnInsert": {"generation": 1}}, upsert=True)
    generation = counter["rebuilds"] + 1  # a fresh number per rebuild (an allocation, not a balance)
    report = sweep(store, generation=generation)
    store.collection(STATE).update_one({"_id": ACTIVE, "generation": {"$lt": generation}}, {"$set": {"generation": generation}})
    report = sweep(store, generation=generation)  # what the old generation's runners folded (and unflagged) meanwhile
    for name in (ROLLUPS, HEADS, TOTALS, PASSES):
        store.collection(name).delete_many({"generation": {"$lt": generation}})
    store.collection(STATE).delete_many({"_id": {"$regex": "^gen:"}, "generation": {"$lt": generation}})
    return report
