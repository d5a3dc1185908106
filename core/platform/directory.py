"""The exchange's user directory, read-only: who a user id belongs to, and who referred whom.

The ledger stores user ids only; support needs to find people by email or name. The
exchange keeps them in `users` (`user_id`, `email`, `name`, and — in production — password
fields we must never read) and referral data in `user_accounts` (`referred_by`,
`referral_tier`). Every read here uses an inclusion projection, so a password hash or salt
can never leave the database through this module, and search text is only ever a plain
value or an escaped, anchored regex (never an operator).

Search: `users` is the exchange's and read-only, and a case-insensitive regex cannot use an
index. So we keep our own collection `directory_search` — `{_id: user_id, keys: [lowercase
id, lowercase email, each lowercase word of the name], name: lowercase name}` — built and
refreshed from `users` (`refresh_search_keys`), with a multikey index on `keys` (then `_id`,
for a stable order). A search lower-cases the text, splits it into words, and asks for
documents with a key starting with each word: an anchored, escaped, case-sensitive prefix
regex (`^word`), which the index serves as a range. Up to SEARCH_ORDER_MAX matches are read
and ranked — exact matches of a word first, then by name — so support sees the person they
typed before the rest; beyond that (a one-letter search) the index order pages on the server.

Keeping the keys fresh costs a search O(people added), never O(people): `directory_state`
holds a watermark, the `_id` of the newest person whose keys we wrote. Each search first
asks `users` for people after the watermark (one `_id`-range read, empty in the steady
state), writes their keys and moves the watermark — at most SYNC_USERS_MAX per search, so a
backlog is caught up over a few searches, never all at once. `users` only ever grows by
inserts whose store-made `_id` (an ObjectId) increases; edited names and people who left
are what the full `refresh_search_keys` reconciles: the console runs it once at start-up
(`console.loading.get_platform`). (ObjectIds made by different processes within the same second may
land out of order: a person inserted just behind the watermark is found after the next
start-up reconcile, not on the next search.) A search never shows a person who left: results are joined with
`users`, which no longer has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.platform.boundary import boundary, raising, text
from core.base.errors import InvalidStateError
from core.base.permissions import Permission, Principal, require
from core.ledger import Store

SEARCH_TEXT_LENGTH_MAX = 100
SEARCH_RESULTS_MAX = 25  # one page of search results at most
SEARCH_WORDS_MAX = 5  # words of one search text (each must prefix some key)
SEARCH_COUNT_MAX = 10_000  # the result count is exact up to this, then shown as "10,000+"
SEARCH_ORDER_MAX = 500  # up to this many matches are ordered best match first, then by name; beyond, in index order
SEARCH_COLLECTION = "directory_search"
STATE_COLLECTION = "directory_state"  # {_id: "users", watermark: newest users._id whose keys are written}
STATE_ID = "users"
SYNC_USERS_MAX = 200  # new people one search indexes at most (a backlog takes a few searches)
REFRESH_BATCH_SIZE = 1_000  # users read per round trip while refreshing the search keys
REFRESH_USERS_MAX = 1_000_000  # a refresh never walks more users than this
REFERRALS_MAX = 50
USER_FIELDS = ("user_id", "email", "name", "created_at", "country", "status")
USER_PROJECTION = {"_id": 0, **{name: 1 for name in USER_FIELDS}}
ACCOUNT_PROJECTION = {"_id": 0, "user_id": 1, "referred_by": 1, "referral_tier": 1}
KEY_SOURCE_PROJECTION = {"_id": 1, "user_id": 1, "email": 1, "name": 1}


class InvalidSearchError(InvalidStateError):
    """The search text is not text, is empty, or is too long."""


@dataclass(frozen=True)
class DirectoryUser:
    """One person as the console may show them (no secrets by construction)."""

    user_id: str
    email: str
    name: str
    referred_by: str | None = None
    referral_tier: str | None = None

    def as_dict(self) -> dict:
        return {"user_id": self.user_id, "email": self.email, "name": self.name,
                "referred_by": self.referred_by, "referral_tier": self.referral_tier}


@dataclass(frozen=True)
class SearchPage:
    """One page of matches. `total` is exact up to SEARCH_COUNT_MAX (`total_capped` says when
    there are at least that many). `ordered`: best match first, then by name (up to
    SEARCH_ORDER_MAX matches); else the search index's order."""

    items: list[DirectoryUser]
    total: int
    total_capped: bool
    page: int
    page_size: int
    ordered: bool = True

    @property
    def has_more(self) -> bool:
        return (self.page + 1) * self.page_size < self.total

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidSearchError("search text must be text")
    text = text.strip()
    if not text or len(text) > SEARCH_TEXT_LENGTH_MAX:
        raise InvalidSearchError(f"search text must be 1-{SEARCH_TEXT_LENGTH_MAX} characters")
    return text


