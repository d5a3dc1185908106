"""Audit trail (admin, support): filter, page on the server, verify the chain, export CSV.

Event types and actors are picked from the values the trail holds (a family such as
"approval.*" too); user and target match by prefix when they end in "*". The CSV export
belongs to the filter it was prepared for: when the filter changes, it is withdrawn.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core import audit, reports
from core.approvals import view as approvals_view
from core.platform import directory
from core.base.permissions import Permission, can
from console.formatting import amount, when
from console.frame import USER_LINK_COLUMN, console_people, page_state, pager, principal, refusals, user_field, user_link_column, user_url
from console.loading import get_platform

PREFIX = "audit"
EXPORT_ROWS = 5_000  # one download at most; narrow the filter for more
EXPORT_RECHECK_SECONDS = 5  # while a CSV is ready, how often the page checks for new matching events
CSV_KEY, STALE_KEY = f"{PREFIX}_csv", f"{PREFIX}_csv_stale"
ANY = "(any)"
DATA_TEXT_MAX = 300

me = principal("audit_trail")
platform = get_platform()
st.title("Audit trail")


def type_options(types: list[str]) -> list[str]:
    """Every type, preceded by its family ("approval.*") when the family has several."""
    families = sorted({t.split(".", 1)[0] for t in types if "." in t})
    options = [ANY]
    for family in families:
        members = [t for t in types if t.startswith(family + ".")]
        if len(members) > 1:
            options.append(f"{family}.{audit.PREFIX_MARK}")
        options.extend(members)
    return options + [t for t in types if "." not in t]


def data_text(event: dict) -> str:
    """The event's data as short "key: value" text (amounts and reasons stay readable)."""
    data = event.get("data")
    if not isinstance(data, dict):
        return "" if data is None else str(data)[:DATA_TEXT_MAX]
    asset = data.get("asset") if isinstance(data.get("asset"), str) else None

    def shown(key: str, value: object) -> str:
        if key.endswith("_minor") and isinstance(value, int) and not isinstance(value, bool) and asset:
            return f"{key.removesuffix('_minor')}: {amount(value, asset)}"  # decimals with the asset, not minor units
        text = json.dumps(value, default=str, ensure_ascii=False) if isinstance(value, (dict, list)) else value
        return f"{key}: {text}"

    parts = [shown(key, value) for key, value in data.items() if value not in (None, "", [], {})]
    return "; ".join(parts)[:DATA_TEXT_MAX]


def export_panel(audit_filter: audit.AuditFilter, shown_filter: tuple) -> None:
    """The prepared file's download, while it still holds every matching event: withdrawn when
    the filter changed or the filter's count moved since it was made (then the whole page
    reruns, so the table shows the new events too)."""
    prepared = st.session_state.get(CSV_KEY)
    if prepared and prepared["filter"] != shown_filter:
        st.session_state.pop(CSV_KEY, None)  # never serve a file made for another filter
        st.session_state.pop(STALE_KEY, None)
        st.warning("The filter changed since the CSV was prepared: prepare it again for the rows shown.")
        return
    if stale := st.session_state.get(STALE_KEY):
        st.warning(f"{stale} since the CSV was prepared, so it was withdrawn: prepare it again to include them.")
    if not prepared:
        return
    count = reports.count_audit_events(platform, me, audit_filter, limit=EXPORT_ROWS + 1)  # the file's own bound
    if count != prepared["matching"]:
        st.session_state.pop(CSV_KEY, None)
        change = count - prepared["matching"]
        st.session_state[STALE_KEY] = (f"{change:,} new matching event{'' if change == 1 else 's'} arrived" if change > 0 else
                                       f"{-change:,} matching event{'' if change == -1 else 's'} left the trail")
        st.rerun()  # the whole page: the table and its count show what changed
    wanted = "-".join(part for part in (audit_filter.actor, audit_filter.type, audit_filter.user, audit_filter.target) if part)
    file_name = "audit" + (f"-{wanted}" if wanted else "") + ".csv"
    st.download_button("Download CSV", prepared["csv"], file_name=file_name.replace("*", "all").replace("/", "_"),
                       mime="text/csv", key=f"{PREFIX}_download")
    st.caption(f"{prepared['rows']:,} events (at most {EXPORT_ROWS:,}), oldest first, amounts with asset and decimals. "
               "The export itself is audited. The file is withdrawn if matching events arrive.")


