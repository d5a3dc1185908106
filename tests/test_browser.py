"""The console in a real browser: headless Chromium (Debian's) via Playwright.

Starts `streamlit run app.py` on a free port with the small demo data set, logs in as each
role through the real login form, opens every page the role may see from the sidebar,
waits for Streamlit to finish rendering, asserts no exception or error element, and saves
a screenshot per page under artifacts/screenshots/. Then it drives the main tasks end to
end: an admin requests a top-up, a second admin approves it, and the audit trail's CSV
shows both; support finds a user by part of their surname and runs their check; QA runs
every scenario; a reload and a typed URL keep the session; a deep link is honoured after
the login. Without /usr/bin/chromium the test skips locally but fails in CI (CI=true),
where scripts/test.sh installs it.

`LEDGER_BROWSER_DEMO_SIZE=snapshot LEDGER_UPDATE_DOCS_SCREENSHOTS=1` refreshes the
screenshots under docs/screenshots/ (Overview, Fees & liquidity, User lookup, Integrity
with a finding, Approvals history, Flow tests with evidence).
"""

from __future__ import annotations

import csv
import io
import os
import re
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
FIRST_REQUEST_SECONDS = 300  # the first request loads the demo data (the snapshot: slow on a shared 2-core machine)
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORDS = {"admin": "demo-admin-2026", "admin2": "demo-admin2-2026", "support": "demo-support-2026", "qa": "demo-qa-2026"}
FLOW_RUN_SECONDS = 900  # every scenario, each in its own sandbox, on a shared 2-core machine
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
            assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0
            assert page.get_by_text("Page not found").count() == 0
            page.get_by_label("Username", exact=True).fill("admin")
            page.get_by_label("Password", exact=True).fill(PASSWORDS["admin"])
            page.get_by_role("button", name="Login").click()
            page.get_by_role("heading", name="Approvals").first.wait_for(timeout=RENDER_SECONDS * 1000)
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
                if username == "admin" and stem == "overview" and os.environ.get("LEDGER_UPDATE_DOCS_SCREENSHOTS"):
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


# -- the main tasks, end to end ---------------------------------------------------------------
def browser_page(playwright, height: int = 1800):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    return browser, browser.new_context(viewport={"width": 1400, "height": height}, accept_downloads=True).new_page()


def open_from_sidebar(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=RENDER_SECONDS * 1000)
    settle(page)


def choose(page, label: str, option: str, scope=None) -> None:
    """Pick `option` in the Streamlit selectbox labelled `label`."""
    combo = (scope or page).get_by_role("combobox", name=label, exact=True).first
    combo.click()
    combo.fill(option)  # the list shows what matches the typed text
    page.get_by_role("option", name=option, exact=True).first.click()
    settle(page)


def type_into(page, label: str, text: str, scope=None) -> None:
    field = (scope or page).get_by_label(label, exact=True)
    field.fill(text)
    field.press("Enter")
    settle(page)


TO_TOP = "() => { for (const e of document.querySelectorAll('*')) { if (e.scrollTop > 0) e.scrollTop = 0; } window.scrollTo(0, 0); }"


def docs_shot(page, name: str, height: int | None = None) -> None:
    """A screenshot from the top of the page (Streamlit scrolls its main block, not the window),
    in a viewport tall enough for what the page shows."""
    if height:
        page.set_viewport_size({"width": 1400, "height": height})
        settle(page)
    page.evaluate(TO_TOP)
    page.wait_for_timeout(1500)  # tables are canvases: let them paint after the scroll
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    if os.environ.get("LEDGER_UPDATE_DOCS_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"))


def test_browser_request_second_admin_approves_audit_shows_both(console_url):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser, page = browser_page(playwright)
        try:
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
        finally:
            browser.close()
        browser, page = browser_page(playwright)
        try:
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
        finally:
            browser.close()


def test_browser_support_finds_a_user_by_part_of_the_surname_and_checks_them(console_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright)
        try:
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
        finally:
            browser.close()


def test_browser_qa_runs_every_scenario(console_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, height=2400)
        try:
            log_in(page, console_url, "qa")
            page.get_by_role("button", name="Run selected").click()
            page.get_by_text(re.compile(r"\d+/\d+ scenarios passed in")).first.wait_for(timeout=FLOW_RUN_SECONDS * 1000)
            settle(page)
            summary = page.get_by_text(re.compile(r"\d+/\d+ scenarios passed in")).first.inner_text()
            passed, total = map(int, re.match(r"(\d+)/(\d+)", summary).groups())
            assert total >= 20 and page.locator('[data-testid="stException"]').count() == 0, summary
            page.locator('[data-testid="stExpander"]', has_text="PASS · deposit").first.locator("summary").click()
            settle(page)  # open one scenario's evidence for the screenshot
            docs_shot(page, "flow_tests")
        finally:
            browser.close()


def test_browser_reload_and_typed_url_keep_the_session_until_logout(console_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, height=900)
        try:
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
        finally:
            browser.close()


def test_browser_deep_link_is_honoured_after_login(console_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, height=900)
        try:
            page.goto(f"{console_url}/integrity")
            page.get_by_label("Username", exact=True).wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            assert page.get_by_text("Page not found").count() == 0
            assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0  # no page list while signed out
            page.get_by_label("Username", exact=True).fill("admin")
            page.get_by_label("Password", exact=True).fill(PASSWORDS["admin"])
            page.get_by_role("button", name="Login").click()
            page.get_by_role("heading", name="Integrity").first.wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            assert page.url.rstrip("/").endswith("/integrity")
            page.get_by_role("button", name="Run the platform check").click()
            page.get_by_text(re.compile(r"Latest run: platform at")).first.wait_for(timeout=RENDER_SECONDS * 1000)
            settle(page)
            page.set_viewport_size({"width": 1400, "height": 1800})
            settle(page)
            docs_shot(page, "integrity")
        finally:
            browser.close()
