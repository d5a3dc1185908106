"""Console accounts: bcrypt hashes, role changes, disabling, the CLI, start-up refusals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from core.platform import logins as users
from core.cli.main import main
from core.base.errors import ConfigurationError, ConsoleUserError
from core.base.permissions import Role

PASSWORD = "correct-horse-42"


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    monkeypatch.setattr(users, "BCRYPT_COST", 4)  # the real cost (12) takes ~0.2 s per hash


def test_hash_password_checks_and_refuses_plain_or_short():
    hashed = users.hash_password(PASSWORD)
    assert hashed.startswith("$2") and PASSWORD not in hashed
    assert users.check_password(PASSWORD, hashed)
    assert not users.check_password("wrong-password-1", hashed)
    assert not users.check_password(PASSWORD, "not-a-hash")
    for bad in ("short", "x" * 73, None, 12345678901):
        with pytest.raises(ConsoleUserError):
            users.hash_password(bad)


def test_add_user_stores_hash_and_refuses_bad_input():
    document = users.add_user(users.empty_credentials(), username="alice", name="Alice", email="a@example.com", role="support", password=PASSWORD)
    entry = document["usernames"]["alice"]
    assert entry["roles"] == ["support"] and entry["password"].startswith("$2") and not entry["disabled"]
    for kwargs in (
        {"username": "alice"},                      # exists
        {"username": "Bad Name!"},
        {"username": "x" * 65},
        {"role": "system"},                         # never a console role
        {"role": "root"},
        {"email": "not-an-email"},
        {"name": ""},
        {"password": "short"},
    ):
        args = {"username": "bob", "name": "Bob", "email": "b@example.com", "role": "qa", "password": PASSWORD, **kwargs}
        with pytest.raises(ConsoleUserError):
            users.add_user(document, **args)
    assert set(document["usernames"]) == {"alice"}


def test_set_role_and_disable_change_only_that_user():
    document = users.add_user(users.empty_credentials(), username="alice", name="Alice", email="a@example.com", role="support", password=PASSWORD)
    promoted = users.set_role(document, username="alice", role="admin")
    assert promoted["usernames"]["alice"]["roles"] == ["admin"]
    assert document["usernames"]["alice"]["roles"] == ["support"]  # copies, not mutation
    disabled = users.disable_user(promoted, username="alice")
    assert disabled["usernames"]["alice"]["disabled"] is True
    assert users.console_credentials(disabled) == {"usernames": {}}
    with pytest.raises(ConsoleUserError):
        users.set_role(document, username="nobody", role="qa")
    with pytest.raises(ConsoleUserError):
        users.disable_user(document, username="nobody")


def test_console_credentials_keeps_one_role_and_no_extra_fields():
    document = {"usernames": {
        "a": {"name": "A", "email": "a@x.io", "password": "$2b$04$x", "roles": ["admin"], "salt": "s"},
        "b": {"name": "B", "email": "b@x.io", "password": "$2b$04$x", "roles": ["admin", "qa"]},
        "c": {"name": "C", "email": "c@x.io", "password": "$2b$04$x", "roles": ["system"]},
    }}
    result = users.console_credentials(document)
    assert list(result["usernames"]) == ["a"]
    assert set(result["usernames"]["a"]) == {"name", "email", "password", "roles"}
    assert users.role_of(["support"]) is Role.SUPPORT
    assert users.role_of(["admin", "qa"]) is None and users.role_of("admin") is None and users.role_of(None) is None


def test_load_credentials_refuses_plain_passwords_and_garbage(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"usernames": {"a": {"password": "plain-text", "roles": ["admin"]}}}))
    with pytest.raises(ConfigurationError):
        users.load_credentials(path)
    path.write_text("usernames: [1, 2")
    with pytest.raises(ConfigurationError):
        users.load_credentials(path)
    assert users.load_credentials(tmp_path / "missing.yaml") == {"usernames": {}}


def test_resolve_console_auth_refuses_demo_and_missing_cookie_on_real_store(tmp_path: Path):
    demo = users.resolve_console_auth(embedded=True, credentials_path=None, cookie_key=None)
    assert demo.demo and demo.credentials_path == users.DEMO_CREDENTIALS_PATH
    with pytest.raises(ConfigurationError, match="no credentials file"):
        users.resolve_console_auth(embedded=False, credentials_path=None, cookie_key="k" * 40)
    with pytest.raises(ConfigurationError, match="demo credentials"):
        users.resolve_console_auth(embedded=False, credentials_path=str(users.DEMO_CREDENTIALS_PATH), cookie_key="k" * 40)
    real = tmp_path / "real.yaml"
    users.save_credentials(real, users.add_user(users.empty_credentials(), username="alice", name="A", email="a@x.io", role="admin", password=PASSWORD))
    for key in (None, "", "short", users.DEMO_COOKIE_KEY):
        with pytest.raises(ConfigurationError, match="cookie key"):
            users.resolve_console_auth(embedded=False, credentials_path=str(real), cookie_key=key)
    ok = users.resolve_console_auth(embedded=False, credentials_path=str(real), cookie_key="k" * 40)
    assert not ok.demo and ok.credentials_path == real


def test_demo_credentials_file_holds_the_documented_logins():
    document = users.load_credentials(users.DEMO_CREDENTIALS_PATH)
    assert document["demo"] is True
    for username, password in (("admin", "demo-admin-2026"), ("admin2", "demo-admin2-2026"),
                               ("support", "demo-support-2026"), ("qa", "demo-qa-2026")):
        assert users.check_password(password, document["usernames"][username]["password"])


def test_users_cli_add_set_role_disable(tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "console.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "--file", str(path), "add", "carol", "--name", "Carol", "--email", "c@x.io", "--role", "qa", "--password-stdin"]) == 0
    stored = yaml.safe_load(path.read_text())
    assert stored["usernames"]["carol"]["roles"] == ["qa"] and PASSWORD not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    assert main(["users", "--file", str(path), "set-role", "carol", "--role", "support"]) == 0
    assert main(["users", "--file", str(path), "disable", "carol"]) == 0
    stored = yaml.safe_load(path.read_text())
    assert stored["usernames"]["carol"] == {**stored["usernames"]["carol"], "roles": ["support"], "disabled": True}
    before = path.read_text()
    assert main(["users", "--file", str(path), "set-role", "nobody", "--role", "qa"]) == 2
    assert main(["users", "--file", str(path), "set-role", "carol", "--role", "system"]) == 2
    assert path.read_text() == before
    monkeypatch.delenv(users.CREDENTIALS_ENV, raising=False)
    assert main(["users", "disable", "carol"]) == 2  # no file named
    assert main(["users", "--file", str(users.DEMO_CREDENTIALS_PATH), "disable", "qa"]) == 2  # demo file is not managed


# -- hostile input (issue 11) ---------------------------------------------------------------------
@pytest.mark.parametrize("username", ["sam\n", "sam\n\n", "sam\x00", "Sam", "s am", "$sam", "sam\t"])
def test_add_user_refuses_look_alike_names(username):
    with pytest.raises(ConsoleUserError):
        users.add_user(users.empty_credentials(), username=username, name="Sam", email="s@x.io", role="qa", password=PASSWORD)


@pytest.mark.parametrize("email", ["s@x.io\n", "s@x.io\x00", "s\n@x.io"])
def test_add_user_refuses_look_alike_emails(email):
    with pytest.raises(ConsoleUserError):
        users.add_user(users.empty_credentials(), username="sam", name="Sam", email=email, role="qa", password=PASSWORD)


@pytest.mark.parametrize("username", ["system", "cli", "platform", "world", "legacy-fixture", "flowtest_maker"])
def test_add_user_refuses_reserved_names(username):
    from core.base.errors import ReservedNameError

    with pytest.raises(ReservedNameError):
        users.add_user(users.empty_credentials(), username=username, name="X", email="x@x.io", role="admin", password=PASSWORD)


def test_reserved_and_look_alike_names_never_log_in():
    """A hand-edited file cannot smuggle in a person named like the backend or the CLI."""
    hashed = users.hash_password(PASSWORD)
    document = {"usernames": {name: {"name": "X", "email": "x@x.io", "password": hashed, "roles": ["admin"]}
                              for name in ("system", "cli", "CLI", "admin\n", "ann")}}
    assert list(users.console_credentials(document)["usernames"]) == ["ann"]


@pytest.mark.parametrize("username", ["flowtest_probe", "flowtest_", "flowtest_maker2", "flowtest_checker3"])
def test_add_user_refuses_every_flowtest_prefixed_name(username):
    """Issue 22 item 18: the whole `flowtest_` family is the sandbox's, not three exact names."""
    from core.base.errors import ReservedNameError

    with pytest.raises(ReservedNameError, match="reserved"):
        users.add_user(users.empty_credentials(), username=username, name="X", email="x@x.io", role="admin", password=PASSWORD)


