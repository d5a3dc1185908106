"""core.platform.directory's order of matches (issue 22): best match first, then by name."""

from __future__ import annotations

from core.platform import directory
from core.ledger.store import uncovered
from tests.principals import SUPPORT


def _people(store, rows) -> None:
    store.collection("users").insert_many([{"user_id": u, "email": e, "name": n} for u, e, n in rows])


def test_find_users_orders_exact_words_first_then_by_name(store):
    _people(store, [("w1", "zed@example.com", "Zed Walker"), ("w2", "amy@example.com", "Amy Walkerson"),
                    ("w3", "bob@example.com", "bob walker"), ("u2", "x@example.com", "Xena Stone"),
                    ("u21", "y@example.com", "Abe Stone")])
    found = directory.find_users(store, SUPPORT, "walker")
    assert [u.user_id for u in found.items] == ["w3", "w1", "w2"] and found.ordered  # bob, Zed (any case); then Amy
    assert [u.user_id for u in directory.find_users(store, SUPPORT, "U2").items] == ["u2", "u21"]  # the id typed first
    assert [u.user_id for u in directory.find_users(store, SUPPORT, "stone").items] == ["u21", "u2"]  # both exact: by name
    second = directory.find_users(store, SUPPORT, "walker", page=1, page_size=2)
    assert [u.user_id for u in second.items] == ["w2"]  # pages follow the same order
    assert uncovered(store.log.records) == []


def test_find_users_beyond_the_ordering_bound_pages_in_index_order(store, monkeypatch):
    monkeypatch.setattr(directory, "SEARCH_ORDER_MAX", 3)
    _people(store, [(f"b{i}", f"b{i}@example.com", f"Bulk {i}") for i in range(5)])
    found = directory.find_users(store, SUPPORT, "bulk", page_size=5)
    assert not found.ordered and len(found.items) == 5 and found.total == 5


def test_refresh_keeps_the_name_the_matches_are_ordered_by(store):
    _people(store, [("n1", "n@example.com", "  Ada   LOVELACE ")])
    directory.refresh_search_keys(store, SUPPORT)
    assert store.collection(directory.SEARCH_COLLECTION).find_one({"_id": "n1"})["name"] == "ada lovelace"
    store.raw("users").update_one({"user_id": "n1"}, {"$set": {"name": "Ada King"}})
    assert directory.refresh_search_keys(store, SUPPORT) == 1
    assert directory.refresh_search_keys(store, SUPPORT) == 0  # nothing changed since