with refusals():
    types = reports.audit_field_values(platform, me, "type")
    actors = reports.audit_field_values(platform, me, "actor")
    columns = st.columns(4)
    actor = columns[0].selectbox("Actor", [ANY, *actors], key=f"{PREFIX}_actor")
    event_type = columns[1].selectbox("Event type", type_options(types), key=f"{PREFIX}_type",
                                      help="A family such as approval.* takes every type in it")
    with columns[2]:
        user = user_field(f"{PREFIX}_user", "User", prefix_allowed=True,
                          help="An id in any case, part of an email or name (pick the person), or the start of ids followed by * (u00*)")
    target = columns[3].text_input("Target", key=f"{PREFIX}_target", max_chars=audit.FILTER_TEXT_LENGTH_MAX,
                                   help="Exact target, or its start followed by * (apr_*)")
    today = platform.clock.now().date()
    # The time window is opt-in: without it the newest events page straight off the `seq` index.
    window = None
    if st.checkbox("Only events between two days (UTC)", key=f"{PREFIX}_windowed"):
        window = st.date_input("Between (UTC days, inclusive)", value=(today - timedelta(days=90), today), key=f"{PREFIX}_window")

    since = until = None
    if isinstance(window, (list, tuple)) and len(window) == 2:
        since, until = datetime.combine(window[0], time()), datetime.combine(window[1] + timedelta(days=1), time())
    audit_filter = audit.AuditFilter(actor=None if actor == ANY else actor, type=None if event_type == ANY else event_type,
                                     user=user or None, target=target.strip() or None, since=since, until=until)
    shown_filter = (audit_filter.actor, audit_filter.type, audit_filter.user, audit_filter.target, since, until)
    if st.session_state.get(f"{PREFIX}_filter_seen") != shown_filter:
        st.session_state[f"{PREFIX}_filter_seen"] = shown_filter
        st.session_state[f"{PREFIX}_events_page"] = 0

    page, page_size = page_state(f"{PREFIX}_events")
    events = audit.search_audit(platform, me, audit_filter, page=page, page_size=page_size)
    total = reports.count_audit_events(platform, me, audit_filter)
    people = console_people()
    users = {e.get("user") for e in events.items if e.get("user")}
    names = directory.names_of(platform.store, me, sorted(users)) if can(me, Permission.READ_USERS) else {}
    if events.items:
        st.dataframe(pd.DataFrame([{
            # who, what and whom first: in a narrow window the long target ids and the data scroll into view last
            "Event": f"{e['stream']}/{e['seq']}", "At (UTC)": when(e["at"]), "Type": e["type"], "Actor": approvals_view.display_name(people, e["actor"]),
            "User": f"{names[e['user']]} ({e['user']})" if e.get("user") in names else (e.get("user") or ""),
            USER_LINK_COLUMN: user_url(e["user"]) if e.get("user") else "", "Target": e.get("target"),
            "Role": e.get("role"), "Data": data_text(e),
        } for e in events.items]), hide_index=True, key=f"{PREFIX}_table", column_config=user_link_column())
    else:
        st.info("No events match.")
    pager(f"{PREFIX}_events", events.has_more, shown=len(events.items), total=total)

    verify_column, export_column = st.columns(2)
    if verify_column.button("Verify the whole chain", key=f"{PREFIX}_verify"):
        with st.spinner("Walking the hash chain…"):
            result = audit.verify_audit(platform, me)
        if result.ok:
            st.success(f"Chain verified: {result.events_checked:,} events, no edit, deletion, insertion or reordering.")
        else:
            st.error(f"Chain broken at {result.first_bad or 'the witness'}: {result.problem}")
    witness = audit.witness_status(platform, me)
    if not witness.configured:
        verify_column.caption("No witness file (set LEDGER_AUDIT_WITNESS): deleting the newest events could go unnoticed.")
    elif witness.tail is not None and not witness.tail.ok:
        verify_column.error(f"Witness {witness.path}: {witness.tail.problem}")
    else:
        verify_column.caption(f"Witness {witness.path}: newest recorded event {f'{witness.last_stream}/{witness.last_seq}' if witness.last_seq else '—'}, "
                              "still in the chain.")
    if export_column.button("Prepare CSV export of this filter", key=f"{PREFIX}_prepare"):
        export = audit.export_audit(platform, me, audit_filter, rows_max=EXPORT_ROWS)
        matching = export.matching if export.matching is not None else \
            reports.count_audit_events(platform, me, audit_filter, limit=EXPORT_ROWS + 1)
        st.session_state[CSV_KEY] = {"filter": shown_filter, "csv": export.csv, "rows": export.rows, "matching": matching}
        st.session_state.pop(STALE_KEY, None)
    with export_column:
        ready = bool(st.session_state.get(CSV_KEY))
        st.fragment(export_panel, run_every=EXPORT_RECHECK_SECONDS if ready else None)(audit_filter, shown_filter)
