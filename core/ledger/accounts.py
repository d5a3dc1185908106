"""Accounts: (owner, kind, asset), and which kinds may go negative."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from core.base.errors import InvalidAccountError, UnknownAssetError

# \A...\Z (not ^...$): `$` also matches before a trailing newline, which let "alice\n" open
# a second account beside "alice". Use with `fullmatch`.
OWNER_ID_PATTERN = re.compile(r"\A[A-Za-z0-9_.@\-]{1,128}\Z")
ASSET_CODE_PATTERN = re.compile(r"\A[A-Z0-9]{1,16}\Z")
PLATFORM_OWNER = "platform"
WORLD_OWNER = "world"


class AccountKind(StrEnum):
    USER_AVAILABLE = "user.available"
    USER_LOCKED = "user.locked"
    FEES = "platform.fees"
    LIQUIDITY = "platform.liquidity"
    LIQUIDITY_RESERVED = "platform.liquidity_reserved"
    ESCROW = "escrow"
    EXTERNAL = "external"
    ADJUSTMENTS = "platform.adjustments"
    OPENING = "platform.opening"


# Counterparty accounts mirror money outside the platform's books: they go negative by
# design (a deposit debits `external`). Every other kind holds real money and never may.
MAY_GO_NEGATIVE: frozenset[AccountKind] = frozenset(
    {AccountKind.EXTERNAL, AccountKind.ADJUSTMENTS, AccountKind.OPENING}
)
USER_KINDS: frozenset[AccountKind] = frozenset({AccountKind.USER_AVAILABLE, AccountKind.USER_LOCKED})


def check_owner_id(owner: object) -> str:
    """Return `owner` if it is a safe id (letters, digits, `_.@-`, ≤128). Raises: InvalidAccountError."""
    if not isinstance(owner, str) or not OWNER_ID_PATTERN.fullmatch(owner):
        raise InvalidAccountError(f"invalid owner id {repr(owner)[:80]}", owner=repr(owner)[:80])
    return owner


def check_asset_code(asset: object) -> str:
    """Return `asset` if it is plain asset-code text (A-Z, 0-9, ≤16). Raises: UnknownAssetError."""
    if not isinstance(asset, str) or not ASSET_CODE_PATTERN.fullmatch(asset):
        raise UnknownAssetError(f"unknown asset {repr(asset)[:40]}", asset=repr(asset)[:40])
    return asset


class Account(BaseModel):
    """One balance: `kind` of `owner` in `asset`. Its id is `kind:owner:asset`.

    Checked once: building an Account checks its owner and asset (the validator); the
    engine then trusts an Account whose fields are still the very objects checked
    (`is_checked`) and checks again only one built around the validator (`model_construct`,
    `model_copy(update=...)`)."""

    model_config = ConfigDict(strict=True, frozen=True)

    kind: AccountKind
    owner: str
    asset: str
    _checked_as: tuple | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _plain_ids(cls, data: Any) -> Any:
        """Even a directly built Account carries only plain ids (they become query values);
        refused with named errors, never a pydantic ValidationError."""
        if not isinstance(data, dict):
            raise InvalidAccountError("an account needs kind, owner and asset", account=repr(data)[:80])
        try:
            data = {**data, "kind": AccountKind(data.get("kind"))}
        except (ValueError, TypeError):
            raise InvalidAccountError(f"unknown account kind {repr(data.get('kind'))[:40]}", kind=repr(data.get("kind"))[:40]) from None
        check_owner_id(data.get("owner"))
        check_asset_code(data.get("asset"))
        return data

    @model_validator(mode="after")
    def _remember_checked(self) -> Account:
        self._checked_as = (self.kind, self.owner, self.asset)
        return self

    @property
    def is_checked(self) -> bool:
        """Whether these very field values passed the validator (identity, not equality: a
        look-alike str cannot pass for the checked one)."""
        checked = self._checked_as
        return checked is not None and all(a is b for a, b in zip(checked, (self.kind, self.owner, self.asset), strict=True))

    def __eq__(self, other: object) -> bool:  # the fields only: whether it was checked is no part of its value
        return isinstance(other, Account) and (self.kind, self.owner, self.asset) == (other.kind, other.owner, other.asset)

    def __hash__(self) -> int:
        return hash((self.kind, self.owner, self.asset))

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.owner}:{self.asset}"

    @property
    def may_go_negative(self) -> bool:
        return self.kind in MAY_GO_NEGATIVE

    @property
    def is_user(self) -> bool:
        return self.kind in USER_KINDS


def account(kind: AccountKind | str, owner: str, asset: str) -> Account:
    """Build an account; its validator checks kind, owner and asset. Raises: InvalidAccountError, UnknownAssetError."""
    return Account(kind=kind, owner=owner, asset=asset)


def checked_account(kind: AccountKind, owner: str, asset: str) -> Account:
    """An Account of values checked where they came in — a @boundary argument, or a document
    or id the core wrote after checking it — built without checking them again. Never give
    it caller text: the engine trusts what it builds (`Account.is_checked`)."""
    built = Account.model_construct(kind=AccountKind(kind), owner=owner, asset=asset)
    built._checked_as = (built.kind, built.owner, built.asset)
    return built


# A hot logical account may be stored in parts (core.ledger.stripes): stripe 0 has the
# logical id, stripe k the id `<logical>#k` (k without leading zeros, below STRIPES_MAX).
PART_MARK = "#"
STRIPES_MAX = 128
STRIPE_PATTERN = re.compile(r"\A[1-9][0-9]{0,2}\Z")


def _id_parts(account_id: object) -> list[str]:
    logical, mark, stripe = account_id.partition(PART_MARK) if isinstance(account_id, str) else ("", "", "")
    parts = logical.split(":")
    if len(parts) != 3 or (mark and not (STRIPE_PATTERN.fullmatch(stripe) and int(stripe) < STRIPES_MAX)):
        raise InvalidAccountError(f"invalid account id {account_id!r}"[:120], account=repr(account_id)[:80])
    return parts


def parse_account_id(account_id: str) -> Account:
    """Inverse of `Account.id`; a stored part's id (`<id>#k`) gives its logical account.
    Raises: InvalidAccountError."""
    return account(*_id_parts(account_id))


def stored_account(account_id: str) -> Account:
    """`parse_account_id` of an id the ledger itself wrote (a posting's or a balance's): its
    owner and asset were checked before it was stored, so only its shape and kind are read.
    Raises: InvalidAccountError (an edited id that no longer has the shape)."""
    kind, owner, asset = _id_parts(account_id)
    try:
        return checked_account(AccountKind(kind), owner, asset)
    except ValueError:
        raise InvalidAccountError(f"unknown account kind {kind!r:.40}", kind=kind[:40]) from None


def user_available(user_id: str, asset: str) -> Account:
    return account(AccountKind.USER_AVAILABLE, user_id, asset)


def user_locked(user_id: str, asset: str) -> Account:
    return account(AccountKind.USER_LOCKED, user_id, asset)


def fees(asset: str) -> Account:
    return account(AccountKind.FEES, PLATFORM_OWNER, asset)


def liquidity(asset: str) -> Account:
    return account(AccountKind.LIQUIDITY, PLATFORM_OWNER, asset)


def liquidity_reserved(asset: str) -> Account:
    return account(AccountKind.LIQUIDITY_RESERVED, PLATFORM_OWNER, asset)


def escrow(trade_id: str, asset: str) -> Account:
    return account(AccountKind.ESCROW, trade_id, asset)


def external(asset: str, counterparty: str = WORLD_OWNER) -> Account:
    return account(AccountKind.EXTERNAL, counterparty, asset)


def adjustments(asset: str) -> Account:
    return account(AccountKind.ADJUSTMENTS, PLATFORM_OWNER, asset)


def opening(asset: str) -> Account:
    return account(AccountKind.OPENING, PLATFORM_OWNER, asset)
