"""The one validation boundary: every caller value is checked for type and shape before
any store is touched, and a bad one becomes a named `LedgerError`.

Why one place: hold ids, user ids and keys become query *values*; a dict such as
`{"$gt": ""}` given where an id belongs would become a query *operator* (it once paid out
a hold it did not name). Pydantic's lax mode, `str.match` with `$` (which accepts a
trailing newline) and ad-hoc `isinstance` checks each let something through somewhere.
Here every parameter of a public entry point is checked by its name against one table:

    @boundary
    def request_withdrawal(platform, principal, *, user_id, asset, amount, ...): ...

Ledger methods call `arguments(hold_id=hold_id, ...)` on their first line instead (same
table). A parameter the table does not know is recorded in `UNCHECKED` (a test keeps it
empty), and `boundary(name=checker)` gives a function its own rule for one parameter.

Checks are about form only (a plain string of the expected pattern, an int in range, a
Principal, ...): whether the id exists, the amount is affordable or the role may act is
the function's business, after the boundary.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from typing import Any, TypeVar

from core.base.errors import (
    InvalidArgumentError,
)
from core.base.permissions import PRINCIPAL_NAME_PATTERN, check_principal
from core.ledger import Store
from core.platform import Platform
from core.ledger.arguments import (  # noqa: F401  (re-exported: the service layer names its checks from here)
    ARGUMENT_CHECKS,
    DOCUMENT_ITEMS_MAX,
    Checker,
    instance_of,
    optional,
    refuse,
    account,
    accounts,
    actors,
    amount,
    arguments,
    asset,
    count,
    document,
    duration,
    entry_type,
    identifier,
    moment,
    names,
    optional_arguments,
    raising,
    signed,
    text,
    user,
    word,
)

F = TypeVar("F", bound=Callable[..., Any])


def credentials(value: object, name: str) -> None:
    """A credentials document: `{"usernames": {name: account}}`."""
    if not isinstance(value, dict) or not isinstance(value.get("usernames"), dict):
        refuse(name, value, "a credentials mapping with 'usernames'", InvalidArgumentError)


def people(value: object, name: str) -> None:
    """Console accounts as the credentials file holds them (`{"usernames": {username: {...}}}`):
    plain values throughout (no `$` keys), each username of the principal-name form."""
    document(value, name)
    usernames = value.get("usernames") if isinstance(value, dict) else None
    if not isinstance(usernames, dict) or len(usernames) > DOCUMENT_ITEMS_MAX:
        refuse(name, value, "a credentials mapping with 'usernames'")
    for username, account_fields in usernames.items():
        if not isinstance(username, str) or not PRINCIPAL_NAME_PATTERN.fullmatch(username) or not isinstance(account_fields, dict):
            refuse(name, username, "a mapping of usernames to accounts")


def principal(value: object, name: str) -> None:
    """A Principal (its own validator refused look-alike and reserved names). Raises: InvalidPrincipalError."""
    check_principal(value)


platform = instance_of(Platform, "a Platform")
store = instance_of(Store, "a Store")

# -- the table: parameter name → check --------------------------------------------------
# The engine's own table (core.ledger.arguments) and the service layer's types on top.
# Optional parameters (default None, or `| None` in the annotation) accept None on top of
# their check: `boundary` reads that from the signature.
CHECKS: dict[str, Checker] = {
    **ARGUMENT_CHECKS,
    "platform": platform,
    "principal": principal,
    "store": store,
    "log_store": store,
    "legacy": store,
    "ledger_store": store,
    "people": people,
    "rng": instance_of(random.Random, "a random.Random"),
}


def register_check(name: str, check: Checker) -> None:
    """Add the check of a parameter whose type a higher layer owns (an AuditFilter, a
    quote's terms). The owner registers it at import, before its own @boundary functions
    are decorated, so the table never names a module above this one."""
    assert name not in CHECKS or CHECKS[name] is check, f"a second check for parameter {name!r}"
    CHECKS[name] = check

UNCHECKED: list[str] = []  # "module.function(parameter)" the table does not cover (a test keeps it empty)
BOUNDARY_FUNCTIONS: list[Callable[..., Any]] = []


def _checks_for(function: Callable[..., Any], overrides: dict[str, Checker]) -> dict[str, Checker]:
    checks = {}
    for name, parameter in inspect.signature(function).parameters.items():
        check = overrides.get(name) or CHECKS.get(name)
        if check is None:
            UNCHECKED.append(f"{function.__module__}.{function.__qualname__}({name})")
            continue
        annotation = parameter.annotation if isinstance(parameter.annotation, str) else repr(parameter.annotation)
        if (parameter.default is None or "None" in annotation.replace(" ", "").split("|")) and name not in overrides:
            check = optional(check)  # an optional argument may be left out or given as None
        checks[name] = check
    return checks


def boundary(function: F | None = None, /, **overrides: Checker) -> F | Callable[[F], F]:
    """Decorate a public entry point: every argument is checked by its parameter name
    (or by `overrides`) before the function runs.

    Raises: the named LedgerError of the first bad argument (InvalidIdentifierError,
    InvalidAccountError, UnknownAssetError, amount errors, InvalidPrincipalError,
    InvalidArgumentError), or InvalidArgumentError when the arguments do not fit the
    signature at all.
    """
    def decorate(wrapped: F) -> F:
        signature = inspect.signature(wrapped)
        checks = _checks_for(wrapped, overrides)

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as error:
                raise InvalidArgumentError(f"{wrapped.__name__}: {error}", function=wrapped.__name__) from None
            for name, value in bound.arguments.items():
                check = checks.get(name)
                if check is not None:
                    check(value, name)
            return wrapped(*args, **kwargs)

        checked.__boundary__ = True  # type: ignore[attr-defined]
        checked.__checks__ = checks  # type: ignore[attr-defined]  (tests check their baselines with it)
        BOUNDARY_FUNCTIONS.append(checked)
        return checked  # type: ignore[return-value]

    return decorate(function) if function is not None else decorate


def precheck(function: Callable[..., Any], **values: object) -> None:
    """Run the boundary checks of `function` (a @boundary function, or a Ledger method
    checked with `arguments`) on keyword `values` without calling it. For tests."""
    checks = getattr(function, "__checks__", None)
    if checks is None:
        arguments(**values)
        return
    for name, value in values.items():
        if name in checks:
            checks[name](value, name)


def internal(function: F) -> F:
    """Mark a public-looking function as core-internal: it is called only by core with
    core-made values (documents it read, collections it opened), so it is not an entry
    point and is not fuzzed. Keep this rare; say why at the use site."""
    function.__internal__ = True  # type: ignore[attr-defined]
    return function
