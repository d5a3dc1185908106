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
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from core.errors import (
    AmountOverflowError,
    ApprovalNotFoundError,
    EntryNotFoundError,
    FlowNotFoundError,
    HoldNotFoundError,
    IntegrityRunNotFoundError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidArgumentError,
    InvalidIdentifierError,
    LedgerError,
    MalformedValueError,
    ReasonRequiredError,
)
from core.ledger import INT64_MAX, INT64_MIN, Account, AccountKind, Amount, check_asset_code, check_owner_id, parse_account_id, to_decimal
from core.permissions import PRINCIPAL_NAME_PATTERN, check_principal

# Every pattern is anchored with \A...\Z and used with fullmatch (`$` accepts "x\n").
IDENTIFIER_PATTERN = re.compile(r"\A[\x21-\x7e]{1,200}\Z")  # printable ASCII, no spaces
WORD_PATTERN = re.compile(r"\A[a-z][a-z0-9_.\-]{0,63}\Z")  # kinds, states, scopes, collection names
ENTRY_TYPE_PATTERN = re.compile(r"\A[a-z][a-z0-9_.]{0,63}\Z")
DOCUMENT_KEY_PATTERN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")  # no "$", no "."
TEXT_CONTROL_PATTERN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # free text may hold \t and \n only
TEXT_LENGTH_MAX = 2_000
DOCUMENT_DEPTH_MAX = 6
DOCUMENT_ITEMS_MAX = 500
LIST_ITEMS_MAX = 1_000
POSTINGS_MAX = 16
DURATION_MAX = timedelta(days=3_660)

Checker = Callable[[object, str], None]
F = TypeVar("F", bound=Callable[..., Any])


def _refuse(name: str, value: object, rule: str, error: type[Exception] = MalformedValueError) -> None:
    shown = repr(value)
    raise error(f"{name} must be {rule}, got {shown[:60]}{'…' if len(shown) > 60 else ''}", field=name,
                value=shown[:80])


def raising(check: Checker, error: type[LedgerError]) -> Checker:
    """`check`, refusing with `error` instead: a function whose callers already catch a
    named refusal for a parameter (e.g. FlowNotFoundError for an id) keeps raising it."""
    def reraising(value: object, name: str) -> None:
        try:
            check(value, name)
        except LedgerError as refusal:
            if isinstance(refusal, error):
                raise
            raise error(refusal.message, **refusal.details) from None
    reraising.__name__ = f"{check.__name__}_as_{error.__name__}"
    return reraising


def _optional(check: Checker) -> Checker:
    def optional(value: object, name: str) -> None:
        if value is not None:
            check(value, name)
    optional.__name__ = f"optional_{check.__name__}"
    return optional


def _instance(kind: type | Callable[[], type], what: str) -> Checker:
    """A check that the value is an instance of `kind` (a callable returning the class
    defers imports that would otherwise be circular)."""
    def instance(value: object, name: str) -> None:
        cls = kind if isinstance(kind, type) else kind()
        if not isinstance(value, cls):
            _refuse(name, value, what, InvalidArgumentError)
    instance.__name__ = f"instance_of_{what.replace(' ', '_')}"
    return instance


# -- leaf checks --------------------------------------------------------------------------
def identifier(value: object, name: str) -> None:
    """An id or key: 1-200 printable ASCII characters, no spaces, nothing else."""
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.fullmatch(value):
        _refuse(name, value, "1-200 printable characters without spaces", InvalidIdentifierError)


def word(value: object, name: str) -> None:
    """A kind, state or scope name: lower-case letters, digits, `_.-`."""
    if not isinstance(value, str) or not WORD_PATTERN.fullmatch(value):
        _refuse(name, value, "a lower-case name", InvalidIdentifierError)


def entry_type(value: object, name: str) -> None:
    if not isinstance(value, str) or not ENTRY_TYPE_PATTERN.fullmatch(value):
        _refuse(name, value, "an entry type [a-z][a-z0-9_.]*", InvalidIdentifierError)


def user(value: object, name: str) -> None:
    """A user (or other account owner) id. Raises: InvalidAccountError."""
    check_owner_id(value)


def actor(value: object, name: str) -> None:
    if not isinstance(value, str) or not PRINCIPAL_NAME_PATTERN.fullmatch(value):
        _refuse(name, value, "a principal name", InvalidAccountError)


def asset(value: object, name: str) -> None:
    """An asset code (existence is the registry's business). Raises: UnknownAssetError."""
    check_asset_code(value)


