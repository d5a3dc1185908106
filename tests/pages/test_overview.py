"""Overview: per-asset totals equal the ledger, alerts count what is pending, revenue chart."""

from __future__ import annotations

import base64
import json

import numpy

from core.ledger import accounts as acct
from tests.pages.conftest import open_page, platform_of, signed_in


def test_overview_totals_and_alerts_match_the_ledger():
    at = open_page(signed_in("admin"), "overview")
    platform = platform_of()
    table = at.dataframe[0].value
    assert set(table["Books balance"]) == {"yes"}
    for row in table.to_dict("records"):
        asset = row["Asset"]
        assert row["Fee wallet"] == platform.ledger.balance(acct.fees(asset)).text()
        assert row["Liquidity (free)"] == platform.ledger.balance(acct.liquidity(asset)).text()
        assert row["Liquidity (reserved)"] == platform.ledger.balance(acct.liquidity_reserved(asset)).text()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pending approvals"] == str(platform.store.collection("approvals").count_documents({"state": "pending"}))
    assert int(metrics["Pending approvals"]) >= 5
    assert metrics["Stuck entries"] == "0"
    assert metrics["Last integrity run"] == "OK"


def test_overview_revenue_chart_sums_to_the_fee_movements():
    at = open_page(signed_in("admin"), "overview")
    charts = at.get("plotly_chart")
    assert charts, "the revenue chart is drawn"
    spec = json.loads(charts[0].proto.spec)
    assert spec["data"][0]["type"] == "bar"
    assert "Fee wallet movements per day" in spec["layout"]["title"]["text"]
    platform = platform_of()
    asset = at.selectbox(key="overview_asset").value
    net = sum(float(sum(values(trace["y"]))) for trace in spec["data"])
    balance = platform.ledger.balance(acct.fees(asset)).to_decimal()  # the small demo spans less than the window
    assert abs(net - float(balance)) < 1e-6, (asset, net, balance)  # plotted floats; the ledger is exact


def values(encoded):
    """Plotly sends numeric arrays as base64 typed arrays."""
    if isinstance(encoded, list):
        return encoded
    return numpy.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])
