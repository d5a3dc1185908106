"""Every environment setting above the engine, in one place: the legacy database, the
proof-of-liabilities keys, the console's logins and its demo data.

The engine's own settings (MONGODB_URI, LEDGER_DB, LEDGER_AUDIT_WITNESS) and the rules
all settings share live in `core.base.settings` (the engine imports only `core.base`);
they are re-exported here, so the service layer and the console read every setting from
this module. Each `*_settings()` call reads the environment afresh; a malformed value is
refused with a named ConfigurationError that never echoes it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from core.base.errors import ConfigurationError, LegacyConfigurationError
from core.base.settings import (  # noqa: F401 (re-exported: every setting is read through this module)
    DATABASE_NAME_ENV,
    DATABASE_URI_ENV,
    WITNESS_ENV,
    DatabaseLocation,
    DatabaseSettings,
    EnvironmentSettings,
    WitnessSettings,
    check_database_name,
    check_database_uri,
    check_path,
    database_settings,
    number,
    read,
    text,
    witness_settings,
)

# -- the legacy database (core.legacy.bridge) --------------------------------------------------------
LEGACY_URI_ENV, LEGACY_DB_ENV = "LEGACY_MONGODB_URI", "LEGACY_DB"


class LegacySettings(DatabaseLocation):
    """The legacy system's database, read-only; both variables or neither."""

    URI_ENV, NAME_ENV, WHICH, NAME_ERROR = LEGACY_URI_ENV, LEGACY_DB_ENV, "legacy", LegacyConfigurationError
    uri: SecretStr | None = Field(None, validation_alias=LEGACY_URI_ENV)
    name: str | None = Field(None, validation_alias=LEGACY_DB_ENV)


def legacy_settings() -> LegacySettings:
    """Raises: MalformedDatabaseUriError (naming legacy), LegacyConfigurationError (LEGACY_DB)."""
    return read(LegacySettings)


# -- proof of liabilities (core.liabilities.keys) ------------------------------------------------------
SIGNING_KEY_ENV = "LEDGER_POL_SIGNING_KEY"
SECRET_KEY_ENV = "LEDGER_POL_SECRET_KEY"
SEED_PATTERN = re.compile(r"\A[0-9a-fA-F]{64}\Z")
MASTER_PATTERN = re.compile(r"\A(?:[0-9a-fA-F]{2}){32,128}\Z")


