"""Flow tests (admin, qa): run payment-flow scenarios in an isolated sandbox, with evidence.

Each scenario runs in its own fresh sandbox store through the production service
functions (core.flowtests.runner); the console's ledger is never touched, only the run is audited.
Evidence is shown as an operator reads it: only the accounts a step changed, before and
after in decimals with the asset and a change column; a failing scenario opens by itself.
Each person's selection and last report are kept for the console process (a reload, a new
tab or a new login shows them again; a restart forgets them — the JSON download keeps a run).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core.approvals import view as approvals_view
from core.flowtests import runner
from core.ledger import parse_account_id
from core.base.errors import LedgerError
from console.formatting import amount, when
from console.frame import principal, refusals
from console.loading import get_platform

PREFIX = "flows"
CHOSEN_KEY, REPORT_KEY = f"{PREFIX}_chosen", f"{PREFIX}_report"
REMEMBERED_PEOPLE_MAX = 50  # console accounts whose last run is kept (the oldest is forgotten first)
NUMBER = re.compile(r"-?\d+")
# "expected (1000000, 99000000), got (1200000, 98800000)" or "expected 5, got 7": bare integers only
EXPECTED_GOT = re.compile(r"expected \(?-?\d+(?:, -?\d+)*\)?, got \(?-?\d+(?:, -?\d+)*\)?")

@dataclass
class Remembered:
    chosen: list[str]
    report: dict | None = None
    finished_at: str = ""


class LastRuns:
    """Per console account, the scenarios picked and the last report, for the whole process
    (a reload starts a new session, which would otherwise forget both). Thread-safe, bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_person: dict[str, Remembered] = {}

    def get(self, name: str) -> Remembered | None:
        with self._lock:
            return self._by_person.get(name)

    def put(self, name: str, chosen: list[str], report: dict | None = None, finished_at: str | None = None) -> None:
        with self._lock:
            previous = self._by_person.pop(name, None)
            self._by_person[name] = Remembered(list(chosen), report if report is not None else (previous.report if previous else None),
                                               finished_at if finished_at is not None else (previous.finished_at if previous else ""))
            while len(self._by_person) > REMEMBERED_PEOPLE_MAX:
                self._by_person.pop(next(iter(self._by_person)))


@st.cache_resource(show_spinner=False)
def last_runs() -> LastRuns:
    return LastRuns()


me = principal("flow_tests")
st.title("Flow tests")
st.caption("Every scenario runs in its own sandbox (a fresh store), never on the live ledger. Runs are audited.")


def asset_of(account_id: str) -> str | None:
    try:
        return parse_account_id(account_id).asset
    except LedgerError:
        return None


def changed_rows(step: dict) -> tuple[list[dict], int]:
    """The accounts this step changed (before, after, change — decimals with the asset) and
    how many it left unchanged."""
    before, after = step.get("balances_before") or {}, step.get("balances_after") or {}
    rows, unchanged = [], 0
    for account in sorted(set(before) | set(after)):
        old = (before.get(account) or {}).get("minor", 0)
        new = (after.get(account) or {}).get("minor", 0)
        if old == new:
            unchanged += 1
            continue
        asset = asset_of(account)
        change = new - old
        rows.append({"Account": approvals_view.account_text(account), "Before": amount(old, asset), "After": amount(new, asset),
                     "Change": ("+" if change > 0 else "") + amount(change, asset)})
    return rows, unchanged


def readable_detail(step: dict) -> str:
    """A step's message with bare numbers after "expected"/"got" shown as decimals of the
    step's asset, when all its accounts share one asset (the runner reports minor units)."""
    detail = str(step.get("detail") or "")
    accounts = set(step.get("balances_before") or {}) | set(step.get("balances_after") or {})
    assets = {asset_of(a) for a in accounts} - {None}
    if len(assets) != 1:
        return detail
    asset = assets.pop()

    def decimals(match: re.Match) -> str:  # only the numbers of "expected X, got Y", never ids or keys
        return NUMBER.sub(lambda number: amount(int(number.group()), asset), match.group())

    return EXPECTED_GOT.sub(decimals, detail)


def draw_step(step: dict, index: int, scenario: str) -> None:
    mark = "PASS" if step["ok"] else "FAIL"
    st.markdown(f"**{mark} · {step['name']}** — {readable_detail(step) or 'done'}")
    rows, unchanged = changed_rows(step)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{PREFIX}_evidence_{scenario}_{index}")
    caption = f"{unchanged} watched account(s) unchanged" if unchanged else "no watched account left unchanged"
    fees = step.get("fees_booked") or {}
    if fees:
        caption += " · fees booked: " + ", ".join(amount(v["minor"], asset) for asset, v in fees.items())
    check = step.get("self_check") or {}
    caption += f" · entries written: {step.get('entries_written', 0)} · self-check: {'ok' if check.get('ok', True) else 'FAILED'}"
    st.caption(caption)
    if not check.get("ok", True):
        for finding in check.get("findings") or []:
            st.error(f"{finding.get('kind')}: {finding.get('message')}")


