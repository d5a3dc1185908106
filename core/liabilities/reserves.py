"""Declared reserves and the solvency view.

The ledger knows what the platform OWES (user liabilities) and what it should HOLD (user
liabilities plus its own fee wallet, liquidity float and escrow). It cannot see a chain or a
bank: what the platform actually holds there is DECLARED by an admin, with evidence (the
wallet address or account reference, the amount seen, the time it was seen, a note), and
every declaration is audited. The newest declaration per (asset, wallet) counts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from core.platform.boundary import boundary, identifier, moment, raising, text
from core import reports
from core.base.clock import to_millis
from core.base.errors import IdempotencyConflictError, InvalidReserveError
from core.ledger import DuplicateKeyStoreError, amount
from core.liabilities.snapshot import SNAPSHOT_ID_PATTERN
from core.base.permissions import Permission, Principal, require
from core.platform import Platform

WALLET_ADDRESS_PATTERN = re.compile(r"^[A-Za-z0-9:_.\-]{4,128}\Z")  # chain addresses, IBANs, custodian account refs
EVIDENCE_LENGTH_MAX = 500
RESERVES_READ_MAX = 1_000
RATIO_PLACES = Decimal("0.0001")
DECLARED_FIELDS = ("asset", "amount_minor", "wallet_address", "as_of", "evidence")


@boundary(wallet_address=raising(identifier, InvalidReserveError), evidence=raising(text, InvalidReserveError), as_of=raising(moment, InvalidReserveError))
def declare_reserve(platform: Platform, principal: Principal, *, asset: str, value: object, wallet_address: str,
                    as_of: datetime, evidence: str = "", declaration_id: str | None = None) -> dict:
    """Record that `wallet_address` held `value` of `asset` at `as_of` (audited).

    Args:
        value: exact amount (Decimal, int or decimal text; floats refused) — zero allowed
            (a wallet found empty is evidence too), negatives refused.
        declaration_id: optional idempotency key; a retry with the same declaration returns
            the first one; the same id with anything different is refused (and the refused
            attempt audited as `liabilities.reserve_refused`).
    Raises: PermissionDeniedError, InvalidReserveError, IdempotencyConflictError, and
        core.ledger.amount's errors (FloatAmountError, ExcessPrecisionError, UnknownAssetError...).
    """
    require(principal, Permission.MANAGE_LIABILITIES)
    exact = amount(value, asset, platform.registry)
    if exact.minor < 0:
        raise InvalidReserveError("a reserve cannot be negative", value=exact.text(), asset=asset)
    if not isinstance(wallet_address, str) or not WALLET_ADDRESS_PATTERN.match(wallet_address.strip()):
        raise InvalidReserveError("wallet address must be 4-128 of letters, digits, :_.-", wallet_address=repr(wallet_address)[:140])
    if not isinstance(evidence, str) or len(evidence) > EVIDENCE_LENGTH_MAX:
        raise InvalidReserveError(f"evidence must be text of at most {EVIDENCE_LENGTH_MAX} characters")
    now = platform.clock.now()
    if not isinstance(as_of, datetime) or to_millis(as_of) > now:
        raise InvalidReserveError("the time the reserve was seen must be a date-time, not in the future", as_of=str(as_of))
    if declaration_id is not None and (not isinstance(declaration_id, str) or not SNAPSHOT_ID_PATTERN.match(declaration_id)):
        raise InvalidReserveError("declaration id must be 1-64 of letters, digits, _.-", declaration_id=repr(declaration_id))
    declaration_id = declaration_id or f"reserve-{uuid.uuid4().hex[:16]}"
    reserves = platform.store.collection("liabilities_reserves")
    declared = {"asset": exact.asset, "amount_minor": exact.minor, "wallet_address": wallet_address.strip(),
                "as_of": to_millis(as_of), "evidence": evidence.strip()}
    existing = reserves.find_one({"_id": declaration_id})
    if existing is None:
        try:
            reserves.insert_one({"_id": declaration_id, **declared, "declared_by": principal.name, "declared_at": now})
        except DuplicateKeyStoreError:  # a concurrent declaration under the same id won: compare with it below
            pass
        existing = reserves.find_one({"_id": declaration_id})
    first = {key: existing[key] for key in DECLARED_FIELDS}
    if first != declared:
        platform.ledger.audit.append(type="liabilities.reserve_refused", actor=principal.name, role=principal.role.value,
                                     target=declared["wallet_address"], before=first, after=declared,
                                     data={"declaration_id": declaration_id, "reason": "idempotency_conflict"})
        changed = sorted(key for key in DECLARED_FIELDS if first[key] != declared[key])
        raise IdempotencyConflictError(f"declaration id {declaration_id} was used for a different declaration "
                                       f"({', '.join(changed)} differ): nothing was declared", key=declaration_id, fields=changed)
    platform.ledger.audit.append(type="liabilities.reserve_declared", actor=principal.name, role=principal.role.value,
                                 target=existing["wallet_address"],
                                 after={k: existing[k] for k in ("asset", "amount_minor", "wallet_address", "as_of", "evidence")},
                                 event_key=f"liabilities:reserve:{declaration_id}")
    return existing


@boundary
def declared_reserves(platform: Platform, principal: Principal, limit: int = RESERVES_READ_MAX) -> list[dict]:
    """Declarations, newest first (bounded). Raises: PermissionDeniedError."""
    require(principal, Permission.READ_PLATFORM)
    limit = max(1, min(int(limit), RESERVES_READ_MAX))
    return platform.store.collection("liabilities_reserves").find({}, sort=[("declared_at", -1)], limit=limit)


@dataclass(frozen=True)
class SolvencyRow:
    """Per asset, minor units. `ratio` = declared reserves / user liabilities (None: no liabilities)."""

    asset: str
    user_liabilities: int
    snapshot_total: int | None
    fee_wallet: int
    liquidity_free: int
    liquidity_reserved: int
    escrow: int
    declared_reserves: int
    wallets: int

    @property
    def custody_total(self) -> int:
        """What the ledger says the platform should hold: users' money plus its own."""
        return self.user_liabilities + self.fee_wallet + self.liquidity_free + self.liquidity_reserved + self.escrow

    @property
    def ratio(self) -> Decimal | None:
        if self.user_liabilities <= 0:
            return None
        return (Decimal(self.declared_reserves) / Decimal(self.user_liabilities)).quantize(RATIO_PLACES, rounding=ROUND_DOWN)

    @property
    def surplus(self) -> int:
        """Declared reserves minus the custody total (negative: reserves fall short)."""
        return self.declared_reserves - self.custody_total


