"""The console in a real browser (headless Chromium, tests/browser/chromium.py), signing in:
a deep link before the login shows no page and, after it, opens the page asked for; each
role logs in through the real form and opens every page it may see from the sidebar, with
no exception or error element (a screenshot per page under artifacts/screenshots/); a wrong
password shows an error, not the console. Runs first of tests/browser/, so its first test
is the shared server's first request. Without /usr/bin/chromium these tests skip locally
but fail in CI (CI=true), where scripts/test.sh installs it."""

from __future__ import annotations

import os

import pytest

from tests.browser.chromium import (
    DOCS_SCREENSHOTS,
    FIRST_REQUEST_SECONDS,
    NAV_LINKS,
    RENDER_SECONDS,
    SCREENSHOTS,
    TITLES,
    assert_no_errors,
    launch,
    log_in,
    settle,
    submit_login,
    watch_outside_requests,
)
from tests.pages.conftest import ROLE_PAGES

pytestmark = pytest.mark.browser


def test_browser_deep_link_before_login_shows_no_page(console_url):
    """Runs first, so it is the server's first request: the one Streamlit may serve from
    the pages/ folder without app.py. The page's own check must refuse it."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{console_url}/approvals")
            # the first run may still be connecting: wait for the refusal or the login form to be drawn
            # the server's first request also loads the demo data: allow for it
            page.locator("text=/not signed in|Username/").first.wait_for(timeout=FIRST_REQUEST_SECONDS * 1000)
            settle(page)
            body = page.locator("body").inner_text()
            assert "Approvals" not in [h.inner_text() for h in page.locator("h1").all()]
            assert "not signed in" in body or "Username" in body
            assert page.locator('[data-testid="stDataFrame"]').count() == 0
            page.screenshot(path=str(SCREENSHOTS / "deep-link-before-login.png"))
            # the page handed over to the frame's login: no raw page list, no "Page not found",
            # and logging in opens the page that was asked for
            page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            assert page.locator(NAV_LINKS).count() == 0
            assert page.get_by_text("Page not found").count() == 0
            submit_login(page, "admin")
            page.get_by_role("heading", name="Approvals").first.wait_for(timeout=RENDER_SECONDS * 1000)
        finally:
            browser.close()


@pytest.mark.parametrize("username", ["admin", "support", "qa"])
def test_browser_each_role_opens_every_page_it_may_see(console_url, username):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            log_in(page, console_url, username)
            outside = watch_outside_requests(page)
            links = page.locator(NAV_LINKS)
            shown = sorted(links.nth(i).inner_text().strip().splitlines()[-1] for i in range(links.count()))  # the icon is text too
            allowed = sorted(TITLES[p] for p in ROLE_PAGES[username])
            assert shown == (allowed if len(allowed) > 1 else [])  # Streamlit hides a one-page navigation
            assert f"role {username}" in page.locator('[data-testid="stSidebar"]').inner_text()
            for stem in ROLE_PAGES[username]:
                if len(ROLE_PAGES[username]) > 1:
                    page.locator(NAV_LINKS, has_text=TITLES[stem]).first.click()
                page.get_by_role("heading", name=TITLES[stem]).first.wait_for(timeout=RENDER_SECONDS * 1000)
                settle(page)
                assert_no_errors(page, f"{username} {stem}")
                assert page.get_by_text("Demo store — in memory, nothing is persisted").count() == 1
                page.screenshot(path=str(SCREENSHOTS / f"{username}-{stem}.png"))
                if username == "admin" and stem == "overview" and os.environ.get("LEDGER_UPDATE_DOCS_SCREENSHOTS"):
                    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(DOCS_SCREENSHOTS / f"{stem}.png"))
            assert outside == [], f"requests that left the machine: {outside}"  # issue 22: icon and fonts are served locally
            assert page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href").startswith(console_url)
        finally:
            browser.close()


def test_browser_wrong_password_shows_an_error_not_the_console(console_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(console_url)
            page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            page.get_by_label("Username", exact=True).fill("admin")
            page.get_by_label("Password", exact=True).fill("not-the-password")
            page.get_by_role("button", name="Login").click()
            page.get_by_text("Username or password is incorrect").wait_for(timeout=RENDER_SECONDS * 1000)
            assert page.locator(NAV_LINKS).count() == 0
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
