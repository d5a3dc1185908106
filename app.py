"""The console frame: page config, the platform, login, role-based navigation, sidebar.

Every page file is UI only; this file decides who is signed in and which pages they may
open. Pages a role may not see are never registered with `st.navigation`, so neither the
sidebar nor a deep link nor `st.switch_page` can reach them — and core checks the
principal's permission again on every command.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import streamlit as st
import streamlit_authenticator as stauth

from core.base.errors import ConfigurationError, StoreError
from core.base.permissions import Principal, Role
from core.platform.logins import console_credentials, load_credentials, resolve_console_auth, role_of
from core.platform.settings import LoginSettings, login_settings
from console.frame import NEXT_PAGE_KEY, PAGES, PEOPLE_KEY, PRINCIPAL_KEY
from console.loading import get_platform, get_store, platform_load, wait_for_platform

COOKIE_NAME = "ledger_console"
ATTEMPT_KEY = "app_login_attempt"
SIGNED_OUT_KEY = "app_signed_out"  # this run logged out: say so instead of rerunning
HOME_PATH = "home"  # the hidden default page's own address ("/" is where it is served)
LOGOUT_KEY = "app_logout_requested"
LOGIN_AUDIT_KEY = "app_login_to_audit"  # a login not yet in the audit trail (written when the ledger is ready)  # set by the sidebar's Log out button, acted on before anything is drawn
PAGE_ICON = str(Path(__file__).resolve().parent / "static" / "icon.png")  # served by the console itself, never a font host
USERNAME_AUDIT_LENGTH_MAX = 64


logger = logging.getLogger(__name__)


def secret(name: str) -> str | None:
    """A key of .streamlit/secrets.toml, else None: where the credentials path and the cookie
    key come from when their environment variables (core.platform.settings) are not set."""
    try:
        value = st.secrets.get(name)
    except (FileNotFoundError, KeyError, OSError) as error:
        logger.debug("no %s in .streamlit/secrets.toml (%s)", name, type(error).__name__)
        value = None
    except Exception as error:  # noqa: BLE001 — streamlit raises its own error type when no secrets file exists
        logger.debug("no %s in .streamlit/secrets.toml (%s)", name, type(error).__name__)  # the type only: never the file's text
        value = None
    return str(value) if value else None


def _login_placeholder() -> None:
    """The only page of a signed-out session: the login form is drawn by the frame."""


def _unavailable_placeholder() -> None:
    """The only page while the console cannot start: the frame shows why."""


def stop_with(title: str, message: str) -> None:
    """A clear error page instead of a traceback (database down, unsafe configuration)."""
    st.title("Ledger console")
    st.error(f"**{title}**\n\n{message}")
    st.navigation([st.Page(_unavailable_placeholder, title="Unavailable")], position="hidden")
    st.stop()


def audit_login(event_type: str, username: str, role: str = "") -> bool:
    """Logins and failed logins go to the audit trail (never the password). The trail is in
    the ledger: when it is still loading, this waits for it with a progress message.
    Returns whether the event was written."""
    try:
        wait_for_platform().ledger.audit.append(type=event_type, actor=username or "anonymous", role=role or "none",
                                                target=username, data={"source": "console"})
    except (StoreError, ConfigurationError) as error:
        logger.warning("login event %s not audited yet: %s", event_type, error.message)  # core messages never hold a secret
        return False  # the login itself is unaffected; the error page shows on the next page that needs data
    return True


def watch_login_attempts(authenticator: stauth.Authenticate) -> None:
    """Remember which username was tried, so a failed attempt can be audited by name.
    streamlit-authenticator reports failure only as `authentication_status = False`."""
    controller = authenticator.authentication_controller
    original = controller.login

    def login(username=None, password=None, *args, **kwargs):
        if username:
            st.session_state[ATTEMPT_KEY] = str(username)[:USERNAME_AUDIT_LENGTH_MAX]
        return original(username, password, *args, **kwargs)

    controller.login = login


def defer_cookie(authenticator: stauth.Authenticate) -> list[bool]:
    """Hold back the login cookie until the form is cleared. streamlit-authenticator sets it
    through a component drawn where `login` is called — inside the form's slot, which is
    emptied on success (and a rerun would drop it too). Returns the list a wanted cookie is
    recorded in; `set_deferred_cookie` then draws it outside the slot."""
    wanted: list[bool] = []
    controller = authenticator.cookie_controller
    controller.set_cookie_now = controller.set_cookie
    controller.set_cookie = lambda: wanted.append(True)
    return wanted


def people_of(credentials: dict) -> dict:
    """The console's accounts without their password hashes: who may approve, and the
    names shown beside usernames (core.approvals.view reads this shape)."""
    return {"usernames": {username: {"name": user.get("name") or username, "roles": list(user.get("roles") or []),
                                     "disabled": bool(user.get("disabled"))}
                          for username, user in credentials.get("usernames", {}).items()}}


NARROW_WINDOW_PX = 1100  # at or below this window width, pages get the whole width (issue 22: readable at 900 px)
# Streamlit collapses the sidebar by itself only below 768 px. In a narrower window than
# NARROW_WINDOW_PX the frame collapses it when the page loads (the » button opens it again,
# and it stays open while moving between pages) and narrows the page margins, so tables
# and charts get the width. CSS and a few lines of script in the page itself: no outside request.
NARROW_WINDOW_LAYOUT = f"""
<style>
@media (max-width: {NARROW_WINDOW_PX}px) {{
  [data-testid="stMainBlockContainer"] {{ padding-left: 1.5rem; padding-right: 1.5rem; }}
}}
</style>
<script>
(() => {{
  // once per page load: Streamlit opens the sidebar again on every load, and a person who
  // opens it by hand keeps it open while moving between pages
  if (window.innerWidth > {NARROW_WINDOW_PX} || window.ledgerConsoleNarrowDone) return;
  window.ledgerConsoleNarrowDone = true;
  const collapse = (triesLeft) => {{
    const sidebar = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (sidebar && button && sidebar.getAttribute("data-collapsed") === "false") button.click();
    else if (triesLeft > 0) window.setTimeout(() => collapse(triesLeft - 1), 100);
  }};
  collapse(30);
}})();
</script>
"""


def request_logout() -> None:
    """The sidebar's Log out button: the next run signs out before it draws the sidebar, so
    no stale name or button is left in it."""
    st.session_state[LOGOUT_KEY] = True


def sign_in(auth, credentials: dict, settings: LoginSettings) -> Principal | None:
    """Draw the login form (or recognise the session or its login cookie) and return the
    principal, if any. A cookie (LEDGER_COOKIE_EXPIRY_DAYS, default half a day) keeps the
    session across a reload or a typed URL."""
    authenticator = stauth.Authenticate(
        console_credentials(credentials), COOKIE_NAME, auth.cookie_key,
        cookie_expiry_days=settings.cookie_expiry_days, auto_hash=False, login_sleep_time=settings.login_sleep_time,
    )
    watch_login_attempts(authenticator)
    cookie_wanted = defer_cookie(authenticator)
    if st.session_state.get("authentication_status") is False:
        st.session_state["authentication_status"] = None  # a new run: only a new failure counts
    if not st.session_state.get("authentication_status"):
        slot = st.empty()
        with slot.container():
            st.title("Ledger console")
            if auth.demo:
                st.caption("Demo logins: see docs/console.md (admin, admin2, support, qa).")
            load, note = platform_load(), st.empty()  # always one slot: the form keeps its place when the note goes
            if not load.done.is_set():
                note.caption(f"The ledger is loading in the background ({load.phase}, {load.seconds:,.0f} s so far): "
                             "you can log in now; your first page opens when it is ready.")

            def on_login(event: dict) -> None:  # audited once the page list is drawn (the ledger may still be loading)
                st.session_state[LOGIN_AUDIT_KEY] = (event.get("username") or "", (event.get("roles") or [""])[0])

            authenticator.login(location="main", key="app_login", callback=on_login)
            status = st.session_state.get("authentication_status")
            if status is False:
                audit_login("console.login_failed", st.session_state.pop(ATTEMPT_KEY, ""))
                time.sleep(settings.failed_login_delay)
                st.error("Username or password is incorrect.")
        if not status:
            return None
        slot.empty()  # signed in: the form goes and the asked-for page follows in this same run
        if cookie_wanted:
            authenticator.cookie_controller.set_cookie_now()
    if st.session_state.pop(LOGOUT_KEY, False):
        # Signed out now, before the sidebar is drawn (it disappears). No rerun: the cookie
        # component `logout` draws must reach the browser to delete the login cookie, or a
        # reload would sign the person back in.
        authenticator.logout(location="unrendered")
        st.session_state[SIGNED_OUT_KEY] = True
        return None
    username = st.session_state.get("username") or ""
    user = credentials["usernames"].get(username) or {}
    role = role_of(user.get("roles")) if not user.get("disabled") else None
    if role is None:  # disabled, deleted, or role changed to none since login
        authenticator.logout(location="unrendered")
        st.error("This account is disabled or has no console role.")
        return None
    return Principal(name=username, role=role)


def draw_sidebar(principal: Principal, pages: list) -> None:
    """The role's pages (links drawn by the frame, not Streamlit's own page list: that list
    would first show the raw file names of the pages/ folder — see `main`), then who is
    signed in and the Log out button."""
    with st.sidebar:
        if len(pages) > 1:  # one page needs no menu
            for page in pages:
                st.page_link(page)
            st.divider()
        st.markdown(f"**{st.session_state.get('name') or principal.name}**  \n`{principal.name}` · role **{principal.role.value}**")
        st.button("Log out", key="app_logout", on_click=request_logout)
        st.html(NARROW_WINDOW_LAYOUT, unsafe_allow_javascript=True)


def unavailable_page(stem: str, role: Role):
    """A hidden page under the address of a page `role` may not open: a typed URL says so
    instead of Streamlit's "Page not found" (the real page is never registered)."""
    title = PAGES[stem][0]

    def page() -> None:
        st.title("Not available")
        st.warning(f"The {title} page is not available to the {role.value} role. "
                   "The pages you can open are listed in the sidebar.", icon=":material/block:")

    page.__name__ = f"unavailable_{stem}"
    return st.Page(page, title=f"{title} (not available)", url_path=stem, visibility="hidden")


