"""Proof of liabilities page (admin): solvency equals the ledger, a snapshot is taken and its
roots offered for download, reserves are declared with evidence; support cannot open it."""

from __future__ import annotations

import json
from datetime import timedelta

from core import liabilities, reports
from core.ledger import from_minor
from tests.pages.conftest import frame_with, open_page, platform_of, principal_of, signed_in

ADMIN = principal_of("admin")


def test_proof_of_liabilities_solvency_matches_the_ledger():
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    table, holdings = frame_with(at, "User liabilities (ledger now)"), frame_with(at, "Fee wallet")
    platform = platform_of()
    totals = {row.asset: row for row in reports.platform_totals(platform, ADMIN)}
    assert list(table["Asset"]) == sorted(totals) == list(holdings["Asset"])
    for row, held in zip(table.to_dict("records"), holdings.to_dict("records")):
        asset = row["Asset"]
        assert _plain(row["User liabilities (ledger now)"]) == _text(totals[asset].user_liabilities, asset)
        assert _plain(held["Fee wallet"]) == _text(totals[asset].fee_wallet, asset)
        assert _plain(held["Liquidity (free)"]) == _text(totals[asset].liquidity_free, asset)
        assert row["Latest snapshot total"] == "—"


def test_proof_of_liabilities_explains_an_empty_reserves_table():
    """Issue 21: with nothing declared the page showed "0.00%" and a negative difference."""
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    assert any("No reserves declared yet" in i.value for i in at.info)
    for row in frame_with(at, "Reserves / liabilities").to_dict("records"):
        assert row["Declared reserves"] == "nothing declared yet" and row["Wallets"] == 0
        assert row["Reserves / liabilities"] == "—" and row["Reserves − custody"] == "—"
    shown = " ".join(str(frame.value.to_dict()) for frame in at.dataframe)
    assert "0.00%" not in shown and "-" not in " ".join(frame_with(at, "Reserves / liabilities")["Reserves − custody"])


def test_proof_of_liabilities_tables_fit_the_page():
    """Issue 21: the solvency table was wider than the page (12 columns); no table has more than 7 now."""
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    at.button(key="pol_take").click()
    at.run()
    at.text_input(key="pol_amount").input("1")
    at.text_input(key="pol_address").input("bc1qdemocoldwallet01")
    at.button(key="FormSubmitter:pol_declare-Declare reserve").click()
    at.run()
    assert not at.exception and len(at.dataframe) == 5
    assert all(len(frame.value.columns) <= 7 for frame in at.dataframe), [list(f.value.columns) for f in at.dataframe]


def _text(minor: int, asset: str) -> str:
    return from_minor(minor, asset, platform_of().registry).text()


def _plain(shown: str) -> str:
    """The page groups thousands for reading; the digits are the exact amount."""
    return shown.replace(",", "")


def test_proof_of_liabilities_take_a_snapshot_and_download_its_roots():
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    at.selectbox(key="pol_split").select(2)
    at.button(key="pol_take").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("published" in s.value for s in at.success)
    platform = platform_of()
    (snapshot,) = liabilities.list_snapshots(platform, ADMIN)
    assert snapshot["taken_by"] == "admin" and snapshot["split_parts"] == 2
    history = frame_with(at, "User postings covered")
    assert list(history["Snapshot"]) == [snapshot["_id"]]
    assert all("Users" not in frame.value.columns for frame in at.dataframe)  # issue 21: no user count on the console
    assert not any("users" in s.value for s in at.success)
    roots = frame_with(at, "Root")
    assert {r["Asset"]: r["Root"] for r in roots.to_dict("records")} == {a["asset"]: a["root"] for a in snapshot["assets"]}
    assert {r["Asset"]: r["Total (minor units)"] for r in roots.to_dict("records")} == {a["asset"]: str(a["total"]) for a in snapshot["assets"]}
    solvency = frame_with(at, "Latest snapshot total")
    assert all(row["Latest snapshot total"] == row["User liabilities (ledger now)"] for row in solvency.to_dict("records")
               if row["User liabilities (ledger now)"] != "0" and row["Latest snapshot total"] != "—")
    assert platform.store.collection("audit").count_documents({"type": "liabilities.snapshot", "actor": "admin"}) == 1
    assert snapshot["public_key"] in [c.value for c in at.code]  # the statement key, published with the roots
    at.button(key="pol_verify").click()
    at.run()
    assert any("match the published roots" in s.value for s in at.success)
    assert len(at.get("download_button")) == 3  # roots JSON, roots CSV, statement key


def test_proof_of_liabilities_prepare_and_download_the_bundle():
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    at.button(key="pol_take").click()
    at.run()
    at.button(key="pol_bundle_prepare").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    platform = platform_of()
    (snapshot,) = liabilities.list_snapshots(platform, ADMIN)
    snapshot_id, data, _ = at.session_state["pol_bundle"]
    assert snapshot_id == snapshot["_id"] and len(at.get("download_button")) == 4
    assert any(snapshot["bundle"]["sha256"] in c.value for c in at.caption)  # its digest, published with the roots
    user = next(u for u, b in platform.ledger.user_balances("u0001").items() if b.total.minor > 0)
    secret = bytes.fromhex(liabilities.reveal_user_secret(platform, principal_of("support"), "u0001", "t").replace("-", ""))
    proof = liabilities.open_bundle(data, secret, user)
    summary = next(a for a in snapshot["assets"] if a["asset"] == user)
    assert liabilities.verify_proof(proof, summary["root"], summary["total"], user_id="u0001").ok
    assert platform.store.collection("audit").count_documents({"type": "liabilities.bundle_published", "actor": "admin"}) == 1


