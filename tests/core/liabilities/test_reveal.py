"""The verification secret is shown once, audited, never stored or logged; the keys come from
configuration on a real database and are throw-away only on the embedded store."""

from __future__ import annotations

import os

import pytest

from core import liabilities
from core.base.errors import (
    ConfigurationError,
    InvalidAccountError,
    LedgerError,
    PermissionDeniedError,
    ReasonRequiredError,
    SecretAlreadyRevealedError,
)
from core.ledger import Store
from core.liabilities import keys as keys_module
from tests.helpers import fund_holders
from tests.principals import ADMIN, QA, SUPPORT


def test_secret_is_shown_once_and_audited_without_the_secret(platform):
    shown = liabilities.reveal_user_secret(platform, SUPPORT, "alice", "ticket 1234")
    assert len(shown.replace("-", "")) == 64 and shown.count("-") == 7
    with pytest.raises(SecretAlreadyRevealedError) as refusal:
        liabilities.reveal_user_secret(platform, ADMIN, "alice", "again")
    assert refusal.value.details["revealed_by"] == SUPPORT.name
    (event,) = platform.store.collection("audit").find({"type": "liabilities.secret_revealed"})
    assert event["actor"] == SUPPORT.name and event["user"] == "alice" and event["data"] == {"reason": "ticket 1234"}
    everything = repr([platform.store.raw(name).find() for name in platform.store.collection_names()])
    assert shown.replace("-", "") not in everything and shown not in everything  # never stored, never in the audit


def test_secret_reissue_changes_it_and_is_audited(platform):
    first = liabilities.reveal_user_secret(platform, SUPPORT, "bob", "ticket")
    second = liabilities.reissue_user_secret(platform, ADMIN, "bob", "sent to the wrong address")
    third = liabilities.reissue_user_secret(platform, ADMIN, "bob", "lost again")
    assert len({first, second, third}) == 3
    events = platform.store.collection("audit").find({"type": "liabilities.secret_reissued"})
    assert [(e["before"], e["after"]) for e in events] == [({"generation": 1}, {"generation": 2}), ({"generation": 2}, {"generation": 3})]
    assert liabilities.reissue_user_secret(platform, ADMIN, "carol", "never shown, exposed anyway") != \
        keys_module.secret_text(keys_module.keys_for(platform.store).user_secret("carol", 1))


def test_secret_is_derived_per_user_and_stable(platform):
    keys = keys_module.keys_for(platform.store)
    assert keys.user_secret("alice") == keys.user_secret("alice", 1) != keys.user_secret("alice", 2) != keys.user_secret("bob")
    assert keys_module.keys_for(platform.store) is keys  # one throw-away pair per embedded store
    assert repr(keys) == f"LiabilitiesKeys(public_key={keys.public_key.hex()}, throwaway={keys.throwaway})"  # no secret in a repr or log


@pytest.mark.parametrize("who, function", [(QA, "reveal_user_secret"), (SUPPORT, "reissue_user_secret"), (QA, "reissue_user_secret")])
def test_secret_permissions(platform, who, function):
    with pytest.raises(PermissionDeniedError):
        getattr(liabilities, function)(platform, who, "alice", "ticket")
    assert platform.store.collection("liabilities_user_secrets").count_documents({}) == 0


@pytest.mark.parametrize("user, reason, error", [("alice\n", "t", LedgerError), ("b\u043eb", "t", LedgerError),
                                                  ({"$ne": ""}, "t", LedgerError), ("alice", "  ", ReasonRequiredError),
                                                  ("alice", None, LedgerError)])
def test_secret_refuses_malformed_input_and_writes_nothing(platform, user, reason, error):
    with pytest.raises(error):
        liabilities.reveal_user_secret(platform, SUPPORT, user, reason)
    assert platform.store.collection("liabilities_user_secrets").count_documents({}) == 0
    assert platform.store.collection("audit").count_documents({}) == 0
    assert issubclass(InvalidAccountError, LedgerError)


def test_keys_on_a_real_database_come_from_configuration(monkeypatch):
    monkeypatch.delenv(keys_module.SIGNING_KEY_ENV, raising=False)
    monkeypatch.delenv(keys_module.SECRET_KEY_ENV, raising=False)
    real = Store.embedded_store("pretend-real")
    real.embedded = False  # what a MONGODB_URI store is: no throw-away keys there
    with pytest.raises(ConfigurationError, match=keys_module.SIGNING_KEY_ENV):
        keys_module.keys_for(real)
    seed, master = os.urandom(32).hex(), os.urandom(32).hex()
    monkeypatch.setenv(keys_module.SIGNING_KEY_ENV, seed)
    monkeypatch.setenv(keys_module.SECRET_KEY_ENV, master)
    configured = keys_module.keys_for(real)
    assert not configured.throwaway and configured.public_key == keys_module.keys_for(Store.embedded_store("other")).public_key
    for bad_seed, bad_master in (("xyz", master), (seed[:-2], master), (seed, "ab" * 8), (seed, seed), (seed, "")):
        monkeypatch.setenv(keys_module.SIGNING_KEY_ENV, bad_seed)
        monkeypatch.setenv(keys_module.SECRET_KEY_ENV, bad_master)
        with pytest.raises(ConfigurationError):
            keys_module.keys_for(real)


def test_snapshot_on_a_real_database_without_keys_writes_nothing(platform, monkeypatch):
    fund_holders(platform)
    monkeypatch.delenv(keys_module.SIGNING_KEY_ENV, raising=False)
    monkeypatch.delenv(keys_module.SECRET_KEY_ENV, raising=False)
    monkeypatch.setattr(platform.store, "embedded", False)
    with pytest.raises(ConfigurationError):
        liabilities.take_snapshot(platform, ADMIN)
    for name in ("liabilities_snapshots", "liabilities_users", "liabilities_leaves"):
        assert platform.store.collection(name).count_documents({}) == 0


def test_proofs_need_the_key_the_snapshot_committed_to(platform, monkeypatch):
    fund_holders(platform)
    liabilities.take_snapshot(platform, ADMIN)
    monkeypatch.setenv(keys_module.SIGNING_KEY_ENV, os.urandom(32).hex())
    monkeypatch.setenv(keys_module.SECRET_KEY_ENV, os.urandom(32).hex())
    with pytest.raises(ConfigurationError, match="committed to"):
        liabilities.user_proof_bundle(platform, SUPPORT, "alice")
