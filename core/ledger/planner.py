"""What a MongoDB query planner would do with each recorded store operation.

The embedded store has no indexes for reads, so it cannot show what a real server would
examine; this module models it from the declared indexes (`core.ledger.indexes.INDEXES`):

- **The shape of a query** (`query_branches`): the filter in disjunctive form — one
  conjunction of (field, how it is matched) per `$or` branch — so each branch is judged
  on its own, as a planner plans each branch of a rooted `$or` on its own.
- **Whether an index serves it** (`uncovered`, MongoDB's `notablescan` rule and no
  blocking sort): a branch needs an index whose leading key it bounds — by equality,
  `$in`, a range, or a case-sensitive regex anchored with `^` (an unanchored or
  case-insensitive regex, `$ne`, `$exists`... bound nothing; an equality on null cannot
  use a sparse index); a sort must come from that index (after the keys the branch matches
  by equality, the sort keys in order, directions all equal or all inverted) and, on a
  multikey index, never from a field holding arrays that the branch bounds (nor one
  sharing its path prefix with a bounded array field): MongoDB then adds a blocking sort.
- **What it would examine** (`examine`): the index-bounded part of the filter (the
  equality prefix of the index, then at most one range) is evaluated on the raw
  collection; the index keys in those bounds are walked in index order — stopping once
  `skip + limit` documents match the whole filter when the index also gives the order (or
  no order is asked) — and every key walked fetches its document (a count whose filter
  the bounds hold entirely fetches none). Of the indexes that could serve the branch, the
  cheapest is taken, as a planner's trial run would; without one, a collection scan.
  It is a model — multikey keys are counted per matching array value, bounds of later
  index keys after a range are not used, the branches of an `$or` are not cut short by a
  limit — but it counts what grows with history and what does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.ledger.indexes import INDEXES, IndexSpec, OperationRecord, Term

IndexKeys = tuple[tuple[str, int], ...]

RANGE_OPERATORS = frozenset({"$gt", "$gte", "$lt", "$lte"})
WRITES_WITHOUT_FILTER = ("insert_one", "insert_many", "drop_database", "list_collections")
USABLE_LEADING = frozenset({"eq", "in", "null", "range", "prefix"})  # gives the index scan bounds
EQUALITY = frozenset({"eq", "in", "null"})  # `$in` then a sort on the next key: a merge of sorted runs, not a blocking sort
ONE_DOCUMENT = ("find_one", "find_one_and_update", "update_one")  # stop at the first match

# Fields that hold arrays, by collection: their indexes are multikey (one key per element),
# which changes what an index scan can give in order. tests/core/ledger/test_planner.py checks
# this table against every array field of a demo data set that an index names.
MULTIKEY_FIELDS: dict[str, frozenset[str]] = {
    "entries": frozenset({"claims", "accounts", "user_ids", "assets"}),
    "directory_search": frozenset({"keys"}),
    "approvals": frozenset({"approvals.by", "audit_outbox.event_key"}),
    "withdrawals": frozenset({"hold_placers", "audit_outbox.event_key"}),
    "p2p_trades": frozenset({"hold_placers", "audit_outbox.event_key"}),
    "quotes": frozenset({"hold_placers", "audit_outbox.event_key"}),
    "deposits": frozenset({"audit_outbox.event_key"}),
}


# -- the shape of a query --------------------------------------------------------------------
def filter_fields(query: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The field names a query filters on (operators of `$and`/`$or` flattened)."""
    names: set[str] = set()
    for key, value in (query or {}).items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            for branch in value:
                names.update(filter_fields(branch))
        elif not key.startswith("$"):
            names.add(key)
    return tuple(sorted(names))


def _how(value: Any) -> str:
    """How a field is matched, as a query planner sees it: `eq` (a value, `$eq`, `$all`,
    `$elemMatch`), `null` (equality on null: also matches a missing field), `in`, `range`,
    `prefix` (a case-sensitive regex anchored with ^ and a literal start), `regex` (any
    other regex: a scan of the index at best), `other` (`$ne`, `$nin`, `$exists`,
    `$not`...: no index bounds)."""
    if value is None:
        return "null"
    if isinstance(value, re.Pattern):
        return _regex_how(value.pattern, value.flags & re.IGNORECASE)
    if not isinstance(value, Mapping) or not any(str(k).startswith("$") for k in value):
        return "eq"
    operators = set(value)
    if "$regex" in operators:
        pattern = value["$regex"]
        options = str(value.get("$options", ""))
        return _regex_how(pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern), "i" in options)
    if operators == {"$eq"} and value["$eq"] is None:
        return "null"
    if operators <= {"$eq", "$all", "$elemMatch"}:
        return "eq"
    if operators == {"$in"}:
        return "in"
    if operators <= RANGE_OPERATORS:
        return "range"
    return "other"


