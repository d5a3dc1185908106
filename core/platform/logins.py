"""Console accounts: a credentials YAML file with bcrypt hashes, and `python -m core users`.

The console logs people in with streamlit-authenticator, which reads a dict of the form
`{"usernames": {name: {"name", "email", "password", "roles": [role]}}}`. This module owns
that file: it adds users, changes their role and disables them, always writing bcrypt
hashes (never a plain password) and replacing the file atomically so a crash cannot leave
half a file. streamlit-authenticator's own `Hasher` imports streamlit, and nothing in
`core/` may, so hashing uses `bcrypt` directly (the same library and cost it uses).

Demo accounts live in `demo/credentials.yaml` (marked `demo: true`); the console accepts
them only on the embedded store — recognised by path, by marker, and by their published
passwords' hashes, so a copy without the marker is refused too. Names the core reserves for
its own actors (`core.base.permissions.RESERVED_PRINCIPAL_ROLES`) are never console accounts, and
neither is any name starting `flowtest_` (RESERVED_PREFIXES): the flow-test sandbox acts
under that prefix, so a person named like it would read as the sandbox in the audit trail.
"""

from __future__ import annotations

import argparse
import copy
import getpass
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from core.base.errors import ConfigurationError, ConsoleUserError, ReservedNameError
from core.base.permissions import Role, is_reserved_name
from core.platform.boundary import boundary, credentials
from core.platform.settings import COOKIE_KEY_ENV, CREDENTIALS_ENV, login_settings

# The account functions check their own fields (ConsoleUserError says which); the boundary
# adds the document's shape.
_OWN_CHECK = {name: (lambda value, name: None) for name in ("username", "name", "email", "role", "password")}

logger = logging.getLogger(__name__)
DEMO_CREDENTIALS_PATH = Path(__file__).resolve().parents[2] / "demo" / "credentials.yaml"
CONSOLE_ROLES: tuple[Role, ...] = (Role.ADMIN, Role.SUPPORT, Role.QA)  # SYSTEM is never a person
BCRYPT_COST = 12
PASSWORD_LENGTH_MIN = 10
PASSWORD_LENGTH_MAX = 72  # bcrypt ignores bytes past 72
# \A...\Z with fullmatch: `$` let "sam\n" become a second account beside "sam".
USERNAME_PATTERN = re.compile(r"\A[a-z0-9_.\-]{2,64}\Z")
LOGIN_NAME_PATTERN = re.compile(r"\A[A-Za-z0-9_.@\-]{1,128}\Z")  # the Principal name form
EMAIL_PATTERN = re.compile(r"\A[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,190}\Z")
# The published demo passwords (docs/console.md, README): an account whose bcrypt hash
# matches one of them is a demo login whatever file it sits in, so a real database refuses it.
DEMO_PASSWORDS: tuple[str, ...] = ("demo-admin-2026", "demo-admin2-2026", "demo-support-2026", "demo-qa-2026")
DISPLAY_NAME_LENGTH_MAX = 100
# Whole families of names the core's own actors use (the flow-test sandbox's maker and
# checkers today, whatever it adds tomorrow): reserved by prefix, case-insensitively.
RESERVED_PREFIXES: tuple[str, ...] = ("flowtest_",)
CREDENTIALS_FILE_BYTES_MAX = 1_000_000


def hash_password(password: str) -> str:
    """bcrypt hash of `password`. Raises: ConsoleUserError if it is too short or too long."""
    if not isinstance(password, str) or not (PASSWORD_LENGTH_MIN <= len(password.encode()) <= PASSWORD_LENGTH_MAX):
        raise ConsoleUserError(f"password must be {PASSWORD_LENGTH_MIN}-{PASSWORD_LENGTH_MAX} bytes")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def check_password(password: str, hashed: str) -> bool:
    """True if `password` matches the bcrypt `hashed` (False for anything malformed)."""
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except (ValueError, TypeError, AttributeError):
        return False


def empty_credentials() -> dict:
    return {"usernames": {}}


def load_credentials(path: str | Path) -> dict:
    """Read and check a credentials file. A missing file reads as empty.

    Raises: ConfigurationError if the file is malformed, too large, or holds a plain
    password (every `password` must be a bcrypt hash).
    """
    path = Path(path)
    if not path.exists():
        return empty_credentials()
    if path.stat().st_size > CREDENTIALS_FILE_BYTES_MAX:
        raise ConfigurationError(f"credentials file {path} is larger than {CREDENTIALS_FILE_BYTES_MAX} bytes")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"credentials file {path} is not valid YAML ({type(error).__name__})") from None
    if not isinstance(document, dict) or not isinstance(document.get("usernames", {}), dict):
        raise ConfigurationError(f"credentials file {path} must map 'usernames' to accounts")
    document.setdefault("usernames", {})
    for username, user in document["usernames"].items():
        if not isinstance(user, dict) or not str(user.get("password", "")).startswith("$2"):
            raise ConfigurationError(f"credentials file {path}: account {username!r} has no bcrypt password hash")
    return document


