"""The only module that talks pymongo.

`Store` wraps one MongoDB database — a real server (`MONGODB_URI`, `LEDGER_DB`) or the
embedded in-process `mongomock` store. Every operation:
- runs behind one process-wide lock when embedded (mongomock is not thread-safe; the
  lock gives the single-document atomicity a real server gives);
- is counted, and its query shape recorded, so tests and the benchmark can measure round
  trips and check that a declared index serves every query (`core.ledger.planner`, which
  also estimates, when `OperationLog.examine` is on, what a real server would examine);
- passes a fault hook first and after, so tests can crash the "process" at any step;
- translates pymongo errors into core errors (`DuplicateKeyStoreError`, `StoreError`).
Results are materialised as lists inside the lock; no pymongo type leaves this module.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import mongomock
import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from core.base.errors import ConfigurationError, StoreError
from core.base.settings import database_settings, witness_settings
from core.ledger import planner
from core.ledger.planner import (  # noqa: F401 (re-exported: the checker's historical home)
    RANGE_OPERATORS,
    Term,
    filter_fields,
    query_branches,
    uncovered,
    uncovered_reasons,
)
from core.ledger.indexes import INDEXES, IndexSpec, OperationRecord  # noqa: F401 (re-exported)
from core.ledger.witness import WITNESS_ENV, Witness

# On a replica set the single-document guarantees the engine rests on (a unique index
# refuses a second insert; a version-filtered update applies once) hold only for writes
# that survive a failover: writes are majority-acknowledged and journaled, reads that
# decide something use majority read concern, retryable writes are on, and each thread
# reads its own writes through a causally consistent session. A standalone server accepts
# the same settings at no cost.
CLIENT_OPTIONS: dict[str, Any] = {"w": "majority", "journal": True, "readConcernLevel": "majority", "retryWrites": True}
QUERY_LIMIT_MAX = 50_000  # no single read returns more documents than this
SERVER_SELECTION_TIMEOUT_MS = 5_000
EMBEDDED_LOCK = threading.RLock()  # one lock for every embedded store in the process
logger = logging.getLogger(__name__)


class DuplicateKeyStoreError(StoreError):
    """An insert or upsert hit a unique index."""


@dataclass
class Tally:
    """What a running operation reports back to its record (documents returned or matched,
    and what a real server would have examined for it)."""

    documents: int = 0
    examined: planner.Examined | None = None


@dataclass
class OperationLog:
    """Counts every round trip; tests and the benchmark read it. It keeps at most
    `records_max` records; beyond that it counts the ones it dropped (`dropped`), so a
    measurement can tell it is incomplete instead of silently undercounting."""

    records: list[OperationRecord] = field(default_factory=list)
    enabled: bool = True
    records_max: int = 200_000
    dropped: int = 0
    duplicate_keys: int = 0  # inserts and upserts a unique index refused (lost claims, lost audit sequence numbers)
    examine: bool = False  # estimate keys and documents examined per operation (embedded store; costs a scan each)

    @property
    def count(self) -> int:
        return len(self.records) + self.dropped

    @property
    def documents(self) -> int:
        """Documents read (returned or matched) by the recorded operations."""
        return sum(record.documents for record in self.records)

    @property
    def complete(self) -> bool:
        return self.dropped == 0

    def append(self, record: OperationRecord) -> None:
        if len(self.records) < self.records_max:
            self.records.append(record)
        else:
            self.dropped += 1

    def reset(self) -> None:
        self.records.clear()
        self.dropped = self.duplicate_keys = 0


FaultHook = Callable[[str, str, str], None]  # (phase "before"|"after", collection, operation)


class Store:
    """One database. Build with `Store.embedded()` or `Store.from_uri()`."""

    def __init__(self, database: Any, *, embedded: bool, client: Any = None) -> None:
        self._database = database
        self._client = client
        self.embedded = embedded
        self.name: str = database.name
        self.log = OperationLog()
        self.fault_hook: FaultHook | None = None
        self.witness: Witness | None = None  # the audit chain's witness file (production store only)
        self._array_values_taken: dict[tuple[str, str], set] = {}  # embedded: see Collection._check_multikey_unique
        self._sessions = threading.local()

    def session_options(self) -> dict[str, Any]:
        """`session=` for this thread's causally consistent session (a real server only:
        the embedded store is one process behind one lock, and mongomock has no sessions)."""
        if self.embedded or self._client is None:
            return {}
        session = getattr(self._sessions, "session", None)
        if session is None:
            try:
                session = self._sessions.session = self._client.start_session(causal_consistency=True)
            except (NotImplementedError, PyMongoError) as error:
                self._sessions.session = False  # a client without sessions (a stand-in in tests): plain operations
                # once per thread; the type only: a driver's message may name the server
                logger.warning("no causally consistent session on this thread (%s): plain operations", type(error).__name__)
                return {}
        return {"session": session} if session else {}

    # -- construction ------------------------------------------------------------------
    @classmethod
    def embedded_store(cls, name: str = "ledger") -> Store:
        """A fresh in-process store (nothing persisted)."""
        client = mongomock.MongoClient(tz_aware=False)
        store = cls(client[name], embedded=True, client=client)
        store.ensure_indexes()
        return store

    @classmethod
    def from_uri(cls, uri: str, name: str, timeout_ms: int = SERVER_SELECTION_TIMEOUT_MS, *, create_indexes: bool = True) -> Store:
        """A store on a real MongoDB server. Raises: StoreError when unreachable or the URI is invalid.

        `create_indexes=False` opens a database we only read (the legacy platform's): no
        index or collection is created in it."""
        try:
            client = pymongo.MongoClient(uri, tz_aware=False, serverSelectionTimeoutMS=timeout_ms, **CLIENT_OPTIONS)
            client.admin.command("ping")
        except (PyMongoError, ValueError) as error:
            from core.base.errors import DatabaseUnreachableError, MalformedDatabaseUriError
            from pymongo.errors import InvalidURI
            which, variable = ("ledger", "MONGODB_URI") if create_indexes else ("legacy", "LEGACY_MONGODB_URI")  # never echo the URI: it may hold a password
            if isinstance(error, (InvalidURI, ValueError)):
                raise MalformedDatabaseUriError(f"the {which} database URI ({variable}) is malformed: {type(error).__name__}", which=which) from None
            raise DatabaseUnreachableError(f"cannot reach the {which} database ({variable}): {type(error).__name__}", which=which) from None
        store = cls(client[name], embedded=False, client=client)
        if create_indexes:
            store.ensure_indexes()
        return store

    @classmethod
    def from_environment(cls) -> Store:
        """`MONGODB_URI`/`LEDGER_DB` if set, else a fresh embedded store. A real database
        needs the audit trail's witness file (`LEDGER_AUDIT_WITNESS`): without it, deleting
        the newest audit events leaves a chain that verifies.
        Raises: ConfigurationError (a real database without a witness, a malformed setting:
        core.base.settings), MalformedDatabaseUriError, StoreError."""
        database, witness = database_settings(), witness_settings()
        if database.uri is not None and witness.path is None:
            raise ConfigurationError(f"MONGODB_URI is set: refusing to start without {WITNESS_ENV} (the audit trail's witness "
                                     "file, kept where the database's writers cannot reach it): without it a deleted tail of "
                                     "the audit trail is undetectable")
        store = cls.embedded_store() if database.uri is None else cls.from_uri(database.uri.get_secret_value(), database.name)
        store.witness = Witness(witness.path, store.name) if witness.path is not None else None
        return store

    def sibling(self, name: str | None = None) -> Store:
        """Another database on the same server (or a fresh embedded one): used for sandboxes."""
        if self.embedded:
            return Store.embedded_store(name or "sandbox")
        name = name or f"sandbox_{uuid.uuid4().hex[:12]}"
        store = Store(self._client[name], embedded=False, client=self._client)
        store.ensure_indexes()
        return store

    def drop(self) -> None:
        """Drop the whole database (sandboxes and tests only)."""
        with self._guard("*", "drop_database"):
            self._client.drop_database(self.name)

    def ensure_indexes(self) -> None:
        """Create every declared index; safe to call any number of times."""
        for collection, specs in INDEXES.items():
            for spec in specs:
                with self._guard(collection, "create_index"):
                    self._database[collection].create_index(list(spec.keys), unique=spec.unique, sparse=spec.sparse, name=spec.name)

    # -- the guard every operation passes ------------------------------------------------
    @contextmanager
    def _guard(self, collection: str, operation: str, query: Mapping | None = None, sort: Sequence | None = None,
               limit: int | None = None, skip: int = 0, distinct_on: str | None = None) -> Iterator[Tally]:
        if self.fault_hook is not None:
            self.fault_hook("before", collection, operation)
        tally = Tally()
        try:
            if self.embedded:
                with EMBEDDED_LOCK:
                    if self.log.enabled and self.log.examine and operation != "create_index":  # before it changes anything
                        tally.examined = planner.examine(self._database[collection], collection, operation, query, sort,
                                                         limit=limit, skip=skip, distinct_on=distinct_on)
                    yield tally
            else:
                yield tally
        except DuplicateKeyError as error:
            self.log.duplicate_keys += 1
            raise DuplicateKeyStoreError(f"duplicate key in {collection}", collection=collection, detail=str(error.details or "")[:300]) from None
        except PyMongoError as error:
            raise StoreError(f"store operation {operation} on {collection} failed: {type(error).__name__}", collection=collection) from None
        finally:
            if self.log.enabled and operation != "create_index":
                ordered = tuple((str(key), int(direction)) for key, direction in (sort or ()))
                examined = tally.examined
                self.log.append(OperationRecord(collection, operation, filter_fields(query), tuple(k for k, _ in ordered),
                                                query_branches(query), ordered, tally.documents,
                                                examined and examined.keys, examined and examined.documents,
                                                examined and examined.index))
        if self.fault_hook is not None:
            self.fault_hook("after", collection, operation)

    def collection(self, name: str) -> Collection:
        return Collection(self, name)

    def raw(self, name: str) -> Any:
        """The underlying collection, for tests and tamper simulations only."""
        self._array_values_taken.clear()  # whatever is done to it bypasses this class
        return self._database[name]

    def _array_values(self, collection: str, field_name: str) -> set:
        """Every value held by the array field `field_name` across `collection` (embedded
        store only; call with the embedded lock held)."""
        key = (collection, field_name)
        if key not in self._array_values_taken:
            taken: set = set()
            for document in self._database[collection].find({field_name: {"$exists": True}}, {field_name: 1}):
                value = document.get(field_name)
                taken.update(value if isinstance(value, list) else [value])
            self._array_values_taken[key] = taken
        return self._array_values_taken[key]

    def collection_names(self) -> list[str]:
        with self._guard("*", "list_collections"):
            return sorted(self._database.list_collection_names())


class Collection:
    """The operations the product uses; each is one counted round trip."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name

    @property
    def _raw(self) -> Any:
        return self._store._database[self.name]

    def insert_one(self, document: dict) -> None:
        with self._store._guard(self.name, "insert_one"):
            taken = self._check_multikey_unique([document])
            self._raw.insert_one(document, **self._store.session_options())
            taken()

    def insert_many(self, documents: list[dict], ordered: bool = True) -> None:
        if not documents:
            return
        with self._store._guard(self.name, "insert_many"):
            taken = self._check_multikey_unique(documents)
            self._raw.insert_many(documents, ordered=ordered, **self._store.session_options())
            taken()

    def _check_multikey_unique(self, documents: list[dict]) -> Callable[[], None]:
        """On the embedded store only: enforce a unique index over an array field per
        element, as a real server does (mongomock compares whole arrays, so two entries
        claiming one account version with different other claims would both be accepted).
        Runs inside the store's lock, so check and insert are one atomic step. The values
        already taken are kept in memory (built by one scan, then kept up to date by every
        insert through this class; `Store.raw` access and deletes drop them).
        Returns what to call once the insert succeeded (records the new values)."""
        if not self._store.embedded:
            return lambda: None
        pending: list[tuple[set, list]] = []
        for spec in INDEXES.get(self.name, ()):
            if not spec.unique or len(spec.keys) != 1:
                continue
            field_name = spec.keys[0][0]
            values = [v for d in documents if isinstance(d.get(field_name), list) for v in d[field_name]]
            if not values:
                continue
            taken = self._store._array_values(self.name, field_name)
            if len(values) != len(set(values)) or not taken.isdisjoint(values):
                raise DuplicateKeyError(f"E11000 duplicate key error collection: {self.name} index: {spec.name}")
            pending.append((taken, values))

        def record() -> None:
            for taken, values in pending:
                taken.update(values)
        return record

    def find_one(self, query: dict, *, sort: list | None = None, projection: dict | None = None) -> dict | None:
        with self._store._guard(self.name, "find_one", query, sort) as tally:
            document = self._raw.find_one(query, projection, sort=sort, **self._store.session_options())
            tally.documents = int(document is not None)
            return document

    def find(self, query: dict, *, sort: list | None = None, skip: int = 0, limit: int = QUERY_LIMIT_MAX, projection: dict | None = None) -> list[dict]:
        assert 0 < limit <= QUERY_LIMIT_MAX, "every read has a limit"
        with self._store._guard(self.name, "find", query, sort, limit, skip) as tally:
            cursor = self._raw.find(query, projection, **self._store.session_options())
            if sort:
                cursor = cursor.sort(sort)
            documents = list(cursor.skip(skip).limit(limit))
            tally.documents = len(documents)
            return documents

    def find_one_and_update(self, query: dict, update: dict, *, upsert: bool = False, sort: list | None = None, projection: dict | None = None) -> dict | None:
        """Atomic conditional update; returns the document after the update, or None."""
        with self._store._guard(self.name, "find_one_and_update", query, sort) as tally:
            document = self._raw.find_one_and_update(
                query, update, projection=projection, sort=sort, upsert=upsert, return_document=ReturnDocument.AFTER,
                **self._store.session_options(),
            )
            tally.documents = int(document is not None)
            return document

    def update_one(self, query: dict, update: dict, *, upsert: bool = False) -> int:
        """Returns the number of documents matched."""
        with self._store._guard(self.name, "update_one", query) as tally:
            tally.documents = self._raw.update_one(query, update, upsert=upsert, **self._store.session_options()).matched_count
            return tally.documents

    def update_many(self, query: dict, update: dict) -> int:
        with self._store._guard(self.name, "update_many", query) as tally:
            tally.documents = self._raw.update_many(query, update, **self._store.session_options()).matched_count
            return tally.documents

    def delete_many(self, query: dict) -> int:
        with self._store._guard(self.name, "delete_many", query) as tally:
            tally.documents = self._raw.delete_many(query, **self._store.session_options()).deleted_count
            return tally.documents

    def count_documents(self, query: dict, *, limit: int = QUERY_LIMIT_MAX) -> int:
        with self._store._guard(self.name, "count_documents", query, None, limit) as tally:
            tally.documents = self._raw.count_documents(query, limit=limit, **self._store.session_options())
            return tally.documents  # a count walks this many index keys

    def aggregate(self, pipeline: list[dict]) -> list[dict]:
        """Runs a pipeline; its first stage should be a `$match` (or `$sort`) an index serves."""
        first = pipeline[0] if pipeline else {}
        query = first.get("$match")
        sort = list(first["$sort"].items()) if "$sort" in first else None
        with self._store._guard(self.name, "aggregate", query, sort, distinct_on=planner.distinct_scan_key(pipeline)) as tally:
            rows = list(self._raw.aggregate(pipeline, **self._store.session_options()))
            tally.documents = len(rows)  # rows returned; the documents a $group consumed are not seen here
            return rows
