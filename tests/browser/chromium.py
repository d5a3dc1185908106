"""Driving the console in headless Chromium (Debian's) via Playwright: start a console
server, wait for Streamlit to finish a run, log in through the real form, pick and type
into widgets, take screenshots, record timings. Shared by the tests in tests/browser/."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

ROOT = REPO
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
SERVER_START_SECONDS = 90
RENDER_SECONDS = 90
FIRST_REQUEST_SECONDS = 300  # a fresh server's first page (imports, a shared 2-core machine)
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORDS = {"admin": "demo-admin-2026", "admin2": "demo-admin2-2026", "support": "demo-support-2026", "qa": "demo-qa-2026"}
FLOW_RUN_SECONDS = 300  # every scenario, each in its own sandbox, on a shared 2-core machine (about 15 s alone)
TITLES = {"overview": "Overview", "fees_liquidity": "Fees & liquidity", "user_lookup": "User lookup", "integrity": "Integrity",
          "audit_trail": "Audit trail", "approvals": "Approvals", "flow_tests": "Flow tests",
          "proof_of_liabilities": "Proof of liabilities"}
ERROR_SELECTORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
NAV_LINKS = '[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]'  # the frame draws the role's page links
LOCAL_PREFIXES = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
TIMINGS = ROOT / "artifacts" / "browser-timings.json"
PORT_ATTEMPTS_MAX = 3  # another process may take the free port before the server binds it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("/usr/bin/chromium is missing in CI: scripts/test.sh should have installed it")
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium)")


def watch_outside_requests(page) -> list[str]:
    """Every request the page makes that leaves this machine (the list fills as it browses)."""
    outside: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(LOCAL_PREFIXES) else outside.append(request.url))
    return outside


def record_timing(name: str, values: dict) -> None:
    """Measured, never asserted: kept in artifacts/browser-timings.json and printed (docs/console.md quotes them)."""
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    # the suite runs in two processes: read, update and replace the file under a lock, so
    # neither loses the other's figures or reads a half-written file
    with TIMINGS.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
        timings[name] = values
        temporary = TIMINGS.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, TIMINGS)
    print(f"timing {name}: {values}")


def start_console(log_path: Path, demo_size: str) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free port with the given demo data set."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("MONGODB_URI", "LEDGER_CREDENTIALS", "LEDGER_COOKIE_KEY")}
    env.update({"LEDGER_DEMO_SIZE": demo_size, "LEDGER_LOGIN_SLEEP_TIME": "0", "LEDGER_FAILED_LOGIN_DELAY": "0"})
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    return server, f"http://127.0.0.1:{port}"


def serve_console(log_path: Path, demo_size: str) -> tuple[subprocess.Popen, str, float]:
    """`start_console`, then wait until it answers. The port is free when chosen but another
    process (the suite runs in two) may bind it before the server does: the server then
    exits saying so, and it is started again on another port.
    Returns the server, its address and `time.monotonic()` when the answering one started."""
    for attempt in range(1, PORT_ATTEMPTS_MAX + 1):
        started = time.monotonic()
        server, url = start_console(log_path, demo_size)
        try:
            wait_healthy(server, url, str(log_path))
            return server, url, started
        except pytest.fail.Exception:
            stop(server)
            if attempt == PORT_ATTEMPTS_MAX or "is not available" not in log_path.read_text():
                raise
    raise AssertionError("unreachable")


def wait_healthy(server: subprocess.Popen, url: str, log_name: str) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"streamlit did not start (exit {server.poll()}); see {log_name}")
        time.sleep(0.2)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


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
    submit_login(page, username)
    page.get_by_role("button", name="Log out").wait_for(timeout=RENDER_SECONDS * 1000)
    settle(page)


def submit_login(page, username: str) -> None:
    """Fill the login form with a demo user's name and password, and send it."""
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[username])
    page.get_by_role("button", name="Login").click()


def browser_page(playwright, height: int = 1800):
    browser = launch(playwright)
    return browser, browser.new_context(viewport={"width": 1400, "height": height}, accept_downloads=True).new_page()


@contextmanager
def browsing(height: int = 1800) -> Iterator:
    """A page in Chromium (1400 px wide, downloads accepted), closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, height)
        try:
            yield page
        finally:
            browser.close()


def open_from_sidebar(page, title: str) -> None:
    page.locator(NAV_LINKS, has_text=title).first.click()
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


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@dataclass
class FreshConsole:
    """A console server started by one test, and a page in Chromium not yet opened on it."""

    page: object
    url: str
    log: Path
    started: float  # time.monotonic() when the server process was started
    healthy: float  # seconds from then until its health check answered


@contextmanager
def fresh_console(tmp_path: Path, demo_size: str) -> Iterator[FreshConsole]:
    """A server of its own (for what only a fresh server shows: its first session, its start-up
    times) and a 1400×900 page; both are stopped after."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    log = tmp_path / "server.log"
    server, url, started = serve_console(log, demo_size)
    try:
        healthy = time.monotonic() - started
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                yield FreshConsole(browser.new_page(viewport={"width": 1400, "height": 900}), url, log, started, healthy)
            finally:
                browser.close()
    finally:
        stop(server)

