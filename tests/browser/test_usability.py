"""Issue 22 in a real browser: the login form does not wait for the ledger (a fresh server
loading the full demo data), the time to the login form with the committed snapshot
(recorded, not asserted), a typed URL of a page the role cannot open, a prepared CSV
withdrawn when a matching event arrives, and every page readable in a 900 px window."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pytest

from tests.browser.chromium import (
    FIRST_REQUEST_SECONDS,
    NAV_LINKS,
    RENDER_SECONDS,
    SCREENSHOTS,
    TITLES,
    browsing,
    fresh_console,
    launch,
    log_in,
    open_from_sidebar,
    record_timing,
    settle,
    submit_login,
    type_into,
    watch_outside_requests,
)
from tests.pages.conftest import ROLE_PAGES

pytestmark = pytest.mark.browser


# -- issue 22: start-up, typed URLs, a stale CSV, a 900 px window ------------------------------
RAW_PAGE_NAMES = {"app", "approvals", "audit trail", "fees liquidity", "flow tests", "integrity", "overview",
                  "proof of liabilities", "user lookup"}  # what Streamlit's own list showed for the pages/ folder
NAV_WATCH = """
window.ledgerNavSeen = [];
new MutationObserver(() => {
  for (const link of document.querySelectorAll('[data-testid="stSidebarNavLink"], [data-testid="stSidebar"] a')) {
    const title = link.innerText.trim().split("\\n").pop().trim();
    if (title && !window.ledgerNavSeen.includes(title)) window.ledgerNavSeen.push(title);
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""
LOADING_SECONDS = 600  # the full demo data set takes minutes to generate on a shared 2-core machine




def test_browser_login_form_does_not_wait_for_the_ledger(tmp_path):
    """Items 1, 2 and 4 on a fresh server, whose first session is the one Streamlit's legacy
    pages/ mode serves. The `full` demo data set takes minutes to generate, so everything
    below happens while the ledger is still loading: the login form is there, says so, and a
    login shows the role's page links (never the pages/ folder's raw file names) and a
    progress message. No request leaves the machine. The times are recorded, not asserted."""
    with fresh_console(tmp_path, "full") as console:
        page, url = console.page, console.url
        outside = watch_outside_requests(page)
        page.add_init_script(NAV_WATCH)
        form = open_login_form(console)
        page.get_by_text("The ledger is loading in the background").wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        submit_login(page, "admin")
        page.get_by_text(re.compile(r"Opening the ledger: .* s so far")).first.wait_for(timeout=RENDER_SECONDS * 1000)
        links = page.locator(NAV_LINKS)
        links.first.wait_for(timeout=RENDER_SECONDS * 1000)
        shown = [links.nth(i).inner_text().strip().splitlines()[-1] for i in range(links.count())]
        assert shown == [TITLES[stem] for stem in ROLE_PAGES["admin"]]
        page.screenshot(path=str(SCREENSHOTS / "startup-login-while-loading.png"))
        seen = page.evaluate("window.ledgerNavSeen")
        assert not set(seen) & RAW_PAGE_NAMES, f"raw page-file names in the sidebar: {seen}"
        assert outside == [], f"requests that left the machine: {outside}"
        assert page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href").startswith(url)
        assert "the ledger is ready" not in console.log.read_text()  # all of the above while it was loading
        record_timing("full demo (loading for minutes)", {"server healthy (s)": round(console.healthy, 1),
                                                          "login form (s)": round(form, 1)})


@pytest.mark.timeout(2 * FIRST_REQUEST_SECONDS)
def test_browser_time_to_the_login_form_with_the_committed_snapshot(tmp_path):
    """What `bash scripts/run.sh` shows first (the committed snapshot): measured for
    docs/console.md, not asserted — from process start to the login form, to the ledger
    being ready (the server's log line), and to the Overview after a login."""
    with fresh_console(tmp_path, "snapshot") as console:
        page = console.page
        form = open_login_form(console)
        settle(page)
        submit_login(page, "admin")
        page.get_by_role("heading", name="Overview").first.wait_for(timeout=FIRST_REQUEST_SECONDS * 1000)
        overview = time.monotonic() - console.started
        ready = re.search(r"the ledger is ready after ([\d.]+) s", console.log.read_text())
        record_timing("snapshot (scripts/run.sh)", {"server healthy (s)": round(console.healthy, 1), "login form (s)": round(form, 1),
                                                    "ledger ready after its load started (s)": float(ready.group(1)) if ready else None,
                                                    "overview after a login at once (s)": round(overview, 1)})


def open_login_form(console) -> float:
    """Open a fresh server's first page; the seconds from its start until the login form shows."""
    console.page.goto(console.url)
    console.page.get_by_label("Username", exact=True).first.wait_for(timeout=FIRST_REQUEST_SECONDS * 1000)
    return time.monotonic() - console.started


def test_browser_typed_url_of_a_page_the_role_cannot_open_says_so(console_url):
    """Item 3: no "Page not found", a plain word instead; the role's first page answers at its own address too."""
    with browsing(height=900) as page:
        log_in(page, console_url, "support")
        page.wait_for_timeout(1500)  # the login cookie is written: typed URLs keep the session
        for stem in ("approvals", "overview"):
            page.goto(f"{console_url}/{stem}")
            page.get_by_text(f"The {TITLES[stem]} page is not available to the support role").wait_for(
                timeout=RENDER_SECONDS * 1000)
            settle(page)
            page.wait_for_timeout(1000)
            assert page.get_by_text("Page not found").count() == 0, stem
            assert page.locator('[data-testid="stDataFrame"]').count() == 0
        page.goto(f"{console_url}/user_lookup")  # support's first page, by its own address
        page.get_by_role("heading", name="User lookup").first.wait_for(timeout=RENDER_SECONDS * 1000)
        settle(page)
        page.wait_for_timeout(1000)
        assert page.get_by_text("Page not found").count() == 0


def test_browser_prepared_csv_is_withdrawn_when_a_matching_event_arrives(console_url):
    """Item 8: admin prepares the CSV of one user's events; a second admin checks that user
    (a new matching event); the first page withdraws the file by itself, and the file
    prepared again holds as many rows as the page counts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            first = browser.new_context(viewport={"width": 1400, "height": 1800}, accept_downloads=True).new_page()
            second = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
            log_in(first, console_url, "admin")
            open_from_sidebar(first, "Audit trail")
            type_into(first, "User", "u0002")
            first.get_by_role("button", name="Prepare CSV export of this filter").click()
            first.get_by_role("button", name="Download CSV").wait_for(timeout=RENDER_SECONDS * 1000)
            log_in(second, console_url, "admin2")
            open_from_sidebar(second, "Integrity")
            type_into(second, "User — id, email or name", "u0002")
            second.get_by_role("button", name="Check this user").click()
            second.get_by_text(re.compile(r"Run: user .*\(u0002\) at")).first.wait_for(timeout=RENDER_SECONDS * 1000)
            first.get_by_text("1 new matching event arrived since the CSV was prepared").wait_for(timeout=RENDER_SECONDS * 1000)
            settle(first)
            assert first.get_by_role("button", name="Download CSV").count() == 0
            total = int(re.search(r" of ([\d,]+) · page", first.locator("body").inner_text()).group(1).replace(",", ""))
            first.get_by_role("button", name="Prepare CSV export of this filter").click()
            first.get_by_role("button", name="Download CSV").wait_for(timeout=RENDER_SECONDS * 1000)
            with first.expect_download() as download:
                first.get_by_role("button", name="Download CSV").click()
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
            assert len(rows) == total and {row["user"] for row in rows} == {"u0002"}
            assert "integrity.check" in {row["type"] for row in rows}  # the second admin's check is in the file
        finally:
            browser.close()


NARROW_PAGES = ("overview", "fees_liquidity", "user_lookup?user=u0002", "integrity", "audit_trail", "flow_tests")
WIDE_TABLES = {"audit_trail": 1}  # the event log: its long target ids and data scroll into view after the who and what
READABILITY = """() => {
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const sidebar = document.querySelector('[data-testid="stSidebar"]');
  return {
    sidebarCollapsed: !sidebar || sidebar.getAttribute('data-collapsed') === 'true',
    cutButtons: [...document.querySelectorAll('[data-testid="stMain"] button')]
      .filter(b => visible(b) && b.scrollWidth > b.clientWidth + 1).map(b => b.innerText),
    tinyChartText: [...document.querySelectorAll('.js-plotly-plot text')]
      .filter(t => t.textContent.trim() && visible(t) && t.getBoundingClientRect().height < 8).map(t => t.textContent),
    cutChartText: [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
      const box = plot.getBoundingClientRect();
      return [...plot.querySelectorAll('.gtitle, .annotation-text, .legendtext')]
        .filter(t => { const r = t.getBoundingClientRect(); return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1); })
        .map(t => t.textContent);
    }),
    scrollingTables: [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
      .filter(s => s.scrollWidth > s.clientWidth + 2).length,
  };
}"""


def test_browser_pages_are_readable_in_a_900px_window(console_url):
    """Item 17: at 900 px the sidebar is out of the way, no button is cut, chart text is
    readable and inside its chart, and tables fit without sideways scrolling (except the
    audit event log's trailing columns)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1600})
            log_in(page, console_url, "admin")
            page.wait_for_timeout(1500)  # the login cookie: each page below is a typed URL
            problems = {}
            for address in NARROW_PAGES:
                stem = address.split("?")[0]
                page.goto(f"{console_url}/{address}")
                page.get_by_role("heading", name=TITLES[stem]).first.wait_for(timeout=RENDER_SECONDS * 1000)
                settle(page)
                page.wait_for_function("() => document.querySelector('[data-testid=\"stSidebar\"]')"
                                       "?.getAttribute('data-collapsed') !== 'false'", timeout=10_000)
                page.wait_for_timeout(1000)  # charts and tables finish drawing
                page.screenshot(path=str(SCREENSHOTS / f"narrow-{stem}.png"))
                found = page.evaluate(READABILITY)
                found["scrollingTables"] -= min(found["scrollingTables"], WIDE_TABLES.get(stem, 0))
                wrong = {key: value for key, value in found.items() if value not in (True, [], 0)}
                if wrong:
                    problems[stem] = wrong
            assert problems == {}, problems
        finally:
            browser.close()
