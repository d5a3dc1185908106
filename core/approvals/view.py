"""Reads the Approvals and Fees pages need beside the maker-checker rules: who decided
what and when, who could still approve, whether a request can ever complete, and a
request's details in words instead of JSON.

`core.approvals` owns the state transitions; this module only reads what they recorded
(`approvals: [{by, role, at, reason}]`, `rejected_by`, `rejected_at`, `rejection_reason`,
`approved_at`, `expires_at`, `result`), through the typed request
(`core.approvals.model.ApprovalRequest`) where it reads a whole request. `details` and
`balance_effects` read only a request's `kind`, `asset` and `payload`, and take what a
page hands them as it is. Console accounts (who may approve) come from the
credentials document the console already loaded (`core.platform.logins`), passed in as `people`:
`{"usernames": {name: {"name", "roles", "disabled"}}}` — password hashes are never needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.platform import directory
from core.ledger.arguments import document, refuse
from core.platform.boundary import boundary
from core.ledger import Account, AssetRegistry, check_owner_id, from_minor, parse_account_id
from core.ledger import accounts as acct
from core.base.errors import LedgerError, MalformedValueError, UnknownUserError
from core.base.permissions import Permission, Principal, Role, require
from core.platform import COUNT_SHOWN_MAX, Platform
from core.approvals.model import ApprovalRequest
from core.approvals.requests import approvals_required_for

DETAIL_TEXT_LENGTH_MAX = 300  # one detail value shown at most this long
EFFECTS_REQUESTS_MAX = 200  # balance_effects reads the balances of at most this many requests at once
# Which account a request of this kind draws from when it executes, and what happens when
# it holds less than asked (a warning before the request is made): a fee sweep is refused
# when requested (core.flows.treasury); the executor would refuse a withdrawal of the float.
SOURCE_ACCOUNTS = {
    "treasury.fee_sweep": (acct.fees, "the fee wallet", "a sweep of more than the fee wallet holds is refused"),
    "treasury.liquidity_withdrawal": (acct.liquidity, "the free liquidity float", "approving it would fail"),
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
    expired or executed — with who, when and why. Raises: MalformedDocumentError."""
    return _history(ApprovalRequest.from_document(document))


def _history(request: ApprovalRequest) -> list[Decision]:
    lines = [Decision("requested", request.requested_by, request.requested_at, request.reason)]
    for vote in request.approvals:
        lines.append(Decision("approved", vote.by, vote.at, vote.reason))
    if request.state == "rejected":
        lines.append(Decision("rejected", request.rejected_by, request.rejected_at, request.rejection_reason or ""))
    elif request.state == "expired":
        lines.append(Decision("expired", None, request.expires_at, "nobody decided before it expired"))
    elif request.state == "approved":
        result = request.result or {}
        outcome = "done" if result.get("ok") else (result.get("message") or "executing")
        lines.append(Decision("executed", request.executed_by or request.execution_claimed_by,
                              request.executed_at or request.approved_at, outcome))
    return lines


def decision(document: dict) -> Decision | None:
    """The deciding line (rejected, expired or the last approval of an approved request), or
    None while the request is pending. Raises: MalformedDocumentError."""
    request = ApprovalRequest.from_document(document)
    if request.state == "pending":
        return None
    lines = [line for line in _history(request) if line.action in ("approved", "rejected", "expired")]
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
    warnings = []
    required = approvals_required_for(platform, asset, amount_minor)
    eligible = eligible_approvers(people, principal.name)
    if approver_shortfall(people, principal.name, required, approved_by):
        who = ", ".join(display_name(people, u) for u in eligible) or "nobody"
        warnings.append(f"This request needs {required} approver(s) other than you, but only {len(eligible)} "
                        f"enabled admin(s) could approve it ({who}): it would wait until it expires. "
                        "Ask for another admin account first, or request a smaller amount.")
    source = SOURCE_ACCOUNTS.get(kind)
    if source is not None and asset and amount_minor is not None:
        factory, label, consequence = source
        held = platform.ledger.balance(factory(asset)).minor
        if held < amount_minor:
            warnings.append(f"{label.capitalize()} holds {amount_text(held, asset, platform.registry)}, less than the "
                            f"{amount_text(amount_minor, asset, platform.registry)} requested: {consequence}.")
    return warnings


