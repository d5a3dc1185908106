"""`python -m core integrity check`: exit codes 0 (clean), 1 (findings), 2 (refused)."""

from __future__ import annotations



from core.cli import main as cli
from tests.core.integrity.books import healthy_platform


# -- CLI -----------------------------------------------------------------------------------------------
def _run_cli(monkeypatch, platform, argv):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.integrity_cli])
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    monkeypatch.delenv("LEGACY_MONGODB_URI", raising=False)
    return cli.main(argv)


def test_cli_check_exit_codes(platform, monkeypatch, capsys):
    healthy_platform(platform)
    assert _run_cli(monkeypatch, platform, ["integrity", "check"]) == 0
    assert "OK" in capsys.readouterr().out
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--full", "--json"]) == 1
    out = capsys.readouterr().out
    assert '"kind": "projection_mismatch"' in out and '"ok": false' in out
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--user", "u2"]) == 0
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--user", "u1"]) == 1
    assert _run_cli(monkeypatch, platform, ["integrity", "check", "--user", "bad id!"]) == 2


def test_cli_check_refuses_embedded_store(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [cli.integrity_cli])
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert cli.main(["integrity", "check"]) == 2
