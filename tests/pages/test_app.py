"""The frame: login, failed-login audit, role-based navigation, logout, refusals at start-up."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from console.frame import PAGES
from tests.pages.conftest import APP, ROLE_PAGES, TIMEOUT_SECONDS, open_page, platform_of, signed_in

ALL_PAGES = ROLE_PAGES["admin"]


def login_form() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert not at.exception
    return at


def submit(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    return at


def audit_events(event_type: str) -> list[dict]:
    return platform_of().store.collection("audit").find({"type": event_type}, sort=[("seq", 1)], limit=100)


def test_app_unauthenticated_session_sees_only_the_login():
    at = login_form()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.metric and not at.dataframe
    assert any("Demo store" in i.value for i in at.info)
    for page in ALL_PAGES:  # only the login placeholder is registered: no page can be switched to
        with pytest.raises(ValueError):
            at.switch_page(f"pages/{page}.py")


def test_app_login_success_is_audited_and_opens_the_role_pages():
    at = submit(login_form(), "support", "demo-support-2026")
    assert at.session_state["authentication_status"] is True
    assert [t.value for t in at.title] == ["User lookup"]  # support's first page
    events = audit_events("console.login")
    assert [(e["actor"], e["role"]) for e in events] == [("support", "support")]
    assert any("role **support**" in m.value for m in at.sidebar.markdown)


def test_app_failed_login_is_audited_without_the_password():
    at = submit(login_form(), "admin", "wrong-password-123")
    assert at.session_state["authentication_status"] is not True
    assert any("incorrect" in e.value for e in at.error)
    at = submit(at, "nobody", "whatever-1234")
    events = audit_events("console.login_failed")
    assert [e["target"] for e in events] == ["admin", "nobody"]
    assert all("wrong-password" not in str(e) and "whatever" not in str(e) for e in events)
    assert audit_events("console.login") == []


@pytest.mark.parametrize("username", ["admin", "support", "qa"])
def test_app_each_role_reaches_exactly_its_pages(username):
    at = signed_in(username)
    allowed = ROLE_PAGES[username]
    for page in allowed:
        open_page(at, page)
    for page in sorted(set(ALL_PAGES) - set(allowed)):
        assert_unreachable(at, page)


def assert_unreachable(at: AppTest, page: str) -> None:
    """Either st.navigation does not know the page (switch_page refuses), or — when
    Streamlit's legacy pages/ handling runs the file directly — the page's own role check
    stops it before it draws anything."""
    title = PAGES[page][0]
    try:
        at.switch_page(f"pages/{page}.py")
    except ValueError:
        return
    at.run()
    assert not at.exception
    assert title not in [t.value for t in at.title]
    assert not at.dataframe and not at.metric and not at.button
    assert any("not available for your role" in e.value for e in at.error) or at.title


def test_app_support_cannot_reach_approvals_or_flow_tests():
    at = signed_in("support")
    for page in ("approvals", "flow_tests", "overview"):
        assert_unreachable(at, page)
        open_page(at, "user_lookup")  # after visiting an allowed page too
        assert_unreachable(at, page)


def test_app_logout_returns_to_the_login():
    """The logout run says so and does not rerun (its cookie component must reach the
    browser to delete the login cookie — tests/browser/ reloads after a logout)."""
    at = signed_in("admin")
    at.sidebar.button(key="app_logout").click()
    at.run()
    assert not at.exception
    assert any("signed out" in i.value for i in at.info) and not at.metric and not at.dataframe
    at.run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_app_disabled_or_unknown_account_is_refused():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "ghost"
    at.session_state["roles"] = ["admin"]
    at.run()
    assert not at.exception
    assert not at.metric and any("disabled" in e.value for e in at.error)


def test_app_refuses_demo_credentials_on_a_real_database(monkeypatch):
    """With MONGODB_URI set the frame refuses before anyone can log in. The store itself
    is replaced by an embedded one flagged as real, since no MongoDB server runs here."""
    from console import loading
    from core.ledger.store import Store

    monkeypatch.setattr(Store, "from_environment", classmethod(lambda cls: _real_looking_store()))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert not at.exception
    assert any("credentials" in e.value for e in at.error)
    assert not at.text_input and loading is not None


def test_app_refuses_a_real_database_without_the_audit_witness(monkeypatch):
    """With MONGODB_URI set and no LEDGER_AUDIT_WITNESS the console refuses to start (a
    deleted tail of the audit trail would be undetectable), before any server is contacted."""
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?directConnection=true")
    monkeypatch.delenv("LEDGER_AUDIT_WITNESS", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert not at.exception
    assert any("LEDGER_AUDIT_WITNESS" in e.value for e in at.error)
    assert not at.text_input


def _real_looking_store():
    from core.ledger.store import Store

    store = Store.embedded_store("looks_real")
    store.embedded = False
    store.session_options = lambda: {}  # mongomock has no sessions; a real server's store would open one
    return store


def test_app_shows_a_clear_page_when_the_database_is_down(monkeypatch):
    from core.base.errors import StoreError
    from core.ledger.store import Store

    def unreachable(cls):
        raise StoreError("cannot reach MongoDB: ServerSelectionTimeoutError")

    monkeypatch.setattr(Store, "from_environment", classmethod(unreachable))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert not at.exception
    assert any("cannot be reached" in e.value for e in at.error)
    assert not at.text_input


@pytest.mark.parametrize("page", ["overview", "approvals", "flow_tests"])
def test_app_page_file_run_directly_checks_the_role_itself(page):
    """Streamlit may run a pages/ file without app.py on a session's first request (its
    legacy multipage mode): the page must then refuse by itself."""
    from core.base.permissions import Principal, Role
    from console.frame import PRINCIPAL_KEY

    direct = AppTest.from_file(APP.replace("app.py", f"pages/{page}.py"), default_timeout=TIMEOUT_SECONDS)
    direct.run()
    assert not direct.exception
    assert any("not signed in" in e.value for e in direct.error) and not direct.title
    direct = AppTest.from_file(APP.replace("app.py", f"pages/{page}.py"), default_timeout=TIMEOUT_SECONDS)
    direct.session_state[PRINCIPAL_KEY] = Principal(name="sam", role=Role.SUPPORT)
    direct.run()
    assert not direct.exception
    assert any("not available for your role" in e.value for e in direct.error) and not direct.title


def test_app_refuses_a_real_database_without_a_cookie_key(monkeypatch, tmp_path):
    from core.platform import logins as users
    from core.ledger.store import Store

    path = tmp_path / "console.yaml"
    monkeypatch.setattr(users, "BCRYPT_COST", 4)
    users.save_credentials(path, users.add_user(users.empty_credentials(), username="alice", name="Alice",
                                                email="alice@example.com", role="admin", password="long-enough-password"))
    monkeypatch.setenv("LEDGER_CREDENTIALS", str(path))
    monkeypatch.setattr(Store, "from_environment", classmethod(lambda cls: _real_looking_store()))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert not at.exception
    assert any("cookie key" in e.value for e in at.error)
    assert not at.text_input
    monkeypatch.setenv("LEDGER_COOKIE_KEY", "k" * 40)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert not at.exception and not at.error
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not any("Demo" in i.value for i in at.info)  # no demo banner on a real database


def test_app_signed_out_visitor_of_a_page_logs_in_and_lands_on_it():
    """The legacy pages/ mode serves a signed-out first request for /approvals without the
    frame: the page hands over (remembering itself) and the frame shows the login under that
    page's address; logging in then opens Approvals, not the default page."""
    from console.frame import NEXT_PAGE_KEY

    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.session_state[NEXT_PAGE_KEY] = "approvals"
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"] and not at.error
    at = submit(at, "admin", "demo-admin-2026")
    assert [t.value for t in at.title] == ["Approvals"]  # the form is gone, the asked-for page is drawn


