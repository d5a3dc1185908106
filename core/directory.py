"""The exchange's user directory, read-only: who a user id belongs to, and who referred whom.

The ledger stores user ids only; support needs to find people by email or name. The
exchange keeps them in `users` (`user_id`, `email`, `name`, and — in production — password
fields we must never read) and referral data in `user_accounts` (`referred_by`,
`referral_tier`). Every read here uses an inclusion projection, so a password hash or salt
can never leave the database through this module, and search text is only ever a plain
value or an escaped, anchored regex (never an operator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidStateError
from core.permissions import Permission, Principal, require
from core.ledger import Store

SEARCH_TEXT_LENGTH_MAX = 100
SEARCH_RESULTS_MAX = 25
REFERRALS_MAX = 50
USER_FIELDS = ("user_id", "email", "name", "created_at", "country", "status")
USER_PROJECTION = {"_id": 0, **{name: 1 for name in USER_FIELDS}}
ACCOUNT_PROJECTION = {"_id": 0, "user_id": 1, "referred_by": 1, "referral_tier": 1}


class InvalidSearchError(InvalidStateError):
    """The search text is not text, is empty, or is too long."""


@dataclass(frozen=True)
class DirectoryUser:
    """One person as the console may show them (no secrets by construction)."""

    user_id: str
    email: str
    name: str
    referred_by: str | None = None
    referral_tier: str | None = None

    def as_dict(self) -> dict:
        return {"user_id": self.user_id, "email": self.email, "name": self.name,
                "referred_by": self.referred_by, "referral_tier": self.referral_tier}


def _clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidSearchError("search text must be text")
    text = text.strip()
    if not text or len(text) > SEARCH_TEXT_LENGTH_MAX:
        raise InvalidSearchError(f"search text must be 1-{SEARCH_TEXT_LENGTH_MAX} characters")
    return text


def _user(document: dict, account: dict | None = None) -> DirectoryUser:
    account = account or {}
    return DirectoryUser(
        user_id=str(document.get("user_id", "")), email=str(document.get("email") or ""),
        name=str(document.get("name") or ""), referred_by=account.get("referred_by"),
        referral_tier=account.get("referral_tier"),
    )


def search_users(store: Store, principal: Principal, text: object, *, limit: int = SEARCH_RESULTS_MAX) -> list[DirectoryUser]:
    """Users whose id equals `text`, or whose email or name starts with it (case-insensitive).

    The text is escaped (`re.escape`) and anchored, so `.*`, `$where` or `{"$ne": ""}`
    typed into a search box match literally. Returns at most `limit` users, id matches first.
    Raises: PermissionDeniedError, InvalidSearchError.
    """
    require(principal, Permission.READ_USERS)
    text = _clean_text(text)
    limit = max(1, min(int(limit), SEARCH_RESULTS_MAX))
    users = store.collection("users")
    exact = users.find({"user_id": text}, projection=USER_PROJECTION, limit=limit)
    prefix = {"$regex": "^" + re.escape(text), "$options": "i"}
    found = users.find({"$or": [{"email": prefix}, {"name": prefix}]}, projection=USER_PROJECTION,
                       sort=[("email", 1)], limit=limit)
    seen: set[str] = set()
    result = []
    for document in [*exact, *found]:
        if document.get("user_id") not in seen and len(result) < limit:
            seen.add(document.get("user_id"))
            result.append(_user(document))
    return result


def get_user(store: Store, principal: Principal, user_id: object) -> DirectoryUser | None:
    """One user with referral data, or None. Raises: PermissionDeniedError, InvalidSearchError."""
    require(principal, Permission.READ_USERS)
    user_id = _clean_text(user_id)
    document = store.collection("users").find_one({"user_id": user_id}, projection=USER_PROJECTION)
    if document is None:
        return None
    account = store.collection("user_accounts").find_one({"user_id": user_id}, projection=ACCOUNT_PROJECTION)
    return _user(document, account)


def referrals_of(store: Store, principal: Principal, user_id: object, *, limit: int = REFERRALS_MAX) -> list[dict]:
    """The users `user_id` referred (bounded). Raises: PermissionDeniedError, InvalidSearchError."""
    require(principal, Permission.READ_USERS)
    user_id = _clean_text(user_id)
    return store.collection("user_accounts").find({"referred_by": user_id}, projection=ACCOUNT_PROJECTION,
                                                  sort=[("user_id", 1)], limit=max(1, min(int(limit), REFERRALS_MAX)))
