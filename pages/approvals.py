"""Approvals (admin): the maker-checker queue and its history — approve or reject with a
reason — and the form to request an adjustment (credit or debit a user), which lands in
the same queue for a second admin.

Core enforces the rules (never your own request, distinct approvers, expiry); this page
shows them before anyone clicks: Approve is disabled on your own request (and says why),
a request that can never gather enough approvers is flagged, a request that moves money
shows the balance it would leave (and says when approving would fail), and every decided
request shows who decided, when and why (core.approvals.view reads what core.approvals
recorded).
"""

from __future__ import annotations

import hashlib
import uuid

import pandas as pd
import streamlit as st

from core import approvals
from core.approvals import view as approvals_view
from core.platform import directory
from core.base.errors import LedgerError
from core.flows import adjustment
from core.ledger import amount as parse_amount
from console.formatting import amount, when
from console.frame import USER_LINK_COLUMN, console_people, link_to_user, page_state, pager, principal, refusals, user_link_column, user_url
from console.loading import get_platform

PREFIX = "approvals"
STATES = ("pending", "approved", "rejected", "expired", "all")
DIRECTIONS = ("Credit the user", "Debit the user")
ADJUST_FIELDS = ("adjust_user", "adjust_amount", "adjust_reason")

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


def draw_adjustment_form() -> None:
    """Request an adjustment: plain keyed widgets (not st.form), so what was typed stays after
    a refusal and the approver warning follows the amount; a success clears the form."""
    if st.session_state.pop(f"{PREFIX}_adjust_clear", False):
        for field in ADJUST_FIELDS:
            st.session_state[f"{PREFIX}_{field}"] = ""
    st.caption("Credits or debits a user's available balance against the platform's adjustments account. "
               "Nothing moves until a different admin approves it below.")
    columns = st.columns([2, 1, 2])
    typed_user = columns[0].text_input("User id", key=f"{PREFIX}_adjust_user", max_chars=200, placeholder="e.g. u0001")
    asset = columns[1].selectbox("Asset", platform.registry.codes(), key=f"{PREFIX}_adjust_asset")
    direction = columns[2].radio("Direction", DIRECTIONS, key=f"{PREFIX}_adjust_direction", horizontal=True)
    columns = st.columns([1, 2])
    value = columns[0].text_input("Amount", key=f"{PREFIX}_adjust_amount", max_chars=40, placeholder="e.g. 1,250.50")
    reason = columns[1].text_input("Reason", key=f"{PREFIX}_adjust_reason", max_chars=200)
    text = value.strip()
    signed = "-" + text if direction == DIRECTIONS[1] and text and text[0] not in "+-" else text
    with refusals():
        try:
            typed = parse_amount(signed, asset, platform.registry).minor if text else None
        except LedgerError:
            typed = None  # the submit shows the refusal in plain words
        for warning in approvals_view.request_warnings(platform, me, people, kind=adjustment.KIND, asset=asset, amount_minor=typed):
            st.warning(warning)
    if not st.button("Request adjustment", key=f"{PREFIX}_adjust_submit", type="primary"):
        return
    if text[:1] in ("+", "-"):
        st.error("Type the amount without a sign: Credit or Debit says which way the money goes.")
        return
    # One key per form content (and per cleared form): a double click replays the same
    # request, a corrected form after a refusal is a new request, never a conflict.
    nonce = st.session_state.setdefault(f"{PREFIX}_adjust_nonce", uuid.uuid4().hex[:12])
    content = hashlib.sha256("\x1f".join((typed_user.strip(), asset, signed, reason)).encode()).hexdigest()[:16]
    with refusals():
        user_id = approvals_view.adjustment_user(platform, me, typed_user)
        request = adjustment.request_adjustment(platform, me, user_id=user_id, asset=asset, amount=signed, reason=reason,
                                                idempotency_key=f"console:{me.name}:adjust:{nonce}:{content}")
        verb = "credit" if request["amount_minor"] > 0 else "debit"
        st.session_state[f"{PREFIX}_done"] = (
            f"Adjustment {request['_id']} ({verb} {amount(abs(request['amount_minor']), asset)} for {user_id}) is waiting for "
            f"{request['approvals_required']} approver(s) other than you.")
        st.session_state.pop(f"{PREFIX}_adjust_nonce", None)  # the next request gets a new key
        st.session_state[f"{PREFIX}_adjust_clear"] = True
        st.cache_data.clear()
        st.rerun()


with st.expander("Request an adjustment (credit or debit a user)",
                 expanded=any(st.session_state.get(f"{PREFIX}_{field}") for field in ADJUST_FIELDS)):
    draw_adjustment_form()


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
        "Request reason": document.get("reason", ""), USER_LINK_COLUMN: user_url(user_id) if user_id else "", "Id": document["_id"],
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


def draw_pending(document: dict, names: dict[str, str], effects: list[approvals_view.BalanceEffect]) -> None:
    """One pending request: details, the balance it would leave, warnings, and the decision
    controls (Approve disabled with the reason when this admin may not approve it)."""
    label = (f"{document['kind']} · {amount(document.get('amount_minor'), document.get('asset')) or '—'} · requested by "
             f"{approvals_view.display_name(people, document['requested_by'])} · {document['_id']}")
    with st.expander(label):
        st.write(f"Why: {document.get('reason') or '—'} · expires {when(document.get('expires_at'))}")
        for effect in effects:
            text = approvals_view.effect_text(effect, platform.registry)
            (st.warning if effect.impossible else st.info)(text)
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
    waiting = [d for d in listing.items if d["state"] == "pending"]
    effects = approvals_view.balance_effects(platform, me, waiting) if waiting else {}  # one read for the page
    for document in waiting:
        draw_pending(document, names, effects.get(document["_id"], []))
    decided = [d for d in listing.items if d["state"] != "pending"]
    if decided:
        st.subheader("Decision history")
        chosen = st.selectbox("Request", [d["_id"] for d in decided], key=f"{PREFIX}_history_choice",
                              format_func=lambda i: next(f"{d['kind']} · {d['state']} · {when(d['requested_at'])} · {i}"
                                                         for d in decided if d["_id"] == i))
        draw_details(next(d for d in decided if d["_id"] == chosen), names)