class LiabilitiesKeySettings(EnvironmentSettings):
    """The statement key's seed and the user-secret master key, both or neither (hex)."""

    signing_key: SecretStr | None = Field(None, validation_alias=SIGNING_KEY_ENV)
    secret_key: SecretStr | None = Field(None, validation_alias=SECRET_KEY_ENV)

    @field_validator("signing_key", "secret_key", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str | None:
        return text(value)

    @model_validator(mode="after")
    def _pair(self) -> LiabilitiesKeySettings:
        if self.signing_key is None and self.secret_key is None:
            return self
        seed, master = (key.get_secret_value() if key else "" for key in (self.signing_key, self.secret_key))
        if not SEED_PATTERN.fullmatch(seed):
            raise ConfigurationError(f"{SIGNING_KEY_ENV} must be the 32-byte Ed25519 seed as 64 hexadecimal digits",
                                     variable=SIGNING_KEY_ENV)
        if not MASTER_PATTERN.fullmatch(master):
            raise ConfigurationError(f"{SECRET_KEY_ENV} must be 32 to 128 random bytes as hexadecimal digits",
                                     variable=SECRET_KEY_ENV)
        if bytes.fromhex(seed) == bytes.fromhex(master)[:32]:
            raise ConfigurationError(f"{SIGNING_KEY_ENV} and {SECRET_KEY_ENV} must be different secrets")
        return self

    @property
    def configured(self) -> bool:
        return self.signing_key is not None


def liabilities_key_settings() -> LiabilitiesKeySettings:
    """Raises: ConfigurationError (one key without the other, a malformed key, the same secret twice)."""
    return read(LiabilitiesKeySettings)


# -- the console's logins (app.py, core.platform.logins) ----------------------------------------------
CREDENTIALS_ENV = "LEDGER_CREDENTIALS"
COOKIE_KEY_ENV = "LEDGER_COOKIE_KEY"
COOKIE_EXPIRY_ENV = "LEDGER_COOKIE_EXPIRY_DAYS"
LOGIN_SLEEP_ENV = "LEDGER_LOGIN_SLEEP_TIME"
FAILED_LOGIN_DELAY_ENV = "LEDGER_FAILED_LOGIN_DELAY"
COOKIE_EXPIRY_DEFAULT_DAYS = 0.5  # a working shift; 0 gives session-only logins (a reload signs out)
COOKIE_EXPIRY_DAYS_MAX = 365.0
# streamlit-authenticator can sleep on every signed-out run (its default 0.7 s). In a real
# browser that sleep lets the cookie component's own rerun interrupt the run that carries
# the submitted form, and the login is silently lost; so it defaults to 0 here and
# password guessing is slowed instead by a delay after each failed attempt.
LOGIN_SLEEP_DEFAULT, LOGIN_SLEEP_MAX = 0.0, 10.0
FAILED_LOGIN_DELAY_DEFAULT, FAILED_LOGIN_DELAY_MAX = 1.0, 60.0


class LoginSettings(EnvironmentSettings):
    """Where the console's accounts are and how its login cookie and delays behave. The
    credentials path and cookie key may also come from .streamlit/secrets.toml (app.py
    falls back to it when the variable is not set)."""

    credentials_path: str | None = Field(None, validation_alias=CREDENTIALS_ENV)
    cookie_key: SecretStr | None = Field(None, validation_alias=COOKIE_KEY_ENV)
    cookie_expiry_days: float = Field(COOKIE_EXPIRY_DEFAULT_DAYS, validation_alias=COOKIE_EXPIRY_ENV)
    login_sleep_time: float = Field(LOGIN_SLEEP_DEFAULT, validation_alias=LOGIN_SLEEP_ENV)
    failed_login_delay: float = Field(FAILED_LOGIN_DELAY_DEFAULT, validation_alias=FAILED_LOGIN_DELAY_ENV)

    @field_validator("credentials_path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> str | None:
        return check_path(text(value), CREDENTIALS_ENV)

    @field_validator("cookie_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> str | None:
        return text(value)  # its strength is judged with the store it protects (logins.resolve_console_auth)

    @field_validator("cookie_expiry_days", mode="before")
    @classmethod
    def _expiry(cls, value: Any) -> float:
        return number(value, COOKIE_EXPIRY_ENV, COOKIE_EXPIRY_DEFAULT_DAYS, COOKIE_EXPIRY_DAYS_MAX, "days")

    @field_validator("login_sleep_time", mode="before")
    @classmethod
    def _sleep(cls, value: Any) -> float:
        return number(value, LOGIN_SLEEP_ENV, LOGIN_SLEEP_DEFAULT, LOGIN_SLEEP_MAX, "seconds")

    @field_validator("failed_login_delay", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> float:
        return number(value, FAILED_LOGIN_DELAY_ENV, FAILED_LOGIN_DELAY_DEFAULT, FAILED_LOGIN_DELAY_MAX, "seconds")


def login_settings() -> LoginSettings:
    """Raises: ConfigurationError naming the malformed variable."""
    return read(LoginSettings)


# -- the console's demo data (console.loading, core.demo) -----------------------------------------------
DEMO_SIZE_ENV = "LEDGER_DEMO_SIZE"
DEMO_SIZE_DEFAULT = "snapshot"


class DemoSettings(EnvironmentSettings):
    """Which demo data the embedded store is loaded with; `core.demo.open_demo_platform`
    refuses a name it does not know (ConfigurationError naming LEDGER_DEMO_SIZE)."""

    size: str = Field(DEMO_SIZE_DEFAULT, validation_alias=DEMO_SIZE_ENV)

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> str:
        return text(value) or DEMO_SIZE_DEFAULT


def demo_settings() -> DemoSettings:
    return read(DemoSettings)
