"""core.audit's export (issue 22): what a prepared CSV accounts for, so a page can withdraw it
when matching events arrive; the filter's own matching rule; amounts with asset and decimals."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from core.audit import AuditFilter, export_audit, readable_amounts
from core.base.errors import InvalidArgumentError, InvalidFilterError, PermissionDeniedError
from core.ledger import DEFAULT_REGISTRY
from tests.principals import ADMIN, QA


def _append(platform, **fields) -> None:
    platform.ledger.audit.append(**{"type": "test.event", "actor": "bob", "role": "admin", "target": "t", **fields})
    platform.clock.advance(timedelta(minutes=1))


def test_export_audit_counts_what_the_file_accounts_for(platform):
    for user in ("u1", "u1", "u2"):
        _append(platform, user=user, data={"asset": "BTC", "amount_minor": 150_000_000})
    export = export_audit(platform, ADMIN, AuditFilter(user="u1"))
    rows = list(csv.DictReader(io.StringIO(export.csv)))
    assert (export.rows, export.matching, len(rows)) == (2, 2, 2)  # the export's own event has no user: not counted
    assert rows[0]["data"] == '{"amount": "1.50000000 BTC", "asset": "BTC"}'
    own = export_audit(platform, ADMIN, AuditFilter(actor=ADMIN.name))  # the first export's event matches this one
    assert (own.rows, own.matching) == (1, 2)  # one in the file, plus this export's own event
    assert export_audit(platform, ADMIN, AuditFilter(type="test.event"), rows_max=2).matching is None  # cut: no promise


def test_audit_filter_matches_like_its_query():
    at = datetime(2026, 11, 1, 12, 0)
    event = {"actor": "alice", "type": "approval.approved", "target": "apr_1", "user": None, "at": at}
    assert AuditFilter(actor="alice", type="approval.*").matches(event)
    assert AuditFilter(target="apr_*", since=at, until=at + timedelta(seconds=1)).matches(event)
    assert not AuditFilter(user="u1").matches(event)
    assert not AuditFilter(type="approval").matches(event)  # exact unless it ends in *
    assert not AuditFilter(until=at).matches(event)  # until is exclusive
    with pytest.raises(InvalidFilterError):
        AuditFilter(actor={"$ne": ""}).matches(event)  # type: ignore[arg-type]


def test_readable_amounts_writes_known_assets_in_decimals_and_leaves_the_rest():
    value = {"asset": "GBP", "amount_minor": 1234, "fee_minor": None, "count": 3,
             "legs": [{"asset": "BTC", "amount_minor": 1}, {"amount_minor": 5}], "other_minor": True}
    assert readable_amounts(value, DEFAULT_REGISTRY) == {
        "asset": "GBP", "amount": "12.34 GBP", "fee": None, "count": 3,
        "legs": [{"asset": "BTC", "amount": "0.00000001 BTC"}, {"amount": "0.05 GBP"}], "other_minor": True}
    assert readable_amounts({"amount_minor": 5}, DEFAULT_REGISTRY) == {"amount_minor": 5}  # no asset: as stored
    assert readable_amounts({"asset": "XYZ", "amount_minor": 5}, DEFAULT_REGISTRY) == {"asset": "XYZ", "amount_minor": 5}
    assert readable_amounts({"asset": "BTC", "amount_minor": 2**70}, DEFAULT_REGISTRY) == {"asset": "BTC", "amount_minor": 2**70}


def test_export_audit_refuses_like_the_csv_export(platform):
    with pytest.raises(PermissionDeniedError):
        export_audit(platform, QA)
    for bad in (0, -1, True, "5"):
        with pytest.raises(InvalidArgumentError):
            export_audit(platform, ADMIN, rows_max=bad)  # type: ignore[arg-type]