def _regex_how(pattern: str, ignore_case: object) -> str:
    """`prefix` when the regex starts with ^ and a literal character (an escaped one counts),
    case-sensitive: the index serves it as a range of keys."""
    if not pattern.startswith("^") or ignore_case or len(pattern) < 2:
        return "regex"
    first = pattern[1]
    if first == "\\":
        return "prefix" if len(pattern) > 2 and not pattern[2].isalnum() else "regex"
    return "regex" if first in ".[(*?+|$^{)" else "prefix"


def _branch_terms(query: Mapping[str, Any] | None) -> list[list[tuple[str, Any]]]:
    """The filter in disjunctive form with its values: each `$or` branch joined with the
    other terms, as a list of (field, value) pairs (a field may appear twice)."""
    branches: list[list[tuple[str, Any]]] = [[]]
    for key, value in (query or {}).items():
        if key == "$and" and isinstance(value, list):
            for part in value:
                branches = [b + p for b in branches for p in _branch_terms(part)]
        elif key == "$or" and isinstance(value, list):
            branches = [b + p for b in branches for part in value for p in _branch_terms(part)]
        else:
            branches = [b + [(key, value)] for b in branches]
    return branches


def _term_how(key: str, value: Any) -> str:
    return "other" if key.startswith("$") else _how(value)  # $nor, $expr, $where: no index bounds


def query_branches(query: Mapping[str, Any] | None) -> tuple[tuple[Term, ...], ...]:
    """The filter in disjunctive form: each `$or` branch joined with the other terms."""
    return tuple(tuple(sorted({(key, _term_how(key, value)) for key, value in branch}))
                 for branch in _branch_terms(query))


# -- the declared indexes ----------------------------------------------------------------------
def _indexes_of(collection: str) -> list[IndexSpec]:
    return [IndexSpec((("_id", 1),), unique=True)] + list(INDEXES.get(collection, []))


def _multikey(collection: str, field: str) -> bool:
    return field in MULTIKEY_FIELDS.get(collection, ())


def _shares_path(first: str, second: str) -> bool:
    """Two paths through the same array: equal, or the same first component when one is dotted."""
    return first == second or ("." in first + second and first.split(".")[0] == second.split(".")[0])


# -- serving a branch ------------------------------------------------------------------------------
def _bounded_prefix(spec: IndexSpec, how: Mapping[str, str]) -> tuple[str, ...]:
    """The index keys the branch bounds, in order: every key matched by equality, then at
    most one range (the keys after it are not used for bounds in this model)."""
    bounded = []
    for name, _ in spec.keys:
        kind = how.get(name)
        if kind not in USABLE_LEADING:
            break
        if kind == "null" and spec.sparse:
            return ()  # a sparse index has no key for a missing field: it cannot answer "is null"
        bounded.append(name)
        if kind not in EQUALITY:
            break
    return tuple(bounded)


def _provides_sort(collection: str, spec: IndexSpec, how: Mapping[str, str], sort: Sequence[tuple[str, int]]) -> bool:
    """MongoDB's rule: the sort keys, in order and with all directions equal or all
    inverted, follow the index keys left after the ones the filter matches by equality.
    On a multikey index the order is lost for a sort field holding arrays that the branch
    bounds, or one sharing its path with a bounded array field (SERVER-31898): a blocking sort."""
    keys, sort_names = spec.keys, [name for name, _ in sort]
    position = 0
    while position < len(keys) and how.get(keys[position][0]) in EQUALITY and keys[position][0] not in sort_names:
        position += 1
    window = keys[position:position + len(sort)]
    if [k for k, _ in window] != sort_names:
        return False
    if len({direction * wanted for (_, direction), (_, wanted) in zip(window, sort)}) != 1:
        return False
    bounded_arrays = [name for name, _ in keys if how.get(name) in USABLE_LEADING and _multikey(collection, name)]
    return not any(_shares_path(array, name) for array in bounded_arrays for name in sort_names)


