"""The console frame (interim): platform balances per asset, read from the ledger."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.accounts import AccountKind
from core.platform import Platform
from core.store import Store


@st.cache_resource
def get_platform() -> Platform:
    return Platform.open(Store.from_environment())


platform = get_platform()
st.set_page_config(page_title="Ledger console", layout="wide")
if platform.store.embedded:
    st.info("Demo store — in memory, nothing is persisted")
st.title("Ledger console")
rows = []
for kind in AccountKind:
    for account_id, minor in platform.ledger.balances_of_kind(kind).items():
        rows.append({"kind": kind.value, "account": account_id, "balance_minor": minor})
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True)
else:
    st.write("The ledger is empty.")