def test_proof_of_liabilities_declare_a_reserve_and_see_the_ratio():
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    platform = platform_of()
    btc = next(row for row in reports.platform_totals(platform, ADMIN) if row.asset == "BTC")
    at.selectbox(key="pol_asset").select("BTC")
    at.text_input(key="pol_amount").input(from_minor(btc.user_liabilities * 2, "BTC", platform.registry).text())
    at.text_input(key="pol_address").input("bc1qdemocoldwallet01")
    at.date_input(key="pol_day").set_value((platform.clock.now() - timedelta(days=1)).date())
    at.text_input(key="pol_evidence").input("signed message at block 870000")
    at.button(key="FormSubmitter:pol_declare-Declare reserve").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Declared" in s.value for s in at.success)
    row = next(r for r in frame_with(at, "Reserves / liabilities").to_dict("records") if r["Asset"] == "BTC")
    assert row["Reserves / liabilities"] == "200.00%" and row["Wallets"] == 1
    assert not any("No reserves declared yet" in i.value for i in at.info)
    declarations = frame_with(at, "Declared by")
    assert list(declarations["Wallet"]) == ["bc1qdemocoldwallet01"] and list(declarations["Declared by"]) == ["admin"]
    assert platform.store.collection("audit").count_documents({"type": "liabilities.reserve_declared"}) == 1


def test_proof_of_liabilities_refuses_a_float_like_or_bad_reserve_with_a_message():
    at = open_page(signed_in("admin"), "proof_of_liabilities")
    at.text_input(key="pol_amount").input("1e-3")
    at.text_input(key="pol_address").input("bc1qdemocoldwallet01")
    at.button(key="FormSubmitter:pol_declare-Declare reserve").click()
    at.run()
    assert not at.exception and at.error, "a clear message, not a traceback"
    assert platform_of().store.collection("liabilities_reserves").count_documents({}) == 0


def test_user_lookup_support_downloads_a_users_liabilities_proof_that_verifies():
    platform = platform_of()
    at = open_page(signed_in("support"), "user_lookup")
    at.text_input(key="lookup_search").input("u0001")
    at.run()
    at.button(key="lookup_pol_prepare").click()
    at.run()
    assert not at.exception and any("no liabilities snapshot" in e.value.lower() for e in at.error)  # none taken yet: a message
    assert at.get("download_button") == []
    snapshot = liabilities.take_snapshot(platform, ADMIN)
    at.button(key="lookup_pol_prepare").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("download_button")) == 1
    bundle = json.loads(at.session_state["lookup_pol"][1])
    assert bundle["user_id"] == "u0001" and bundle["snapshot_id"] == snapshot["_id"]
    roots = {a["asset"]: a for a in snapshot["assets"]}
    for proof in bundle["proofs"]:
        assert liabilities.verify_proof(proof, roots[proof["asset"]]["root"], roots[proof["asset"]]["total"]).ok
    assert {p["asset"] for p in bundle["proofs"]} == {a for a, b in platform.ledger.user_balances("u0001").items() if b.total.minor > 0}
    event = platform.store.collection("audit").find_one({"type": "liabilities.proof_exported"})
    assert event["actor"] == "support" and event["user"] == "u0001"


def test_user_lookup_support_shows_the_verification_secret_once():
    platform = platform_of()
    at = open_page(signed_in("support"), "user_lookup")
    at.text_input(key="lookup_search").input("u0001")
    at.run()
    at.text_input(key="lookup_pol_reason").input("ticket 881")
    at.button(key="lookup_pol_secret").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (shown,) = [c.value for c in at.code if len(c.value.replace("-", "")) == 64]
    keys = liabilities.keys_for(platform.store)
    assert shown == liabilities.keys.secret_text(keys.user_secret("u0001"))
    assert shown not in repr(at.session_state._state._state.filtered_state)  # not kept in the session
    at.run()
    assert shown not in [c.value for c in at.code]  # gone on the next run
    at.button(key="lookup_pol_secret").click()
    at.run()
    assert any("already shown" in e.value for e in at.error) and shown not in [c.value for c in at.code]
    event = platform.store.collection("audit").find_one({"type": "liabilities.secret_revealed"})
    assert event["actor"] == "support" and event["user"] == "u0001" and event["data"] == {"reason": "ticket 881"}


def test_proof_of_liabilities_is_not_reachable_for_support():
    at = signed_in("support")
    try:
        at.switch_page("pages/proof_of_liabilities.py")
        at.run()
    except Exception:  # noqa: BLE001 — st.navigation does not know the page: refused
        return
    assert not any(t.value == "Proof of liabilities" for t in at.title)
