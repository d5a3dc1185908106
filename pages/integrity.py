"""Integrity (admin, support): run platform or per-user checks, findings, history, trend, repairs."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core import integrity
from core.legacy import reconcile as legacy_reconcile
from core.permissions import Permission, can
from ui import get_platform, money, page_state, pager, principal, refusals

PREFIX = "integrity"
TREND_POINTS = 60
LEGACY_ROWS_SHOWN_MAX = 200

platform, me = get_platform(), principal("integrity")
st.title("Integrity")


def findings_table(findings: list[dict], key: str) -> None:
    if not findings:
        st.success("No findings.")
        return
    st.dataframe(pd.DataFrame([{"Severity": f.get("severity"), "Kind": f.get("kind"), "Subject": f.get("subject"),
                                "Collection": f.get("collection") or "", "Field": f.get("field") or "",
                                "Expected": f.get("expected"), "Actual": f.get("actual"), "Difference": f.get("difference"),
                                "Message": f.get("message")} for f in findings]), hide_index=True, key=key)


with refusals():
    run_column, user_column = st.columns(2)
    if run_column.button("Run the platform check", key=f"{PREFIX}_run_platform", type="primary"):
        with st.status("Checking the whole platform…", expanded=True) as status:
            st.write("Scanning the journal, projections, holds, reservations, escrow, fees and the audit chain…")
            report = integrity.check_platform(platform, me)
            status.update(label=f"Platform check done in {report.duration_ms} ms: {report.severity}", state="complete")
        st.session_state[f"{PREFIX}_report"] = report.as_dict()
    user_id = user_column.text_input("User id", key=f"{PREFIX}_user", max_chars=128)
    if user_column.button("Check this user", key=f"{PREFIX}_run_user", disabled=not user_id.strip()):
        with st.spinner("Checking the user…"):
            report = integrity.check_user(platform, me, user_id.strip(), legacy=platform.legacy)
        st.session_state[f"{PREFIX}_report"] = report.as_dict()

    report = st.session_state.get(f"{PREFIX}_report")
    if report:
        counts = report["counts"]
        st.subheader(f"Latest run: {report['scope']} — {'OK' if report['ok'] else report['severity'].upper()}")
        st.caption(f"{counts['entries_checked']} entries and {counts['accounts_checked']} accounts checked; "
                   f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info.")
        findings_table(report["findings"], f"{PREFIX}_findings")
        repairable = sorted({f["account"] for f in report["findings"] if f.get("kind") == "projection_mismatch" and f.get("account")})
        if repairable and can(me, Permission.REQUEST_REPAIR):
            with st.form(f"{PREFIX}_repair"):
                account = st.selectbox("Rebuild this projection from the journal", repairable)
                reason = st.text_input("Reason", max_chars=500)
                if st.form_submit_button("Request repair (needs an approver)"):
                    request = integrity.request_projection_repair(platform, me, account, reason)
                    st.success(f"Repair request {request['_id']} is waiting for approval.")

    st.subheader("Legacy platform")
    if platform.legacy is None:
        st.caption("No legacy database is configured (LEGACY_MONGODB_URI / LEGACY_DB).")
    elif st.button("Reconcile the legacy collections with the ledger", key=f"{PREFIX}_reconcile"):
        with st.status("Reading wallets, crypto_balances, trader_balances and internal_balances…") as status:
            reconciled = legacy_reconcile.reconcile_platform(platform, me)
            status.update(label=f"Reconciled {reconciled.pairs_checked} (user, currency) pairs", state="complete")
        st.session_state[f"{PREFIX}_legacy"] = reconciled.as_dict()
    legacy_report = st.session_state.get(f"{PREFIX}_legacy")
    if legacy_report:
        counts = legacy_report["counts"]
        columns = st.columns(4)
        columns[0].metric("Pairs checked", legacy_report["pairs_checked"])
        columns[1].metric("Drift", counts["drift"])
        columns[2].metric("Float noise (< 1 minor unit)", counts["noise"])
        columns[3].metric("Malformed documents", counts["dirt"])
        if legacy_report["drift"]:
            rows = [{"User": d["user"], "Currency": d["currency"], "Collection": d["collection"], "Field": d["field"],
                     "Expected": money(d["expected"], d["currency"]), "Actual": money(d["actual"], d["currency"]),
                     "Difference": money(d["difference"], d["currency"]), "Compared with": d.get("reference") or ""}
                    for d in legacy_report["drift"][:LEGACY_ROWS_SHOWN_MAX]]
            st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_legacy_drift")
            if counts["drift"] > LEGACY_ROWS_SHOWN_MAX:
                st.caption(f"First {LEGACY_ROWS_SHOWN_MAX} of {counts['drift']}; `python -m core legacy reconcile --json` lists all.")
        if counts["dirt_by_kind"]:
            st.caption("Malformed documents by kind: " + ", ".join(f"{kind} {n}" for kind, n in counts["dirt_by_kind"].items()))
        for finding in legacy_report.get("findings", [])[:LEGACY_ROWS_SHOWN_MAX]:  # wrong even when every copy agrees
            st.error(finding["message"])
        if legacy_report.get("held"):
            st.warning(f"{len(legacy_report['held']):,} documents the bridge cannot read are left for a human decision "
                       "(never rewritten): `python -m core legacy reconcile --json` lists them with their raw values.")
        st.caption("A rebuild of the legacy collections from the ledger is an approval request (`python -m core legacy rebuild`).")

    st.subheader("Trend (platform runs)")
    points = integrity.trend(platform, me, points=TREND_POINTS, scope="platform")
    if points:
        frame = pd.DataFrame([{"run": p["started_at"], "critical": p["critical"], "warning": p["warning"]} for p in points])
        figure = px.line(frame, x="run", y=["critical", "warning"], markers=True, title="Findings per platform run")
        st.plotly_chart(figure, key=f"{PREFIX}_trend")
    else:
        st.write("No platform runs yet.")

    st.subheader("Run history")
    page, page_size = page_state(f"{PREFIX}_history")
    runs = integrity.history(platform, me, page=page, page_size=min(page_size, integrity.HISTORY_PAGE_SIZE_MAX))
    if runs.items:
        st.dataframe(pd.DataFrame([{"Started": r["started_at"], "Scope": r["scope"], "Result": "OK" if r["ok"] else r["severity"],
                                    "Findings": r["counts"]["findings"], "ms": r["duration_ms"], "Run": r["_id"]} for r in runs.items]),
                     hide_index=True, key=f"{PREFIX}_history_table")
    pager(f"{PREFIX}_history", runs.has_more)
