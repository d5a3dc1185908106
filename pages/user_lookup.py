"""User lookup (admin, support): find a person, see balances, holds, entries, integrity.

Search is a case-insensitive prefix over user ids, emails and every word of a name
(core.platform.directory), counted and paged, best match first, then by name. `?user=<id>` opens one person directly: the links
from Audit trail, Integrity and Approvals land here.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import integrity, liabilities
from core.platform import directory
from core.ledger import AccountKind, EntryFilter
from console.findings import show_findings
from console.formatting import amount, money, when
from console.frame import USER_PARAM, page_state, pager, principal, refusals
from console.loading import get_platform

PREFIX = "lookup"
HOLDS_SHOWN_MAX = 20
RESULTS_PAGE_SIZE = 10

me = principal("user_lookup")
platform = get_platform()
st.title("User lookup")

# A link (?user=<id>) picks the person once; later searches on the page take over.
linked = st.query_params.get(USER_PARAM)
if linked and st.session_state.get(f"{PREFIX}_linked") != linked:
    st.session_state[f"{PREFIX}_linked"] = linked
    st.session_state[f"{PREFIX}_user"] = linked
    st.session_state[f"{PREFIX}_entries_page"] = 0

text = st.text_input("Search by user id, email or any word of the name — case-insensitive, matches the start of each word",
                     key=f"{PREFIX}_search", max_chars=directory.SEARCH_TEXT_LENGTH_MAX,
                     placeholder="e.g. u004, walker, ada.walker@")
if st.session_state.get(f"{PREFIX}_searched") != text:
    st.session_state[f"{PREFIX}_searched"] = text
    st.session_state[f"{PREFIX}_results_page"] = 0


def choose(user_id: str) -> None:
    if st.session_state.get(f"{PREFIX}_user") != user_id:
        st.session_state[f"{PREFIX}_user"] = user_id
        st.session_state[f"{PREFIX}_entries_page"] = 0


with refusals():
    if text.strip():
        results_page = st.session_state.get(f"{PREFIX}_results_page", 0)
        found = directory.find_users(platform.store, me, text, page=results_page, page_size=RESULTS_PAGE_SIZE)
        if not found.items:
            st.session_state.pop(f"{PREFIX}_user", None)  # never show the previous person under "no match"
            st.info(f"No user matches “{text.strip()}”. Each word must start an id, an email or a word of the name; "
                    "text is matched literally (no wildcards).")
        else:
            count = f"{found.total:,}+" if found.total_capped else f"{found.total:,}"
            first = results_page * RESULTS_PAGE_SIZE + 1
            order = "best match first, then by name" if found.ordered else "in id order (narrow the search to sort by name)"
            st.caption(f"{count} user(s) match · {order} · showing {first:,}–{first + len(found.items) - 1:,} · "
                       f"page {results_page + 1:,} of {found.pages:,}")
            labels = {f"{u.name} · {u.user_id} · {u.email}": u.user_id for u in found.items}
            choice = st.radio("Matches", list(labels), key=f"{PREFIX}_choice_{results_page}")
            choose(labels[choice])
            previous, following = st.columns([1, 5])
            if previous.button("◀ Previous matches", key=f"{PREFIX}_results_prev", disabled=results_page == 0):
                st.session_state[f"{PREFIX}_results_page"] = results_page - 1
                st.rerun()
            if following.button("More matches ▶", key=f"{PREFIX}_results_next", disabled=not found.has_more):
                st.session_state[f"{PREFIX}_results_page"] = results_page + 1
                st.rerun()

    user_id = st.session_state.get(f"{PREFIX}_user")
    person = directory.get_user(platform.store, me, user_id) if user_id else None
    if user_id and person is None:
        st.warning(f"There is no user {user_id} in the directory.")
    if person is not None:
        st.header(f"{person.name} ({person.user_id})")
        st.caption(f"{person.email} · referral tier {person.referral_tier or '—'} · referred by {person.referred_by or '—'}")

        st.subheader("Balances")
        balances = platform.ledger.user_balances(person.user_id)
        if balances:
            st.dataframe(pd.DataFrame([{"Asset": a, "Available": money(b.available.minor, a), "Locked": money(b.locked.minor, a),
                                        "Total": money(b.total.minor, a)} for a, b in balances.items()]),
                         hide_index=True, key=f"{PREFIX}_balances")
        else:
            st.write("No balances.")

        st.subheader("Recent entries")
        page, page_size = page_state(f"{PREFIX}_entries")
        entries = platform.ledger.entries(EntryFilter(user=person.user_id), page=page, page_size=page_size)
        rows = []
        for entry in entries.items:
            mine = [p for p in entry.postings if p.owner == person.user_id and p.kind in (AccountKind.USER_AVAILABLE, AccountKind.USER_LOCKED)]
            rows.append({"When (UTC)": when(entry.created_at), "Type": entry.type,
                         "Change": ", ".join(f"{p.kind.split('.')[-1]} {'+' if p.amount_minor > 0 else ''}{amount(p.amount_minor, p.asset)}"
                                             for p in mine),
                         "Hold": entry.hold_id or "", "Entry": entry.id})
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_entries_table")
        else:
            st.write("No entries.")
        pager(f"{PREFIX}_entries", entries.has_more, shown=len(rows))

        st.subheader("Open holds")
        holds = []
        for entry in platform.ledger.open_holds(person.user_id, placed_max=HOLDS_SHOWN_MAX):
            held = next(p for p in entry.postings if p.amount_minor > 0)
            holds.append({"Hold": entry.hold_id, "Since (UTC)": when(entry.created_at), "Held in": held.kind,
                          "Amount": amount(held.amount_minor, held.asset), "Flow": entry.flow_ref or ""})
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
            # issue 21: the secret that opens this user's record in every public bundle — shown once, on this run only, audited
            reason = st.text_input("Why the user needs their verification secret (e.g. the ticket)", key=f"{PREFIX}_pol_reason")
            if st.button("Show verification secret (once)", key=f"{PREFIX}_pol_secret"):
                st.code(liabilities.reveal_user_secret(platform, me, person.user_id, reason), language=None)
                st.warning("Give this to the user only, through a channel only they read. It is not stored and will not be shown again.")

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
                f"{'OK' if report['ok'] else report['severity'].upper()} at {when(report['started_at'])}: "
                f"{report['counts']['findings']} findings ({len(legacy_rows)} against the legacy collections)")
            names = {person.user_id: person.name}
            for title, rows in (("Ledger", other_rows), ("Legacy collections vs ledger", legacy_rows)):
                if rows:
                    st.markdown(f"**{title}**")
                    show_findings(rows, names, key=f"{PREFIX}_findings_{title[:6]}")
