"""Overview (admin): per-asset platform totals, alerts, fee revenue over time."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from core import reports
from ui import chart_number, load_fee_movements, load_totals, get_platform, money, principal, refusals

PREFIX = "overview"
TOTAL_LABELS = {
    "user_liabilities": "User liabilities", "fee_wallet": "Fee wallet", "liquidity_free": "Liquidity (free)",
    "liquidity_reserved": "Liquidity (reserved)", "escrow": "Escrow", "external": "External (chain, bank, treasury)",
}

platform, me = get_platform(), principal("overview")
st.title("Overview")
now = platform.clock.now()


with refusals():
    alerts = reports.alerts(platform, me)
    columns = st.columns(3)
    pending = alerts.pending_approvals
    columns[0].metric("Pending approvals", "n/a" if pending is None else pending)
    columns[1].metric("Stuck entries", alerts.stuck_entries)
    last = alerts.last_integrity
    columns[2].metric("Last integrity run", "none yet" if last is None else ("OK" if last.get("ok") else f"{last.get('findings', '?')} findings"))
    for note in alerts.notes:
        st.warning(note)

    st.subheader("Per asset")
    totals = load_totals(me)
    if not totals:
        st.write("The ledger is empty.")
    else:
        table = pd.DataFrame([{"Asset": row["asset"], **{label: money(row[key], row["asset"]) for key, label in TOTAL_LABELS.items()},
                               "Books balance": "yes" if sum(row[k] for k in reports.TOTAL_COLUMNS) == 0 else "NO"} for row in totals])
        st.dataframe(table, hide_index=True, key=f"{PREFIX}_totals")

    st.subheader("Fee revenue over time")
    window_days = st.select_slider("Window (days)", options=[7, 14, 30, 60, 90], value=60, key=f"{PREFIX}_window")
    until = now.replace(second=0, microsecond=0) + timedelta(minutes=1)  # minute steps keep the cache useful
    points = load_fee_movements(me, until - timedelta(days=window_days), until)
    assets = sorted({p.asset for p in points})
    if not assets:
        st.write("No fee revenue in this window.")
    else:
        asset = st.selectbox("Asset", assets, key=f"{PREFIX}_asset")
        daily = reports.daily_revenue(points, asset)
        frame = pd.DataFrame({"day": [d["day"] for d in daily],
                              "fees booked": [chart_number(d["income_minor"], asset) for d in daily],
                              "referral payouts and sweeps": [chart_number(d["payout_minor"], asset) for d in daily]})
        figure = px.bar(frame, x="day", y=["fees booked", "referral payouts and sweeps"], barmode="relative",
                        title=f"Fee wallet movements per day ({asset}): net = fees booked − payouts − sweeps",
                        color_discrete_sequence=["#2e7d32", "#c62828"])
        figure.update_layout(legend_title_text="", yaxis_title=asset)
        st.plotly_chart(figure, key=f"{PREFIX}_revenue_chart")
