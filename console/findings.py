"""Integrity findings as operators read them: a table with names, decimal amounts and links
to users, and the full messages.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from console.formatting import amount, readable_account
from console.frame import USER_LINK_COLUMN, user_link_column, user_url


FINDINGS_SHOWN_MAX = 500  # rows of one findings table (the run's counts stay exact)


FULL_MESSAGES_OPEN_MAX = 5  # up to this many findings, their full messages are shown open


def finding_message(finding: dict, names: dict[str, str]) -> str:
    """The finding's full message with its account named and, where a number is one of the
    finding's own amounts, that amount in decimals with the asset."""
    message = str(finding.get("message") or "")
    asset = finding.get("asset")
    if finding.get("account"):
        message = message.replace(finding["account"], readable_account(finding["account"], names))
    if asset:  # the stored and expected balances only: a small difference could equal a version number
        for name in ("expected", "actual"):
            value = finding.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                message = re.sub(rf"(?<![\w.])(?<!version ){re.escape(str(value))}(?![\w.])", amount(value, asset), message)
    return message


def findings_frame(findings: list[dict], names: dict[str, str]) -> pd.DataFrame:
    """Findings as operators read them: who (name and id), which balance, decimal amounts
    with the asset, the full message, and a link to the user."""
    rows = []
    for finding in findings[:FINDINGS_SHOWN_MAX]:
        asset = finding.get("asset")

        def value(name: str) -> str:
            number = finding.get(name)
            if isinstance(number, int) and not isinstance(number, bool) and asset:
                return amount(number, asset)
            return "" if number is None else str(number)

        user_id = finding.get("user")
        rows.append({
            "Severity": finding.get("severity"), "Kind": str(finding.get("kind") or "").replace("_", " "),
            "Account": readable_account(finding.get("account"), names) or str(finding.get("subject") or ""),
            "Collection": finding.get("collection") or "", "Field": finding.get("field") or "",
            "Expected": value("expected"), "Actual": value("actual"), "Difference": value("difference"),
            "Message": finding_message(finding, names),
            USER_LINK_COLUMN: user_url(user_id) if user_id else "",  # never a grey "None"
        })
    return pd.DataFrame(rows)


def show_findings(findings: list[dict], names: dict[str, str], key: str) -> None:
    """The findings table (full messages, links to users) or a plain "no findings"."""
    if not findings:
        st.success("No findings.")
        return
    frame = findings_frame(findings, names)
    frame = frame.drop(columns=[c for c in ("Collection", "Field", USER_LINK_COLUMN)  # ledger-only, or no user to open
                                if not frame[c].astype(bool).any()])
    st.dataframe(frame, hide_index=True, key=key,
                 column_config={"Message": st.column_config.TextColumn("Message", width="large"), **user_link_column()})
    if len(findings) > FINDINGS_SHOWN_MAX:
        st.caption(f"First {FINDINGS_SHOWN_MAX:,} of {len(findings):,} findings.")
    with st.expander("Full messages", expanded=len(findings) <= FULL_MESSAGES_OPEN_MAX):
        for finding in findings[:FINDINGS_SHOWN_MAX]:
            st.markdown(f"- **{finding.get('severity')}** · {finding_message(finding, names)}")