def save_credentials(path: str | Path, document: dict) -> None:
    """Write atomically (temporary file + rename), readable by the owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(document, stream, sort_keys=True)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_role(role: object) -> Role:
    """Raises: ConsoleUserError unless `role` is one of the console roles."""
    try:
        value = Role(role)
    except ValueError:
        value = None
    if value not in CONSOLE_ROLES:
        raise ConsoleUserError(f"role must be one of {', '.join(r.value for r in CONSOLE_ROLES)}", role=str(role))
    return value


@boundary(document=credentials, **_OWN_CHECK)
def add_user(document: dict, *, username: str, name: str, email: str, role: str, password: str) -> dict:
    """Return a copy of `document` with a new enabled account. Raises: ConsoleUserError."""
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        raise ConsoleUserError("username must be 2-64 of a-z, 0-9, _ . -", username=repr(username))
    if _reserved(username):
        raise ReservedNameError(f"{username!r} is reserved for the core's own actors; choose another name", username=username)
    if username in document["usernames"]:
        raise ConsoleUserError(f"user {username!r} exists", username=username)
    if not isinstance(name, str) or not (1 <= len(name.strip()) <= DISPLAY_NAME_LENGTH_MAX) or not name.isprintable():
        raise ConsoleUserError(f"name must be 1-{DISPLAY_NAME_LENGTH_MAX} characters")
    if not isinstance(email, str) or not EMAIL_PATTERN.fullmatch(email):
        raise ConsoleUserError("email is not an address", email=repr(email))
    result = copy.deepcopy(document)
    result["usernames"][username] = {
        "name": name.strip(), "email": email, "password": hash_password(password),
        "roles": [check_role(role).value], "disabled": False,
    }
    return result


@boundary(document=credentials, **_OWN_CHECK)
def set_role(document: dict, *, username: str, role: str) -> dict:
    """Return a copy with the user's role changed. Raises: ConsoleUserError."""
    result = copy.deepcopy(document)
    _user(result, username)["roles"] = [check_role(role).value]
    return result


@boundary(document=credentials, **_OWN_CHECK)
def disable_user(document: dict, *, username: str) -> dict:
    """Return a copy with the user disabled (kept for the audit trail, never able to log in)."""
    result = copy.deepcopy(document)
    _user(result, username)["disabled"] = True
    return result


def _user(document: dict, username: str) -> dict:
    user = document["usernames"].get(username) if isinstance(username, str) else None
    if user is None:
        raise ConsoleUserError(f"no user {username!r}", username=repr(username))
    return user


def console_credentials(document: dict) -> dict:
    """What the login widget may see: enabled accounts only, with exactly one console role.

    A deep copy, because streamlit-authenticator mutates the dict it is given.
    """
    usernames = {}
    for username, user in document.get("usernames", {}).items():
        roles = [r for r in user.get("roles") or [] if r in {role.value for role in CONSOLE_ROLES}]
        if user.get("disabled") or len(roles) != 1 or not _person_name(username):
            continue  # a reserved or look-alike name never logs in, even if hand-written into the file
        usernames[username] = {"name": user.get("name", username), "email": user.get("email", ""),
                               "password": user["password"], "roles": roles}
    return {"usernames": copy.deepcopy(usernames)}


def _person_name(username: object) -> bool:
    """A name a person may log in under: plain characters (files written by hand or by an
    older version may hold names `add` would refuse now) and never a reserved one."""
    return isinstance(username, str) and bool(LOGIN_NAME_PATTERN.fullmatch(username)) and not _reserved(username)


def _reserved(username: str) -> bool:
    """A name no console account may take: one the core acts under, or one of its prefixes."""
    return is_reserved_name(username) or username.lower().startswith(RESERVED_PREFIXES)


_HASHES_CHECKED_AGAINST_DEMO: set[str] = set()  # bcrypt is slow on purpose: check each hash once per process


def demo_password_accounts(document: dict) -> list[str]:
    """Usernames in `document` whose password hash matches a published demo password.

    Checks the hash, not the file's path or marker: a copy of the demo file with its
    `demo: true` line removed is still the demo accounts."""
    found = []
    for username, user in (document.get("usernames") or {}).items():
        hashed = user.get("password") if isinstance(user, dict) else None
        if not isinstance(hashed, str) or hashed in _HASHES_CHECKED_AGAINST_DEMO:
            continue
        if any(check_password(password, hashed) for password in DEMO_PASSWORDS):
            found.append(str(username))
        else:
            _HASHES_CHECKED_AGAINST_DEMO.add(hashed)
    return found


def role_of(roles: Any) -> Role | None:
    """The console role from a session's `roles` list, or None when it is not exactly one console role."""
    if not isinstance(roles, (list, tuple)):
        return None
    console = [r for r in roles if r in {role.value for role in CONSOLE_ROLES}]
    return Role(console[0]) if len(console) == 1 else None


