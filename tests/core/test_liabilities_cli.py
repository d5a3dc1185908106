"""`python -m core liabilities snapshot|proof|verify|roots`: exit codes and output."""

from __future__ import annotations

import json

import pytest

from core import cli
from tests.core.test_liabilities_snapshot import fund


@pytest.fixture
def database(monkeypatch, platform):
    fund(platform)
    monkeypatch.setattr(cli, "open_database_store", lambda: platform.store)
    return platform


def test_cli_liabilities_refuses_the_embedded_store(monkeypatch, capsys):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    for command in (["snapshot"], ["proof", "--user", "alice"], ["verify"], ["roots"]):
        assert cli.main(["liabilities", *command]) == cli.EXIT_USAGE
    assert "MONGODB_URI" in capsys.readouterr().err


def test_cli_liabilities_snapshot_proof_and_verify(database, tmp_path, capsys):
    assert cli.main(["liabilities", "snapshot", "--split", "2", "--json"]) == cli.EXIT_OK
    taken = json.loads(capsys.readouterr().out)
    btc = next(r for r in taken["roots"] if r["asset"] == "BTC")
    assert btc["total"] == 350_000_000 and taken["users"] == 4
    out = tmp_path / "alice.json"
    assert cli.main(["liabilities", "proof", "--user", "alice", "--out", str(out)]) == cli.EXIT_OK
    assert "wrote 1 proof(s)" in capsys.readouterr().out
    assert cli.main(["liabilities", "verify", str(out), "--root", btc["root"], "--total", str(btc["total"])]) == cli.EXIT_OK
    assert "OK BTC" in capsys.readouterr().out
    assert cli.main(["liabilities", "verify", str(out), "--total", str(btc["total"] - 1)]) == cli.EXIT_FAILED
    assert "INVALID BTC" in capsys.readouterr().out
    assert cli.main(["liabilities", "verify", "--json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert cli.main(["liabilities", "roots", "--json"]) == cli.EXIT_OK
    assert {r["asset"] for r in json.loads(capsys.readouterr().out)} == {"BTC", "ETH", "USDT"}
    assert cli.main(["liabilities", "proof", "--user", "bob"]) == cli.EXIT_OK
    assert len(json.loads(capsys.readouterr().out)["proofs"]) == 2


def test_cli_liabilities_verify_fails_on_a_tampered_store_and_bad_files(database, tmp_path, capsys):
    assert cli.main(["liabilities", "snapshot"]) == cli.EXIT_OK
    raw = database.store.raw("liabilities_leaves")
    chunk = raw.find_one({"asset": "ETH"})
    raw.update_one({"_id": chunk["_id"]}, {"$set": {"sums": [s * 2 for s in chunk["sums"]]}})
    assert cli.main(["liabilities", "verify"]) == cli.EXIT_FAILED
    assert "BROKEN" in capsys.readouterr().out
    (tmp_path / "junk.json").write_text("{")
    assert cli.main(["liabilities", "verify", str(tmp_path / "junk.json")]) == cli.EXIT_FAILED
    assert cli.main(["liabilities", "verify", str(tmp_path / "missing.json")]) == cli.EXIT_USAGE


def test_cli_liabilities_refusals_exit_1_and_usage_exits_2(database, capsys):
    assert cli.main(["liabilities", "proof", "--user", "alice"]) == cli.EXIT_FAILED  # no snapshot yet
    assert "snapshot_not_found" in capsys.readouterr().err
    assert cli.main(["liabilities", "snapshot"]) == cli.EXIT_OK
    assert cli.main(["liabilities", "proof", "--user", "nobody"]) == cli.EXIT_FAILED
    assert cli.main(["liabilities", "proof"]) == cli.EXIT_USAGE
    assert cli.main(["liabilities", "snapshot", "--split", "99"]) == cli.EXIT_USAGE


def test_cli_liabilities_verify_of_a_file_needs_no_database(platform, monkeypatch, tmp_path, capsys):
    from core import liabilities
    from tests.core.test_liabilities_snapshot import ADMIN, SUPPORT

    fund(platform)
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    path = tmp_path / "bob.json"
    path.write_text(liabilities.bundle_json(liabilities.user_proof_bundle(platform, SUPPORT, "bob")))
    monkeypatch.delenv("MONGODB_URI", raising=False)
    usdt = next(a for a in snapshot["assets"] if a["asset"] == "USDT")
    assert cli.main(["liabilities", "verify", str(path), "--asset", "USDT", "--root", usdt["root"], "--total", str(usdt["total"])]) == cli.EXIT_OK
    assert "OK USDT" in capsys.readouterr().out
    assert cli.main(["liabilities", "verify", str(path), "--root", usdt["root"]]) == cli.EXIT_USAGE  # two proofs: which?
