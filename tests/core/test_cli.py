from datetime import timedelta

import pytest

from core.ledger import accounts as acct
from core import cli
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
    monkeypatch.setattr(cli, "open_database_store", lambda: store)
    monkeypatch.setattr("core.clock.SystemClock.now", lambda self: clock.now() + timedelta(hours=1))
    assert cli.main(["recover", "--json"]) == cli.EXIT_OK
    assert '"entries_projected"' in capsys.readouterr().out
    assert ledger.balance(acct.user_available("alice", "BTC")).minor == 100_000_000
