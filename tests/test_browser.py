"""The console in a real browser: headless Chromium (Debian's) via Playwright.

Starts `streamlit run app.py` on a free port with the small demo data set, logs in as each
role through the real login form, opens every page the role may see from the sidebar,
waits for Streamlit to finish rendering, asserts no exception or error element, and saves
a screenshot per page under artifacts/screenshots/. Without /usr/bin/chromium the test
skips locally but fails in CI (CI=true), where scripts/test.sh installs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.pages.conftest import ROLE_PAGES

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
SERVER_START_SECONDS = 90
RENDER_SECONDS = 90
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORDS = {"admin": "demo-admin-2026", "support": "demo-support-2026", "qa": "demo-qa-2026"}
TITLES = {"overview": "Overview", "fees_liquidity": "Fees & liquidity", "user_lookup": "User lookup", "integrity": "Integrity",
          "audit_trail": "Audit trail", "approvals": "Approvals", "flow_tests": "Flow tests",
          "proof_of_liabilities": "Proof of liabilities"}
ERROR_SELECTORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def console_url(tmp_path_factory):
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("/usr/bin/chromium is missing in CI: scripts/test.sh should have installed it")
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium)")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("MONGODB_URI", "LEDGER_CREDENTIALS", "LEDGER_COOKIE_KEY")}
    # LEDGER_BROWSER_DEMO_SIZE=snapshot with LEDGER_UPDATE_DOCS_SCREENSHOTS=1 refreshes the README's screenshots
    env.update({"LEDGER_DEMO_SIZE": os.environ.get("LEDGER_BROWSER_DEMO_SIZE", "small"), "LEDGER_LOGIN_SLEEP_TIME": "0", "LEDGER_FAILED_LOGIN_DELAY": "0"})
    log = (tmp_path_factory.mktemp("streamlit") / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {server.poll()}); see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def settle(page) -> None:
    """Wait until Streamlit has finished the run: no running indicator, no stale elements."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 && !document.querySelector('[data-stale="true"]')""",
        timeout=RENDER_SECONDS * 1000,
    )
    page.wait_for_timeout(300)


def assert_no_errors(page, where: str) -> None:
    errors = page.locator(ERROR_SELECTORS)
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()[:500]}"


def log_in(page, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
    settle(page)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[username])
    page.get_by_role("button", name="Login").click()
    page.get_by_role("button", name="Log out").wait_for(timeout=RENDER_SECONDS * 1000)
    settle(page)


def test_browser_deep_link_before_login_shows_no_page(console_url):
    """Runs first, so it is the server's first request: the one Streamlit may serve from
    the pages/ folder without app.py. The page's own check must refuse it."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{console_url}/approvals")
            # the first run may still be connecting: wait for the refusal or the login form to be drawn
            page.locator("text=/not signed in|Username/").first.wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            body = page.locator("body").inner_text()
            assert "Approvals" not in [h.inner_text() for h in page.locator("h1").all()]
            assert "not signed in" in body or "Username" in body
            assert page.locator('[data-testid="stDataFrame"]').count() == 0
            page.screenshot(path=str(SCREENSHOTS / "deep-link-before-login.png"))
        finally:
            browser.close()


@pytest.mark.parametrize("username", ["admin", "support", "qa"])
def test_browser_each_role_opens_every_page_it_may_see(console_url, username):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            log_in(page, console_url, username)
            links = page.locator('[data-testid="stSidebarNavLink"]')
            shown = sorted(links.nth(i).inner_text().strip().splitlines()[-1] for i in range(links.count()))  # the icon is text too
            allowed = sorted(TITLES[p] for p in ROLE_PAGES[username])
            assert shown == (allowed if len(allowed) > 1 else [])  # Streamlit hides a one-page navigation
            assert f"role {username}" in page.locator('[data-testid="stSidebar"]').inner_text()
            for stem in ROLE_PAGES[username]:
                if len(ROLE_PAGES[username]) > 1:
                    page.locator('[data-testid="stSidebarNavLink"]', has_text=TITLES[stem]).first.click()
                page.get_by_role("heading", name=TITLES[stem]).first.wait_for(timeout=RENDER_SECONDS * 1000)
                settle(page)
                assert_no_errors(page, f"{username} {stem}")
                assert page.get_by_text("Demo store — in memory, nothing is persisted").count() == 1
                page.screenshot(path=str(SCREENSHOTS / f"{username}-{stem}.png"))
                if username == "admin" and stem in ("overview", "fees_liquidity") and os.environ.get("LEDGER_UPDATE_DOCS_SCREENSHOTS"):
                    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(DOCS_SCREENSHOTS / f"{stem}.png"))
        finally:
            browser.close()


def test_browser_wrong_password_shows_an_error_not_the_console(console_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(console_url)
            page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            page.get_by_label("Username", exact=True).fill("admin")
            page.get_by_label("Password", exact=True).fill("not-the-password")
            page.get_by_role("button", name="Login").click()
            page.get_by_text("Username or password is incorrect").wait_for(timeout=RENDER_SECONDS * 1000)
            assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
