"""User lookup (admin, support): find a person, see balances, holds, entries, integrity."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import directory, integrity, liabilities
from core.ledger.accounts import AccountKind
from core.ledger.engine import EntryFilter
from ui import get_platform, money, page_state, pager, principal, refusals

PREFIX = "lookup"
HOLDS_SHOWN_MAX = 20

platform, me = get_platform(), principal("user_lookup")
st.title("User lookup")

text = st.text_input("Search by user id, email or name (prefix)", key=f"{PREFIX}_search", max_chars=directory.SEARCH_TEXT_LENGTH_MAX)
with refusals():
    if text.strip():
        found = directory.search_users(platform.store, me, text)
        if not found:
            st.info("No user matches. Text is matched literally (no wildcards).")
        else:
            labels = {f"{u.user_id} · {u.name} · {u.email}": u.user_id for u in found}
            choice = st.radio("Matches", list(labels), key=f"{PREFIX}_choice")
            if st.session_state.get(f"{PREFIX}_user") != labels[choice]:
                st.session_state[f"{PREFIX}_user"] = labels[choice]
                st.session_state[f"{PREFIX}_entries_page"] = 0

    user_id = st.session_state.get(f"{PREFIX}_user")
    person = directory.get_user(platform.store, me, user_id) if user_id else None
    if person is not None:
        st.header(f"{person.name} ({person.user_id})")
        st.caption(f"{person.email} · referral tier {person.referral_tier or '—'} · referred by {person.referred_by or '—'}")

        st.subheader("Balances")
        balances = platform.ledger.user_balances(person.user_id)
        if balances:
            st.dataframe(pd.DataFrame([{"Asset": a, "Available": b.available.text(), "Locked": b.locked.text(), "Total": b.total.text()}
                                       for a, b in balances.items()]), hide_index=True, key=f"{PREFIX}_balances")
        else:
            st.write("No balances.")

        st.subheader("Recent entries")
        page, page_size = page_state(f"{PREFIX}_entries")
        entries = platform.ledger.entries(EntryFilter(user=person.user_id), page=page, page_size=page_size)
        rows = []
        for entry in entries.items:
            mine = [p for p in entry.postings if p.owner == person.user_id and p.kind in (AccountKind.USER_AVAILABLE, AccountKind.USER_LOCKED)]
            rows.append({"When": entry.created_at, "Type": entry.type, "State": entry.state,
                         "Change": ", ".join(f"{p.kind.split('.')[-1]} {'+' if p.amount_minor > 0 else ''}{money(p.amount_minor, p.asset)} {p.asset}" for p in mine),
                         "Hold": entry.hold_id or "", "Entry": entry.id})
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_entries_table")
        else:
            st.write("No entries.")
        pager(f"{PREFIX}_entries", entries.has_more)

        st.subheader("Open holds")
        holds = []
        for entry in platform.ledger.open_holds(person.user_id, placed_max=HOLDS_SHOWN_MAX):
            held = next(p for p in entry.postings if p.amount_minor > 0)
            holds.append({"Hold": entry.hold_id, "Since": entry.created_at, "Held in": held.kind,
                          "Amount": f"{money(held.amount_minor, held.asset)} {held.asset}", "Flow": entry.flow_ref or ""})
        if holds:
            st.dataframe(pd.DataFrame(holds), hide_index=True, key=f"{PREFIX}_holds")
        else:
            st.write(f"No open holds among the latest {HOLDS_SHOWN_MAX} placed.")

        st.subheader("Proof of liabilities")  # issue 14: this user's inclusion proofs from the newest snapshot
        with refusals():  # no snapshot yet, or no liability in it: a message, and the rest of the page still draws
            if st.button("Prepare liabilities proof", key=f"{PREFIX}_pol_prepare"):
                st.session_state[f"{PREFIX}_pol"] = (person.user_id, liabilities.bundle_json(liabilities.user_proof_bundle(platform, me, person.user_id)))
            prepared = st.session_state.get(f"{PREFIX}_pol")
            if prepared and prepared[0] == person.user_id:
                st.download_button("Download liabilities proof", prepared[1], file_name=f"liabilities-proof-{person.user_id}.json",
                                   mime="application/json", key=f"{PREFIX}_pol_download")

        st.subheader("Integrity and legacy comparison")
        if platform.legacy is None:
            st.caption("No legacy database is configured (LEGACY_MONGODB_URI): the check covers the ledger only.")
        if st.button("Run this user's integrity check", key=f"{PREFIX}_check"):
            with st.spinner("Checking…"):
                st.session_state[f"{PREFIX}_report"] = integrity.check_user(platform, me, person.user_id, legacy=platform.legacy).as_dict()
        report = st.session_state.get(f"{PREFIX}_report")
        if report and report["scope"] == f"user:{person.user_id}":
            legacy_rows = [f for f in report["findings"] if f.get("collection")]
            other_rows = [f for f in report["findings"] if not f.get("collection")]
            (st.success if report["ok"] else st.error)(
                f"{'OK' if report['ok'] else report['severity'].upper()}: {report['counts']['findings']} findings "
                f"({len(legacy_rows)} against the legacy collections)")
            for title, rows in (("Ledger", other_rows), ("Legacy collections vs ledger", legacy_rows)):
                if rows:
                    st.markdown(f"**{title}**")
                    st.dataframe(pd.DataFrame([{"Severity": f["severity"], "Kind": f["kind"], "Collection": f.get("collection") or "",
                                                "Field": f.get("field") or "", "Asset": f.get("asset"), "Expected": f.get("expected"),
                                                "Actual": f.get("actual"), "Difference": f.get("difference"), "Message": f["message"]}
                                               for f in rows]), hide_index=True)
