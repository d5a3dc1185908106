"""Who may do what. Checked in core for every command; pages only hide what core refuses."""

from __future__ import annotations

import re
from enum import StrEnum

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from core.base.errors import InvalidPrincipalError, PermissionDeniedError


class Role(StrEnum):
    ADMIN = "admin"
    SUPPORT = "support"
    QA = "qa"
    SYSTEM = "system"  # the exchange backend and background jobs


class Permission(StrEnum):
    READ_PLATFORM = "read_platform"        # overview, fees & liquidity
    READ_USERS = "read_users"              # user lookup, balances, entries
    READ_AUDIT = "read_audit"
    RUN_INTEGRITY = "run_integrity"
    REQUEST_REPAIR = "request_repair"
    APPROVE = "approve"                    # approve/reject requests
    REQUEST_TREASURY = "request_treasury"  # adjustments, fee sweeps, liquidity moves, manual deposits
    RESOLVE_DISPUTE = "resolve_dispute"
    RUN_FLOW_TESTS = "run_flow_tests"
    MOVE_MONEY = "move_money"              # user-initiated flows (deposits, withdrawals, trades)
    MANAGE_LEGACY = "manage_legacy"
    MANAGE_LIABILITIES = "manage_liabilities"  # proof-of-liabilities snapshots, declared reserves


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission) - {Permission.MOVE_MONEY},
    Role.SUPPORT: frozenset({Permission.READ_USERS, Permission.READ_AUDIT, Permission.RUN_INTEGRITY, Permission.REQUEST_REPAIR}),
    Role.QA: frozenset({Permission.RUN_FLOW_TESTS}),
    Role.SYSTEM: frozenset({Permission.MOVE_MONEY, Permission.READ_USERS, Permission.RUN_INTEGRITY}),
}

# \A...\Z with fullmatch: with `^...$`, "admin\n" passed and approved a request made by "admin".
PRINCIPAL_NAME_PATTERN = re.compile(r"\A[A-Za-z0-9_.@\-]{1,128}\Z")

# Names the core itself acts under, each with the one role it acts in. No console account
# may take one (core.platform.logins refuses them), so the audit trail never shows a person as the
# backend, the CLI, a fixture or the flow-test sandbox. The account owners "platform" and
# "world" are reserved too: a person named like a ledger-side owner would read as one.
RESERVED_PRINCIPAL_ROLES: dict[str, Role] = {
    "system": Role.SYSTEM,
    "cli": Role.ADMIN,
    "legacy-fixture": Role.ADMIN,
    "flowtest_maker": Role.ADMIN,
    "flowtest_checker": Role.ADMIN,
    "flowtest_checker2": Role.ADMIN,
    "platform": Role.SYSTEM,
    "world": Role.SYSTEM,
}


def is_reserved_name(name: object) -> bool:
    """True for a name the core reserves for its own actors (case-insensitive)."""
    return isinstance(name, str) and name.lower() in RESERVED_PRINCIPAL_ROLES


class Principal(BaseModel):
    """The acting person or system: every command takes one."""

    model_config = ConfigDict(strict=True, frozen=True)

    name: str
    role: Role

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        """Refuse with InvalidPrincipalError (a PermissionDeniedError), not a pydantic error:
        a look-alike or reserved name must never act."""
        if not isinstance(data, dict):
            raise InvalidPrincipalError("a principal needs a name and a role")
        name, role = data.get("name"), data.get("role")
        if not isinstance(name, str) or not PRINCIPAL_NAME_PATTERN.fullmatch(name):
            raise InvalidPrincipalError("principal name must be 1-128 of letters, digits, _.@-", principal=repr(name)[:80])
        try:
            role = Role(role) if isinstance(role, str) else None
        except ValueError:
            role = None
        if role is None:
            raise InvalidPrincipalError(f"unknown role {data.get('role')!r:.40}", principal=name)
        reserved = RESERVED_PRINCIPAL_ROLES.get(name.lower())
        if reserved is not None and (name != name.lower() or role != reserved):
            raise InvalidPrincipalError(f"{name!r} is reserved for the core's own {reserved.value} actor", principal=name)
        return data


SYSTEM = Principal(name="system", role=Role.SYSTEM)


def check_principal(principal: object) -> Principal:
    """Return `principal` if it is a Principal (a dict, None or a name is not). Raises: InvalidPrincipalError."""
    if not isinstance(principal, Principal):
        raise InvalidPrincipalError(f"the acting principal must be a Principal, got {type(principal).__name__}",
                                    principal=repr(principal)[:80])
    Principal._check({"name": principal.name, "role": principal.role})  # again: model_construct skips validators
    return principal


def require(principal: Principal, permission: Permission) -> None:
    """Raises: InvalidPrincipalError for a non-Principal, PermissionDeniedError naming the
    principal, role and permission."""
    check_principal(principal)
    if permission not in ROLE_PERMISSIONS.get(principal.role, frozenset()):
        name = getattr(principal, "name", repr(principal))
        role = getattr(principal, "role", None)
        raise PermissionDeniedError(
            f"{name} ({role}) may not {permission.value.replace('_', ' ')}",
            principal=name, role=str(role), permission=permission.value,
        )


def can(principal: Principal, permission: Permission) -> bool:
    """True if `principal` may do `permission` (False for anything that is not a Principal)."""
    return isinstance(principal, Principal) and permission in ROLE_PERMISSIONS.get(principal.role, frozenset())
