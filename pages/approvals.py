"""Approvals (admin): the maker-checker queue — approve or reject with a reason.

Core enforces the rules (never your own request, distinct approvers, expiry); this page
shows the queue, passes the signed-in principal, and shows any refusal as a message.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core import approvals
from ui import money, page_state, pager, principal, refusals, get_platform

PREFIX = "approvals"
STATES = ("pending", "approved", "rejected", "expired", "all")

platform, me = get_platform(), principal("approvals")
st.title("Approvals")
st.caption("Requests become actions only when a different admin approves them; large amounts need two approvers.")

left, right = st.columns(2)
state = left.selectbox("State", STATES, key=f"{PREFIX}_state")
kind_choice = right.selectbox("Kind", ["all", *approvals.registered_kinds()], key=f"{PREFIX}_kind")
if st.session_state.get(f"{PREFIX}_filter") != (state, kind_choice):
    st.session_state[f"{PREFIX}_filter"] = (state, kind_choice)
    st.session_state[f"{PREFIX}_list_page"] = 0

if message := st.session_state.pop(f"{PREFIX}_done", None):
    st.success(message)


def amount_text(document: dict) -> str:
    if document.get("asset") and document.get("amount_minor") is not None:
        return f"{money(document['amount_minor'], document['asset'])} {document['asset']}"
    return ""


def act(document: dict, action: str) -> None:
    """Approve or reject through core; remember the outcome for the next run."""
    reason = st.session_state.get(f"{PREFIX}_reason_{document['_id']}", "")
    function = approvals.approve if action == "approve" else approvals.reject
    with refusals():
        result = function(platform, me, document["_id"], reason)
        st.cache_data.clear()  # balances and totals changed
        outcome = result["state"] if result["state"] != "pending" else f"approved by you ({len(result['approvals'])}/{result['approvals_required']})"
        st.session_state[f"{PREFIX}_done"] = f"{document['kind']} {document['_id']}: {outcome}."
        st.rerun()


with refusals():
    page, page_size = page_state(f"{PREFIX}_list")
    listing = approvals.list_approvals(platform, me, state=None if state == "all" else state,
                                       kind=None if kind_choice == "all" else kind_choice, page=page, page_size=page_size)
    if not listing.items:
        st.info("No requests match.")
    else:
        st.dataframe(pd.DataFrame([{
            "Requested": d["requested_at"], "Kind": d["kind"], "Amount": amount_text(d), "State": d["state"],
            "By": d["requested_by"], "Approvals": f"{len(d.get('approvals') or [])}/{d.get('approvals_required')}",
            "Reason": d.get("reason", ""), "Id": d["_id"],
        } for d in listing.items]), hide_index=True, key=f"{PREFIX}_table")
    pager(f"{PREFIX}_list", listing.has_more)

    for document in [d for d in listing.items if d["state"] == "pending"]:
        label = f"{document['kind']} · {amount_text(document) or '—'} · requested by {document['requested_by']} · {document['_id']}"
        with st.expander(label):
            st.code(json.dumps(document.get("payload") or {}, indent=2, sort_keys=True, default=str), language="json")
            st.write(f"Why: {document.get('reason') or '—'} · expires {document.get('expires_at')}")
            st.text_input("Reason (required to reject)", key=f"{PREFIX}_reason_{document['_id']}", max_chars=approvals.REASON_LENGTH_MAX)
            approve_column, reject_column = st.columns(2)
            if approve_column.button("Approve", key=f"{PREFIX}_approve_{document['_id']}", type="primary"):
                act(document, "approve")
            if reject_column.button("Reject", key=f"{PREFIX}_reject_{document['_id']}"):
                act(document, "reject")
