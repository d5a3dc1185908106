"""The engine's own argument checks: the form of every value a caller hands the ledger
(ids, keys, words, amounts, accounts, postings, free text, documents), checked by the
parameter's name against one table before any store is touched, each refusal a named
`LedgerError`.

Why one table: hold ids, user ids and keys become query *values*; a dict such as
`{"$gt": ""}` given where an id belongs would become a query *operator* (it once paid out
a hold it did not name). `str.match` with `$` (which accepts a trailing newline) and
ad-hoc `isinstance` checks each let something through somewhere. Ledger methods call
`arguments(hold_id=hold_id, ...)` on their first line; the service layer's `@boundary`
(core.platform.boundary) extends this table with its own types (platforms, principals,
filters) and checks every public entry point with it.

Checks are about form only: whether the id exists, the amount is affordable or the role
may act is the caller's business, after the check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from core.base.errors import (
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
from core.base.permissions import PRINCIPAL_NAME_PATTERN
from core.ledger.accounts import Account, AccountKind, check_asset_code, check_owner_id, parse_account_id
from core.ledger.money import INT64_MAX, INT64_MIN, Amount, to_decimal
from core.ledger.reads import EntryFilter

# Every pattern is anchored with \A...\Z and used with fullmatch (`$` accepts "x\n").
# The one id and idempotency-key rule (entries, flows and approvals use it too).
IDENTIFIER_LENGTH_MAX = 200
IDENTIFIER_PATTERN = re.compile(rf"\A[\x21-\x7e]{{1,{IDENTIFIER_LENGTH_MAX}}}\Z")  # printable ASCII, no spaces
WORD_PATTERN = re.compile(r"\A[a-z][a-z0-9_.\-]{0,63}\Z")  # kinds, states, scopes, collection names
ENTRY_TYPE_PATTERN = re.compile(r"\A[a-z][a-z0-9_.]{0,63}\Z")
DOCUMENT_KEY_PATTERN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")  # no "$", no "."
TEXT_CONTROL_PATTERN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # free text may hold \t and \n only
TEXT_LENGTH_MAX = 2_000  # free text of any caller argument (a flow's short fields: core.flows.common)
DOCUMENT_DEPTH_MAX = 6
DOCUMENT_ITEMS_MAX = 500
LIST_ITEMS_MAX = 1_000
POSTINGS_MAX = 16
DURATION_MAX = timedelta(days=3_660)

Checker = Callable[[object, str], None]


def refuse(name: str, value: object, rule: str, error: type[Exception] = MalformedValueError) -> None:
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


def optional(check: Checker) -> Checker:
    def optional(value: object, name: str) -> None:
        if value is not None:
            check(value, name)
    optional.__name__ = f"optional_{check.__name__}"
    return optional


def instance_of(kind: type | Callable[[], type], what: str) -> Checker:
    """A check that the value is an instance of `kind` (a callable returning the class
    defers imports that would otherwise be circular)."""
    def instance(value: object, name: str) -> None:
        cls = kind if isinstance(kind, type) else kind()
        if not isinstance(value, cls):
            refuse(name, value, what, InvalidArgumentError)
    instance.__name__ = f"instance_of_{what.replace(' ', '_')}"
    return instance


# -- leaf checks --------------------------------------------------------------------------
def identifier(value: object, name: str) -> None:
    """An id or key: 1-200 printable ASCII characters, no spaces, nothing else."""
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.fullmatch(value):
        refuse(name, value, f"1-{IDENTIFIER_LENGTH_MAX} printable characters without spaces", InvalidIdentifierError)


def word(value: object, name: str) -> None:
    """A kind, state or scope name: lower-case letters, digits, `_.-`."""
    if not isinstance(value, str) or not WORD_PATTERN.fullmatch(value):
        refuse(name, value, "a lower-case name", InvalidIdentifierError)


def entry_type(value: object, name: str) -> None:
    if not isinstance(value, str) or not ENTRY_TYPE_PATTERN.fullmatch(value):
        refuse(name, value, "an entry type [a-z][a-z0-9_.]*", InvalidIdentifierError)


def user(value: object, name: str) -> None:
    """A user (or other account owner) id. Raises: InvalidAccountError."""
    check_owner_id(value)


def actor(value: object, name: str) -> None:
    if not isinstance(value, str) or not PRINCIPAL_NAME_PATTERN.fullmatch(value):
        refuse(name, value, "a principal name", InvalidAccountError)


def asset(value: object, name: str) -> None:
    """An asset code (existence is the registry's business). Raises: UnknownAssetError."""
    check_asset_code(value)


def amount(value: object, name: str) -> None:
    """An Amount, Decimal, int or text (amount errors otherwise). Text is parsed once, by
    the function that takes it (`amount()`/`positive_amount()` with the asset's scale, before
    anything else): here only its size is bounded, so it is not parsed twice."""
    if isinstance(value, Amount):
        amount_model(value, name)
    elif isinstance(value, str):
        if len(value) > TEXT_LENGTH_MAX:
            refuse(name, value, f"an amount of at most {TEXT_LENGTH_MAX} characters", InvalidAmountError)
    else:
        to_decimal(value)


def amount_model(value: object, name: str) -> None:
    """An Amount model; checked again (`model_construct` skips its int64 validator)."""
    if not isinstance(value, Amount) or isinstance(value.minor, bool) or not isinstance(value.minor, int):
        refuse(name, value, "an Amount", InvalidAmountError)
    check_asset_code(value.asset)
    if not (INT64_MIN <= value.minor <= INT64_MAX):
        raise AmountOverflowError(f"{value.asset} amount overflows int64", asset=value.asset, minor=str(value.minor)[:40])


def signed(value: object, name: str) -> None:
    """A signed int64 (minor units of a credit or a debit); never a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or not (INT64_MIN <= value <= INT64_MAX):
        refuse(name, value, "an integer inside int64")


def count(value: object, name: str) -> None:
    """A non-negative int64 (pages, sizes, minor units, confirmations); never a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value <= INT64_MAX):
        refuse(name, value, f"an integer 0..{INT64_MAX}")


def flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        refuse(name, value, "True or False")


def text(value: object, name: str) -> None:
    """Free text (reasons, memos, destinations, search text): a str of at most
    TEXT_LENGTH_MAX characters without control characters other than tab and newline."""
    if not isinstance(value, str) or len(value) > TEXT_LENGTH_MAX or TEXT_CONTROL_PATTERN.search(value):
        refuse(name, value, f"text of at most {TEXT_LENGTH_MAX} characters without control characters")


def duration(value: object, name: str) -> None:
    if not isinstance(value, timedelta) or not (timedelta(0) <= value <= DURATION_MAX):
        refuse(name, value, f"a duration between 0 and {DURATION_MAX.days} days", MalformedValueError)


def moment(value: object, name: str) -> None:
    if not isinstance(value, datetime):
        refuse(name, value, "a datetime", MalformedValueError)


def _plain(value: object, name: str, depth: int) -> None:
    if depth > DOCUMENT_DEPTH_MAX:
        refuse(name, "…", f"nested at most {DOCUMENT_DEPTH_MAX} deep")
    if value is None or isinstance(value, (bool, str, datetime)):
        if isinstance(value, str):
            text(value, name)
        return
    if isinstance(value, int):
        if not (INT64_MIN <= value <= INT64_MAX):
            refuse(name, value, "an integer inside int64")
        return
    if isinstance(value, Decimal):
        to_decimal(value)
        return
    if isinstance(value, Mapping):
        if len(value) > DOCUMENT_ITEMS_MAX:
            refuse(name, f"{len(value)} fields", f"at most {DOCUMENT_ITEMS_MAX} fields")
        for key, item in value.items():
            if not isinstance(key, str) or not DOCUMENT_KEY_PATTERN.fullmatch(key):
                refuse(f"{name} key", key, "a plain field name (no '$', no '.')")
            _plain(item, f"{name}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        if len(value) > LIST_ITEMS_MAX:
            refuse(name, f"{len(value)} items", f"at most {LIST_ITEMS_MAX} items")
        for item in value:
            _plain(item, name, depth + 1)
        return
    refuse(name, value, "plain data (text, integers, booleans, dates, lists, mappings)")


def document(value: object, name: str) -> None:
    """A caller-made mapping stored as data (payloads, metadata): plain field names, plain
    values, int64 integers; never an operator."""
    if not isinstance(value, dict):
        refuse(name, value, "a mapping of plain data")
    _plain(value, name, 0)


def names(value: object, name: str) -> None:
    """A list of lower-case names (e.g. flow-test scenarios)."""
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} names")
    for item in value:
        word(item, name)


