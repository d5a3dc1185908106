"""Fees & liquidity (admin): the fee wallet vs the liquidity float per asset, side by side.

The old admin page added the treasury float to fee revenue; here they are two columns
that are never summed, and the chart gives each its own panel and scale (a 0.01 BTC fee
wallet stays visible beside a 40 BTC float). Sweeps and top-ups are approval requests,
not direct moves; the request form keeps what was typed when core refuses it, and warns
before submitting when the request could never complete.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core import reports
from core.approvals import view as approvals_view
from core.base.errors import LedgerError
from core.flows import treasury
from core.ledger import amount as parse_amount
from console.formatting import amount, chart_number, money, when
from console.frame import console_people, principal, refusals
from console.loading import get_platform, load_fee_movements, load_totals

PREFIX = "fees"
PANELS = (("fee_wallet", "Fee wallet", "#2e7d32"), ("liquidity_free", "Liquidity free", "#1f5f8b"),
          ("liquidity_reserved", "Liquidity reserved", "#7e57c2"))
REQUESTS = {"Fee sweep (fee wallet → treasury)": ("treasury.fee_sweep", treasury.request_fee_sweep),
            "Liquidity top-up (treasury → float)": ("treasury.liquidity_topup", treasury.request_liquidity_topup),
            "Liquidity withdrawal (float → treasury)": ("treasury.liquidity_withdrawal", treasury.request_liquidity_withdrawal)}
FIELDS = ("request_kind", "request_asset", "request_amount", "request_reason")

me = principal("fees_liquidity")
platform = get_platform()
st.title("Fees & liquidity")


def panels_figure(row: dict, asset: str) -> go.Figure:
    """One panel per balance, each on its own axis, titled with its name and exact amount.
    The amounts are in the titles (two short lines each), not on the bars: plotly shrinks a
    bar's outside label to the bar's width, to about 5 px in a 900 px window."""
    titles = [f"{title}<br><b>{money(row[key], asset)}</b>" for key, title, _ in PANELS]
    figure = make_subplots(rows=1, cols=len(PANELS), subplot_titles=titles, horizontal_spacing=0.1)
    for column, (key, title, colour) in enumerate(PANELS, start=1):
        value = chart_number(row[key], asset)
        figure.add_bar(x=[title], y=[value], marker_color=colour, hovertext=[f"{money(row[key], asset)} {asset}"],
                       showlegend=False, width=[0.5], row=1, col=column)
        figure.update_yaxes(title_text=asset if column == 1 else None, rangemode="tozero", range=[0, (value or 1) * 1.1],
                            row=1, col=column)
        figure.update_xaxes(showticklabels=False, row=1, col=column)
    figure.update_annotations(font_size=13)  # the subplot titles
    figure.update_layout(title=f"{asset}: each balance on its own scale", height=360, margin={"t": 90, "b": 20, "l": 50, "r": 10})
    return figure


with refusals():
    totals = load_totals(me)
    st.subheader("Fee wallet vs liquidity float")
    st.caption("Fee wallet = platform.fees (revenue). Liquidity = platform.liquidity (free) + "
               "platform.liquidity_reserved (held by open quotes). Never added together. Amounts in each row's asset.")
    rows = [{"Asset": r["asset"], "Fee wallet": money(r["fee_wallet"], r["asset"]),
             "Liquidity (free)": money(r["liquidity_free"], r["asset"]),
             "Liquidity (reserved)": money(r["liquidity_reserved"], r["asset"]),
             "Liquidity total": money(r["liquidity_total"], r["asset"])} for r in totals]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_side_by_side")
        assets = [r["asset"] for r in totals]
        chart_asset = st.selectbox("Chart asset", assets, key=f"{PREFIX}_chart_asset")
        st.plotly_chart(panels_figure(next(r for r in totals if r["asset"] == chart_asset), chart_asset), key=f"{PREFIX}_chart")
    else:
        st.write("No balances yet.")

    st.subheader("Revenue by flow")
    window_days = st.select_slider("Window (days)", options=[7, 30, 60, 90, 180], value=60, key=f"{PREFIX}_window")
    until = platform.clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    by_flow = reports.revenue_by_flow(load_fee_movements(me, until - timedelta(days=window_days), until))
    if by_flow:
        st.dataframe(pd.DataFrame([{"Asset": r["asset"], "Entry type": r["entry_type"], "Kind": r["kind"],
                                    "Amount": amount(r["amount_minor"], r["asset"])} for r in by_flow]),
                     hide_index=True, key=f"{PREFIX}_by_flow")
    else:
        st.write("No fee movements in this window.")

    st.subheader("Recent sweeps and liquidity moves")
    recent = reports.treasury_entries(platform, me)
    if recent:
        people = console_people()
        table = []
        for entry in recent:
            moved = next((p for p in entry["postings"] if p["kind"] in ("platform.fees", "platform.liquidity")), None)
            table.append({"When (UTC)": when(entry["created_at"]), "Type": entry["type"],
                          "Asset": moved["asset"] if moved else "",
                          "Amount": amount(abs(moved["amount_minor"]), moved["asset"]) if moved else "",
                          "Approved by": approvals_view.display_name(people, entry.get("actor")), "Entry": entry["_id"]})
        st.dataframe(pd.DataFrame(table), hide_index=True, key=f"{PREFIX}_recent")
    else:
        st.write("No sweeps or liquidity moves yet.")


# -- the request form: plain keyed widgets (not st.form), so warnings follow what is typed and
#    nothing is cleared by a refusal; only a successful request clears amount and reason.
st.subheader("Request a sweep or liquidity move")
st.caption("These are maker-checker requests: nothing moves until a different admin approves them on the Approvals page.")
if st.session_state.pop(f"{PREFIX}_clear", False):
    for field in ("request_amount", "request_reason"):
        st.session_state[f"{PREFIX}_{field}"] = ""
columns = st.columns([2, 1, 1])
action = columns[0].selectbox("Request", list(REQUESTS), key=f"{PREFIX}_request_kind")
asset = columns[1].selectbox("Asset", list(platform.registry.codes()), key=f"{PREFIX}_request_asset")
value = columns[2].text_input("Amount", key=f"{PREFIX}_request_amount", max_chars=40, placeholder="e.g. 0.015")
reason = st.text_input("Reason", key=f"{PREFIX}_request_reason", max_chars=200)
kind, request_function = REQUESTS[action]

with refusals():
    try:
        typed = parse_amount(value.strip(), asset, platform.registry).minor if value.strip() else None
    except LedgerError:
        typed = None  # the submit shows the refusal in plain words
    for warning in approvals_view.request_warnings(platform, me, console_people(), kind=kind, asset=asset, amount_minor=typed):
        st.warning(warning)

if st.button("Submit request", key=f"{PREFIX}_submit", type="primary"):
    # One key per form content (and per cleared form): a double click replays the same
    # request, while a corrected amount after a refusal is a new request, never a conflict.
    nonce = st.session_state.setdefault(f"{PREFIX}_request_nonce", uuid.uuid4().hex[:12])
    content = hashlib.sha256("\x1f".join((kind, asset, value.strip(), reason)).encode()).hexdigest()[:16]
    with refusals():
        request = request_function(platform, me, asset=asset, amount=value.strip(), reason=reason,
                                   idempotency_key=f"console:{me.name}:{nonce}:{content}")
        st.session_state[f"{PREFIX}_done"] = (f"Request {request['_id']} ({request['kind']}, {amount(request['amount_minor'], asset)}) "
                                              f"is waiting for {request['approvals_required']} approver(s).")
        st.session_state.pop(f"{PREFIX}_request_nonce", None)  # the next request gets a new key
        st.session_state[f"{PREFIX}_clear"] = True
        st.cache_data.clear()
        st.rerun()
if done := st.session_state.pop(f"{PREFIX}_done", None):
    st.success(done)
    st.page_link("pages/approvals.py", label="Open Approvals", icon=":material/approval:")
