"""Every environment variable is read through core.base.settings / core.platform.settings:
read when asked for (never cached), malformed values refused with a named error that
never echoes the value."""

import re
from pathlib import Path

import pytest
from pydantic import Field

from core.base import settings as base_settings
from core.base.errors import ConfigurationError, LegacyConfigurationError, MalformedDatabaseUriError
from core.ledger.store import Store
from core.platform import settings

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cret-Passw0rd"
SEED, MASTER = "ab" * 32, "cd" * 32
VARIABLES = ("MONGODB_URI", "LEDGER_DB", "LEDGER_AUDIT_WITNESS", "LEGACY_MONGODB_URI", "LEGACY_DB",
             "LEDGER_POL_SIGNING_KEY", "LEDGER_POL_SECRET_KEY", "LEDGER_CREDENTIALS", "LEDGER_COOKIE_KEY",
             "LEDGER_COOKIE_EXPIRY_DAYS", "LEDGER_LOGIN_SLEEP_TIME", "LEDGER_FAILED_LOGIN_DELAY", "LEDGER_DEMO_SIZE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _plain(value):
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


@pytest.mark.parametrize("read, field, variable, value, expected", [
    (settings.database_settings, "uri", "MONGODB_URI", " mongodb://db:27017/?replicaSet=rs ", "mongodb://db:27017/?replicaSet=rs"),
    (settings.database_settings, "name", "LEDGER_DB", "ledger_prod", "ledger_prod"),
    (settings.witness_settings, "path", "LEDGER_AUDIT_WITNESS", "/var/lib/ledger/witness.log", "/var/lib/ledger/witness.log"),
    (settings.legacy_settings, "uri", "LEGACY_MONGODB_URI", "mongodb+srv://old.example.com/", "mongodb+srv://old.example.com/"),
    (settings.legacy_settings, "name", "LEGACY_DB", "exchange", "exchange"),
    (settings.login_settings, "credentials_path", "LEDGER_CREDENTIALS", "/etc/ledger/users.yaml", "/etc/ledger/users.yaml"),
    (settings.login_settings, "cookie_key", "LEDGER_COOKIE_KEY", "k" * 40, "k" * 40),
    (settings.login_settings, "cookie_expiry_days", "LEDGER_COOKIE_EXPIRY_DAYS", "0", 0.0),
    (settings.login_settings, "login_sleep_time", "LEDGER_LOGIN_SLEEP_TIME", "0.25", 0.25),
    (settings.login_settings, "failed_login_delay", "LEDGER_FAILED_LOGIN_DELAY", " 2 ", 2.0),
    (settings.demo_settings, "size", "LEDGER_DEMO_SIZE", "small", "small"),
])
def test_each_variable_is_read_through_settings_when_asked_for(monkeypatch, read, field, variable, value, expected):
    default = _plain(getattr(read(), field))
    monkeypatch.setenv(variable, value)
    assert _plain(getattr(read(), field)) == expected  # not cached: the change is seen by the next read
    monkeypatch.setenv(variable, "   ")  # blank is "not set"
    assert _plain(getattr(read(), field)) == default
    monkeypatch.delenv(variable)
    assert _plain(getattr(read(), field)) == default


def test_defaults():
    assert settings.database_settings().uri is None and settings.database_settings().name == "ledger"
    assert settings.witness_settings().path is None
    assert settings.legacy_settings().uri is None and settings.legacy_settings().name is None
    assert not settings.liabilities_key_settings().configured
    login = settings.login_settings()
    assert (login.credentials_path, login.cookie_key) == (None, None)
    assert (login.cookie_expiry_days, login.login_sleep_time, login.failed_login_delay) == (0.5, 0.0, 1.0)
    assert settings.demo_settings().size == "snapshot"


def test_the_liabilities_keys_are_read_as_a_pair(monkeypatch):
    monkeypatch.setenv("LEDGER_POL_SIGNING_KEY", SEED)
    monkeypatch.setenv("LEDGER_POL_SECRET_KEY", MASTER)
    keys = settings.liabilities_key_settings()
    assert keys.configured and keys.signing_key.get_secret_value() == SEED and keys.secret_key.get_secret_value() == MASTER


@pytest.mark.parametrize("uri", ["not-a-uri", "http://db:27017", "mongodb://", f"mongodb://user:{SECRET}@/ledger",
                                 f"mongodb://user:{SECRET}@a b/", "mongodb://h/\x01" + "x" * 5_000])
@pytest.mark.parametrize("variable, read, which", [("MONGODB_URI", settings.database_settings, "ledger"),
                                                   ("LEGACY_MONGODB_URI", settings.legacy_settings, "legacy")])
def test_a_malformed_uri_is_refused_naming_the_database_never_echoing_it(monkeypatch, uri, variable, read, which):
    monkeypatch.setenv(variable, uri)
    with pytest.raises(MalformedDatabaseUriError) as refused:
        read()
    assert variable in refused.value.message and which in refused.value.message and refused.value.details["which"] == which
    assert SECRET not in str(refused.value) and "not-a-uri" not in str(refused.value)


@pytest.mark.parametrize("name", ["a.b", "a/b", "a b", "$db", "x" * 64, "é" * 32, "db\x01"])
@pytest.mark.parametrize("variable, read, error", [("LEDGER_DB", settings.database_settings, ConfigurationError),
                                                   ("LEGACY_DB", settings.legacy_settings, LegacyConfigurationError)])
def test_a_database_name_mongodb_refuses_is_refused(monkeypatch, name, variable, read, error):
    monkeypatch.setenv(variable, name)
    with pytest.raises(error, match=variable) as refused:
        read()
    assert name not in refused.value.message


@pytest.mark.parametrize("variable", ["LEDGER_AUDIT_WITNESS", "LEDGER_CREDENTIALS"])
@pytest.mark.parametrize("path", ["/tmp/w\x01itness", "/tmp/" + "w" * 5_000])
def test_a_path_with_control_characters_or_too_long_is_refused(monkeypatch, variable, path):
    monkeypatch.setenv(variable, path)
    with pytest.raises(ConfigurationError, match=variable):
        settings.witness_settings() if variable == "LEDGER_AUDIT_WITNESS" else settings.login_settings()


@pytest.mark.parametrize("variable", ["LEDGER_COOKIE_EXPIRY_DAYS", "LEDGER_LOGIN_SLEEP_TIME", "LEDGER_FAILED_LOGIN_DELAY"])
@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "1e9", "0x10", "1,5"])
def test_a_number_that_is_not_one_or_out_of_range_is_refused(monkeypatch, variable, value):
    """Before: silently the default (or 0 for a negative). Now the console says which setting is wrong."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable) as refused:
        settings.login_settings()
    assert refused.value.details["variable"] == variable


@pytest.mark.parametrize("seed, master, named", [
    (SEED, None, "LEDGER_POL_SECRET_KEY"), (None, MASTER, "LEDGER_POL_SIGNING_KEY"),
    (SEED[:-2], MASTER, "LEDGER_POL_SIGNING_KEY"), ("zz" * 32, MASTER, "LEDGER_POL_SIGNING_KEY"),
    (SEED, "cd" * 8, "LEDGER_POL_SECRET_KEY"), (SEED, SEED, "different secrets"),
])
def test_malformed_liabilities_keys_are_refused_never_echoed(monkeypatch, seed, master, named):
    for variable, value in (("LEDGER_POL_SIGNING_KEY", seed), ("LEDGER_POL_SECRET_KEY", master)):
        if value is not None:
            monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named) as refused:
        settings.liabilities_key_settings()
    assert all(key not in str(refused.value) for key in (SEED, SEED[:-2], MASTER, "zz" * 32, "cd" * 8))


def test_no_secret_in_a_settings_repr(monkeypatch):
    monkeypatch.setenv("MONGODB_URI", f"mongodb://user:{SECRET}@db:27017/")
    monkeypatch.setenv("LEGACY_MONGODB_URI", f"mongodb://user:{SECRET}@old:27017/")
    monkeypatch.setenv("LEDGER_COOKIE_KEY", SECRET * 3)
    monkeypatch.setenv("LEDGER_POL_SIGNING_KEY", SEED)
    monkeypatch.setenv("LEDGER_POL_SECRET_KEY", MASTER)
    for read in (settings.database_settings, settings.legacy_settings, settings.login_settings, settings.liabilities_key_settings):
        shown = f"{read()!r} {read()}"
        assert SECRET not in shown and SEED not in shown and MASTER not in shown


def test_a_value_of_the_wrong_shape_becomes_a_configuration_error_without_the_value(monkeypatch):
    """The validators raise the named errors themselves; pydantic's own ValidationError (which
    would print the input) is translated once in `read`."""

    class Probe(base_settings.EnvironmentSettings):
        count: int = Field(0, validation_alias="LEDGER_TEST_PROBE")

    monkeypatch.setenv("LEDGER_TEST_PROBE", SECRET)
    with pytest.raises(ConfigurationError, match="LEDGER_TEST_PROBE") as refused:
        base_settings.read(Probe)
    assert SECRET not in str(refused.value)
    monkeypatch.setenv("LEDGER_TEST_PROBE", "7")
    assert base_settings.read(Probe).count == 7


def test_store_from_environment_refuses_a_malformed_uri_before_connecting(monkeypatch, tmp_path):
    monkeypatch.setenv("LEDGER_AUDIT_WITNESS", str(tmp_path / "witness.log"))
    monkeypatch.setenv("MONGODB_URI", f"user:{SECRET}@db")
    monkeypatch.setattr("core.ledger.store.pymongo.MongoClient", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(MalformedDatabaseUriError) as refused:
        Store.from_environment()
    assert SECRET not in str(refused.value)
    monkeypatch.delenv("MONGODB_URI")
    store = Store.from_environment()
    assert store.embedded and store.witness is not None and store.witness.path == tmp_path / "witness.log"


ENVIRONMENT_READ = re.compile(r"\bos\.environ\b|\bgetenv\b|\bputenv\b|from os import[^\n]*\benviron\b|\bos\.environb\b")
SETTINGS_MODULES = {"core/base/settings.py", "core/platform/settings.py"}


def test_no_module_outside_the_settings_modules_reads_the_environment():
    sources = [ROOT / "app.py", *(path for folder in ("core", "console", "pages") for path in (ROOT / folder).rglob("*.py"))]
    assert len(sources) > 50
    readers = [str(path.relative_to(ROOT)) for path in sources
               if str(path.relative_to(ROOT)) not in SETTINGS_MODULES and ENVIRONMENT_READ.search(path.read_text(encoding="utf-8"))]
    assert readers == []


def test_every_variable_is_declared_in_a_settings_model():
    declared = {field.validation_alias for model in (settings.DatabaseSettings, settings.WitnessSettings, settings.LegacySettings,
                                                     settings.LiabilitiesKeySettings, settings.LoginSettings, settings.DemoSettings)
                for field in model.model_fields.values()}
    assert declared == set(VARIABLES)