def _user(document: dict, account: dict | None = None) -> DirectoryUser:
    account = account or {}
    return DirectoryUser(
        user_id=str(document.get("user_id", "")), email=str(document.get("email") or ""),
        name=str(document.get("name") or ""), referred_by=account.get("referred_by"),
        referral_tier=account.get("referral_tier"),
    )


# -- our search keys, derived from `users` ------------------------------------------------------
def search_keys(document: dict) -> list[str]:
    """The lowercase keys a person is found by: id, email, and each word of the name
    (hyphenated names also by each part). Pure: the same document gives the same keys."""
    keys = [str(document.get("user_id") or "").lower(), str(document.get("email") or "").lower()]
    for word in str(document.get("name") or "").lower().split():
        keys.append(word)
        keys.extend(part for part in word.split("-") if part and part != word)
    return sorted({key for key in keys if key})


def search_document(document: dict) -> dict:
    """What `directory_search` keeps for a person: the keys, and the lower-case name the
    matches are ordered by. Pure."""
    return {"keys": search_keys(document), "name": " ".join(str(document.get("name") or "").lower().split())}


def match_order(document: dict, words: list[str]) -> tuple:
    """How a search document ranks for the searched `words`: more words that equal a key
    exactly first (the id "u0002" before "u00021", the surname "walker" before "walkerson"),
    then by name, then by id. Pure."""
    keys = set(document.get("keys") or ())
    return (-sum(word in keys for word in words), str(document.get("name") or ""), str(document.get("_id")))


@boundary
def refresh_search_keys(store: Store, principal: Principal) -> int:
    """Bring `directory_search` in line with `users`: add or update every changed person's
    keys and drop people who left, then set the watermark to the newest person seen. Reads
    `users` in batches by `_id` (never writes it): O(people), so it runs at start-up or on
    demand, never on a page render (searches use `sync_search_keys`).
    Returns the number of search documents written or removed. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_USERS)
    users, search = store.collection("users"), store.collection(SEARCH_COLLECTION)
    wanted: dict[str, dict] = {}
    last_id = None
    while len(wanted) < REFRESH_USERS_MAX:
        query = {} if last_id is None else {"_id": {"$gt": last_id}}
        batch = users.find(query, sort=[("_id", 1)], limit=REFRESH_BATCH_SIZE, projection=KEY_SOURCE_PROJECTION)
        for document in batch:
            if isinstance(document.get("user_id"), str) and document["user_id"]:
                wanted[document["user_id"]] = search_document(document)
        if batch:
            last_id = batch[-1]["_id"]
        if len(batch) < REFRESH_BATCH_SIZE:
            break
    have = {d["_id"]: {"keys": d.get("keys"), "name": d.get("name")}
            for d in search.find({}, sort=[("_id", 1)], projection={"_id": 1, "keys": 1, "name": 1})}
    changed = 0
    for user_id, wanted_document in wanted.items():
        if have.get(user_id) != wanted_document:
            search.update_one({"_id": user_id}, {"$set": wanted_document}, upsert=True)
            changed += 1
    gone = [user_id for user_id in have if user_id not in wanted]
    if gone:
        changed += search.delete_many({"_id": {"$in": gone}})
    if last_id is not None:
        store.collection(STATE_COLLECTION).update_one({"_id": STATE_ID}, {"$set": {"watermark": last_id}}, upsert=True)
    return changed


@boundary
def sync_search_keys(store: Store, principal: Principal) -> int:
    """Index the people added to `users` since the watermark: two reads when nobody was
    added (the watermark, then an empty `_id` range), plus one write per new person, at most
    SYNC_USERS_MAX per call. Safe with concurrent callers: key writes are idempotent upserts,
    and the watermark moves by compare-and-set (a loser's work is simply done twice).
    Returns the number of people indexed. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_USERS)
    state = store.collection(STATE_COLLECTION).find_one({"_id": STATE_ID})
    watermark = (state or {}).get("watermark")
    query = {} if watermark is None else {"_id": {"$gt": watermark}}
    batch = store.collection("users").find(query, sort=[("_id", 1)], limit=SYNC_USERS_MAX, projection=KEY_SOURCE_PROJECTION)
    if not batch:
        return 0
    search = store.collection(SEARCH_COLLECTION)
    indexed = 0
    for document in batch:
        if isinstance(document.get("user_id"), str) and document["user_id"]:
            search.update_one({"_id": document["user_id"]}, {"$set": search_document(document)}, upsert=True)
            indexed += 1
    if state is None:
        store.collection(STATE_COLLECTION).update_one({"_id": STATE_ID}, {"$setOnInsert": {"watermark": batch[-1]["_id"]}},
                                                      upsert=True)
    else:
        store.collection(STATE_COLLECTION).update_one({"_id": STATE_ID, "watermark": watermark},
                                                      {"$set": {"watermark": batch[-1]["_id"]}})
    return indexed


