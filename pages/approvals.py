"""Approvals (admin): the maker-checker queue and its history — approve or reject with a reason.

Core enforces the rules (never your own request, distinct approvers, expiry); this page
shows them before anyone clicks: Approve is disabled on your own request (and says why),
a request that can never gather enough approvers is flagged, and every decided request
shows who decided, when and why (core.approvals_view reads what core.approvals recorded).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import approvals, approvals_view, directory
from ui import (USER_LINK_COLUMN, amount, console_people, get_platform, link_to_user, page_state, pager, principal, refusals,
                user_link_column, user_url, when)

PREFIX = "approvals"
STATES = ("pending", "approved", "rejected", "expired", "all")

me = principal("approvals")
platform = get_platform()
people = console_people()
st.title("Approvals")
st.caption("Requests become actions only when a different admin approves them; large amounts need two approvers.")

left, right = st.columns(2)
state = left.selectbox("State", STATES, key=f"{PREFIX}_state", help="'all' with a decided state shows the history")
kind_choice = right.selectbox("Kind", ["all", *approvals.registered_kinds()], key=f"{PREFIX}_kind")
if st.session_state.get(f"{PREFIX}_filter") != (state, kind_choice):
    st.session_state[f"{PREFIX}_filter"] = (state, kind_choice)
    st.session_state[f"{PREFIX}_list_page"] = 0

if message := st.session_state.pop(f"{PREFIX}_done", None):
    st.success(message)


def approvers_text(document: dict) -> str:
    """"1/2 — Alan Checker (admin2)": the count and who gave them."""
    given = document.get("approvals") or []
    names = ", ".join(approvals_view.display_name(people, a.get("by")) for a in given)
    return f"{len(given)}/{document.get('approvals_required')}" + (f" — {names}" if names else "")


def user_of(document: dict) -> str | None:
    """The user a request is about (payload user, or the owner of the account it repairs)."""
    for detail in approvals_view.details(document, platform.registry):
        if detail.user_id:
            return detail.user_id
    return None


def row(document: dict) -> dict:
    decided = approvals_view.decision(document)
    user_id = user_of(document)
    return {
        "Requested (UTC)": when(document["requested_at"]), "Kind": document["kind"],
        "Amount": amount(document.get("amount_minor"), document.get("asset")), "State": document["state"],
        "Requested by": approvals_view.display_name(people, document["requested_by"]), "Approvals": approvers_text(document),
        "Decided by": approvals_view.display_name(people, decided.by) if decided and decided.by else "",
        "Decided at": when(decided.at) if decided else "",
        "Decision reason": decided.reason if decided else "",
        "Request reason": document.get("reason", ""), USER_LINK_COLUMN: user_url(user_id) if user_id else None, "Id": document["_id"],
    }


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


def draw_details(document: dict, names: dict[str, str]) -> None:
    """The request in words (not JSON), a link to its user (named from `names`, read once
    for the whole page), and its history."""
    details = approvals_view.details(document, platform.registry)
    if details:
        st.table(pd.DataFrame([{"Field": d.label, "Value": d.text} for d in details]).set_index("Field"))
    user_id = user_of(document)
    if user_id:
        link_to_user(user_id, names.get(user_id, ""))
    st.markdown("**History**")
    st.table(pd.DataFrame([{"What": line.action, "Who": approvals_view.display_name(people, line.by) if line.by else "—",
                            "When": when(line.at), "Why": line.reason or "—"} for line in approvals_view.history(document)]))


def draw_pending(document: dict, names: dict[str, str]) -> None:
    """One pending request: details, warnings, and the decision controls (Approve disabled with
    the reason when this admin may not approve it)."""
    label = (f"{document['kind']} · {amount(document.get('amount_minor'), document.get('asset')) or '—'} · requested by "
             f"{approvals_view.display_name(people, document['requested_by'])} · {document['_id']}")
    with st.expander(label):
        st.write(f"Why: {document.get('reason') or '—'} · expires {when(document.get('expires_at'))}")
        draw_details(document, names)
        given = [a.get("by") for a in document.get("approvals") or []]
        if approvals_view.approver_shortfall(people, document["requested_by"], document["approvals_required"], given):
            eligible = approvals_view.eligible_approvers(people, document["requested_by"])
            st.warning(f"Needs {document['approvals_required']} approver(s) other than the requester, and only "
                       f"{len(eligible)} enabled admin(s) can give one: it will wait until it expires unless another admin is added.")
        blocked = None
        if document["requested_by"] == me.name:
            blocked = "You requested this; another admin must approve it."
        elif me.name in given:
            blocked = "You already approved this; it needs a different second approver."
        st.text_input("Reason (required to reject)", key=f"{PREFIX}_reason_{document['_id']}", max_chars=approvals.REASON_LENGTH_MAX)
        approve_column, reject_column = st.columns(2)
        if approve_column.button("Approve", key=f"{PREFIX}_approve_{document['_id']}", type="primary", disabled=blocked is not None,
                                 help=blocked):
            act(document, "approve")
        if blocked:
            approve_column.caption(blocked)
        if reject_column.button("Reject", key=f"{PREFIX}_reject_{document['_id']}"):
            act(document, "reject")


with refusals():
    page, page_size = page_state(f"{PREFIX}_list")
    state_filter = None if state == "all" else state
    kind_filter = None if kind_choice == "all" else kind_choice
    listing = approvals.list_approvals(platform, me, state=state_filter, kind=kind_filter, page=page, page_size=page_size)
    total = approvals_view.count_requests(platform, me, state=state_filter, kind=kind_filter)
    if not listing.items:
        st.info("No requests match.")
    else:
        frame = pd.DataFrame([row(d) for d in listing.items])
        if state == "pending":  # nothing decided yet: the decision columns would be empty
            frame = frame.drop(columns=["Decided by", "Decided at", "Decision reason"])
        else:  # the history: the decision right after what was asked
            first = ["Requested (UTC)", "Kind", "Amount", "State", "Decided by", "Decided at", "Decision reason"]
            frame = frame[first + [c for c in frame.columns if c not in first]]
        st.dataframe(frame, hide_index=True, key=f"{PREFIX}_table", column_config=user_link_column())
    pager(f"{PREFIX}_list", listing.has_more, shown=len(listing.items), total=total)

    # every name the expanders show, in one bounded query (the listing is one page)
    names = directory.names_of(platform.store, me, [u for u in map(user_of, listing.items) if u]) if listing.items else {}
    for document in [d for d in listing.items if d["state"] == "pending"]:
        draw_pending(document, names)
    decided = [d for d in listing.items if d["state"] != "pending"]
    if decided:
        st.subheader("Decision history")
        chosen = st.selectbox("Request", [d["_id"] for d in decided], key=f"{PREFIX}_history_choice",
                              format_func=lambda i: next(f"{d['kind']} · {d['state']} · {when(d['requested_at'])} · {i}"
                                                         for d in decided if d["_id"] == i))
        draw_details(next(d for d in decided if d["_id"] == chosen), names)
