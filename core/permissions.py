"""Who may do what. Checked in core for every command; pages only hide what core refuses."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from core.errors import PermissionDeniedError


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

PRINCIPAL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@\-]{1,128}$")


class Principal(BaseModel):
    """The acting person or system: every command takes one."""

    model_config = ConfigDict(strict=True, frozen=True)

    name: str
    role: Role

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PRINCIPAL_NAME_PATTERN.match(value):
            raise ValueError("principal name must be 1-128 of letters, digits, _.@-")
        return value


SYSTEM = Principal(name="system", role=Role.SYSTEM)


def require(principal: Principal, permission: Permission) -> None:
    """Raises: PermissionDeniedError naming the principal, role and permission."""
    if not isinstance(principal, Principal) or permission not in ROLE_PERMISSIONS.get(principal.role, frozenset()):
        name = getattr(principal, "name", repr(principal))
        role = getattr(principal, "role", None)
        raise PermissionDeniedError(
            f"{name} ({role}) may not {permission.value.replace('_', ' ')}",
            principal=name, role=str(role), permission=permission.value,
        )


def can(principal: Principal, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(principal.role, frozenset())