def actors(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} principal names")
    for item in value:
        actor(item, name)


def function(value: object, name: str) -> None:
    if not callable(value):
        refuse(name, value, "a callable")


def ids(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} ids")
    for item in value:
        if item is not None:
            identifier(item, name)


def users(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} user ids")
    for item in value:
        check_owner_id(item)


def account(value: object, name: str) -> None:
    """An Account model: one built by its validator is trusted (`Account.is_checked`); the
    fields of any other (`model_construct` skips validators) are checked here."""
    if not isinstance(value, Account) or not isinstance(value.kind, AccountKind):
        refuse(name, value, "an Account", InvalidAccountError)
    if not value.is_checked:
        check_owner_id(value.owner)
        check_asset_code(value.asset)


def accounts(value: object, name: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) > LIST_ITEMS_MAX:
        refuse(name, value, f"a list of at most {LIST_ITEMS_MAX} accounts", InvalidAccountError)
    for item in value:
        account(item, name)


def account_id(value: object, name: str) -> None:
    if not isinstance(value, str) or len(value) > 300:
        refuse(name, value, "an account id kind:owner:asset", InvalidAccountError)
    parse_account_id(value)


def account_kind(value: object, name: str) -> None:
    if not isinstance(value, AccountKind):
        refuse(name, value, "an AccountKind", InvalidAccountError)


def postings(value: object, name: str) -> None:
    """(Account, Amount) pairs, as `consume_hold` takes them."""
    if not isinstance(value, (list, tuple)) or len(value) > POSTINGS_MAX:
        refuse(name, value, f"a list of at most {POSTINGS_MAX} (account, amount) pairs")
    for pair in value:
        if not isinstance(pair, tuple) or len(pair) != 2:
            refuse(name, pair, "an (account, amount) pair")
        account(pair[0], name)
        amount_model(pair[1], name)


def entry_filter(value: object, name: str) -> None:
    if not isinstance(value, EntryFilter):
        refuse(name, value, "an EntryFilter", MalformedValueError)
    for field in ("account", "user", "type", "state", "hold_id", "flow_ref"):
        optional(identifier)(getattr(value, field), f"{name}.{field}")
    for field in ("since", "until"):
        optional(moment)(getattr(value, field), f"{name}.{field}")


# -- the table: parameter name → check --------------------------------------------------
# Optional parameters (default None, or `| None` in the annotation) accept None on top of
# their check: `boundary` reads that from the signature; `optional_arguments` says it.
ARGUMENT_CHECKS: dict[str, Checker] = {
    "self": lambda value, name: None,  # the bound object of a method
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
    "snapshot": document,
    "names": names,
    "approved_by": actors,
    "progress": function,
    "entry_filter": entry_filter,
    # time
    "stale_after": duration,
    "stuck_after": duration,
    "since": moment,
    "until": moment,
    "now": moment,
    "as_of": moment,
}



def arguments(**values: object) -> None:
    """Check keyword arguments by name with the same table (for methods that call it on
    their first line). Raises: as `boundary`."""
    for name, value in values.items():
        check = ARGUMENT_CHECKS.get(name)
        assert check is not None, f"no boundary check for parameter {name!r}"
        check(value, name)


def optional_arguments(**values: object) -> None:
    """Like `arguments`, but None is accepted for every value (optional parameters)."""
    arguments(**{name: value for name, value in values.items() if value is not None})