def amount(value: object, name: str) -> None:
    """An Amount, Decimal, int or plain decimal text (amount errors otherwise)."""
    if isinstance(value, Amount):
        amount_model(value, name)
        return
    to_decimal(value)


def amount_model(value: object, name: str) -> None:
    """An Amount model; checked again (`model_construct` skips its int64 validator)."""
    if not isinstance(value, Amount) or isinstance(value.minor, bool) or not isinstance(value.minor, int):
        _refuse(name, value, "an Amount", InvalidAmountError)
    check_asset_code(value.asset)
    if not (INT64_MIN <= value.minor <= INT64_MAX):
        raise AmountOverflowError(f"{value.asset} amount overflows int64", asset=value.asset, minor=str(value.minor)[:40])


def signed(value: object, name: str) -> None:
    """A signed int64 (minor units of a credit or a debit); never a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or not (INT64_MIN <= value <= INT64_MAX):
        _refuse(name, value, "an integer inside int64")


def count(value: object, name: str) -> None:
    """A non-negative int64 (pages, sizes, minor units, confirmations); never a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value <= INT64_MAX):
        _refuse(name, value, f"an integer 0..{INT64_MAX}")


def flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        _refuse(name, value, "True or False")


def text(value: object, name: str) -> None:
    """Free text (reasons, memos, destinations, search text): a str of at most
    TEXT_LENGTH_MAX characters without control characters other than tab and newline."""
    if not isinstance(value, str) or len(value) > TEXT_LENGTH_MAX or TEXT_CONTROL_PATTERN.search(value):
        _refuse(name, value, f"text of at most {TEXT_LENGTH_MAX} characters without control characters")


def duration(value: object, name: str) -> None:
    if not isinstance(value, timedelta) or not (timedelta(0) <= value <= DURATION_MAX):
        _refuse(name, value, f"a duration between 0 and {DURATION_MAX.days} days", MalformedValueError)


def moment(value: object, name: str) -> None:
    if not isinstance(value, datetime):
        _refuse(name, value, "a datetime", MalformedValueError)


def _plain(value: object, name: str, depth: int) -> None:
    if depth > DOCUMENT_DEPTH_MAX:
        _refuse(name, "…", f"nested at most {DOCUMENT_DEPTH_MAX} deep")
    if value is None or isinstance(value, (bool, str, datetime)):
        if isinstance(value, str):
            text(value, name)
        return
    if isinstance(value, int):
        if not (INT64_MIN <= value <= INT64_MAX):
            _refuse(name, value, "an integer inside int64")
        return
    if isinstance(value, Decimal):
        to_decimal(value)
        return
    if isinstance(value, Mapping):
        if len(value) > DOCUMENT_ITEMS_MAX:
            _refuse(name, f"{len(value)} fields", f"at most {DOCUMENT_ITEMS_MAX} fields")
        for key, item in value.items():
            if not isinstance(key, str) or not DOCUMENT_KEY_PATTERN.fullmatch(key):
                _refuse(f"{name} key", key, "a plain field name (no '$', no '.')")
            _plain(item, f"{name}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        if len(value) > LIST_ITEMS_MAX:
            _refuse(name, f"{len(value)} items", f"at most {LIST_ITEMS_MAX} items")
        for item in value:
            _plain(item, name, depth + 1)
        return
    _refuse(name, value, "plain data (text, integers, booleans, dates, lists, mappings)")


def document(value: object, name: str) -> None:
    """A caller-made mapping stored as data (payloads, metadata): plain field names, plain
    values, int64 integers; never an operator."""
    if not isinstance(value, dict):
        _refuse(name, value, "a mapping of plain data")
    _plain(value, name, 0)


def approval(value: object, name: str) -> None:
    """An approval request document as core hands it to an executor."""
    document(value, name)
    assert isinstance(value, dict)
    if not isinstance(value.get("_id"), str) or not isinstance(value.get("payload"), dict):
        _refuse(name, value, "an approval request document (with _id and payload)")


def credentials(value: object, name: str) -> None:
    """A credentials document: `{"usernames": {name: account}}`."""
    if not isinstance(value, dict) or not isinstance(value.get("usernames"), dict):
        _refuse(name, value, "a credentials mapping with 'usernames'", InvalidArgumentError)


def people(value: object, name: str) -> None:
    """Console accounts by username (`{username: {...}}`), as the credentials file holds them."""
    if not isinstance(value, dict) or len(value) > DOCUMENT_ITEMS_MAX:
        _refuse(name, value, "a mapping of usernames to accounts")
    for username, account_fields in value.items():
        if not isinstance(username, str) or not PRINCIPAL_NAME_PATTERN.fullmatch(username) or not isinstance(account_fields, dict):
            _refuse(name, username, "a mapping of usernames to accounts")


def names(value: object, name: str) -> None:
    """A list of lower-case names (e.g. flow-test scenarios)."""
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        _refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} names")
    for item in value:
        word(item, name)


