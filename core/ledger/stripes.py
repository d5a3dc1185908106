"""Hot accounts stored as stripes (HOT_ACCOUNTS.md, design 1).

A *logical* account — what flows, reports and the console name, e.g. the fee wallet
`platform.fees:platform:BTC` — may be stored as several *parts*: stripe 0 has the logical
id itself, stripe k > 0 the id `<logical>#k`. Each part is an ordinary account of the
posting protocol (its own version chain, hash chain and projection), so every exactly-once
argument of EXACTLY_ONCE.md holds per part unchanged. A logical balance is the sum of its
parts, read in one round trip.

Only the kinds every flow shares are striped: the fee wallet, the liquidity float and its
reserved side, and `external`. A credit (or any leg of an account that may go negative)
goes to the writer's stripe — a writer keeps the stripe it last won and moves to another at
random when it loses a claim (affinity), so writers spread over the stripes and stop
colliding. A debit of a constrained account is taken from a stripe that holds enough, or
split across stripes in the same entry; it is refused only when the logical total is short.

Each part of a striped kind is kept within the int64 range divided by STRIPES_MAX, so the
logical sum of at most STRIPES_MAX parts can never leave int64. The number of stripes per
kind is configuration (`Striping`); lowering it only stops new credits to the higher
stripes — their balances stay readable and spendable, and moving them is an ordinary entry.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.base.errors import ConfigurationError
from core.ledger.accounts import PART_MARK, STRIPES_MAX, Account, AccountKind
from core.ledger.money import INT64_MAX, INT64_MIN

STRIPABLE_KINDS: frozenset[AccountKind] = frozenset(
    {AccountKind.FEES, AccountKind.LIQUIDITY, AccountKind.LIQUIDITY_RESERVED, AccountKind.EXTERNAL}
)
DEFAULT_STRIPES = 64  # comfortably above the writers one replica set serves at once (the bench's W = 32)
PART_MINOR_MIN, PART_MINOR_MAX = INT64_MIN // STRIPES_MAX, INT64_MAX // STRIPES_MAX


class Striping(BaseModel):
    """How many stripes each hot kind is stored as (1 = not striped)."""

    model_config = ConfigDict(strict=True, frozen=True)

    counts: dict[AccountKind, int] = Field(default_factory=lambda: {kind: DEFAULT_STRIPES for kind in STRIPABLE_KINDS})

    @field_validator("counts")
    @classmethod
    def _counts(cls, value: dict[AccountKind, int]) -> dict[AccountKind, int]:
        for kind, count in value.items():
            if kind not in STRIPABLE_KINDS:
                raise ValueError(f"{kind.value} cannot be striped (only {', '.join(sorted(k.value for k in STRIPABLE_KINDS))})")
            if isinstance(count, bool) or not 1 <= count <= STRIPES_MAX:
                raise ValueError(f"stripes of {kind.value} must be 1..{STRIPES_MAX}")
        return value

    def count(self, kind: AccountKind) -> int:
        return self.counts.get(kind, 1) if kind in STRIPABLE_KINDS else 1


def striping(counts: object) -> Striping:
    """Validated striping from `{kind: count}` (configuration text or values, e.g.
    `{"platform.fees": 64}`); kinds not named keep 1 stripe.
    Raises: ConfigurationError naming the problem."""
    try:
        if not isinstance(counts, dict) or not all(isinstance(kind, str) for kind in counts):
            raise ValueError("stripe counts must be a mapping of account kind to count")
        return Striping(counts={AccountKind(kind): count for kind, count in counts.items()})
    except (ValidationError, ValueError, TypeError) as error:
        problems = "; ".join(e["msg"] for e in error.errors()) if isinstance(error, ValidationError) else str(error)
        raise ConfigurationError(f"invalid striping: {problems}"[:300], problems=problems[:300]) from None


UNSTRIPED = Striping(counts={kind: 1 for kind in STRIPABLE_KINDS})
DEFAULT_STRIPING = Striping()


def part_id(account: Account | str, stripe: int) -> str:
    """The stored id of stripe `stripe` of a logical account (stripe 0 is the logical id)."""
    logical = account if isinstance(account, str) else account.id
    return logical if stripe == 0 else f"{logical}{PART_MARK}{stripe}"


def logical_id(part: str) -> str:
    """The logical account a stored part belongs to."""
    return part.split(PART_MARK, 1)[0]


def stripe_of(part: str) -> int:
    """The stripe number of a stored part id (0 for a plain account id)."""
    _, mark, number = part.partition(PART_MARK)
    return int(number) if mark else 0


def is_striped(account: Account) -> bool:
    """Whether `account`'s kind is stored in parts (whatever the configured count)."""
    return account.kind in STRIPABLE_KINDS


def part_range(account: Account) -> tuple[int, int]:
    """The balance range one stored part of `account` must stay within."""
    return (PART_MINOR_MIN, PART_MINOR_MAX) if is_striped(account) else (INT64_MIN, INT64_MAX)


def family_query(account: Account) -> dict:
    """The filter that finds every stored part of a logical account (served by the
    balances index `owner, asset, kind`)."""
    return {"owner": account.owner, "asset": account.asset, "kind": account.kind.value}
