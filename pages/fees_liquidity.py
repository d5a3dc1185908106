"""Fees & liquidity (admin): the fee wallet vs the liquidity float per asset, side by side.

The old admin page added the treasury float to fee revenue; here they are two columns
that are never summed. Sweeps and top-ups are approval requests, not direct moves.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import reports
from core.flows import treasury
from ui import chart_number, load_fee_movements, load_totals, get_platform, money, principal, refusals

PREFIX = "fees"

platform, me = get_platform(), principal("fees_liquidity")
st.title("Fees & liquidity")


with refusals():
    totals = load_totals(me)
    st.subheader("Fee wallet vs liquidity float")
    st.caption("Fee wallet = platform.fees (revenue). Liquidity = platform.liquidity (free) + "
               "platform.liquidity_reserved (held by open quotes). Never added together.")
    rows = [{"Asset": r["asset"], "Fee wallet": money(r["fee_wallet"], r["asset"]),
             "Liquidity (free)": money(r["liquidity_free"], r["asset"]),
             "Liquidity (reserved)": money(r["liquidity_reserved"], r["asset"]),
             "Liquidity total": money(r["liquidity_total"], r["asset"])} for r in totals]
    if rows:
        left, right = st.columns([3, 2])
        left.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_side_by_side")
        assets = [r["asset"] for r in totals]
        chart_asset = right.selectbox("Chart asset", assets, key=f"{PREFIX}_chart_asset")
        row = next(r for r in totals if r["asset"] == chart_asset)
        figure = go.Figure(go.Bar(x=["Fee wallet", "Liquidity (free)", "Liquidity (reserved)"],
                                  y=[chart_number(row[k], chart_asset) for k in ("fee_wallet", "liquidity_free", "liquidity_reserved")],
                                  marker_color=["#2e7d32", "#1f5f8b", "#90caf9"]))
        figure.update_layout(title=f"{chart_asset}: fee wallet vs liquidity", height=320, margin={"t": 40, "b": 20})
        right.plotly_chart(figure, key=f"{PREFIX}_chart")
    else:
        st.write("No balances yet.")

    st.subheader("Revenue by flow")
    window_days = st.select_slider("Window (days)", options=[7, 30, 60, 90, 180], value=60, key=f"{PREFIX}_window")
    until = platform.clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    by_flow = reports.revenue_by_flow(load_fee_movements(me, until - timedelta(days=window_days), until))
    if by_flow:
        st.dataframe(pd.DataFrame([{"Asset": r["asset"], "Entry type": r["entry_type"], "Kind": r["kind"],
                                    "Amount": money(r["amount_minor"], r["asset"])} for r in by_flow]),
                     hide_index=True, key=f"{PREFIX}_by_flow")
    else:
        st.write("No fee movements in this window.")

    st.subheader("Recent sweeps and liquidity moves")
    recent = reports.treasury_entries(platform, me)
    if recent:
        st.dataframe(pd.DataFrame([{"When": e["created_at"], "Type": e["type"], "State": e["state"], "By": e.get("actor"),
                                    "Amount": next((money(abs(p["amount_minor"]), p["asset"]) for p in e["postings"]
                                                    if p["kind"] in ("platform.fees", "platform.liquidity")), "")} for e in recent]),
                     hide_index=True, key=f"{PREFIX}_recent")
    else:
        st.write("No sweeps or liquidity moves yet.")

st.subheader("Request a sweep or liquidity move")
st.caption("These are maker-checker requests: nothing moves until a different admin approves them on the Approvals page.")
REQUESTS = {"Fee sweep (fee wallet → treasury)": treasury.request_fee_sweep,
            "Liquidity top-up (treasury → float)": treasury.request_liquidity_topup,
            "Liquidity withdrawal (float → treasury)": treasury.request_liquidity_withdrawal}
with st.form(f"{PREFIX}_request", clear_on_submit=True):
    columns = st.columns([2, 1, 1])
    action = columns[0].selectbox("Request", list(REQUESTS), key=f"{PREFIX}_request_kind")
    asset = columns[1].selectbox("Asset", list(platform.registry.codes()), key=f"{PREFIX}_request_asset")
    value = columns[2].text_input("Amount", key=f"{PREFIX}_request_amount", max_chars=40)
    reason = st.text_input("Reason", key=f"{PREFIX}_request_reason", max_chars=200)
    submitted = st.form_submit_button("Submit request")
if submitted:
    key = st.session_state.setdefault(f"{PREFIX}_request_key", f"console:{me.name}:{uuid.uuid4().hex}")
    with refusals():
        request = REQUESTS[action](platform, me, asset=asset, amount=value.strip(), reason=reason, idempotency_key=key)
        st.session_state.pop(f"{PREFIX}_request_key", None)  # the next request gets a new key
        st.success(f"Request {request['_id']} ({request['kind']}, {money(request['amount_minor'], asset)} {asset}) "
                   f"is waiting for {request['approvals_required']} approver(s).")