def test_app_login_clears_the_form_in_the_same_run():
    """No rerun after the login (it would drop the login cookie streamlit-authenticator sets
    for reloads — tests/browser/ reloads): the form's slot is emptied instead."""
    at = submit(login_form(), "admin", "demo-admin-2026")
    assert at.session_state["authentication_status"] is True
    assert [t.value for t in at.title] == ["Overview"] and not at.text_input


def test_app_page_file_run_directly_remembers_the_page_for_after_login():
    from console.frame import NEXT_PAGE_KEY

    direct = AppTest.from_file(APP.replace("app.py", "pages/approvals.py"), default_timeout=TIMEOUT_SECONDS)
    direct.run()
    assert not direct.exception
    assert direct.session_state[NEXT_PAGE_KEY] == "approvals"


def test_app_people_for_names_and_approvers_carry_no_password():
    from console.frame import PEOPLE_KEY

    at = signed_in("admin")
    people = at.session_state[PEOPLE_KEY]
    assert people["usernames"]["admin2"] == {"name": "Alan Checker", "roles": ["admin"], "disabled": False}
    assert "password" not in str(people) and "$2b$" not in str(people)


def test_app_core_jargon_is_said_in_plain_words():
    from core.base.errors import AmountOverflowError, ExcessPrecisionError
    from console.formatting import plain

    signed_in("admin")  # builds the platform the wording reads asset scales from
    overflow = plain(AmountOverflowError("BTC amount of 99999999999999999999 minor units overflows int64", asset="BTC"))
    assert "int64" not in overflow and "minor units" not in overflow and "too large" in overflow
    precision = plain(ExcessPrecisionError("0.123456789 has more decimals than BTC allows", asset="BTC"))
    assert precision.startswith("BTC amounts have at most 8 decimals")