@boundary(text=raising(text, InvalidSearchError))
def find_users(store: Store, principal: Principal, text: object, *, page: int = 0,
               page_size: int = SEARCH_RESULTS_MAX) -> SearchPage:
    """People with, for every word of `text`, a key (id, email or a word of the name)
    starting with it — case-insensitive, one page at a time: best match first (words that
    equal an id, email or name word), then by name (`match_order`), when there are at most
    SEARCH_ORDER_MAX matches (one bounded read of them); beyond that, in index order.

    Each word is lower-cased, escaped (`re.escape`) and anchored, so `.*`, `$where` or
    `{"$ne": ""}` typed into a search box match literally. The search keys are rebuilt
    first with the people added since the last search (`sync_search_keys`: O(people added)).
    Raises: PermissionDeniedError, InvalidSearchError.
    """
    require(principal, Permission.READ_USERS)
    words = _clean_text(text).lower().split()[:SEARCH_WORDS_MAX]
    if isinstance(page, bool) or not isinstance(page, int) or page < 0:
        raise InvalidSearchError("page must be an integer ≥ 0")
    page_size = max(1, min(int(page_size), SEARCH_RESULTS_MAX))
    sync_search_keys(store, principal)
    clauses = [{"keys": {"$regex": "^" + re.escape(word)}} for word in words]
    query = clauses[0] if len(clauses) == 1 else {"$and": clauses}
    search = store.collection(SEARCH_COLLECTION)
    total = search.count_documents(query, limit=SEARCH_COUNT_MAX)
    ordered = total <= SEARCH_ORDER_MAX
    # No sort is asked of the store: `keys` is multikey, and a sort on a multikey field the
    # filter bounds by a range is a blocking sort of every match (SERVER-31898). The prefix
    # range alone is one index walk that examines what it returns.
    if ordered:  # every match (bounded), ranked here: best match first, then by name
        matches = search.find(query, limit=SEARCH_ORDER_MAX, projection={"_id": 1, "keys": 1, "name": 1})
        matches.sort(key=lambda document: match_order(document, words))
        ids = [d["_id"] for d in matches[page * page_size:(page + 1) * page_size]]
    else:  # too many to rank: pages in the index walk's own order (the page says so)
        ids = [d["_id"] for d in search.find(query, skip=page * page_size, limit=page_size, projection={"_id": 1})]
    found = {d.get("user_id"): d for d in store.collection("users").find(
        {"user_id": {"$in": ids}}, projection=USER_PROJECTION, limit=max(1, len(ids)))} if ids else {}
    items = [_user(found[user_id]) for user_id in ids if user_id in found]
    return SearchPage(items, total, total >= SEARCH_COUNT_MAX, page, page_size, ordered)


@boundary(text=raising(text, InvalidSearchError))
def search_users(store: Store, principal: Principal, text: object, *, limit: int = SEARCH_RESULTS_MAX) -> list[DirectoryUser]:
    """The first `limit` (at most SEARCH_RESULTS_MAX) matches of `find_users`.
    Raises: PermissionDeniedError, InvalidSearchError."""
    return find_users(store, principal, text, page=0, page_size=max(1, min(int(limit), SEARCH_RESULTS_MAX))).items


@boundary
def get_user(store: Store, principal: Principal, user_id: object) -> DirectoryUser | None:
    """One user with referral data, or None. Raises: PermissionDeniedError, InvalidSearchError."""
    require(principal, Permission.READ_USERS)
    user_id = _clean_text(user_id)
    document = store.collection("users").find_one({"user_id": user_id}, projection=USER_PROJECTION)
    if document is None:
        return None
    account = store.collection("user_accounts").find_one({"user_id": user_id}, projection=ACCOUNT_PROJECTION)
    return _user(document, account)


@boundary
def names_of(store: Store, principal: Principal, user_ids: list[str]) -> dict[str, str]:
    """user id → name for the ids the directory knows (one bounded query), so pages can show
    names beside ids. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_USERS)
    ids = sorted({u for u in user_ids if isinstance(u, str) and u})[:SEARCH_COUNT_MAX]
    if not ids:
        return {}
    documents = store.collection("users").find({"user_id": {"$in": ids}}, projection={"_id": 0, "user_id": 1, "name": 1},
                                               limit=len(ids))
    return {d["user_id"]: str(d.get("name") or "") for d in documents}


@boundary
def referrals_of(store: Store, principal: Principal, user_id: object, *, limit: int = REFERRALS_MAX) -> list[dict]:
    """The users `user_id` referred (bounded). Raises: PermissionDeniedError, InvalidSearchError."""
    require(principal, Permission.READ_USERS)
    user_id = _clean_text(user_id)
    return store.collection("user_accounts").find({"referred_by": user_id}, projection=ACCOUNT_PROJECTION,
                                                  sort=[("user_id", 1)], limit=max(1, min(int(limit), REFERRALS_MAX)))
