"""Where the environment is read: the engine's own settings, and the rules every setting shares.

Every environment variable the product reads is declared in a pydantic-settings model,
here (the ledger database and the audit witness: the engine imports only `core.base`) or
in `core.platform.settings` (everything else). Each call of a `*_settings()` function
reads the environment afresh — nothing is cached at import — so a variable changed at run
time (or monkeypatched by a test) is seen by the next read.

A set but malformed value is refused with a named `ConfigurationError` (or its subclass,
e.g. `MalformedDatabaseUriError`) that names the variable and says what it must be, and
never echoes the value: URIs may hold a password, keys are secrets. Secret-bearing fields
are `SecretStr`, so not even a model's repr shows them. A blank value (only whitespace)
means "not set".
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.base.errors import ConfigurationError, MalformedDatabaseUriError

DATABASE_URI_ENV, DATABASE_NAME_ENV = "MONGODB_URI", "LEDGER_DB"
WITNESS_ENV = "LEDGER_AUDIT_WITNESS"
DATABASE_NAME_DEFAULT = "ledger"
DATABASE_URI_SCHEMES = ("mongodb://", "mongodb+srv://")
DATABASE_URI_LENGTH_MAX = 4_096
# MongoDB refuses these in a database name (on any platform) and names of 64 bytes or more
DATABASE_NAME_PATTERN = re.compile(r'\A[^/\\. "$*<>:|?\x00-\x1f\x7f]+\Z')
DATABASE_NAME_BYTES_MAX = 63
PATH_LENGTH_MAX = 4_096
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class EnvironmentSettings(BaseSettings):
    """Settings read from the process environment only: no .env file, no secrets
    directory, names matched exactly (the variable names are the fields' aliases)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, populate_by_name=False)


Model = TypeVar("Model", bound=EnvironmentSettings)


def read(model: type[Model]) -> Model:
    """`model` as the environment holds it now. The validators raise the named errors
    themselves; a ValidationError (a value of the wrong shape the validators did not
    foresee) becomes a ConfigurationError naming the variable, without its value."""
    try:
        return model()
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        variable = str(first["loc"][0]) if first["loc"] else model.__name__
        raise ConfigurationError(f"{variable} is malformed: {first['msg']}", variable=variable) from None


def text(value: Any) -> str | None:
    """An environment value without surrounding whitespace; blank is "not set" (None)."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def check_database_uri(uri: str | None, variable: str, which: str) -> str | None:
    """Refuse a set but malformed URI before any connection is tried: pymongo reads
    "not-a-uri" as a host name and times out, which would report a typo as an unreachable
    server. The URI is never echoed (it may hold a password).
    Raises: MalformedDatabaseUriError naming `variable` and `which` database ("ledger"/"legacy")."""
    if uri is None:
        return None
    if (len(uri) > DATABASE_URI_LENGTH_MAX or not uri.startswith(DATABASE_URI_SCHEMES)
            or any(c in uri for c in " \t\r\n\x00") or uri.partition("://")[2].split("/")[0].rpartition("@")[2] == ""):
        raise MalformedDatabaseUriError(
            f"{variable} is not a MongoDB URI (mongodb://host[:port]/… or mongodb+srv://host/…): fix the {which} database setting",
            which=which, variable=variable,
        )
    return uri


def check_database_name(name: str | None, variable: str, error: type[ConfigurationError] = ConfigurationError) -> str | None:
    """A database name MongoDB accepts (no `/\\. "$*<>:|?`, no control character, under 64 bytes).
    Raises: `error` naming `variable`."""
    if name is not None and (not DATABASE_NAME_PATTERN.fullmatch(name) or len(name.encode()) > DATABASE_NAME_BYTES_MAX):
        raise error(f"{variable} must be a MongoDB database name: up to {DATABASE_NAME_BYTES_MAX} bytes, "
                    'none of / \\ . space " $ * < > : | ? and no control characters', variable=variable)
    return name


def check_path(path: str | None, variable: str) -> str | None:
    """A file path: no control characters (a NUL would fail only at the first write), bounded.
    Raises: ConfigurationError naming `variable`."""
    if path is not None and (len(path) > PATH_LENGTH_MAX or CONTROL_CHARACTERS.search(path)):
        raise ConfigurationError(f"{variable} must be a file path of at most {PATH_LENGTH_MAX} characters "
                                 "without control characters", variable=variable)
    return path


def number(value: Any, variable: str, default: float, maximum: float, unit: str) -> float:
    """A non-negative number of `unit`s up to `maximum`; not set gives `default`.
    Raises: ConfigurationError naming `variable` (not a number, negative, NaN, too large)."""
    value = text(value)
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        parsed = math.nan
    if not 0 <= parsed <= maximum:  # NaN fails both comparisons
        raise ConfigurationError(f"{variable} must be a number of {unit} from 0 to {maximum:g}", variable=variable)
    return parsed


class DatabaseLocation(EnvironmentSettings):
    """A MongoDB database named by two variables (a URI and a database name), both checked
    before any connection: subclasses declare the fields `uri` and `name` with their
    variables and say which database they are (for the errors)."""

    URI_ENV: ClassVar[str]
    NAME_ENV: ClassVar[str]
    WHICH: ClassVar[str]  # "ledger" or "legacy"
    NAME_DEFAULT: ClassVar[str | None] = None
    NAME_ERROR: ClassVar[type[ConfigurationError]] = ConfigurationError

    @field_validator("uri", mode="before", check_fields=False)
    @classmethod
    def _uri(cls, value: Any) -> str | None:
        return check_database_uri(text(value), cls.URI_ENV, cls.WHICH)

    @field_validator("name", mode="before", check_fields=False)
    @classmethod
    def _name(cls, value: Any) -> str | None:
        return check_database_name(text(value), cls.NAME_ENV, cls.NAME_ERROR) or cls.NAME_DEFAULT


# -- the engine's settings (core.ledger.store, core.ledger.witness) ------------------------------
class DatabaseSettings(DatabaseLocation):
    """The ledger database: a real MongoDB when `MONGODB_URI` is set, else the embedded store."""

    URI_ENV, NAME_ENV, WHICH, NAME_DEFAULT = DATABASE_URI_ENV, DATABASE_NAME_ENV, "ledger", DATABASE_NAME_DEFAULT
    uri: SecretStr | None = Field(None, validation_alias=DATABASE_URI_ENV)
    name: str = Field(DATABASE_NAME_DEFAULT, validation_alias=DATABASE_NAME_ENV)


class WitnessSettings(EnvironmentSettings):
    """The audit trail's witness file (core.ledger.witness); required with a real database."""

    path: str | None = Field(None, validation_alias=WITNESS_ENV)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> str | None:
        return check_path(text(value), WITNESS_ENV)


def database_settings() -> DatabaseSettings:
    """Raises: MalformedDatabaseUriError, ConfigurationError (a malformed LEDGER_DB)."""
    return read(DatabaseSettings)


def witness_settings() -> WitnessSettings:
    """Raises: ConfigurationError (a malformed path)."""
    return read(WitnessSettings)
