"""Proof of liabilities (admin): solvency per asset, Merkle-sum snapshots and what to publish
(the roots, the statement key, the sealed bundle), reserves declared with evidence. Every
number is exact text; all logic is in core.liabilities (see docs/proof-of-liabilities.md).
No user count is shown: the padded leaf count is all the trees say about it."""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, time

import pandas as pd
import streamlit as st

from core import liabilities
from console.formatting import money
from console.frame import principal, refusals
from console.loading import get_platform

PREFIX = "pol"
SNAPSHOTS_SHOWN = 20
DECLARATIONS_SHOWN = 50
NOTHING_DECLARED = "nothing declared yet"

platform, me = get_platform(), principal("proof_of_liabilities")
st.title("Proof of liabilities")
st.caption("Publish each snapshot's roots, statement key and bundle. Every user downloads the same bundle and checks "
           "their own balance with `tools/verify_liabilities.py` (standard library only) and the secret support gave "
           "them once — so nobody learns who checks. The tree shows nothing was left out or reduced; it does not prove "
           "reserves on chain: those are declared below with evidence.")


def ratio_text(row: liabilities.SolvencyRow) -> str:
    if not row.wallets:
        return "—"
    return "—" if row.ratio is None else f"{row.ratio * 100:.2f}%"


def solvency_tables(rows: list[liabilities.SolvencyRow]) -> None:
    """Two narrow tables (they fit the page): liabilities beside reserves, then the platform's own holdings."""
    if not any(r.wallets for r in rows):
        st.info("No reserves declared yet: the reserves, the ratio and the difference to custody appear once an admin "
                "declares what a wallet or account held (the form at the bottom of this page).")
    st.dataframe(pd.DataFrame([{
        "Asset": r.asset, "User liabilities (ledger now)": money(r.user_liabilities, r.asset),
        "Latest snapshot total": money(r.snapshot_total, r.asset),
        "Declared reserves": money(r.declared_reserves, r.asset) if r.wallets else NOTHING_DECLARED, "Wallets": r.wallets,
        "Reserves / liabilities": ratio_text(r), "Reserves − custody": money(r.surplus, r.asset) if r.wallets else "—",
    } for r in rows]), hide_index=True, key=f"{PREFIX}_solvency")
    st.dataframe(pd.DataFrame([{
        "Asset": r.asset, "Fee wallet": money(r.fee_wallet, r.asset), "Liquidity (free)": money(r.liquidity_free, r.asset),
        "Liquidity (reserved)": money(r.liquidity_reserved, r.asset), "Escrow": money(r.escrow, r.asset),
        "Ledger custody total": money(r.custody_total, r.asset),
    } for r in rows]), hide_index=True, key=f"{PREFIX}_holdings")
    st.caption("Custody total = user liabilities + fee wallet + liquidity + escrow: what the ledger says the platform "
               "must hold. Declared reserves = the newest declaration per wallet. The ratio is rounded down.")


def publish(snapshot: dict, all_roots: list[dict]) -> None:
    """The roots, the statement key and the bundle of one snapshot, to publish where everyone sees the same copy."""
    roots = [row for row in all_roots if row["snapshot_id"] == snapshot["_id"]]
    st.dataframe(pd.DataFrame([{"Asset": r["asset"], "Total": money(r["total"], r["asset"]), "Total (minor units)": str(r["total"]),
                                "Leaves (padded)": r["leaf_count"], "Root": r["root"]} for r in roots]),
                 hide_index=True, key=f"{PREFIX}_roots")
    st.caption("Statement key (Ed25519; every root commits to it):")
    st.code(snapshot["public_key"], language=None)
    columns = st.columns(3)
    columns[0].download_button("Roots (JSON)", json.dumps(roots, indent=2), file_name=f"{snapshot['_id']}-roots.json",
                               mime="application/json", key=f"{PREFIX}_roots_json")
    columns[1].download_button("All roots (CSV)", liabilities.roots_csv(all_roots), file_name="liabilities-roots.csv",
                               mime="text/csv", key=f"{PREFIX}_roots_csv")
    columns[2].download_button("Statement key", f"{snapshot['public_key']}\n", file_name=f"{snapshot['_id']}-statement-key.txt",
                               mime="text/plain", key=f"{PREFIX}_public_key")
    columns = st.columns(2)
    if columns[0].button("Prepare the bundle", key=f"{PREFIX}_bundle_prepare",
                         help="Every user's signed proof, sealed to that user: one public file, the same for everyone"):
        out = io.BytesIO()
        with st.spinner("Sealing every user's proof…"):
            built = liabilities.build_bundle(platform, me, out, snapshot_id=snapshot["_id"])
        st.session_state[f"{PREFIX}_bundle"] = (snapshot["_id"], out.getvalue(), built.sha256)
    prepared = st.session_state.get(f"{PREFIX}_bundle")
    digest = prepared[2] if prepared and prepared[0] == snapshot["_id"] else (snapshot.get("bundle") or {}).get("sha256")
    st.caption(f"Bundle SHA-256 (publish it with the roots): `{digest}`" if digest else "The bundle has not been built yet.")
    if prepared and prepared[0] == snapshot["_id"]:
        columns[0].download_button(f"Bundle ({len(prepared[1]):,} bytes)", prepared[1], file_name=f"{snapshot['_id']}-bundle.bin",
                                   mime="application/octet-stream", key=f"{PREFIX}_bundle_download")
    if columns[1].button("Re-check stored snapshot", key=f"{PREFIX}_verify"):
        check = liabilities.verify_snapshot(platform, me, snapshot["_id"])
        if check.ok:
            st.success(f"{check.snapshot_id}: {check.leaves_checked:,} leaves and every user's recorded leaves match the published roots.")
        else:
            st.error(f"{check.snapshot_id} does not match what it published:\n\n" + "\n".join(f"- {p}" for p in check.problems[:20]))