def test_add_user_accepts_names_that_only_resemble_the_flowtest_prefix():
    document = users.empty_credentials()
    for username in ("flowtest", "flowtester", "my_flowtest_x", "flow_test_x"):
        document = users.add_user(document, username=username, name="X", email="x@x.io", role="qa", password=PASSWORD)
    assert set(document["usernames"]) == {"flowtest", "flowtester", "my_flowtest_x", "flow_test_x"}


def test_flowtest_prefixed_names_never_log_in_from_a_hand_edited_file():
    hashed = users.hash_password(PASSWORD)
    document = {"usernames": {name: {"name": "X", "email": "x@x.io", "password": hashed, "roles": ["admin"]}
                              for name in ("flowtest_probe", "FlowTest_Probe", "ann")}}
    assert list(users.console_credentials(document)["usernames"]) == ["ann"]


def test_users_cli_refuses_flowtest_probe_with_exit_2_and_writes_nothing(tmp_path: Path, monkeypatch):
    path = tmp_path / "console.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "--file", str(path), "add", "flowtest_probe", "--name", "X", "--email", "x@x.io",
                 "--role", "admin", "--password-stdin"]) == 2
    assert not path.exists()


def test_principal_refuses_reserved_names_in_another_role():
    from core.base.errors import InvalidPrincipalError, PermissionDeniedError
    from core.base.permissions import SYSTEM, Principal, check_principal

    for name, role in (("system", Role.ADMIN), ("cli", Role.SUPPORT), ("System", Role.SYSTEM), ("admin\n", Role.ADMIN)):
        with pytest.raises(InvalidPrincipalError):
            Principal(name=name, role=role)
    assert issubclass(InvalidPrincipalError, PermissionDeniedError)
    assert check_principal(SYSTEM) is SYSTEM
    assert Principal(name="cli", role=Role.ADMIN).name == "cli"  # the CLI's own principal
    forged = Principal.model_construct(name="admin\n", role=Role.ADMIN)
    with pytest.raises(InvalidPrincipalError):
        check_principal(forged)
    for junk in (None, {"name": "admin", "role": "admin"}, "admin"):
        with pytest.raises(InvalidPrincipalError):
            check_principal(junk)


