"""The user directory: escaped search, bounded results, no password fields ever."""

from __future__ import annotations

import pytest

from core.platform import directory
from core.base.errors import PermissionDeniedError
from core.ledger.store import uncovered
from tests.principals import QA, SUPPORT


@pytest.fixture
def people(store):
    store.collection("users").insert_many([
        {"user_id": "u1", "email": "ada.lovelace@example.com", "name": "Ada Lovelace", "password_hash": "$2b$secret", "salt": "pepper"},
        {"user_id": "u2", "email": "alan.turing@example.com", "name": "Alan Turing", "password_hash": "$2b$secret2", "salt": "salt2"},
        {"user_id": "u3", "email": "a.b@example.com", "name": "A.B (test)", "password_hash": "x", "salt": "y"},
        *[{"user_id": f"bulk{i:03d}", "email": f"bulk{i:03d}@example.com", "name": f"Bulk {i}"} for i in range(40)],
    ])
    store.collection("user_accounts").insert_many([
        {"user_id": "u1", "referred_by": None, "referral_tier": "golden"},
        {"user_id": "u2", "referred_by": "u1", "referral_tier": "standard"},
        {"user_id": "u3", "referred_by": "u1", "referral_tier": "standard"},
    ])
    return store


def test_search_users_by_id_email_and_name_prefix(people):
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "u2")] == ["u2"]
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "ALAN.t")] == ["u2"]
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "ada lov")] == ["u1"]
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "Lovelace")] == ["u1"]  # any word of the name
    assert sorted(u.user_id for u in directory.search_users(people, SUPPORT, "U")) == ["u1", "u2", "u3"]  # id prefix, any case
    assert directory.search_users(people, SUPPORT, "ovelace") == []  # prefix, not substring


def test_search_users_never_returns_password_fields(people):
    for user in directory.search_users(people, SUPPORT, "a"):
        assert set(user.as_dict()) == {"user_id", "email", "name", "referred_by", "referral_tier"}
        assert "secret" not in repr(user) and "pepper" not in repr(user)
    people.log.reset()
    directory.search_users(people, SUPPORT, "u1")
    directory.get_user(people, SUPPORT, "u1")


def test_search_users_treats_regex_and_operators_as_literal_text(people):
    for text in (".*", "^", "a.b@", "A.B (", "$where", "[a-z]+", "\\", "(?i)a"):
        found = directory.search_users(people, SUPPORT, text)
        assert all(u.email.lower().startswith(text.lower()) or u.name.lower().startswith(text.lower()) or u.user_id == text for u in found), text
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "a.b@")] == ["u3"]
    assert directory.search_users(people, SUPPORT, ".*") == []
    for bad in ({"$ne": ""}, ["u1"], None, 5, "", "   ", "x" * 101):
        with pytest.raises(directory.InvalidSearchError):
            directory.search_users(people, SUPPORT, bad)


def test_search_users_is_bounded_and_indexed(people):
    people.log.reset()
    found = directory.search_users(people, SUPPORT, "bulk")
    assert len(found) == directory.SEARCH_RESULTS_MAX
    assert len(directory.search_users(people, SUPPORT, "bulk", limit=1000)) == directory.SEARCH_RESULTS_MAX
    assert uncovered(people.log.records) == []


def test_find_users_counts_and_pages(people):
    first = directory.find_users(people, SUPPORT, "bulk", page=0, page_size=25)
    second = directory.find_users(people, SUPPORT, "BULK", page=1, page_size=25)
    assert (first.total, first.pages, first.has_more, second.has_more) == (40, 2, True, False)
    assert sorted(u.user_id for u in first.items + second.items) == [f"bulk{i:03d}" for i in range(40)]  # each once
    assert not first.total_capped


