"""What every `python -m core` command shares: exit codes, the usage error, the configured
database store, and printing a result as text or JSON."""

from __future__ import annotations

import json

from core.base.errors import ConfigurationError
from core.ledger import Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def open_database_store() -> Store:
    """The configured real store; commands that inspect a database refuse the embedded one.
    Raises: ConfigurationError (no or malformed MONGODB_URI: core.base.settings), DatabaseUnreachableError."""
    store = Store.from_environment()
    if store.embedded:
        raise ConfigurationError("this command inspects a database: set MONGODB_URI (the embedded store is empty and in memory)")
    return store


def emit(data: object, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text)