def _branch_problem(collection: str, branch: tuple[Term, ...], sort: tuple[tuple[str, int], ...]) -> str | None:
    indexes, how = _indexes_of(collection), dict(branch)
    if not branch:  # no filter: an index walk in sort order, or a collection scan
        if not sort or not any(_provides_sort(collection, spec, how, sort) for spec in indexes if not spec.sparse):
            return "no filter and no index order: a collection scan"
        return None
    filtering = [spec for spec in indexes if _bounded_prefix(spec, how)]
    if not filtering:
        return f"no index leads with a bounded field of {how}"
    if sort and not any(_provides_sort(collection, spec, how, sort) for spec in filtering):
        multikey = [name for name, _ in sort if _multikey(collection, name)]
        why = f" (multikey {multikey} bounded by the filter)" if multikey else ""
        return f"sort {list(sort)} is not served by an index that also serves {how}{why}: a blocking in-memory sort"
    return None


def _shape(record: OperationRecord) -> tuple[tuple[tuple[Term, ...], ...], tuple[tuple[str, int], ...]]:
    """The record's branches and sort; a record built by hand from field names only reads
    as equality on each field and an ascending sort."""
    branches = record.branches
    if branches == ((),) and record.filter_fields:
        branches = (tuple((name, "eq") for name in record.filter_fields),)
    return branches, record.sort or tuple((name, 1) for name in record.sort_fields)


def uncovered(records: Sequence[OperationRecord]) -> list[OperationRecord]:
    """The recorded operations a query planner could not serve from a declared index (see
    the module doc: each `$or` branch, bounded leading key, sort from the same index, the
    multikey sort rule; no filter at all is served only by an index walk in the requested
    order). Inserts need no index."""
    result = []
    for record in records:
        if record.operation in WRITES_WITHOUT_FILTER:
            continue
        branches, sort = _shape(record)
        if any(_branch_problem(record.collection, branch, sort) for branch in branches):
            result.append(record)
    return sorted(set(result), key=lambda r: (r.collection, r.operation, r.filter_fields, r.sort))


def uncovered_reasons(records: Sequence[OperationRecord]) -> list[str]:
    """`uncovered`, each with the planner's reason (for reports)."""
    reasons = []
    for record in uncovered(records):
        branches, sort = _shape(record)
        problems = {p for b in branches if (p := _branch_problem(record.collection, b, sort))}
        reasons.append(f"{record.collection}.{record.operation} {record.branches} sort {list(record.sort)}: {'; '.join(sorted(problems))}")
    return reasons


# -- what a plan examines ------------------------------------------------------------------------
@dataclass(frozen=True)
class Examined:
    """Index keys and documents a real server would examine for one operation, and the
    index it would use (`COLLSCAN` without one)."""

    keys: int
    documents: int
    index: str


NOTHING = Examined(0, 0, "-")


def distinct_scan_key(pipeline: Sequence[Mapping]) -> str | None:
    """The field of a pipeline a server answers with a DISTINCT_SCAN — a `$sort` whose
    leading key is then the `$group` key, every accumulator a `$first` or `$last` (as in
    "every audit stream's newest event") — or None."""
    if len(pipeline) < 2 or "$sort" not in pipeline[0] or "$group" not in pipeline[1] or not pipeline[0]["$sort"]:
        return None
    leading = next(iter(pipeline[0]["$sort"]))
    group = pipeline[1]["$group"]
    accumulators = [value for key, value in group.items() if key != "_id"]
    if group.get("_id") != f"${leading}" or not all(isinstance(a, Mapping) and set(a) <= {"$first", "$last"} for a in accumulators):
        return None
    return leading