def actors(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        _refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} principal names")
    for item in value:
        actor(item, name)


def function(value: object, name: str) -> None:
    if not callable(value):
        _refuse(name, value, "a callable")


def ids(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        _refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} ids")
    for item in value:
        if item is not None:
            identifier(item, name)


def users(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        _refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} user ids")
    for item in value:
        check_owner_id(item)


def account(value: object, name: str) -> None:
    """An Account model; its fields are checked again (`model_construct` skips validators)."""
    if not isinstance(value, Account) or not isinstance(value.kind, AccountKind):
        _refuse(name, value, "an Account", InvalidAccountError)
    check_owner_id(value.owner)
    check_asset_code(value.asset)


def accounts(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        _refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} accounts", InvalidAccountError)
    for item in value:
        account(item, name)


def account_id(value: object, name: str) -> None:
    if not isinstance(value, str) or len(value) > 300:
        _refuse(name, value, "an account id kind:owner:asset", InvalidAccountError)
    parse_account_id(value)


def account_kind(value: object, name: str) -> None:
    if not isinstance(value, AccountKind):
        _refuse(name, value, "an AccountKind", InvalidAccountError)


def postings(value: object, name: str) -> None:
    """(Account, Amount) pairs, as `consume_hold` takes them."""
    if not isinstance(value, (list, tuple)) or len(value) > POSTINGS_MAX:
        _refuse(name, value, f"a list of at most {POSTINGS_MAX} (account, amount) pairs")
    for pair in value:
        if not isinstance(pair, tuple) or len(pair) != 2:
            _refuse(name, pair, "an (account, amount) pair")
        account(pair[0], name)
        amount_model(pair[1], name)


def entry_filter(value: object, name: str) -> None:
    from core.ledger import EntryFilter

    if not isinstance(value, EntryFilter):
        _refuse(name, value, "an EntryFilter", MalformedValueError)
    for field in ("account", "user", "type", "state", "hold_id", "flow_ref"):
        _optional(identifier)(getattr(value, field), f"{name}.{field}")
    for field in ("since", "until"):
        _optional(moment)(getattr(value, field), f"{name}.{field}")


def audit_filter(value: object, name: str) -> None:
    from core.audit import AuditFilter

    if not isinstance(value, AuditFilter):
        _refuse(name, value, "an AuditFilter", MalformedValueError)
    for field in ("actor", "user", "type", "target"):
        _optional(text)(getattr(value, field), f"{name}.{field}")
    for field in ("since", "until"):
        _optional(moment)(getattr(value, field), f"{name}.{field}")


def _platform_class() -> type:
    from core.platform import Platform

    return Platform


def _store_class() -> type:
    from core.ledger import Store

    return Store


def _terms_class() -> type:
    from core.flows.quotes import QuoteTerms

    return QuoteTerms


def _random_class() -> type:
    import random

    return random.Random


def principal(value: object, name: str) -> None:
    """A Principal (its own validator refused look-alike and reserved names). Raises: InvalidPrincipalError."""
    check_principal(value)


platform = _instance(_platform_class, "a Platform")
store = _instance(_store_class, "a Store")