def test_users_cli_refuses_newline_and_reserved_names(tmp_path: Path, monkeypatch):
    path = tmp_path / "console.yaml"
    for username in ("sam\n", "system", "cli"):
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["users", "--file", str(path), "add", username, "--name", "X", "--email", "x@x.io",
                     "--role", "admin", "--password-stdin"]) == 2
    assert not path.exists()


def test_demo_passwords_are_refused_by_hash_on_a_real_store(tmp_path: Path):
    """A copy of the demo file without its `demo: true` marker, or one demo account pasted
    into a real file, is still refused when MONGODB_URI is set."""
    demo = users.load_credentials(users.DEMO_CREDENTIALS_PATH)
    copy = tmp_path / "copy.yaml"
    users.save_credentials(copy, {"usernames": demo["usernames"]})  # marker removed, other path
    with pytest.raises(ConfigurationError, match="demo password") as refusal:
        users.resolve_console_auth(embedded=False, credentials_path=str(copy), cookie_key="k" * 40)
    assert set(refusal.value.details["accounts"]) == {"admin", "admin2", "qa", "support"}
    mixed = tmp_path / "mixed.yaml"
    document = users.add_user(users.empty_credentials(), username="alice", name="A", email="a@x.io", role="admin", password=PASSWORD)
    document["usernames"]["boss"] = {"name": "B", "email": "b@x.io", "roles": ["admin"],
                                     "password": users.hash_password("demo-support-2026")}  # re-hashed: a new salt
    users.save_credentials(mixed, document)
    with pytest.raises(ConfigurationError, match="boss"):
        users.resolve_console_auth(embedded=False, credentials_path=str(mixed), cookie_key="k" * 40)
    assert users.demo_password_accounts({"usernames": {"alice": document["usernames"]["alice"]}}) == []


def test_demo_password_check_is_not_needed_on_the_embedded_store():
    auth = users.resolve_console_auth(embedded=True, credentials_path=None, cookie_key=None)
    assert auth.demo
