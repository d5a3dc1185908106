"""Reads the Approvals and Fees pages need beside the maker-checker rules: who decided
what and when, who could still approve, whether a request can ever complete, and a
request's details in words instead of JSON.

`core.approvals` owns the state transitions; this module only reads what they recorded
(`approvals: [{by, role, at, reason}]`, `rejected_by`, `rejected_at`, `rejection_reason`,
`approved_at`, `expires_at`, `result`). Console accounts (who may approve) come from the
credentials document the console already loaded (`core.users`), passed in as `people`:
`{"usernames": {name: {"name", "roles", "disabled"}}}` — password hashes are never needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.validation import boundary
from core.ledger import AssetRegistry, from_minor, parse_account_id
from core.ledger import accounts as acct
from core.errors import LedgerError
from core.permissions import Permission, Principal, Role, require
from core.platform import Platform

DETAIL_TEXT_LENGTH_MAX = 300  # one detail value shown at most this long
# Which account a request of this kind draws from when it executes (a warning at request
# time when it holds less than asked; the executor would refuse it at approval time).
SOURCE_ACCOUNTS = {
    "treasury.fee_sweep": (acct.fees, "the fee wallet"),
    "treasury.liquidity_withdrawal": (acct.liquidity, "the free liquidity float"),
}
DETAIL_LABELS = {
    "user_id": "User", "account": "Account", "asset": "Asset", "destination": "Destination",
    "direction": "Direction", "memo": "Memo", "reference": "Reference", "payment_id": "Payment id",
    "withdrawal_id": "Withdrawal", "trade_id": "P2P trade", "dry_run": "Dry run",
}


@dataclass(frozen=True)
class Decision:
    """One line of a request's history."""

    action: str  # requested | approved | rejected | expired | executed
    by: str | None
    at: datetime | None
    reason: str


@dataclass(frozen=True)
class Detail:
    """One readable field of a request's payload; `user_id` set when it names a user."""

    label: str
    text: str
    user_id: str | None = None


def eligible_approvers(people: dict, requester: str) -> list[str]:
    """Enabled console admins other than `requester`, by username (who could approve)."""
    result = []
    for username, person in sorted((people or {}).get("usernames", {}).items()):
        roles = person.get("roles") or []
        if username != requester and not person.get("disabled") and list(roles) == [Role.ADMIN.value]:
            result.append(username)
    return result


def approver_shortfall(people: dict, requester: str, required: int, approved_by: list[str] | None = None) -> int:
    """How many more approvers a request needs than there are eligible people left to give
    them (0 when it can complete). Those who already approved count as done."""
    done = set(approved_by or [])
    left = [u for u in eligible_approvers(people, requester) if u not in done]
    return max(0, required - len(done) - len(left))


def display_name(people: dict, username: str | None) -> str:
    """"Ada Admin (admin)" for a console account, the bare username for anyone else."""
    if not username:
        return "—"
    person = (people or {}).get("usernames", {}).get(username) or {}
    return f"{person['name']} ({username})" if person.get("name") else username


def history(document: dict) -> list[Decision]:
    """What happened to a request, oldest first: requested, each approval, then rejected,
    expired or executed — with who, when and why."""
    lines = [Decision("requested", document.get("requested_by"), document.get("requested_at"), document.get("reason") or "")]
    for approval in document.get("approvals") or []:
        lines.append(Decision("approved", approval.get("by"), approval.get("at"), approval.get("reason") or ""))
    state = document.get("state")
    if state == "rejected":
        lines.append(Decision("rejected", document.get("rejected_by"), document.get("rejected_at"),
                              document.get("rejection_reason") or ""))
    elif state == "expired":
        lines.append(Decision("expired", None, document.get("expires_at"), "nobody decided before it expired"))
    elif state == "approved":
        result = document.get("result") or {}
        outcome = "done" if result.get("ok") else (result.get("message") or "executing")
        lines.append(Decision("executed", document.get("executed_by") or document.get("execution_claimed_by"),
                              document.get("executed_at") or document.get("approved_at"), outcome))
    return lines


def decision(document: dict) -> Decision | None:
    """The deciding line (rejected, expired or the last approval of an approved request), or
    None while the request is pending."""
    state = document.get("state")
    if state == "pending":
        return None
    lines = [line for line in history(document) if line.action in ("approved", "rejected", "expired")]
    return lines[-1] if lines else None