def is_demo_credentials(path: str | Path, document: dict) -> bool:
    """True for the shipped demo file (by path or by its `demo: true` marker)."""
    try:
        same = Path(path).resolve() == DEMO_CREDENTIALS_PATH
    except OSError as error:
        logger.debug("cannot resolve the credentials path (%s): judged by its marker only", type(error).__name__)
        same = False
    return same or bool(document.get("demo"))


COOKIE_KEY_LENGTH_MIN = 32
DEMO_COOKIE_KEY = "demo-only-cookie-key-embedded-store-never-production"


@dataclass(frozen=True)
class ConsoleAuth:
    """Where the console's logins come from, decided once at start-up."""

    credentials_path: Path
    cookie_key: str
    demo: bool


def resolve_console_auth(*, embedded: bool, credentials_path: str | None, cookie_key: str | None) -> ConsoleAuth:
    """Pick the credentials file and cookie key, refusing unsafe combinations.

    On the embedded (demo) store, missing settings fall back to the demo file and a demo
    cookie key. On a real database (`MONGODB_URI`), demo credentials and a missing or short
    cookie key are refused: anyone who read the README could otherwise log in or forge a
    login cookie. Raises: ConfigurationError saying why.
    """
    path = Path(credentials_path) if credentials_path else None
    if not embedded:
        if path is None:
            raise ConfigurationError(f"MONGODB_URI is set but no credentials file is configured: set {CREDENTIALS_ENV} "
                                     "(or credentials_path in .streamlit/secrets.toml); demo logins exist only on the embedded store")
        document = load_credentials(path)
        if is_demo_credentials(path, document):
            raise ConfigurationError("MONGODB_URI is set: refusing to start with the demo credentials file "
                                     "(create real accounts with `python -m core users add`)")
        demo_accounts = demo_password_accounts(document)
        if demo_accounts:
            raise ConfigurationError(f"MONGODB_URI is set: refusing to start: account(s) {', '.join(sorted(demo_accounts))} in "
                                     f"{path} use a published demo password; set a new one with `python -m core users add`",
                                     accounts=sorted(demo_accounts))
        if not document["usernames"]:
            raise ConfigurationError(f"credentials file {path} has no accounts: add one with `python -m core users add`")
        if not cookie_key or len(cookie_key) < COOKIE_KEY_LENGTH_MIN or cookie_key == DEMO_COOKIE_KEY:
            raise ConfigurationError(f"MONGODB_URI is set: refusing to start without a cookie key of at least "
                                     f"{COOKIE_KEY_LENGTH_MIN} characters ({COOKIE_KEY_ENV} or cookie_key in secrets)")
        return ConsoleAuth(path, cookie_key, demo=False)
    path = path or DEMO_CREDENTIALS_PATH
    document = load_credentials(path)
    return ConsoleAuth(path, cookie_key or DEMO_COOKIE_KEY, demo=is_demo_credentials(path, document))


# -- CLI ----------------------------------------------------------------------------------------
def _credentials_path(args: argparse.Namespace) -> Path:
    value = args.file or login_settings().credentials_path
    if not value:
        raise ConfigurationError(f"name the credentials file with --file or {CREDENTIALS_ENV}")
    return Path(value)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConsoleUserError("passwords differ")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    """Exit 0 when the file was changed, 2 when the command was refused (nothing written)."""
    try:
        return _run_users_command(args)
    except (ConsoleUserError, ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run_users_command(args: argparse.Namespace) -> int:
    path = _credentials_path(args)
    document = load_credentials(path)
    if is_demo_credentials(path, document):
        raise ConfigurationError("refusing to edit the demo credentials file: it is regenerated, not managed")
    if args.users_command == "add":
        document = add_user(document, username=args.username, name=args.name, email=args.email,
                            role=args.role, password=_read_password(args))
    elif args.users_command == "set-role":
        document = set_role(document, username=args.username, role=args.role)
    else:
        document = disable_user(document, username=args.username)
    save_credentials(path, document)
    print(f"{args.users_command}: {args.username} ({path})")
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="manage console accounts in the credentials file")
    users.add_argument("--file", help=f"credentials YAML (default: ${CREDENTIALS_ENV})")
    actions = users.add_subparsers(dest="users_command", required=True)
    add = actions.add_parser("add", help="add a console user (password read from a prompt or stdin)")
    add.add_argument("username")
    add.add_argument("--name", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in CONSOLE_ROLES])
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    role = actions.add_parser("set-role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("--role", required=True, choices=[r.value for r in CONSOLE_ROLES])
    disable = actions.add_parser("disable", help="disable a user (cannot log in any more)")
    disable.add_argument("username")
    for parser in (add, role, disable):
        parser.add_argument("--file", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        parser.set_defaults(handler=cmd_users)
