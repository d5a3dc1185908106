"""Flow tests (admin, qa): run payment-flow scenarios in an isolated sandbox, with evidence.

Each scenario runs in its own fresh sandbox store through the production service
functions (core.runner); the console's ledger is never touched, only the run is audited.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core import runner
from ui import get_platform, principal, refusals

PREFIX = "flows"

platform, me = get_platform(), principal("flow_tests")
st.title("Flow tests")
st.caption("Every scenario runs in its own sandbox (a fresh store), never on the live ledger. Runs are audited.")

names = runner.list_scenarios()
chosen = st.multiselect("Scenarios", names, default=names[:3], key=f"{PREFIX}_chosen")
if st.button("Run selected", key=f"{PREFIX}_run", type="primary", disabled=not chosen):
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(done / max(total, 1), text=f"{done}/{total} done" + (f" — running {name}" if name else ""))

    with refusals():
        report = runner.run_scenarios(list(chosen), progress=progress, platform=platform, principal=me)
        st.session_state[f"{PREFIX}_report"] = report.as_dict()

report = st.session_state.get(f"{PREFIX}_report")
if report:
    passed = sum(s["ok"] for s in report["scenarios"])
    (st.success if report["ok"] else st.error)(f"{passed}/{len(report['scenarios'])} scenarios passed in {report['duration_ms']} ms")
    st.download_button("Download JSON report", json.dumps(report, indent=2, sort_keys=True, default=str),
                       file_name="flow-tests.json", mime="application/json", key=f"{PREFIX}_download")
    st.dataframe(pd.DataFrame([{"Scenario": s["name"], "Result": "PASS" if s["ok"] else "FAIL", "Steps": len(s["steps"]),
                                "ms": s["duration_ms"], "Error": s.get("error") or ""} for s in report["scenarios"]]),
                 hide_index=True, key=f"{PREFIX}_summary")
    for scenario in report["scenarios"]:
        with st.expander(f"{'✅' if scenario['ok'] else '❌'} {scenario['name']}"):
            for step in scenario["steps"]:
                st.markdown(f"**{'PASS' if step['ok'] else 'FAIL'} · {step['name']}** — {step['detail']}")
                before, after = step.get("balances_before") or {}, step.get("balances_after") or {}
                rows = [{"Account": account, "Before": json.dumps(before.get(account), default=str),
                         "After": json.dumps(after.get(account), default=str)} for account in sorted(set(before) | set(after))]
                if rows:
                    st.dataframe(pd.DataFrame(rows), hide_index=True)
                st.caption(f"entries written: {step.get('entries_written', 0)} · self-check: "
                           f"{'ok' if (step.get('self_check') or {}).get('ok', True) else step.get('self_check')}")
