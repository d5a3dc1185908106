"""What the console's frame (app.py) and its pages share: the page list and roles, the
signed-in principal, refusals shown as messages, pagers, and user fields and links.
UI layer only (imports streamlit); all logic is in core.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.platform import directory
from core.base.errors import (
    LedgerError,
)
from core.base.permissions import Principal, Role
from core.platform import COUNT_SHOWN_MAX
from console import loading
from console.formatting import plain


logger = logging.getLogger(__name__)
PRINCIPAL_KEY = "app_principal"


PEOPLE_KEY = "app_people"


NEXT_PAGE_KEY = "app_next_page"  # the page a signed-out visitor asked for (opened after login)


USER_PARAM = "user"  # ?user=<id> opens User lookup on that person


RUN_PARAM = "run"  # ?run=<id> opens Integrity on that stored run


USER_CHOICES_MAX = 10  # people offered when a user field's text is not an id


PAGE_SIZES = (25, 50, 100)


PAGE_SIZE_BOX_PX = 90


# page file stem -> (title, icon, roles that may open it) — SPEC §11. app.py registers
# only a role's pages with st.navigation; each page checks again (see `principal`).
PAGES: dict[str, tuple[str, str, frozenset[Role]]] = {
    "overview": ("Overview", ":material/dashboard:", frozenset({Role.ADMIN})),
    "fees_liquidity": ("Fees & liquidity", ":material/account_balance:", frozenset({Role.ADMIN})),
    "user_lookup": ("User lookup", ":material/person_search:", frozenset({Role.ADMIN, Role.SUPPORT})),
    "integrity": ("Integrity", ":material/verified:", frozenset({Role.ADMIN, Role.SUPPORT})),
    "audit_trail": ("Audit trail", ":material/history:", frozenset({Role.ADMIN, Role.SUPPORT})),
    "approvals": ("Approvals", ":material/approval:", frozenset({Role.ADMIN})),
    "flow_tests": ("Flow tests", ":material/science:", frozenset({Role.ADMIN, Role.QA})),
    "proof_of_liabilities": ("Proof of liabilities", ":material/balance:", frozenset({Role.ADMIN})),
}


def principal(page: str) -> Principal:
    """The signed-in person as core sees them, if their role may open `page`; else stop.

    app.py sets it before it runs a page. The page checks again because Streamlit runs a
    file from the `pages/` folder directly (without app.py) when a session's very first
    request names it — the legacy multipage behaviour that `st.navigation` only switches
    off once app.py has run. Without this check that request would skip the login.
    """
    value = st.session_state.get(PRINCIPAL_KEY)
    if not isinstance(value, Principal):
        st.session_state[NEXT_PAGE_KEY] = page  # the frame opens it after the login
        try:  # served without app.py (legacy pages/ mode): hand over to the frame's login
            st.switch_page("app.py")
        except StreamlitAPIException:  # no frame to hand over to (the page file was run on its own)
            logger.debug("page %s run without app.py: no frame to hand the login over to", page, exc_info=True)
        st.error("You are not signed in. Open the console's start page to log in.")
        st.stop()
    if value.role not in PAGES[page][2]:
        st.error("This page is not available for your role.")
        st.stop()
    return value


@contextmanager
def refusals() -> Iterator[None]:
    """Show a core refusal as a clear message instead of a traceback."""
    try:
        yield
    except LedgerError as error:
        st.error(plain(error))


def pager(prefix: str, has_more: bool, shown: int = 0, total: int | None = None) -> tuple[int, int]:
    """Page number and size controls kept in session state under `<prefix>_page`/`_page_size`.
    The caption says which rows are shown and, when known, of how many."""
    page_key, size_key = f"{prefix}_page", f"{prefix}_page_size"
    st.session_state.setdefault(page_key, 0)
    # one row of controls sized to their text, wrapping onto a second line in a narrow window
    # (equal columns squeezed "◀ Previous" to "◀.." at 900 px)
    row = st.container(horizontal=True, vertical_alignment="center", gap="small")
    if row.button("◀ Previous", key=f"{prefix}_prev", disabled=st.session_state[page_key] == 0):
        st.session_state[page_key] -= 1
        st.rerun()
    if row.button("Next ▶", key=f"{prefix}_next", disabled=not has_more):
        st.session_state[page_key] += 1
        st.rerun()
    page_size = row.selectbox("Rows per page", PAGE_SIZES, key=size_key, label_visibility="collapsed", width=PAGE_SIZE_BOX_PX)
    row.caption(page_caption(st.session_state[page_key], page_size, shown, has_more, total), width="content")
    return st.session_state[page_key], page_size


def page_caption(page: int, page_size: int, shown: int, has_more: bool, total: int | None) -> str:
    """"rows 26–50 of 57 · page 2 of 3" (or "… of more than 50" when only has_more is known)."""
    first, last = page * page_size + 1, page * page_size + shown
    if total is not None and total > COUNT_SHOWN_MAX:  # counted only up to the cap: the history may be long
        pages = -(-COUNT_SHOWN_MAX // page_size)
        rows = f"rows {first:,}–{last:,} of more than {COUNT_SHOWN_MAX:,}" if shown else "no rows"
        return f"{rows} · page {page + 1:,} of more than {pages:,}"
    if total is not None:
        pages = max(1, -(-total // page_size))
        rows = f"rows {first:,}–{last:,} of {total:,}" if shown else f"no rows of {total:,}"
        return f"{rows} · page {page + 1:,} of {pages:,}"
    if not shown:
        return f"page {page + 1:,} · no rows"
    return f"rows {first:,}–{last:,}" + (f" of more than {last:,}" if has_more else f" of {last:,}") + f" · page {page + 1:,}"


def page_state(prefix: str) -> tuple[int, int]:
    """Current (page, page_size) before the table is read; `pager` draws the controls after."""
    return st.session_state.get(f"{prefix}_page", 0), st.session_state.get(f"{prefix}_page_size", PAGE_SIZES[0])


def console_people() -> dict:
    """The console's accounts without secrets ({"usernames": {u: {name, roles, disabled}}}),
    set by app.py from the credentials file: who may approve, and names beside usernames."""
    return st.session_state.get(PEOPLE_KEY) or {"usernames": {}}


def user_url(user_id: str) -> str:
    """The User lookup page opened on one user (a link in tables: LinkColumn)."""
    return f"/user_lookup?{USER_PARAM}={quote(user_id, safe='')}"


USER_LINK_COLUMN = "Open user"


def user_link_column(label: str = USER_LINK_COLUMN) -> dict:
    """column_config for a column of `user_url` values: shows the id, opens User lookup."""
    return {label: st.column_config.LinkColumn(label, display_text=r"user=(.*)$", help="Opens this user in User lookup")}


def user_field(key: str, label: str, help: str, *, prefix_allowed: bool = False) -> str | None:
    """A user text field that accepts what User lookup accepts: the id with surrounding spaces
    or in another case (" U0001 " → u0001, an upper-case UUID → the stored one); for other
    text (part of an email or name) it offers the matching people to pick from. Text that
    matches nobody is returned as typed (trimmed): the caller's own refusal names it. With
    `prefix_allowed`, "text*" (a prefix filter) is returned unchanged. Returns None when empty."""
    text = st.text_input(label, key=key, max_chars=directory.SEARCH_TEXT_LENGTH_MAX, help=help)
    wanted = text.strip()
    me = st.session_state.get(PRINCIPAL_KEY)
    if not wanted or (prefix_allowed and wanted.endswith("*")) or not isinstance(me, Principal):
        return wanted or None
    try:
        found = directory.find_users(loading.get_platform().store, me, wanted, page_size=USER_CHOICES_MAX)
    except LedgerError:
        return wanted  # not searchable text, or the role may not read the directory: the id as typed
    exact = [person for person in found.items if person.user_id.casefold() == wanted.casefold()]
    if exact:
        if exact[0].user_id != wanted:
            st.caption(f"{exact[0].name} ({exact[0].user_id})")
        return exact[0].user_id
    if not found.items:
        return wanted
    people = {person.user_id: f"{person.name} · {person.user_id} · {person.email}" for person in found.items}
    more = f" (first {len(people)} of {found.total:,})" if found.total > len(people) else ""
    return st.selectbox(f"“{wanted}” is not a user id — people matching it{more}", list(people), key=f"{key}_choice",
                        format_func=people.get)


def link_to_user(user_id: str, name: str = "", key: str | None = None) -> None:
    """A link (same tab) to User lookup showing `user_id`."""
    label = f"Open {name} ({user_id}) in User lookup" if name else f"Open {user_id} in User lookup"
    st.page_link("pages/user_lookup.py", label=label, icon=":material/person_search:", query_params={USER_PARAM: user_id})