def examine(raw: Any, collection: str, operation: str, query: Mapping | None, sort: Sequence | None = None,
            *, limit: int | None = None, skip: int = 0, distinct_on: str | None = None) -> Examined:
    """What `operation` with `query` (and `sort`, `skip`, `limit`) would examine on a real
    server, given the documents of `raw` (a pymongo-like collection) as they are now.
    Inserts examine nothing; a DISTINCT_SCAN (`distinct_on`, see `distinct_scan_key`) one
    key per distinct value and one document per group. See the module doc for the model."""
    if operation in WRITES_WITHOUT_FILTER:
        return NOTHING
    if distinct_on is not None and not query:
        groups = len({repr(_values(d, distinct_on)) for d in _Documents(raw).all})
        return Examined(groups + 1, groups, f"DISTINCT_SCAN {distinct_on}")
    ordered = tuple((str(name), int(direction)) for name, direction in (sort or ()))
    wanted = None if operation in ("update_many", "delete_many", "aggregate") else (
        skip + 1 if operation in ONE_DOCUMENT else (skip + limit if limit else None))
    branches = _branch_terms(query)
    if len(branches) == 1 and (by_id := _by_id(raw, branches[0])) is not None:
        return by_id  # the unique `_id` index: nothing is cheaper, no need to look further
    documents = _Documents(raw)
    plans = [_cheapest(documents, collection, terms, ordered, wanted if len(branches) == 1 else None,
                       counting=operation == "count_documents") for terms in branches]
    if any(plan is None for plan in plans):  # one branch without an index: the whole `$or` is a collection scan
        return _collection_scan(documents, query, ordered, wanted)
    return Examined(sum(p.keys for p in plans), sum(p.documents for p in plans), "+".join(p.index for p in plans))


