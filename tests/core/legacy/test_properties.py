"""The legacy bridge over random hostile documents (hypothesis): any mix of `_id` types,
owners, currencies, money values and timestamps is read, reconciled, imported (dry run)
and planned without a crash, and a plan never writes a document it holds or excludes."""

from __future__ import annotations

import json
from datetime import datetime

from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.base.clock import ManualClock
from core.base.errors import LegacyConfigurationError
from core.legacy import bridge
from core.legacy.bridge import SPECS, read_legacy
from core.legacy.opening import import_balances
from core.legacy.rebuild import compute_plan
from core.legacy.reconcile import reconcile
from core.platform import Platform
from tests.helpers import deposit, make_test_store
from tests.principals import ADMIN

INT64 = 2**63 - 1

owners = st.sampled_from(["u1", "u2", "u3", "None", "", "admin_wallet", "PLATFORM_FEES", "bad id", 5, None,
                          {"$gt": ""}, ["u1"], {"id": "u1"}])
currencies = st.sampled_from(["BTC", "btc", " BTC ", "USDT", "USDTTRC20", "GBP", "SOL", "BNB", "", None, 7,
                              {"code": "BTC"}, ["BTC"]])
money = st.one_of(
    st.none(), st.booleans(), st.integers(-INT64, INT64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1,5", "", " ", "abc", "0.123456789", "12.5", "-0.5", "1e3", "NaN", "Infinity", "0"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=9).map(str),
    st.dictionaries(st.sampled_from(["$gt", "v"]), st.integers(0, 9), max_size=1),
    st.lists(st.integers(0, 9), max_size=2),
)
times = st.one_of(st.none(), st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
                  st.sampled_from(["2025-06-01T13:00:00+01:00", "2025-06-01 12:00:00", "last tuesday",
                                   "0001-01-01T00:00:00+01:00", ""]), st.integers(0, 10))
id_kinds = st.sampled_from(["objectid", "text", "int", "document", "none"])


@st.composite
def balance_documents(draw) -> tuple[str, list[dict]]:
    name = draw(st.sampled_from(sorted(SPECS)))
    spec, documents = SPECS[name], []
    for number in range(draw(st.integers(0, 8))):
        document = {spec.owner_field: draw(owners), "currency": draw(currencies)}
        for stored in spec.fields.values():
            if draw(st.booleans()):  # present (possibly null) or absent
                document[stored] = draw(money)
        stamp = draw(times)
        if stamp is not None:
            document[spec.timestamp_fields[0]] = stamp
        kind = draw(id_kinds)
        if kind != "none":  # "none": the store assigns an ObjectId
            document["_id"] = {"objectid": ObjectId(f"{number:024x}"), "text": f"id-{number}", "int": number,
                               "document": {"n": number}}[kind]
        documents.append(document)
    return name, documents


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(collections=st.lists(balance_documents(), min_size=1, max_size=3), batch=st.integers(1, 4))
def test_bridge_never_crashes_and_never_writes_what_it_holds(collections, batch):
    legacy = make_test_store()
    platform = Platform.open(make_test_store(), ManualClock())
    try:
        for name, documents in collections:
            if documents:
                legacy.raw(name).delete_many({})
                legacy.raw(name).insert_many(documents)
        deposit(platform.ledger, "u1", "1", "BTC")
        original = bridge.LEGACY_SCAN_BATCH
        bridge.LEGACY_SCAN_BATCH = batch
        try:
            report = reconcile(platform.store, legacy, platform.registry)
            json.dumps(report.as_dict(), default=str)
            json.dumps(import_balances(platform, ADMIN, legacy, dry_run=True).as_dict(), default=str)
            view = read_legacy(legacy, platform.registry)
        finally:
            bridge.LEGACY_SCAN_BATCH = original
        assert view.documents_read == sum(legacy.raw(name).count_documents({}) for name in SPECS)
        try:
            plan = compute_plan(platform, view)
        except LegacyConfigurationError:
            assert view.documents_read == 0
            return
        untouchable = {(h["collection"], h["document"]) for h in plan.held}
        untouchable |= {(item["collection"], item["document"]) for item in view.excluded}
        written = {(w["collection"], w["document"]) for w in plan.writes}
        assert not written & untouchable
        json.dumps(plan.as_dict(), default=str)
    finally:
        for store in (legacy, platform.store):
            if not store.embedded:
                store.drop()
