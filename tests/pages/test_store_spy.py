"""Every page issues a bounded number of store queries, each served by a declared index:
rendering a page again after the journal grew costs the same number of round trips."""

from __future__ import annotations

import pytest

from core.flows import deposit
from core.base.permissions import SYSTEM
from core.ledger.store import uncovered
from tests.pages.conftest import ROLE_PAGES, open_page, platform_of, signed_in

QUERIES_PER_PAGE_MAX = 40


def render_cost(at, page: str) -> tuple[int, list]:
    import streamlit as st

    st.cache_data.clear()
    store = platform_of().store
    store.log.reset()
    open_page(at, page)
    return store.log.count, list(store.log.records)


def grow_journal(count: int, first: int = 0) -> None:
    platform = platform_of()
    for index in range(first, first + count):
        deposit.record_deposit(platform, SYSTEM, user_id="u0003", asset="USDT", amount="1.5", provider="spy",
                               payment_id=f"spy-{index}", confirmations=platform.config.confirmations_for("USDT"),
                               idempotency_key=f"spy-{index}")


@pytest.mark.parametrize("page", ROLE_PAGES["admin"])
def test_store_spy_page_queries_are_bounded_and_indexed(page):
    at = signed_in("admin")
    grow_journal(1)  # both renders find new events since the last (the pick lists fold them in)
    first, records = render_cost(at, page)
    assert uncovered(records) == [], uncovered(records)
    assert first <= QUERIES_PER_PAGE_MAX  # User lookup before a search and Flow tests before a run read nothing
    grow_journal(15, first=1)
    second, records = render_cost(at, page)
    assert uncovered(records) == []
    assert second == first, (page, first, second)


def test_store_spy_user_lookup_with_a_selected_user_is_bounded():
    at = open_page(signed_in("admin"), "user_lookup")
    at.text_input(key="lookup_search").input("u0003")
    at.run()
    first, records = render_cost(at, "user_lookup")
    assert uncovered(records) == []
    grow_journal(15)  # u0003's own entries grow: the page still reads one page of them
    second, records = render_cost(at, "user_lookup")
    assert uncovered(records) == [] and second == first