def test_search_keys_are_our_own_collection_refreshed_from_users(people):
    directory.find_users(people, SUPPORT, "ada")
    assert people.collection("directory_search").find_one({"_id": "u1"})["keys"] == [
        "ada", "ada.lovelace@example.com", "lovelace", "u1"]
    people.raw("users").update_one({"user_id": "u1"}, {"$set": {"name": "Ada King-Noel"}})
    assert directory.search_users(people, SUPPORT, "noel") == []  # same head count: not stale yet
    assert directory.refresh_search_keys(people, SUPPORT) == 1
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "noel")] == ["u1"]
    people.raw("users").delete_one({"user_id": "u1"})
    assert directory.search_users(people, SUPPORT, "ada") == []  # a person who left is dropped
    assert "directory_search" in {r.collection for r in people.log.records}
    assert uncovered(people.log.records) == []


def test_names_of_reads_names_beside_ids(people):
    assert directory.names_of(people, SUPPORT, ["u1", "u2", "nobody"]) == {"u1": "Ada Lovelace", "u2": "Alan Turing"}
    assert directory.names_of(people, SUPPORT, []) == {}


def test_get_user_joins_referral_data_and_referrals_of(people):
    user = directory.get_user(people, SUPPORT, "u2")
    assert (user.referred_by, user.referral_tier) == ("u1", "standard")
    assert directory.get_user(people, SUPPORT, "nobody") is None
    assert [r["user_id"] for r in directory.referrals_of(people, SUPPORT, "u1")] == ["u2", "u3"]
    assert uncovered(people.log.records) == []


def test_directory_refuses_roles_without_read_users(people):
    with pytest.raises(PermissionDeniedError):
        directory.search_users(people, QA, "u1")
    with pytest.raises(PermissionDeniedError):
        directory.get_user(people, QA, "u1")
    with pytest.raises(PermissionDeniedError):
        directory.referrals_of(people, QA, "u1")


def _search_cost(store, text: str) -> tuple[int, int]:
    """(round trips, documents and keys read) of one search."""
    store.log.reset()
    directory.find_users(store, SUPPORT, text)
    return len(store.log.records), sum(r.documents for r in store.log.records)


def test_a_search_costs_the_same_however_many_people_after_the_start_up_refresh(people):
    directory.refresh_search_keys(people, SUPPORT)
    before = _search_cost(people, "u2")
    people.collection("users").insert_many([{"user_id": f"more{i:04d}", "email": f"m{i}@example.com", "name": f"More {i}"}
                                            for i in range(500)])
    directory.refresh_search_keys(people, SUPPORT)
    assert _search_cost(people, "u2") == before
    assert not any(r.operation == "count_documents" and r.collection == "users" for r in people.log.records)
    assert uncovered(people.log.records) == []


def test_people_added_after_the_refresh_are_found_on_the_next_search(people):
    directory.refresh_search_keys(people, SUPPORT)
    people.collection("users").insert_one({"user_id": "u9", "email": "grace.hopper@example.com", "name": "Grace Hopper"})
    people.log.reset()
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "hopper")] == ["u9"]
    writes = [r for r in people.log.records if r.collection == directory.SEARCH_COLLECTION and r.operation == "update_one"]
    assert len(writes) == 1  # only the new person was indexed, nobody else rewritten
    assert directory.sync_search_keys(people, SUPPORT) == 0  # the watermark moved: nothing left to index
    assert uncovered(people.log.records) == []


def test_a_search_indexes_a_backlog_in_bounded_steps(people, monkeypatch):
    monkeypatch.setattr(directory, "SYNC_USERS_MAX", 10)
    assert directory.sync_search_keys(people, SUPPORT) == 10  # 43 people, never indexed: 10 per call
    assert directory.sync_search_keys(people, SUPPORT) == 10
    while directory.sync_search_keys(people, SUPPORT):
        pass
    assert people.collection(directory.SEARCH_COLLECTION).count_documents({"_id": {"$gte": ""}}) == 43
    assert [u.user_id for u in directory.search_users(people, SUPPORT, "alan")] == ["u2"]


def test_sync_refuses_roles_without_read_users(people):
    with pytest.raises(PermissionDeniedError):
        directory.sync_search_keys(people, QA)
