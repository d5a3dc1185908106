"""Integrity (admin, support): run platform or per-user checks, findings, history, trend, repairs.

Findings name the person and the balance ("Ada Walker (u0044) · available BTC"), show
amounts in decimals with the asset and the full message, and link to User lookup. Any
stored run opens from the run history (or from a link, `?run=<id>`: the Overview's alert),
with its findings; a run says whether it was incremental and what it covered.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import integrity
from core.approvals import view as approvals_view
from core.platform import directory
from core.legacy import reconcile as legacy_reconcile
from core.base.permissions import Permission, Role, can
from console.findings import show_findings
from console.formatting import amount, readable_account, when
from console.frame import RUN_PARAM, console_people, page_state, pager, principal, refusals, user_field, user_link_column, user_url
from console.loading import get_platform

PREFIX = "integrity"
TREND_POINTS = 60
LEGACY_ROWS_SHOWN_MAX = 200
SEVERITY_COLOURS = {"critical": "#c62828", "warning": "#ef6c00"}
REPORT_KEY = f"{PREFIX}_report"  # the run on screen (a check just run, or one opened from the history)
OPEN_KEY = f"{PREFIX}_open_run"  # the run id asked for (history pick or ?run= link)

me = principal("integrity")
platform = get_platform()
people = console_people()
st.title("Integrity")


def names_for(user_ids: list[str]) -> dict[str, str]:
    """Names beside ids (the directory, one query); empty when the role may not read users."""
    return directory.names_of(platform.store, me, [u for u in user_ids if u]) if can(me, Permission.READ_USERS) else {}


def run_labels(points: list[dict]) -> list[str]:
    """One distinct axis label per run: its time to the second, numbered when two runs share it."""
    labels, seen = [], {}
    for point in points:
        label = f"{point['started_at']:%m-%d %H:%M:%S}"
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return labels


def trend_figure(points: list[dict]) -> go.Figure:
    """Findings per platform run: stacked bars per severity on a whole-number axis from 0,
    one bar per run (each run its own slot, so a clean run after a fix shows as an empty slot
    labelled OK and never shares a slot with a critical one)."""
    runs = run_labels(points)
    hover = [f"{p['run_id']}<br>{when(p['started_at'])}" for p in points]
    figure = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():  # each bar labelled: 1 stays readable beside 3,000
        figure.add_bar(x=runs, y=[p[severity] for p in points], name=severity, marker_color=colour, hovertext=hover,
                       text=[f"{p[severity]:,}" if p[severity] else "" for p in points], textposition="outside", cliponaxis=False)
    figure.add_scatter(x=runs, y=[0 for _ in points], mode="markers+text", name="clean run", hovertext=hover,
                       text=["OK" if p["ok"] else "" for p in points], textposition="top center",
                       marker={"color": "#2e7d32", "size": [10 if p["ok"] else 0 for p in points]})
    top = max([p["critical"] + p["warning"] for p in points] + [1])
    figure.update_layout(barmode="stack", title="Findings per platform run (critical and warning)", height=340,
                         margin={"t": 50, "b": 40}, legend_title_text="")
    figure.update_yaxes(title="findings", rangemode="tozero", range=[0, top * 1.15 + 1], tickformat="d",
                        dtick=1 if top <= 10 else None)  # whole numbers only; plotly picks round steps above ten
    figure.update_xaxes(type="category", title="run (UTC)")
    return figure


def scope_text(scope: str, names: dict[str, str]) -> str:
    """"platform", or "user Ada Walker (u0044)"."""
    user_id = scope.removeprefix("user:")
    if user_id == scope:
        return scope
    return f"user {names[user_id]} ({user_id})" if user_id in names else f"user {user_id}"


def coverage(report: dict) -> str:
    """What a run looked at, in words: an incremental run says it verified only what changed."""
    counts = report["counts"]
    entries, accounts = f"{counts['entries_checked']:,}", f"{counts['accounts_checked']:,}"
    if report["scope"] != "platform":
        return f"Checked this user's {entries} entries and {accounts} accounts."
    if report.get("mode") == "incremental":
        changed = (f"{entries} entries journaled and {accounts} accounts changed since then"
                   if counts["entries_checked"] or counts["accounts_checked"] else "nothing had changed since then")
        return (f"Incremental check: it verified only what changed since the last verified anchor ({changed}); "
                "everything before was verified by earlier runs and is pinned by that anchor. "
                + ("Run a full check to verify the whole journal again." if me.role == Role.ADMIN else ""))
    return f"Full check: the whole journal ({entries} entries), {accounts} accounts, holds, quotes, escrow, fees and the audit chain."


def draw_run(report: dict) -> None:
    """One run: verdict, who and when, what it covered, notes, findings, repair requests."""
    counts, scope = report["counts"], report["scope"]
    names = names_for([f.get("user") for f in report["findings"]] + [scope.removeprefix("user:")])
    verdict = "OK" if report["ok"] else report["severity"].upper()
    by = f" by {approvals_view.display_name(people, report['actor'])}" if report.get("actor") else ""
    st.subheader(f"Run: {scope_text(scope, names)} at {when(report['started_at'])}{by} — {verdict}")
    st.caption(f"{coverage(report)} {counts['critical']:,} critical, {counts['warning']:,} warning, {counts['info']:,} info"
               f" · run {report.get('run_id') or 'not stored'}.")
    for note in report.get("notes") or []:
        st.caption(f"Note: {note}.")
    if report.get("findings_truncated"):
        st.caption(f"The run stored its first {integrity.FINDINGS_STORED_MAX:,} findings of {counts['findings']:,}.")
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


def show(report: dict) -> None:
    st.session_state[REPORT_KEY] = report
    st.session_state[OPEN_KEY] = report.get("run_id")


def open_from_history() -> None:
    st.session_state[OPEN_KEY] = st.session_state.get(f"{PREFIX}_history_open") or None


# A link (?run=<id>, e.g. from the Overview's alert) opens that run once; later picks take over.
linked = st.query_params.get(RUN_PARAM)
if linked and st.session_state.get(f"{PREFIX}_linked") != linked:
    st.session_state[f"{PREFIX}_linked"] = linked
    st.session_state[OPEN_KEY] = linked

with refusals():
    run_column, user_column = st.columns(2)
    if run_column.button("Run the platform check", key=f"{PREFIX}_run_platform", type="primary",
                         help="Verifies what changed since the last verified anchor (a full check when anything was wrong)"):
        with st.status("Checking the platform…", expanded=True) as status:
            st.write("Scanning the journal, projections, holds, reservations, escrow, fees and the audit chain…")
            report = integrity.check_platform(platform, me)
            status.update(label=f"Platform check ({report.mode}) done in {report.duration_ms:,} ms: {report.severity}",
                          state="complete")
        show({**report.as_dict(), "actor": me.name})
    if me.role == Role.ADMIN and run_column.button("Run a full check", key=f"{PREFIX}_run_full",
                                                   help="Re-verifies the whole journal and the audit chain (slower)"):
        with st.status("Checking the whole platform…", expanded=True) as status:
            st.write("Re-verifying every entry, projection and the whole audit chain…")
            report = integrity.check_platform(platform, me, full=True)
            status.update(label=f"Full platform check done in {report.duration_ms:,} ms: {report.severity}", state="complete")
        show({**report.as_dict(), "actor": me.name})
    with user_column:
        user_id = user_field(f"{PREFIX}_user", "User — id, email or name",
                             help="An id in any case, or part of an email or name to pick the person from the matches")
    if user_column.button("Check this user", key=f"{PREFIX}_run_user", disabled=not user_id):
        st.session_state.pop(REPORT_KEY, None)  # a refusal must not leave the previous verdict on screen
        st.session_state.pop(OPEN_KEY, None)
        with st.spinner("Checking the user…"):
            report = integrity.check_user(platform, me, user_id, legacy=platform.legacy)
        show({**report.as_dict(), "actor": me.name})

with refusals():
    wanted = st.session_state.get(OPEN_KEY)
    report = st.session_state.get(REPORT_KEY)
    if wanted and (report is None or report.get("run_id") != wanted):
        st.session_state.pop(OPEN_KEY, None)  # a run that does not exist is said once, not on every rerun
        stored = integrity.get_run(platform, me, wanted)
        report = {**stored, "run_id": stored["_id"]}
        show(report)
    if report:
        draw_run(report)

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
            legacy_people = names_for([d["user"] for d in shown])
            rows = [{"User": f"{legacy_people[d['user']]} ({d['user']})" if d["user"] in legacy_people else d["user"],
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
    run_names = names_for([r["scope"].removeprefix("user:") for r in runs.items if r["scope"].startswith("user:")])
    labels = {r["_id"]: f"{when(r['started_at'])} · {scope_text(r['scope'], run_names)} · {'OK' if r['ok'] else r['severity']} "
                        f"({r['counts']['findings']:,} finding{'' if r['counts']['findings'] == 1 else 's'})" for r in runs.items}
    if runs.items:
        st.dataframe(pd.DataFrame([{"Started": when(r["started_at"]), "Scope": scope_text(r["scope"], run_names),
                                    "Mode": r.get("mode") or "full", "By": approvals_view.display_name(people, r.get("actor")),
                                    "Result": "OK" if r["ok"] else r["severity"], "Findings": f"{r['counts']['findings']:,}",
                                    "ms": f"{r['duration_ms']:,}", "Run": r["_id"]} for r in runs.items]),
                     hide_index=True, key=f"{PREFIX}_history_table")
        st.selectbox("Open a run's findings", ["", *labels], key=f"{PREFIX}_history_open", on_change=open_from_history,
                     format_func=lambda run_id: labels.get(run_id, "— pick a run from this page —"))
    pager(f"{PREFIX}_history", runs.has_more, shown=len(runs.items))
