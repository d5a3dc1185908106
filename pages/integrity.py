"""Integrity (admin, support): run platform or per-user checks, findings, history, trend, repairs.

Findings name the person and the balance ("Ada Walker (u0044) · available BTC"), show
amounts in decimals with the asset and the full message, and link to User lookup.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import directory, integrity
from core.legacy import reconcile as legacy_reconcile
from core.permissions import Permission, can
from ui import (amount, get_platform, page_state, pager, principal, readable_account, refusals, show_findings, user_link_column,
                user_url, when)

PREFIX = "integrity"
TREND_POINTS = 60
LEGACY_ROWS_SHOWN_MAX = 200
SEVERITY_COLOURS = {"critical": "#c62828", "warning": "#ef6c00"}

me = principal("integrity")
platform = get_platform()
st.title("Integrity")


def names_for(user_ids: list[str]) -> dict[str, str]:
    """Names beside ids (the directory, one query); empty when the role may not read users."""
    return directory.names_of(platform.store, me, [u for u in user_ids if u]) if can(me, Permission.READ_USERS) else {}


def trend_figure(points: list[dict]) -> go.Figure:
    """Findings per platform run: stacked bars per severity on a whole-number axis from 0,
    one bar per run (so a clean run after a fix shows as an empty slot labelled OK)."""
    runs = [f"{p['started_at']:%Y-%m-%d %H:%M} UTC" for p in points]
    figure = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():  # each bar labelled: 1 stays readable beside 3,000
        figure.add_bar(x=runs, y=[p[severity] for p in points], name=severity, marker_color=colour,
                       text=[f"{p[severity]:,}" if p[severity] else "" for p in points], textposition="outside", cliponaxis=False)
    figure.add_scatter(x=runs, y=[0 for _ in points], mode="markers+text", name="clean run",
                       text=["OK" if p["ok"] else "" for p in points], textposition="top center",
                       marker={"color": "#2e7d32", "size": [10 if p["ok"] else 0 for p in points]})
    top = max([p["critical"] + p["warning"] for p in points] + [1])
    figure.update_layout(barmode="stack", title="Findings per platform run (critical and warning)", height=340,
                         margin={"t": 50, "b": 40}, legend_title_text="")
    figure.update_yaxes(title="findings", rangemode="tozero", range=[0, top * 1.15 + 1], tickformat="d",
                        dtick=1 if top <= 10 else None)  # whole numbers only; plotly picks round steps above ten
    figure.update_xaxes(type="category", title="run")
    return figure


with refusals():
    run_column, user_column = st.columns(2)
    if run_column.button("Run the platform check", key=f"{PREFIX}_run_platform", type="primary"):
        with st.status("Checking the whole platform…", expanded=True) as status:
            st.write("Scanning the journal, projections, holds, reservations, escrow, fees and the audit chain…")
            report = integrity.check_platform(platform, me)
            status.update(label=f"Platform check done in {report.duration_ms:,} ms: {report.severity}", state="complete")
        st.session_state[f"{PREFIX}_report"] = report.as_dict()
    user_id = user_column.text_input("User id", key=f"{PREFIX}_user", max_chars=128)
    if user_column.button("Check this user", key=f"{PREFIX}_run_user", disabled=not user_id.strip()):
        st.session_state.pop(f"{PREFIX}_report", None)  # a refusal must not leave the previous verdict on screen
        with st.spinner("Checking the user…"):
            report = integrity.check_user(platform, me, user_id.strip(), legacy=platform.legacy)
        st.session_state[f"{PREFIX}_report"] = report.as_dict()

with refusals():
    report = st.session_state.get(f"{PREFIX}_report")
    if report:
        counts = report["counts"]
        scope = report["scope"]
        st.subheader(f"Latest run: {scope} at {when(report['started_at'])} — {'OK' if report['ok'] else report['severity'].upper()}")
        st.caption(f"{counts['entries_checked']:,} entries and {counts['accounts_checked']:,} accounts checked; "
                   f"{counts['critical']:,} critical, {counts['warning']:,} warning, {counts['info']:,} info.")
        names = names_for([f.get("user") for f in report["findings"]] + [scope.removeprefix("user:")])
        show_findings(report["findings"], names, key=f"{PREFIX}_findings")
        repairable = sorted({f["account"] for f in report["findings"] if f.get("kind") == "projection_mismatch" and f.get("account")})
        if repairable and can(me, Permission.REQUEST_REPAIR):
            with st.form(f"{PREFIX}_repair"):
                account = st.selectbox("Rebuild this balance from the journal", repairable, key=f"{PREFIX}_repair_account",
                                       format_func=lambda a: readable_account(a, names))
                reason = st.text_input("Reason", max_chars=500, key=f"{PREFIX}_repair_reason")
                submitted = st.form_submit_button("Request repair (needs an approver)")
            if submitted:
                request = integrity.request_projection_repair(platform, me, account, reason)
                st.success(f"Repair request {request['_id']} ({readable_account(account, names)}) is waiting for "
                           f"approval by an admin other than {request['requested_by']}.")
                if can(me, Permission.APPROVE):
                    st.page_link("pages/approvals.py", label="Open Approvals", icon=":material/approval:")

with refusals():
    st.subheader("Legacy platform")
    if platform.legacy is None:
        st.caption("No legacy database is configured (LEGACY_MONGODB_URI / LEGACY_DB).")
    elif st.button("Reconcile the legacy collections with the ledger", key=f"{PREFIX}_reconcile"):
        with st.status("Reading wallets, crypto_balances, trader_balances and internal_balances…") as status:
            reconciled = legacy_reconcile.reconcile_platform(platform, me)
            status.update(label=f"Reconciled {reconciled.pairs_checked:,} (user, currency) pairs", state="complete")
        st.session_state[f"{PREFIX}_legacy"] = reconciled.as_dict()
    legacy_report = st.session_state.get(f"{PREFIX}_legacy")
    if legacy_report:
        counts = legacy_report["counts"]
        columns = st.columns(4)
        columns[0].metric("Pairs checked", f"{legacy_report['pairs_checked']:,}")
        columns[1].metric("Drift", f"{counts['drift']:,}")
        columns[2].metric("Float noise (< 1 smallest unit)", f"{counts['noise']:,}")
        columns[3].metric("Malformed documents", f"{counts['dirt']:,}")
        if legacy_report["drift"]:
            shown = legacy_report["drift"][:LEGACY_ROWS_SHOWN_MAX]
            people = names_for([d["user"] for d in shown])
            rows = [{"User": f"{people[d['user']]} ({d['user']})" if d["user"] in people else d["user"],
                     "Currency": d["currency"], "Collection": d["collection"], "Field": d["field"],
                     "Expected": amount(d["expected"], d["currency"]), "Actual": amount(d["actual"], d["currency"]),
                     "Difference": amount(d["difference"], d["currency"]), "Compared with": d.get("reference") or "",
                     "Open user": user_url(d["user"])} for d in shown]
            st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_legacy_drift", column_config=user_link_column())
            if counts["drift"] > LEGACY_ROWS_SHOWN_MAX:
                st.caption(f"First {LEGACY_ROWS_SHOWN_MAX:,} of {counts['drift']:,}; `python -m core legacy reconcile --json` lists all.")
        if counts["dirt_by_kind"]:
            st.caption("Malformed documents by kind: " + ", ".join(f"{kind} {n:,}" for kind, n in counts["dirt_by_kind"].items()))
        for finding in legacy_report.get("findings", [])[:LEGACY_ROWS_SHOWN_MAX]:  # wrong even when every copy agrees
            st.error(finding["message"])
        if legacy_report.get("held"):
            st.warning(f"{len(legacy_report['held']):,} documents the bridge cannot read are left for a human decision "
                       "(never rewritten): `python -m core legacy reconcile --json` lists them with their raw values.")
        for finding in legacy_report.get("findings", [])[:LEGACY_ROWS_SHOWN_MAX]:  # wrong even when every copy agrees
            st.error(finding["message"])
        if legacy_report.get("held"):
            st.warning(f"{len(legacy_report['held']):,} documents the bridge cannot read are left for a human decision "
                       "(never rewritten): `python -m core legacy reconcile --json` lists them with their raw values.")
        st.caption("A rebuild of the legacy collections from the ledger is an approval request (`python -m core legacy rebuild`).")

with refusals():
    st.subheader("Trend (platform runs)")
    points = integrity.trend(platform, me, points=TREND_POINTS, scope="platform")
    if points:
        st.plotly_chart(trend_figure(points), key=f"{PREFIX}_trend")
    else:
        st.write("No platform runs yet.")

    st.subheader("Run history")
    page, page_size = page_state(f"{PREFIX}_history")
    runs = integrity.history(platform, me, page=page, page_size=min(page_size, integrity.HISTORY_PAGE_SIZE_MAX))
    if runs.items:
        st.dataframe(pd.DataFrame([{"Started": when(r["started_at"]), "Scope": r["scope"], "By": r.get("actor") or "",
                                    "Result": "OK" if r["ok"] else r["severity"], "Findings": f"{r['counts']['findings']:,}",
                                    "ms": f"{r['duration_ms']:,}", "Run": r["_id"]} for r in runs.items]),
                     hide_index=True, key=f"{PREFIX}_history_table")
    pager(f"{PREFIX}_history", runs.has_more, shown=len(runs.items))