flash = st.session_state.pop(f"{PREFIX}_flash", None)
if flash:
    st.success(flash)

with refusals():
    snapshots = liabilities.list_snapshots(platform, me, SNAPSHOTS_SHOWN)
    latest = snapshots[0] if snapshots else None

    st.subheader("Solvency per asset")
    rows = liabilities.solvency(platform, me, latest)
    if not rows:
        st.write("No liabilities, holdings or declared reserves yet.")
    else:
        solvency_tables(rows)

    st.subheader("Snapshots")
    split = st.selectbox("Split each balance across", list(range(1, liabilities.SPLIT_PARTS_MAX + 1)), key=f"{PREFIX}_split",
                         format_func=lambda n: f"{n} leaf" + ("" if n == 1 else "s"))
    if st.button("Take snapshot now", key=f"{PREFIX}_take", type="primary"):
        with st.spinner("Reading a consistent cut and building the trees…"):
            taken = liabilities.take_snapshot(platform, me, split_parts=split)
        st.session_state[f"{PREFIX}_flash"] = f"Snapshot {taken['_id']} published: {len(taken['assets'])} assets."
        st.rerun()
    if not snapshots:
        st.write("No snapshot has been taken yet.")
    else:
        st.dataframe(pd.DataFrame([{
            "Snapshot": s["_id"], "Taken at (UTC)": s["taken_at"], "By": s["taken_by"],
            "Assets": ", ".join(a["asset"] for a in s["assets"]), "User postings covered": s["cut"]["versions_total"],
            "Leaves split": s["split_parts"], "Bundle": "built" if s.get("bundle") else "—",
        } for s in snapshots]), hide_index=True, key=f"{PREFIX}_history")
        chosen_id = st.selectbox("Publish snapshot", [s["_id"] for s in snapshots], key=f"{PREFIX}_chosen")
        publish(next(s for s in snapshots if s["_id"] == chosen_id), liabilities.published_roots(platform, me, SNAPSHOTS_SHOWN))

    st.subheader("Declared reserves")
    st.session_state.setdefault(f"{PREFIX}_declaration_id", f"reserve-{uuid.uuid4().hex[:16]}")
    with st.form(f"{PREFIX}_declare", clear_on_submit=False):
        columns = st.columns([1, 2, 3])
        asset = columns[0].selectbox("Asset", platform.registry.codes(), key=f"{PREFIX}_asset")
        value = columns[1].text_input("Amount seen (exact decimal)", key=f"{PREFIX}_amount")
        address = columns[2].text_input("Wallet address or account reference", key=f"{PREFIX}_address", max_chars=128)
        columns = st.columns([1, 1, 3])
        now = platform.clock.now()
        seen_day = columns[0].date_input("Seen on (UTC)", value=now.date(), max_value=now.date(), key=f"{PREFIX}_day")
        seen_time = columns[1].time_input("at (UTC)", value=time(now.hour, now.minute), key=f"{PREFIX}_time")
        evidence = columns[2].text_input("Evidence (block height, statement id, signed message…)", key=f"{PREFIX}_evidence", max_chars=500)
        submitted = st.form_submit_button("Declare reserve")
    if submitted:
        declared = liabilities.declare_reserve(platform, me, asset=asset, value=value.strip(), wallet_address=address,
                                               as_of=datetime.combine(seen_day, seen_time), evidence=evidence,
                                               declaration_id=st.session_state[f"{PREFIX}_declaration_id"])
        st.session_state[f"{PREFIX}_declaration_id"] = f"reserve-{uuid.uuid4().hex[:16]}"
        st.session_state[f"{PREFIX}_flash"] = (f"Declared {money(declared['amount_minor'], declared['asset'])} {declared['asset']} "
                                               f"at {declared['wallet_address']}.")
        st.rerun()
    declarations = liabilities.declared_reserves(platform, me, DECLARATIONS_SHOWN)
    if declarations:
        st.dataframe(pd.DataFrame([{"Asset": d["asset"], "Amount": money(d["amount_minor"], d["asset"]), "Wallet": d["wallet_address"],
                                    "Seen at (UTC)": d["as_of"], "Evidence": d["evidence"], "Declared by": d["declared_by"],
                                    "Declared at (UTC)": d["declared_at"]}
                                   for d in declarations]), hide_index=True, key=f"{PREFIX}_declarations")
    else:
        st.write("No reserves declared yet: nothing is compared with the ledger until one is.")