def test_app_login_form_is_drawn_while_the_ledger_is_still_loading(monkeypatch):
    """Issue 22: the login form does not wait for the ledger. The demo load is held back
    here; the form must still be drawn, with a word that the ledger is loading."""
    import threading

    from console import loading

    gate = threading.Event()
    real = loading.open_demo_platform

    def held_back(store, size):
        gate.wait(60)
        return real(store, size)

    monkeypatch.setattr(loading, "open_demo_platform", held_back)
    try:
        at = AppTest.from_file(APP, default_timeout=30)
        at.run()
        assert not at.exception
        assert [t.label for t in at.text_input] == ["Username", "Password"]
        assert any("loading in the background" in c.value for c in at.caption)
        assert not loading.platform_load().done.is_set()  # the form was drawn before the ledger was ready
    finally:
        gate.set()
    loading.platform_load().done.wait(60)
    at.run()  # once loaded, the login page no longer mentions it
    assert not any("loading in the background" in c.value for c in at.caption)


def test_app_logout_leaves_no_sidebar():
    """Issue 22: after Log out the sidebar is empty (it disappears), not a stale name and button."""
    at = signed_in("admin")
    assert at.sidebar.children  # page links, who is signed in, Log out
    at.sidebar.button(key="app_logout").click()
    at.run()
    assert not at.exception
    assert any("signed out" in i.value for i in at.info)
    assert not at.sidebar.children, [type(child).__name__ for child in at.sidebar.children.values()]


def test_app_sidebar_lists_the_roles_pages_as_links():
    """The frame draws the role's page links itself (Streamlit's own list is off: on a fresh
    server it first shows the pages/ folder's raw file names)."""
    at = signed_in("support")
    links = [link.proto.label for link in at.sidebar.get("page_link")]
    assert links == ["User lookup", "Integrity", "Audit trail"]
    assert not signed_in("qa").sidebar.get("page_link")  # one page needs no menu
