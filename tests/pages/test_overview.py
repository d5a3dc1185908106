"""Overview: per-asset totals equal the ledger, alerts count what is pending, the last
integrity run carries its time and agrees with (or explains) the live books-balance signal,
and the revenue chart draws its series in distinct colours with the net line."""

from __future__ import annotations

import base64
import json

import numpy

from core.ledger import accounts as acct
from tests.pages.conftest import open_page, platform_of, signed_in
from tests.pages.test_fees_liquidity import grouped


def test_overview_totals_and_alerts_match_the_ledger():
    at = open_page(signed_in("admin"), "overview")
    platform = platform_of()
    table = at.dataframe[0].value
    assert set(table["Books balance"]) == {"yes"}
    for row in table.to_dict("records"):
        asset = row["Asset"]
        assert row["Fee wallet"] == grouped(platform.ledger.balance(acct.fees(asset)))
        assert row["Liquidity (free)"] == grouped(platform.ledger.balance(acct.liquidity(asset)))
        assert row["Liquidity (reserved)"] == grouped(platform.ledger.balance(acct.liquidity_reserved(asset)))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pending approvals"] == str(platform.store.collection("approvals").count_documents({"state": "pending"}))
    assert int(metrics["Pending approvals"]) >= 5
    assert metrics["Stuck entries"] == "0"
    assert metrics["Last integrity run"] == "OK"
    assert any(c.value.startswith("at ") and c.value.endswith(" UTC") for c in at.caption)  # the run's time
    assert not at.error


def test_overview_explains_a_live_imbalance_the_last_run_did_not_see_and_links_to_integrity(monkeypatch):
    """Live totals that do not sum to zero beside a last run that said OK: the page says
    the problem is newer than the run, and links to Integrity."""
    from console import loading

    original = loading.load_totals

    def off_by_one(me):
        return [dict(row, fee_wallet=row["fee_wallet"] + 1) if row["asset"] == "USDT" else row for row in original(me)]

    at = open_page(signed_in("admin"), "overview")
    monkeypatch.setattr(loading, "load_totals", off_by_one)
    at.run()
    assert not at.exception
    assert "NO — see Integrity" in set(at.dataframe[0].value["Books balance"])
    assert {m.label: m.value for m in at.metric}["Last integrity run"] == "OK"
    assert any("USDT do not balance" in e.value and "appeared after it" in e.value for e in at.error)
    assert "Open Integrity" in [link.proto.label for link in at.get("page_link")]


def test_overview_revenue_chart_has_distinct_series_and_a_net_line_that_sums():
    at = open_page(signed_in("admin"), "overview")
    charts = at.get("plotly_chart")
    assert charts, "the revenue chart is drawn"
    spec = json.loads(charts[0].proto.spec)
    traces = {trace["name"]: trace for trace in spec["data"]}
    assert set(traces) == {"fees booked", "referral payouts", "sweeps", "net"}
    assert len({traces[n]["marker"]["color"] for n in ("fees booked", "referral payouts", "sweeps")}) == 3
    assert traces["net"]["type"] == "scatter" and "lines" in traces["net"]["mode"]
    assert "net = fees booked − referral payouts − sweeps" in spec["layout"]["title"]["text"]
    bars = [sum(values(traces[n]["y"])) for n in ("fees booked", "referral payouts", "sweeps")]
    net = float(sum(values(traces["net"]["y"])))
    assert abs(net - float(sum(bars))) < 1e-6
    platform = platform_of()
    asset = at.selectbox(key="overview_asset").value
    balance = platform.ledger.balance(acct.fees(asset)).to_decimal()  # the small demo spans less than the window
    assert abs(net - float(balance)) < 1e-6, (asset, net, balance)  # plotted floats; the ledger is exact


def values(encoded):
    """Plotly sends numeric arrays as base64 typed arrays."""
    if isinstance(encoded, list):
        return encoded
    return numpy.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])


def test_overview_last_run_with_one_finding_reads_naturally_and_points_to_integrity():
    from core import integrity
    from core.base.permissions import Principal, Role

    platform = platform_of()
    account = platform.store.collection("balances").find({"kind": "user.available", "asset": "BTC"}, sort=[("_id", 1)], limit=1)[0]
    platform.store.raw("balances").update_one({"_id": account["_id"]}, {"$inc": {"balance_minor": 1}})  # a legacy-style write
    integrity.check_platform(platform, Principal(name="support", role=Role.SUPPORT), full=True)
    at = open_page(signed_in("admin"), "overview")
    assert any(m.label == "Last integrity run" and m.value == "1 finding" for m in at.metric)
    assert any("found 1 problem:" in w.value for w in at.warning)
    assert any("cannot show" in i.value and "Integrity" in i.value for i in at.info)


def test_overview_integrity_alert_links_to_the_run_it_is_about():
    from tests.pages.test_integrity import plant_drift_and_check_as_support

    at = signed_in("admin")
    run_id = plant_drift_and_check_as_support()
    at.run()
    assert not at.exception
    assert any("found 1 problem" in w.value for w in at.warning)
    links = [link.proto for link in at.get("page_link") if link.proto.query_string]
    assert [(link.page, link.query_string) for link in links] == [("integrity", f"run={run_id}")]
