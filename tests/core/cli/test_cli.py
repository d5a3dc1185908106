from datetime import timedelta

import pytest

from core.ledger import accounts as acct
from core.cli import main as cli
from core.ledger.engine import Ledger
from tests.helpers import Crash, CrashAt, transfer_request


def test_cli_recover_refuses_embedded_store(monkeypatch, capsys):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert cli.main(["recover"]) == cli.EXIT_USAGE
    assert "MONGODB_URI" in capsys.readouterr().err


def test_cli_usage_errors_exit_2(capsys):
    assert cli.main(["no-such-command"]) == cli.EXIT_USAGE
    assert cli.main([]) == cli.EXIT_USAGE


def test_cli_recover_finishes_a_crashed_entry(monkeypatch, store, clock, capsys):
    ledger = Ledger(store, clock)
    store.fault_hook = CrashAt(2, "before")
    with pytest.raises(Crash):
        ledger.post(transfer_request("x", acct.external("BTC"), acct.user_available("alice", "BTC"), "1", "deposit"))
    store.fault_hook = None
    monkeypatch.setattr(cli.common, "open_database_store", lambda: store)
    monkeypatch.setattr("core.base.clock.SystemClock.now", lambda self: clock.now() + timedelta(hours=1))
    assert cli.main(["recover", "--json"]) == cli.EXIT_OK
    assert '"entries_projected"' in capsys.readouterr().out
    assert ledger.balance(acct.user_available("alice", "BTC")).minor == 100_000_000


# -- configuration and unreachable databases exit 2, naming which (issue 11) ---------------------
@pytest.fixture
def quick_timeouts(monkeypatch):
    """Unreachable servers answer in 0.2 s instead of the production 5 s."""
    import pymongo

    real = pymongo.MongoClient

    def client(*args, **kwargs):
        kwargs["serverSelectionTimeoutMS"] = 200
        return real(*args, **kwargs)

    monkeypatch.setattr("core.ledger.store.pymongo.MongoClient", client)


@pytest.fixture
def witness(monkeypatch, tmp_path):
    monkeypatch.setenv("LEDGER_AUDIT_WITNESS", str(tmp_path / "witness.log"))


@pytest.mark.parametrize("uri", ["not-a-uri", "http://db:27017", "mongodb://", "mongodb://user:pw@/ledger",
                                 "mongodb://a b", "mongodb://host:notaport"])
def test_cli_malformed_ledger_uri_exits_2_naming_it(monkeypatch, capsys, uri, witness):
    monkeypatch.setenv("MONGODB_URI", uri)
    for command in (["audit", "verify"], ["recover"]):
        assert cli.main(command) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "MONGODB_URI" in err and "ledger" in err and "pw" not in err


def test_cli_refuses_a_real_database_without_the_audit_witness(monkeypatch, capsys):
    """Without LEDGER_AUDIT_WITNESS a deleted tail of the audit trail is undetectable: exit 2
    with a clear message, before any server is contacted (no timeout waited for)."""
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?directConnection=true")
    monkeypatch.delenv("LEDGER_AUDIT_WITNESS", raising=False)
    for command in (["audit", "verify"], ["recover"], ["integrity", "check"]):
        assert cli.main(command) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "LEDGER_AUDIT_WITNESS" in err and "refusing to start" in err and "cannot be reached" not in err
    monkeypatch.setenv("LEDGER_AUDIT_WITNESS", "   ")  # blank is not a witness
    assert cli.main(["audit", "verify"]) == cli.EXIT_USAGE and "LEDGER_AUDIT_WITNESS" in capsys.readouterr().err


def test_cli_unreachable_ledger_exits_2_not_1(monkeypatch, capsys, quick_timeouts, witness):
    monkeypatch.setenv("MONGODB_URI", "mongodb://user:s3cret@127.0.0.1:1/?directConnection=true")
    assert cli.main(["audit", "verify"]) == cli.EXIT_USAGE  # a broken chain exits 1; a dead server must not look like one
    err = capsys.readouterr().err
    assert "ledger database cannot be reached" in err and "MONGODB_URI" in err and "s3cret" not in err


def test_cli_legacy_database_named_when_malformed_or_unreachable(monkeypatch, capsys, store, quick_timeouts):
    monkeypatch.setattr(cli.common, "open_database_store", lambda: store)
    monkeypatch.setenv("LEGACY_DB", "legacy")
    monkeypatch.setenv("LEGACY_MONGODB_URI", "legacy-host-without-scheme")
    assert cli.main(["legacy", "reconcile"]) == cli.EXIT_USAGE
    assert "LEGACY_MONGODB_URI" in capsys.readouterr().err
    monkeypatch.setenv("LEGACY_MONGODB_URI", "mongodb://127.0.0.1:1/?directConnection=true")
    assert cli.main(["legacy", "reconcile"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "legacy database cannot be reached" in err and "LEGACY_MONGODB_URI" in err


def test_store_errors_say_which_database(quick_timeouts):
    from core.base.errors import ConfigurationError, DatabaseUnreachableError, MalformedDatabaseUriError, StoreError
    from core.ledger.store import Store

    with pytest.raises(DatabaseUnreachableError) as ledger:
        Store.from_uri("mongodb://127.0.0.1:1/?directConnection=true", "x")
    assert ledger.value.details["which"] == "ledger"
    with pytest.raises(DatabaseUnreachableError) as legacy:
        Store.from_uri("mongodb://127.0.0.1:1/?directConnection=true", "x", create_indexes=False)
    assert legacy.value.details["which"] == "legacy"
    with pytest.raises(MalformedDatabaseUriError) as malformed:
        Store.from_uri("mongodb://host:notaport", "x")
    assert isinstance(malformed.value, ConfigurationError) and isinstance(malformed.value, StoreError)