names = runner.list_scenarios()
memory = last_runs()
mine = memory.get(me.name)
if CHOSEN_KEY in st.session_state:  # this session's selection, as the script holds it
    shown = [name for name in st.session_state[CHOSEN_KEY] if name in names]
else:  # a new session (a reload): the person's last selection, or every scenario when nothing of it is left
    # (a new session never opens on a disabled "Run selected")
    shown = [name for name in (mine.chosen if mine is not None else []) if name in names] or list(names)
if REPORT_KEY not in st.session_state and mine is not None and mine.report is not None:
    st.session_state[REPORT_KEY] = mine.report
    st.session_state[f"{PREFIX}_report_at"] = mine.finished_at


def remember_selection() -> None:
    memory.put(me.name, st.session_state.get(CHOSEN_KEY) or [])


def select_all() -> None:
    st.session_state[CHOSEN_KEY] = list(names)
    remember_selection()


# The default is always the selection the script holds: the browser draws the widget from its
# default whenever it mounts it again (a value set through session state is sent once only), so
# a default that differed would show one selection and run another — "Run selected" greyed out
# on a page that looked fully selected.
chosen = st.multiselect("Scenarios", names, default=shown, key=CHOSEN_KEY, on_change=remember_selection)
count_column, all_column = st.columns([3, 1], vertical_alignment="center")
count_column.caption(f"All {len(names)} scenarios are selected; remove any you do not want." if len(chosen) == len(names) else
                     f"{len(chosen)} of {len(names)} scenarios selected.")
all_column.button("Select all", key=f"{PREFIX}_select_all", on_click=select_all, disabled=len(chosen) == len(names))
if st.button("Run selected", key=f"{PREFIX}_run", type="primary", disabled=not chosen):
    with st.status(f"Running {len(chosen)} scenario(s)…", expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")

        def progress(done: int, total: int, name: str) -> None:
            text = f"{done}/{total} done — running {name}" if name else f"{done}/{total} run — writing the report…"
            bar.progress(done / max(total, 1), text=text)

        st.session_state[REPORT_KEY] = None  # a refused run shows no earlier report (and restores none)
        with refusals():
            report = runner.run_scenarios(list(chosen), progress=progress, platform=get_platform(), principal=me)
            finished_at = when(get_platform().clock.now())
            st.session_state[REPORT_KEY] = report.as_dict()
            st.session_state[f"{PREFIX}_report_at"] = finished_at
            memory.put(me.name, list(chosen), st.session_state[REPORT_KEY], finished_at)
        finished = st.session_state.get(REPORT_KEY)
        if finished:
            bar.progress(1.0, text=f"{len(chosen)}/{len(chosen)} done — report ready")
        status.update(label="Finished" if finished else "Refused", state="complete" if finished else "error", expanded=False)

report = st.session_state.get(REPORT_KEY)
if report:
    passed = sum(s["ok"] for s in report["scenarios"])
    finished_at = st.session_state.get(f"{PREFIX}_report_at")
    (st.success if report["ok"] else st.error)(
        f"{passed}/{len(report['scenarios'])} scenarios passed in {report['duration_ms']:,} ms"
        + (f" · run finished {finished_at}" if finished_at else ""))
    st.download_button("Download JSON report", json.dumps(report, indent=2, sort_keys=True, default=str),
                       file_name="flow-tests.json", mime="application/json", key=f"{PREFIX}_download")
    st.dataframe(pd.DataFrame([{"Scenario": s["name"], "Result": "PASS" if s["ok"] else "FAIL", "Steps": len(s["steps"]),
                                "ms": f"{s['duration_ms']:,}",
                                "Failing step": next((step["name"] for step in s["steps"] if not step["ok"]), ""),
                                "Error": s.get("error") or ""} for s in report["scenarios"]]),
                 hide_index=True, key=f"{PREFIX}_summary")
    for scenario in report["scenarios"]:
        with st.expander(f"{'PASS' if scenario['ok'] else 'FAIL'} · {scenario['name']}", expanded=not scenario["ok"],
                         icon=":material/check_circle:" if scenario["ok"] else ":material/cancel:"):
            if scenario.get("error"):
                st.error(readable_detail({**(scenario["steps"][-1] if scenario["steps"] else {}), "detail": scenario["error"]}))
            for index, step in enumerate(scenario["steps"]):
                draw_step(step, index, scenario["name"])
