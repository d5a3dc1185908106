"""Audit trail (admin, support): filter, page on the server, verify the chain, export CSV."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core import audit
from ui import get_platform, page_state, pager, principal, refusals

PREFIX = "audit"
EXPORT_ROWS = 5_000  # one download at most; narrow the filter for more

platform, me = get_platform(), principal("audit_trail")
st.title("Audit trail")

with st.form(f"{PREFIX}_filters"):
    columns = st.columns(4)
    actor = columns[0].text_input("Actor", key=f"{PREFIX}_actor", max_chars=audit.FILTER_TEXT_LENGTH_MAX)
    event_type = columns[1].text_input("Type (exact, e.g. console.login)", key=f"{PREFIX}_type", max_chars=audit.FILTER_TEXT_LENGTH_MAX)
    user = columns[2].text_input("User id", key=f"{PREFIX}_user", max_chars=audit.FILTER_TEXT_LENGTH_MAX)
    target = columns[3].text_input("Target", key=f"{PREFIX}_target", max_chars=audit.FILTER_TEXT_LENGTH_MAX)
    today = platform.clock.now().date()
    window = st.date_input("Between (UTC days, inclusive)", value=(today - timedelta(days=90), today), key=f"{PREFIX}_window")
    if st.form_submit_button("Apply"):
        st.session_state[f"{PREFIX}_events_page"] = 0

since = until = None
if isinstance(window, (list, tuple)) and len(window) == 2:
    since, until = datetime.combine(window[0], time()), datetime.combine(window[1] + timedelta(days=1), time())
audit_filter = audit.AuditFilter(actor=actor.strip() or None, type=event_type.strip() or None, user=user.strip() or None,
                                 target=target.strip() or None, since=since, until=until)

with refusals():
    page, page_size = page_state(f"{PREFIX}_events")
    events = audit.search_audit(platform, me, audit_filter, page=page, page_size=page_size)
    if events.items:
        st.dataframe(pd.DataFrame([{"Seq": e["seq"], "At": e["at"], "Type": e["type"], "Actor": e["actor"], "Role": e.get("role"),
                                    "Target": e.get("target"), "User": e.get("user") or "", "Data": str(e.get("data"))[:200]}
                                   for e in events.items]), hide_index=True, key=f"{PREFIX}_table")
    else:
        st.info("No events match.")
    pager(f"{PREFIX}_events", events.has_more)

    verify_column, export_column = st.columns(2)
    if verify_column.button("Verify the whole chain", key=f"{PREFIX}_verify"):
        with st.spinner("Walking the hash chain…"):
            result = audit.verify_audit(platform, me)
        if result.ok:
            st.success(f"Chain verified: {result.events_checked} events, no edit, deletion, insertion or reordering.")
        else:
            st.error(f"Chain broken at event {result.first_bad_seq}: {result.problem}")
    if export_column.button("Prepare CSV export", key=f"{PREFIX}_prepare"):
        st.session_state[f"{PREFIX}_csv"] = audit.export_audit_csv(platform, me, audit_filter, rows_max=EXPORT_ROWS)
    if csv_text := st.session_state.get(f"{PREFIX}_csv"):
        export_column.download_button("Download CSV", csv_text, file_name="audit.csv", mime="text/csv", key=f"{PREFIX}_download")
        export_column.caption(f"At most {EXPORT_ROWS} events, oldest first; the export itself is audited.")