def amount_text(minor: int | None, asset: str | None, registry: AssetRegistry) -> str:
    """"1,234.50000000 BTC": exact decimals, thousands separators, the asset. "" if none."""
    if minor is None or not asset:
        return ""
    try:
        text = from_minor(int(minor), asset, registry).text()
    except LedgerError:
        return f"{minor} (minor units of {asset})"
    return f"{group_thousands(text)} {asset}"


def group_thousands(text: str) -> str:
    """Insert thousands separators into the integer part of an exact decimal text."""
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}" if whole.isdigit() else whole
    return sign + grouped + (f".{fraction}" if fraction else "")


def details(document: dict, registry: AssetRegistry) -> list[Detail]:
    """The payload in words: amounts (`*_minor`) as decimals with the asset, account ids
    named, the user to link to. Unknown fields are shown as text, never dropped."""
    payload = document.get("payload") or {}
    asset = payload.get("asset") or document.get("asset")
    rows: list[Detail] = []
    for key, value in sorted(payload.items()):
        if value in (None, ""):
            continue
        if key.endswith("_minor") and isinstance(value, int):
            label = key.removesuffix("_minor").replace("_", " ").capitalize()
            rows.append(Detail(label, amount_text(value, asset, registry)))
        elif key == "account" and isinstance(value, str):
            rows.append(Detail("Account", account_text(value), _owner_of(value)))
        elif key == "user_id" and isinstance(value, str):
            rows.append(Detail("User", value, value))
        else:
            text = value if isinstance(value, str) else repr(value)
            rows.append(Detail(DETAIL_LABELS.get(key, key.replace("_", " ").capitalize()), text[:DETAIL_TEXT_LENGTH_MAX]))
    return rows


def account_text(account_id: str) -> str:
    """"user.available:u0001:BTC" → "u0001 · available BTC"; platform accounts by their role."""
    try:
        account = parse_account_id(account_id)
    except LedgerError:
        return account_id
    kind = account.kind.value
    if account.is_user:
        return f"{account.owner} · {kind.split('.', 1)[1]} {account.asset}"
    return f"{kind.replace('platform.', '').replace('_', ' ')} {account.asset}" + (
        f" ({account.owner})" if account.owner not in ("platform", "") else "")


def _owner_of(account_id: str) -> str | None:
    try:
        account = parse_account_id(account_id)
    except LedgerError:
        return None
    return account.owner if account.is_user else None


@boundary
def request_warnings(platform: Platform, principal: Principal, people: dict, *, kind: str, asset: str | None,
                     amount_minor: int | None, approved_by: list[str] | None = None) -> list[str]:
    """Why a request (about to be made, or waiting) may never complete: too few eligible
    approvers for the number it needs, or a source account holding less than asked.
    Raises: PermissionDeniedError (needs READ_PLATFORM)."""
    require(principal, Permission.READ_PLATFORM)
    from core import approvals  # the rules module; imported late (it loads every executor)

    warnings = []
    required = approvals.approvals_required_for(platform, asset, amount_minor)
    eligible = eligible_approvers(people, principal.name)
    if approver_shortfall(people, principal.name, required, approved_by):
        who = ", ".join(display_name(people, u) for u in eligible) or "nobody"
        warnings.append(f"This request needs {required} approver(s) other than you, but only {len(eligible)} "
                        f"enabled admin(s) could approve it ({who}): it would wait until it expires. "
                        "Ask for another admin account first, or request a smaller amount.")
    source = SOURCE_ACCOUNTS.get(kind)
    if source is not None and asset and amount_minor is not None:
        factory, label = source
        held = platform.ledger.balance(factory(asset)).minor
        if held < amount_minor:
            warnings.append(f"{label.capitalize()} holds {amount_text(held, asset, platform.registry)}, less than the "
                            f"{amount_text(amount_minor, asset, platform.registry)} requested: approving it would fail.")
    return warnings


COUNT_MAX = 100_000  # a queue count is exact up to this


@boundary
def count_requests(platform: Platform, principal: Principal, *, state: str | None, kind: str | None) -> int:
    """How many requests `list_approvals` would page through (served by the `state` or
    `kind` index). Raises: PermissionDeniedError."""
    require(principal, Permission.APPROVE)
    query = {key: value for key, value in (("state", state), ("kind", kind)) if isinstance(value, str)}
    if not query:
        query = {"requested_at": {"$exists": True}}  # every request; served by the requested_at index
    return platform.store.collection("approvals").count_documents(query, limit=COUNT_MAX)