# -- the table: parameter name → check --------------------------------------------------
# Optional parameters (default None, or `| None` in the annotation) accept None on top of
# their check: `boundary` reads that from the signature; `optional_arguments` says it.
CHECKS: dict[str, Checker] = {
    "self": lambda value, name: None,  # the bound object of a method
    "platform": platform,
    "principal": principal,
    "store": store,
    "log_store": store,
    "legacy": store,
    "ledger_store": store,
    # people and accounts
    "user_id": user,
    "seller": user,
    "buyer": user,
    "user_ids": users,
    "actor": actor,
    "account": account,
    "accounts": accounts,
    "source": account,  # Ledger.place_hold; legacy import overrides it (a collection name)
    "held": account,
    "account_id": account_id,
    "kind": word,
    # ids and keys
    "idempotency_key": identifier,
    "key": identifier,
    # a malformed id names nothing: refused as "not found", so callers keep one except clause
    "hold_id": raising(identifier, HoldNotFoundError),
    "entry_id": raising(identifier, EntryNotFoundError),
    "request_id": raising(identifier, ApprovalNotFoundError),
    "run_id": raising(identifier, IntegrityRunNotFoundError),
    "quote_id": raising(identifier, FlowNotFoundError),
    "trade_id": raising(identifier, FlowNotFoundError),
    "deposit_id": raising(identifier, FlowNotFoundError),
    "withdrawal_id": raising(identifier, FlowNotFoundError),
    "source_entry_id": raising(identifier, EntryNotFoundError),
    "payment_id": identifier,
    "flow_ref": identifier,
    "entry_ids": ids,
    "snapshot_id": identifier,
    "declaration_id": identifier,
    # assets and amounts
    "asset": asset,
    "from_asset": asset,
    "to_asset": asset,
    "pay_asset": asset,
    "receive_asset": asset,
    "amount": amount,
    "value": amount,
    "spend": amount,
    "destinations": postings,
    "extra_postings": postings,
    # numbers and flags
    "amount_minor": signed,
    "min_receive_minor": count,
    "approvals_required": count,
    "confirmations": count,
    "page": count,
    "page_size": count,
    "limit": count,
    "rows_max": count,
    "points": count,
    "placed_max": count,
    "split_parts": count,
    "record": flag,
    "dry_run": flag,
    "full": flag,
    # words
    "state": word,
    "scope": identifier,
    "to": word,
    "field_name": word,
    "entry_type": entry_type,
    # free text
    "reason": raising(text, ReasonRequiredError),
    "memo": text,
    "reference": text,
    "destination": text,
    "provider": text,
    "fiat_amount": text,
    "text": text,
    "wallet_address": identifier,  # chain addresses, IBANs, account refs: no spaces, no newline
    "evidence": text,
    "uri": text,  # a database URI: text here, its form is Store.from_uri's business
    # documents and models
    "payload": document,
    "metadata": document,
    "approval": approval,
    "snapshot": document,
    "people": people,
    "names": names,
    "approved_by": actors,
    "progress": function,
    "rng": _instance(_random_class, "a random.Random"),
    "terms": _instance(_terms_class, "QuoteTerms"),
    "audit_filter": audit_filter,
    "entry_filter": entry_filter,
    # time
    "stale_after": duration,
    "stuck_after": duration,
    "since": moment,
    "until": moment,
    "now": moment,
    "as_of": moment,
}

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
            check = _optional(check)  # an optional argument may be left out or given as None
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


def arguments(**values: object) -> None:
    """Check keyword arguments by name with the same table (for methods that call it on
    their first line). Raises: as `boundary`."""
    for name, value in values.items():
        check = CHECKS.get(name)
        assert check is not None, f"no boundary check for parameter {name!r}"
        check(value, name)


def optional_arguments(**values: object) -> None:
    """Like `arguments`, but None is accepted for every value (optional parameters)."""
    arguments(**{name: value for name, value in values.items() if value is not None})


def internal(function: F) -> F:
    """Mark a public-looking function as core-internal: it is called only by core with
    core-made values (documents it read, collections it opened), so it is not an entry
    point and is not fuzzed. Keep this rare; say why at the use site."""
    function.__internal__ = True  # type: ignore[attr-defined]
    return function


# -- configuration ------------------------------------------------------------------------
DATABASE_URI_SCHEMES = ("mongodb://", "mongodb+srv://")
DATABASE_URI_LENGTH_MAX = 4_096


def check_database_uri(variable: str, which: str) -> None:
    """Refuse a set but malformed `variable` (MONGODB_URI, LEGACY_MONGODB_URI) before any
    connection is tried: pymongo reads "not-a-uri" as a host name and times out, which
    would report a typo as an unreachable server. The URI is never echoed (it may hold a
    password). Raises: MalformedDatabaseUriError naming `which` database ("ledger"/"legacy")."""
    import os

    from core.errors import MalformedDatabaseUriError

    uri = os.environ.get(variable, "").strip()
    if not uri:
        return
    if (len(uri) > DATABASE_URI_LENGTH_MAX or not uri.startswith(DATABASE_URI_SCHEMES)
            or any(c in uri for c in " \t\r\n\x00") or uri.partition("://")[2].split("/")[0].rpartition("@")[2] == ""):
        raise MalformedDatabaseUriError(
            f"{variable} is not a MongoDB URI (mongodb://host[:port]/… or mongodb+srv://host/…): fix the {which} database setting",
            which=which, variable=variable,
        )