# What approving a request of each kind does to the balance an approver cares about:
# (account, what to call it, signed change in minor units), from the request's payload.
# Only the side the money leaves (or, for a credit, arrives in) on the platform's or the
# user's books: the `external` and `adjustments` counterparts are the world's.
def _moves(kind: str, payload: dict) -> list[tuple[Account, str, int]]:
    asset, minor, user = payload.get("asset"), payload.get("amount_minor"), payload.get("user_id")
    if not isinstance(asset, str) or isinstance(minor, bool) or not isinstance(minor, int):
        return []
    if kind == "treasury.fee_sweep":
        return [(acct.fees(asset), f"The fee wallet ({asset})", -minor)]
    if kind == "treasury.liquidity_withdrawal":
        return [(acct.liquidity(asset), f"The free liquidity float ({asset})", -minor)]
    if kind == "treasury.liquidity_topup":
        return [(acct.liquidity(asset), f"The free liquidity float ({asset})", minor)]
    if not isinstance(user, str):
        return []
    if kind in ("adjustment", "deposit.manual"):  # an adjustment's amount is signed: a debit is negative
        return [(acct.user_available(user, asset), f"User {user}'s available {asset}", minor)]
    if kind == "withdrawal":  # the held amount leaves the user's locked balance when it settles
        return [(acct.user_locked(user, asset), f"User {user}'s locked {asset} (the withdrawal's hold)", -minor)]
    return []


@dataclass(frozen=True)
class BalanceEffect:
    """What approving a request would do to one balance: what it holds now, what it would
    leave, and whether that is impossible (below zero where the ledger forbids it, so the
    execution would be refused)."""

    account_id: str
    label: str  # "The fee wallet (BTC)", "User u0001's available BTC"
    asset: str
    now_minor: int
    after_minor: int
    impossible: bool


def requests_checker(value: object, name: str) -> None:
    """A list of approval request documents (at most EFFECTS_REQUESTS_MAX), each as core
    hands it out (`list_approvals`, `get_approval`): plain data with an id and a payload."""
    if not isinstance(value, (list, tuple)) or len(value) > EFFECTS_REQUESTS_MAX:
        raise MalformedValueError(f"{name} must be a list of at most {EFFECTS_REQUESTS_MAX} approval requests",
                                  field=name, value=repr(value)[:80])
    for item in value:
        document(item, name)
        if not isinstance(item.get("_id"), str) or not isinstance(item.get("payload"), dict):
            refuse(name, item, "an approval request document (with _id and payload)")


@boundary(requests=requests_checker)
def balance_effects(platform: Platform, principal: Principal, requests: list[dict]) -> dict[str, list[BalanceEffect]]:
    """For each request that moves money (sweeps, liquidity moves, adjustments, manual
    deposits, withdrawals), by request id: the balance it draws from or pays into, what it
    holds now and what approving would leave. Other kinds (repairs, rebuilds) map to [].
    One query for all of them (a page of the queue costs the same however many it shows).

    Raises: PermissionDeniedError (needs APPROVE), MalformedValueError, InvalidAccountError
        (a malformed user id in a payload), UnknownAssetError."""
    require(principal, Permission.APPROVE)
    moves = {request["_id"]: _moves(request.get("kind", ""), request["payload"]) for request in requests}
    held = platform.ledger.balances_minor([account for found in moves.values() for account, _, _ in found])
    effects: dict[str, list[BalanceEffect]] = {}
    for request_id, found in moves.items():
        effects[request_id] = []
        for account, label, change in found:
            now = held.get(account.id, 0)
            effects[request_id].append(BalanceEffect(account.id, label, account.asset, now, now + change,
                                                     now + change < 0 and not account.may_go_negative))
    return effects


def effect_text(effect: BalanceEffect, registry: AssetRegistry) -> str:
    """"The fee wallet (BTC) holds 0.01200000 BTC now; approving leaves 0.00200000 BTC." — or
    says the approval would fail when it would leave less than zero."""
    now, after = amount_text(effect.now_minor, effect.asset, registry), amount_text(effect.after_minor, effect.asset, registry)
    text = f"{effect.label} holds {now} now; approving leaves {after}"
    if effect.impossible:
        return text + ": below zero, so approving it would fail (the ledger refuses it) unless the balance grows first."
    return text + "."


@boundary
def adjustment_user(platform: Platform, principal: Principal, text: str) -> str:
    """The user an adjustment typed on the console is for: `text` trimmed, refused unless the
    user directory or the ledger knows that user (a typo would otherwise credit an account
    nobody owns).

    Raises: PermissionDeniedError (needs REQUEST_TREASURY), InvalidAccountError (not a user
        id), UnknownUserError."""
    require(principal, Permission.REQUEST_TREASURY)
    user_id = check_owner_id(text.strip())
    if directory.get_user(platform.store, principal, user_id) is None and not platform.ledger.user_balances(user_id):
        raise UnknownUserError(f"there is no user {user_id}: not in the directory and nothing in the ledger",
                               user_id=user_id)
    return user_id


@boundary
def count_requests(platform: Platform, principal: Principal, *, state: str | None, kind: str | None) -> int:
    """How many requests `list_approvals` would page through, up to COUNT_SHOWN_MAX + 1
    (served by the `state` or `kind` index). Raises: PermissionDeniedError."""
    require(principal, Permission.APPROVE)
    query = {key: value for key, value in (("state", state), ("kind", kind)) if isinstance(value, str)}
    if not query:
        query = {"requested_at": {"$exists": True}}  # every request; served by the requested_at index
    return platform.store.collection("approvals").count_documents(query, limit=COUNT_SHOWN_MAX + 1)
