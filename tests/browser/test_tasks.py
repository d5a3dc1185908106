"""The console's main tasks end to end in a real browser: an admin requests a top-up, a
second admin approves it, and the audit trail's CSV shows both; support finds a user by
part of their surname and runs their check; QA runs every scenario; a reload and a typed
URL keep the session; a deep link is honoured after the login.

`LEDGER_BROWSER_DEMO_SIZE=snapshot LEDGER_UPDATE_DOCS_SCREENSHOTS=1` refreshes the
screenshots under docs/screenshots/ (Overview, Fees & liquidity, User lookup, Integrity
with a finding, Approvals history, Flow tests with evidence).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from core.flowtests import runner

from tests.browser.chromium import (
    FLOW_RUN_SECONDS,
    NAV_LINKS,
    RENDER_SECONDS,
    SCREENSHOTS,
    assert_no_errors,
    browsing,
    choose,
    docs_shot,
    log_in,
    open_from_sidebar,
    settle,
    submit_login,
    type_into,
)

pytestmark = pytest.mark.browser


def test_browser_request_second_admin_approves_audit_shows_both(console_url):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with browsing() as page:
        log_in(page, console_url, "admin")
        open_from_sidebar(page, "Fees & liquidity")
        choose(page, "Request", "Liquidity top-up (treasury → float)")
        choose(page, "Asset", "USDT")
        type_into(page, "Amount", "250")
        type_into(page, "Reason", "browser test: float top-up")
        page.get_by_role("button", name="Submit request").click()
        page.get_by_text("is waiting for").first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert_no_errors(page, "fees request")
        request_id = re.search(r"Request (apr_\w+) \(treasury.liquidity_topup, 250.000000 USDT\)",
                               page.locator("body").inner_text()).group(1)
        docs_shot(page, "fees_liquidity", height=2900)
    with browsing() as page:
        log_in(page, console_url, "admin2")
        open_from_sidebar(page, "Approvals")
        request = page.locator('[data-testid="stExpander"]', has_text=request_id).first
        request.locator("summary").click()
        type_into(page, "Reason (required to reject)", "matches the treasury ticket", scope=request)
        request.get_by_role("button", name="Approve").click()
        page.get_by_text(f"{request_id}: approved").wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        choose(page, "State", "approved")
        combo = page.get_by_role("combobox", name="Request", exact=True).first
        combo.click()  # the decision history's request
        combo.fill(request_id)
        page.get_by_role("option", name=re.compile(request_id)).first.click()
        settle(page)
        docs_shot(page, "approvals_history")
        open_from_sidebar(page, "Audit trail")
        type_into(page, "Target", request_id)
        page.get_by_role("button", name="Prepare CSV export of this filter").click()
        page.get_by_role("button", name="Download CSV").wait_for(timeout=RENDER_SECONDS * 1000)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
        done = {(row["type"], row["actor"]) for row in rows}
        assert {("approval.requested", "admin"), ("approval.approved", "admin2")} <= done, done
        assert {row["target"] for row in rows} == {request_id}


def test_browser_support_finds_a_user_by_part_of_the_surname_and_checks_them(console_url):
    with browsing() as page:
        log_in(page, console_url, "support")  # support's first page is User lookup
        search = "Search by user id, email or any word of the name — case-insensitive, matches the start of each word"
        type_into(page, search, "u0002")
        header = page.get_by_role("heading", name=re.compile(r"\(u0002\)")).first
        header.wait_for(timeout=RENDER_SECONDS * 1000)
        surname = header.inner_text().split("(")[0].split()[-1]
        type_into(page, search, surname[:-1].lower())  # part of the surname, any case
        page.get_by_text(re.compile(r"user\(s\) match")).first.wait_for(timeout=RENDER_SECONDS * 1000)
        page.locator('[data-testid="stRadio"] label', has_text="u0002").first.click()
        settle(page)
        page.get_by_role("heading", name=re.compile(r"\(u0002\)")).first.wait_for(timeout=RENDER_SECONDS * 1000)
        page.get_by_role("button", name="Run this user's integrity check").click()
        page.get_by_text(re.compile(r"(OK|CRITICAL|WARNING) at .* UTC")).first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert page.get_by_text("No user matches").count() == 0
        docs_shot(page, "user_lookup", height=2300)


@pytest.mark.timeout(FLOW_RUN_SECONDS + 120)  # every scenario on a shared machine outlasts the suite's 300 s
def test_browser_qa_runs_every_scenario(console_url):
    with browsing(height=2400) as page:
        log_in(page, console_url, "qa")
        # every scenario is preselected: wait for the page to say so before pressing the button
        # (a click landing while the page still draws could hit the selection's clear button)
        page.get_by_text(re.compile(r"All \d+ scenarios are selected")).first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        # and the browser shows that selection too (once it showed none while the page said all:
        # pressing "Run selected" then ran nothing)
        scenarios = len(runner.list_scenarios())
        assert page.locator('[data-testid="stMultiSelect"] [data-tag]').count() == scenarios
        page.get_by_role("button", name="Run selected").click()
        try:
            page.get_by_text(re.compile(r"\d+/\d+ scenarios passed in")).first.wait_for(timeout=FLOW_RUN_SECONDS * 1000)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "qa-flow_tests-no-report.png"))  # what the page said instead
            raise
        settle(page)
        summary = page.get_by_text(re.compile(r"\d+/\d+ scenarios passed in")).first.inner_text()
        passed, total = map(int, re.match(r"(\d+)/(\d+)", summary).groups())
        assert total >= 20 and page.locator('[data-testid="stException"]').count() == 0, summary
        page.locator('[data-testid="stExpander"]', has_text="PASS · deposit").first.locator("summary").click()
        settle(page)  # open one scenario's evidence for the screenshot
        docs_shot(page, "flow_tests")


def test_browser_reload_and_typed_url_keep_the_session_until_logout(console_url):
    with browsing(height=900) as page:
        log_in(page, console_url, "admin")
        page.wait_for_timeout(1500)  # the cookie component writes the login cookie
        page.reload()
        page.get_by_role("button", name="Log out").wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert page.get_by_label("Username", exact=True).count() == 0
        page.goto(f"{console_url}/audit_trail")
        page.get_by_role("heading", name="Audit trail").first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert page.get_by_label("Username", exact=True).count() == 0
        assert_no_errors(page, "typed URL")
        page.get_by_role("button", name="Log out").click()
        page.get_by_text("You are signed out").wait_for(timeout=RENDER_SECONDS * 1000)
        page.wait_for_timeout(1500)  # the cookie component deletes the login cookie
        page.reload()  # a logout is final: the reload shows the login, not the console
        page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert page.get_by_role("button", name="Log out").count() == 0


def test_browser_deep_link_is_honoured_after_login(console_url):
    with browsing(height=900) as page:
        page.goto(f"{console_url}/integrity")
        page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator(NAV_LINKS).count() == 0  # no page list while signed out
        submit_login(page, "admin")
        page.get_by_role("heading", name="Integrity").first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        assert page.url.rstrip("/").endswith("/integrity")
        page.get_by_role("button", name="Run the platform check").click()
        page.get_by_text(re.compile(r"Run: platform at")).first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        page.set_viewport_size({"width": 1400, "height": 1800})
        settle(page)
        docs_shot(page, "integrity")