def latest_reserves(declarations: list[dict]) -> dict[str, tuple[int, int]]:
    """Per asset: (sum of the newest declaration per wallet, number of wallets)."""
    newest: dict[tuple[str, str], dict] = {}
    for declaration in declarations:
        key = (declaration["asset"], declaration["wallet_address"])
        if key not in newest or (declaration["as_of"], declaration["declared_at"]) > (newest[key]["as_of"], newest[key]["declared_at"]):
            newest[key] = declaration
    result: dict[str, tuple[int, int]] = {}
    for (asset, _), declaration in newest.items():
        total, wallets = result.get(asset, (0, 0))
        result[asset] = (total + declaration["amount_minor"], wallets + 1)
    return result


@boundary
def solvency(platform: Platform, principal: Principal, snapshot: dict | None = None) -> list[SolvencyRow]:
    """Per asset: live user liabilities, the snapshot's total, the platform's own holdings,
    declared reserves and the ratio. Raises: PermissionDeniedError."""
    require(principal, Permission.READ_PLATFORM)
    totals = {row.asset: row for row in reports.platform_totals(platform, principal)}
    reserves = latest_reserves(declared_reserves(platform, principal))
    snapshot_totals = {a["asset"]: a["total"] for a in (snapshot or {}).get("assets", [])}
    rows = []
    for asset in sorted(set(totals) | set(reserves) | set(snapshot_totals)):
        row = totals.get(asset) or reports.AssetTotals(asset=asset)
        reserve, wallets = reserves.get(asset, (0, 0))
        rows.append(SolvencyRow(asset=asset, user_liabilities=row.user_liabilities, snapshot_total=snapshot_totals.get(asset),
                                fee_wallet=row.fee_wallet, liquidity_free=row.liquidity_free,
                                liquidity_reserved=row.liquidity_reserved, escrow=row.escrow,
                                declared_reserves=reserve, wallets=wallets))
    return rows