def signed_out_navigation() -> None:
    """While signed out, every page's address shows the login (never "Page not found", never
    a page): one hidden login page per console page, under the same URL path. Logging in
    from /approvals then lands on Approvals in the same run, since a page is identified by
    its URL path. A visitor the legacy pages/ mode served first is brought to that address."""
    login_pages = {stem: st.Page(_login_placeholder, title="Log in", url_path=stem) for stem in PAGES}
    st.navigation([st.Page(_login_placeholder, title="Log in", default=True), *login_pages.values()], position="hidden")
    wanted = st.session_state.pop(NEXT_PAGE_KEY, None)
    if wanted in login_pages:
        st.switch_page(login_pages[wanted])


def main() -> None:
    st.set_page_config(page_title="Ledger console", page_icon=PAGE_ICON, layout="wide")
    try:
        store = get_store()
        load = platform_load()  # the ledger loads in the background: the login form does not wait for it
        if load.done.is_set() and load.error is not None:
            get_platform()  # a load that already failed: say why now, before anyone logs in
    except StoreError as error:
        stop_with("The database cannot be reached.", f"{error.message}. Check MONGODB_URI and that the server is up; "
                  "nothing was changed. Reload this page to retry.")
        return
    except ConfigurationError as error:
        stop_with("The console is not configured.", error.message)
        return
    if store.embedded:
        st.info("Demo store — in memory, nothing is persisted", icon=":material/science:")
    try:
        settings = login_settings()
        cookie_key = settings.cookie_key.get_secret_value() if settings.cookie_key is not None else secret("cookie_key")
        auth = resolve_console_auth(embedded=store.embedded, cookie_key=cookie_key,
                                    credentials_path=settings.credentials_path or secret("credentials_path"))
        credentials = load_credentials(auth.credentials_path)
    except ConfigurationError as error:
        stop_with("The console refuses to start.", error.message)
        return
    principal = sign_in(auth, credentials, settings)
    if principal is None:
        st.session_state.pop(PRINCIPAL_KEY, None)
        if st.session_state.pop(SIGNED_OUT_KEY, False):
            st.title("Ledger console")
            st.info("You are signed out.")
            st.button("Log in again", key="app_login_again")  # any rerun draws the login form
        signed_out_navigation()
        return
    st.session_state[PRINCIPAL_KEY] = principal
    st.session_state[PEOPLE_KEY] = people_of(credentials)
    allowed = [stem for stem, (_, _, roles) in PAGES.items() if principal.role in roles]
    pages = [st.Page(f"pages/{stem}.py", title=PAGES[stem][0], icon=PAGES[stem][1]) for stem in allowed]
    hidden = [unavailable_page(stem, principal.role) for stem in PAGES if stem not in allowed]
    # "/" shows the role's first page through a hidden default page: Streamlit serves its
    # default page at "/" only, so /overview (a bookmark, a typed URL) would be "Page not found".
    home = st.Page(f"pages/{allowed[0]}.py", title=PAGES[allowed[0]][0], url_path=HOME_PATH, default=True, visibility="hidden")
    # Registered before any wait, so the sidebar lists the role's pages at once. Streamlit's own
    # sidebar list is off (client.showSidebarNavigation): on a fresh server's first run it lists
    # the pages/ folder's raw file names ("app, approvals, audit trail…") before this call.
    navigation = st.navigation([home, *pages, *hidden], position="hidden")
    draw_sidebar(principal, pages)
    try:
        wait_for_platform()
        if (pending := st.session_state.get(LOGIN_AUDIT_KEY)) and audit_login("console.login", *pending):
            del st.session_state[LOGIN_AUDIT_KEY]  # kept for the next run if the database did not answer
        navigation.run()
    except StoreError as error:
        st.error(f"The database cannot be reached: {error.message}. Nothing was changed; retry in a moment.")
    except ConfigurationError as error:
        st.error(f"The console is not configured: {error.message}")


main()