class _Documents:
    """The collection's documents, read once per estimate (the embedded store copies every
    document it returns), matched in memory with mongomock's own filter semantics."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._all: list | None = None

    @property
    def all(self) -> list:
        if self._all is None:
            self._all = list(self._raw.find({}))
        return self._all

    def matching(self, query: Mapping) -> list:
        from mongomock.filtering import filter_applies

        return [d for d in self.all if filter_applies(query, d)] if query else list(self.all)


def _by_id(raw: Any, terms: list[tuple[str, Any]]) -> Examined | None:
    """A branch that names documents by `_id` (a value or `$in`): the keys and documents it examines."""
    ids = [value for key, value in terms if key == "_id" and _how(value) in ("eq", "in")]
    if not ids:
        return None
    found = len(list(raw.find({"_id": ids[0]}, {"_id": 1})))
    return Examined(found, found, "_id_1")


def _cheapest(documents: _Documents, collection: str, terms: list[tuple[str, Any]], sort: tuple[tuple[str, int], ...],
              wanted: int | None, *, counting: bool) -> Examined | None:
    how = {key: _term_how(key, value) for key, value in terms}
    matching: set | None = None
    best: Examined | None = None
    for spec in _indexes_of(collection):
        bounded = _bounded_prefix(spec, how)
        ordered = bool(sort) and _provides_sort(collection, spec, how, sort)
        if not bounded and not (ordered and not spec.sparse):
            continue  # neither bounds nor order: never chosen
        if matching is None:
            matching = {d["_id"] for d in documents.matching(_conjunction(terms))}
        plan = _walk(documents, collection, spec, terms, bounded, sort if ordered else (), matching,
                     None if sort and not ordered else wanted, counting=counting)
        if best is None or plan.keys + plan.documents < best.keys + best.documents:
            best = plan
    return best


def _walk(documents: _Documents, collection: str, spec: IndexSpec, terms: list[tuple[str, Any]],
          bounded: tuple[str, ...], sort: tuple[tuple[str, int], ...], matching: set, wanted: int | None, *,
          counting: bool) -> Examined:
    """Walk the keys of `spec` inside the bounds in index order until `wanted` documents
    match the whole filter (all of them when `wanted` is None)."""
    bounds = [(key, value) for key, value in terms if key in bounded]
    candidates = documents.matching(_conjunction([(k, _bound_of(v)) for k, v in bounds]))
    if spec.sparse:
        candidates = [d for d in candidates if _values(d, spec.keys[0][0])]
    _order(candidates, sort or spec.keys)
    covered = counting and {key for key, _ in terms} <= set(bounded) and len(bounds) == len(terms)
    keys = documents = found = 0
    for document in candidates:
        keys += _keys_in_bounds(collection, document, bounds)
        documents += 0 if covered else 1
        found += document["_id"] in matching
        if wanted is not None and found >= wanted:
            break
    return Examined(keys, documents, spec.name)


def _collection_scan(documents: _Documents, query: Mapping | None, sort: tuple[tuple[str, int], ...],
                     wanted: int | None) -> Examined:
    if sort or wanted is None:
        return Examined(0, len(documents.all), "COLLSCAN")
    matching = {d["_id"] for d in documents.matching(query or {})}
    walked = found = 0
    for document in documents.all:
        walked += 1
        found += document["_id"] in matching
        if found >= wanted:
            break
    return Examined(0, walked, "COLLSCAN")


def _conjunction(terms: list[tuple[str, Any]]) -> dict:
    return {"$and": [{key: value} for key, value in terms]} if terms else {}


def _bound_of(value: Any) -> Any:
    """The part of a predicate the index bounds: a prefix regex becomes its literal prefix."""
    if _how(value) != "prefix":
        return value
    return {"$regex": "^" + re.escape(_literal_prefix(value))}


def _pattern(value: Any) -> str:
    if isinstance(value, re.Pattern):
        return value.pattern
    pattern = value["$regex"]
    return pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern)


def _literal_prefix(value: Any) -> str:
    """The literal start of an anchored regex (`^abc\\.d.*` → `abc.d`)."""
    pattern, prefix, position = _pattern(value), [], 1
    while position < len(pattern):
        character = pattern[position]
        if character == "\\" and position + 1 < len(pattern) and not pattern[position + 1].isalnum():
            prefix.append(pattern[position + 1])
            position += 2
        elif character in ".[(*?+|$^{)\\":
            break
        else:
            prefix.append(character)
            position += 1
    if prefix and position < len(pattern) and pattern[position] in "*?{":
        prefix.pop()  # the last literal is optional or repeated: it does not bound
    return "".join(prefix)


def _values(document: Mapping, path: str) -> list:
    """Every value at a dotted path, arrays flattened (what a multikey index keys on)."""
    current: list = [document]
    for part in path.split("."):
        following = []
        for value in current:
            if isinstance(value, Mapping) and part in value:
                found = value[part]
                following += found if isinstance(found, list) else [found]
            elif isinstance(value, list):
                following += [v[part] for v in value if isinstance(v, Mapping) and part in v]
        current = following
    return current


def _keys_in_bounds(collection: str, document: Mapping, bounds: list[tuple[str, Any]]) -> int:
    """Index keys of one document inside the bounds: one, or for the array field of a
    multikey index one per element within the bounds."""
    for key, value in bounds:
        if _multikey(collection, key):
            return max(1, sum(1 for element in set(map(_hashable, _values(document, key))) if _within(element, value)))
    return 1


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, datetime, type(None))) else repr(value)


def _within(element: Any, predicate: Any) -> bool:
    """Whether one array element lies in the bounds `predicate` gives (eq, $in, range, prefix)."""
    how = _how(predicate)
    if how == "eq":
        if not isinstance(predicate, Mapping):
            return element == predicate
        return element == predicate["$eq"] if "$eq" in predicate else True  # $all, $elemMatch: one key per document
    if how == "in":
        return element in predicate["$in"]
    if how == "prefix":
        return isinstance(element, str) and element.startswith(_literal_prefix(predicate))
    if how == "range":
        try:
            return all({"$gt": element > bound, "$gte": element >= bound, "$lt": element < bound,
                        "$lte": element <= bound}[operator] for operator, bound in predicate.items())
        except TypeError:
            return False
    return True


TYPE_ORDER = {type(None): 0, int: 1, float: 1, str: 2, dict: 3, list: 4, bool: 5, datetime: 6}


def _sort_value(values: list, direction: int) -> tuple:
    """A BSON-like sort value for one field (arrays sort by their least or greatest element)."""
    if not values:
        return (0, 0)
    keyed = [(TYPE_ORDER.get(type(v), 7), v if isinstance(v, (int, float, str, datetime)) else repr(v)) for v in values]
    try:
        return min(keyed) if direction > 0 else max(keyed)
    except TypeError:
        return keyed[0]


def _order(documents: list, keys: Sequence[tuple[str, int]]) -> None:
    """Sort in place in the order of `keys` (stable passes, last key first)."""
    for name, direction in reversed(list(keys)):
        try:
            documents.sort(key=lambda d, n=name, r=direction: _sort_value(_values(d, n), r), reverse=direction < 0)
        except TypeError:
            pass  # incomparable values: keep the order the documents have
