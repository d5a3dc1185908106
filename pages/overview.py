"""Overview (admin): per-asset platform totals, alerts, fee revenue over time.

The last integrity run is shown with its time next to the live "books balance" signal;
when they disagree the page says why (the run is older than the problem) and links to
Integrity; when that run found problems, the alert links to that run's findings. The revenue chart draws fees, referral payouts and sweeps in distinct colours
and the net line it promises.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.platform import COUNT_SHOWN_MAX
from core import reports
from console.formatting import chart_number, money, when
from console.frame import RUN_PARAM, principal, refusals
from console.loading import get_platform, load_fee_movements, load_totals

PREFIX = "overview"
TOTAL_LABELS = {
    "user_liabilities": "User liabilities", "fee_wallet": "Fee wallet", "liquidity_free": "Liquidity (free)",
    "liquidity_reserved": "Liquidity (reserved)", "escrow": "Escrow", "external": "External",
}
# Fee-wallet movements by entry type → (chart series, colour); anything else is fee income.
SERIES = {"referral.commission": ("referral payouts", "#ef6c00"), "treasury.fee_sweep": ("sweeps", "#c62828")}
INCOME = ("fees booked", "#2e7d32")
NET_COLOUR = "#1a237e"

me = principal("overview")
platform = get_platform()
st.title("Overview")
now = platform.clock.now()


def revenue_figure(points: list[reports.RevenuePoint], asset: str) -> go.Figure:
    """Per day: income up, payouts and sweeps down (each its own colour), and the net line."""
    days = sorted({p.day for p in points if p.asset == asset})
    series: dict[str, dict[str, int]] = {name: {} for name, _ in [INCOME, *SERIES.values()]}
    for point in points:
        if point.asset == asset:
            name = SERIES.get(point.entry_type, INCOME)[0]
            series[name][point.day] = series[name].get(point.day, 0) + point.amount_minor
    figure = go.Figure()
    for name, colour in [INCOME, *SERIES.values()]:
        figure.add_bar(x=days, y=[chart_number(series[name].get(day, 0), asset) for day in days], name=name, marker_color=colour)
    net = [sum(series[name].get(day, 0) for name in series) for day in days]
    figure.add_scatter(x=days, y=[chart_number(value, asset) for value in net], name="net", mode="lines+markers",
                       line={"color": NET_COLOUR, "width": 3})
    figure.update_layout(barmode="relative", height=400, margin={"t": 70, "b": 30, "l": 50, "r": 10}, legend_title_text="",
                         legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
                         title={"text": f"Fee wallet per day ({asset})<br><sup>net = fees booked − referral payouts − sweeps</sup>",
                                "y": 0.97})
    figure.update_yaxes(title=asset, zeroline=True, zerolinecolor="#888")
    return figure


with refusals():
    alerts = reports.alerts(platform, me)
    totals = load_totals(me)
    unbalanced = [row["asset"] for row in totals if sum(row[k] for k in reports.TOTAL_COLUMNS) != 0]
    columns = st.columns(3)
    pending = alerts.pending_approvals
    columns[0].metric("Pending approvals", "n/a" if pending is None else
                      f"more than {COUNT_SHOWN_MAX:,}" if pending > COUNT_SHOWN_MAX else f"{pending:,}")
    columns[0].page_link("pages/approvals.py", label="Open Approvals", icon=":material/approval:")
    columns[1].metric("Stuck entries", f"{alerts.stuck_entries:,}")
    last = alerts.last_integrity
    count = 0 if last is None else last.get("findings", 0)
    verdict = "none yet" if last is None else ("OK" if last.get("ok") else f"{count:,} finding{'' if count == 1 else 's'}")
    columns[2].metric("Last integrity run", verdict)
    columns[2].caption(f"at {when(last['at'])}" if last else "no platform check has run")
    columns[2].page_link("pages/integrity.py", label="Open Integrity", icon=":material/verified:")
    for note in alerts.notes:
        st.warning(note)
    if last is not None and not last.get("ok") and last.get("run_id"):  # the alert opens the run it is about
        st.page_link("pages/integrity.py", label=f"Open the findings of that run ({when(last['at'])})",
                     icon=":material/manage_search:", query_params={RUN_PARAM: last["run_id"]})
    if unbalanced and (last is None or last.get("ok")):
        since = f"the last integrity run ({when(last['at'])}) found nothing, so the difference appeared after it" if last else \
            "no integrity run has looked at it yet"
        st.error(f"The live totals of {', '.join(unbalanced)} do not balance (the sum of all accounts is not zero), but "
                 f"{since}. Run the platform check on Integrity to see which balance is off and request its repair.")
    elif not unbalanced and last is not None and not last.get("ok"):
        st.info("The per-asset totals below balance (they are summed from the journal), but the last integrity run found "
                "problems they cannot show — a balance edited outside the ledger, a broken chain, an owed commission. "
                "See Integrity; once repaired, run the check again.")

    st.subheader("Per asset")
    if not totals:
        st.write("The ledger is empty.")
    else:
        table = pd.DataFrame([{"Asset": row["asset"], **{label: money(row[key], row["asset"]) for key, label in TOTAL_LABELS.items()},
                               "Books balance": "yes" if row["asset"] not in unbalanced else "NO — see Integrity"} for row in totals])
        st.dataframe(table, hide_index=True, key=f"{PREFIX}_totals")
        st.caption("Amounts in each row's asset. External is the world's side — chain, bank, treasury (negative when money came in). "
                   "Books balance: every account of the asset sums to zero right now.")

    st.subheader("Fee revenue over time")
    window_days = st.select_slider("Window (days)", options=[7, 14, 30, 60, 90], value=60, key=f"{PREFIX}_window")
    until = now.replace(second=0, microsecond=0) + timedelta(minutes=1)  # minute steps keep the cache useful
    points = load_fee_movements(me, until - timedelta(days=window_days), until)
    assets = sorted({p.asset for p in points})
    if not assets:
        st.write("No fee revenue in this window.")
    else:
        asset = st.selectbox("Asset", assets, key=f"{PREFIX}_asset")
        st.plotly_chart(revenue_figure(points, asset), key=f"{PREFIX}_revenue_chart")
