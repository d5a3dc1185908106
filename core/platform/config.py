"""Flow configuration: fees, spreads, thresholds, time-to-lives and confirmations.

Every rate is a `Decimal` fraction (0.01 = 1%), never a float: the model is pydantic
`strict` and `frozen`, so `0.01` (a float) is refused instead of silently becoming
`Decimal('0.01000000000000000020816681711721685')`. Defaults are the old platform's
settings (LEGACY_PLATFORM.md, "Fee settings the old platform used").
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.base.errors import ConfigurationError

RATE_MAX = Decimal("0.5")  # no fee or spread above 50%: a typo guard, not a business rule
CONFIRMATIONS_MAX = 10_000

DEFAULT_CONFIRMATIONS: dict[str, int] = {"BTC": 2, "ETH": 12, "USDT": 12, "LTC": 6, "XRP": 1}

# Maker-checker thresholds per asset in major units. A withdrawal above the first needs
# one approver; any request above the second needs two distinct approvers.
DEFAULT_APPROVAL_THRESHOLD: dict[str, Decimal] = {
    "BTC": Decimal("0.5"),
    "ETH": Decimal("5"),
    "USDT": Decimal("10000"),
    "USDC": Decimal("10000"),
    "SOL": Decimal("100"),
    "XRP": Decimal("20000"),
    "LTC": Decimal("100"),
    "GBP": Decimal("10000"),
    "USD": Decimal("10000"),
    "EUR": Decimal("10000"),
}
DEFAULT_SECOND_APPROVAL_THRESHOLD: dict[str, Decimal] = {
    "BTC": Decimal("5"),
    "ETH": Decimal("50"),
    "USDT": Decimal("100000"),
    "USDC": Decimal("100000"),
    "SOL": Decimal("1000"),
    "XRP": Decimal("200000"),
    "LTC": Decimal("1000"),
    "GBP": Decimal("100000"),
    "USD": Decimal("100000"),
    "EUR": Decimal("100000"),
}


class FlowConfig(BaseModel):
    """The knobs of every flow. Build a variant with `FlowConfig.model_copy(update=...)`
    only through `FlowConfig.build(**fields)`, which re-validates."""

    model_config = ConfigDict(strict=True, frozen=True)

    deposit_fee_rate: Decimal = Decimal("0")
    withdrawal_fee_rate: Decimal = Decimal("0.01")
    swap_fee_rate: Decimal = Decimal("0.015")
    instant_buy_spread: Decimal = Decimal("0.03")
    instant_sell_spread: Decimal = Decimal("0.025")
    instant_fee_rate: Decimal = Decimal("0.01")
    p2p_maker_fee_rate: Decimal = Decimal("0.01")
    dispute_fee_rate: Decimal = Decimal("0.01")  # recorded for the console; not charged yet
    dispute_fee_min_gbp: Decimal = Decimal("2")
    referral_rates: dict[str, Decimal] = Field(
        default_factory=lambda: {"standard": Decimal("0.20"), "golden": Decimal("0.50")}
    )
    confirmations: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_CONFIRMATIONS))
    confirmations_default: int = 6
    approval_threshold: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_APPROVAL_THRESHOLD))
    second_approval_threshold: dict[str, Decimal] = Field(
        default_factory=lambda: dict(DEFAULT_SECOND_APPROVAL_THRESHOLD)
    )
    quote_ttl: timedelta = timedelta(seconds=30)
    quote_price_move_max: Decimal = Decimal("0.02")  # refuse execution if the market moved more than this
    approval_ttl: timedelta = timedelta(hours=24)
    p2p_payment_timeout: timedelta = timedelta(minutes=30)

    @model_validator(mode="after")
    def _check(self) -> FlowConfig:
        rates = {
            name: getattr(self, name)
            for name in (
                "deposit_fee_rate",
                "withdrawal_fee_rate",
                "swap_fee_rate",
                "instant_buy_spread",
                "instant_sell_spread",
                "instant_fee_rate",
                "p2p_maker_fee_rate",
                "dispute_fee_rate",
                "quote_price_move_max",
            )
        }
        rates.update({f"referral_rates.{tier}": rate for tier, rate in self.referral_rates.items()})
        for name, rate in rates.items():
            if not rate.is_finite() or not (
                Decimal(0) <= rate <= (Decimal(1) if name.startswith("referral") else RATE_MAX)
            ):
                raise ValueError(f"{name} must be a fraction between 0 and {RATE_MAX}, got {rate}")
        for asset, count in {**self.confirmations, "default": self.confirmations_default}.items():
            if not (0 <= count <= CONFIRMATIONS_MAX):
                raise ValueError(f"confirmations for {asset} must be 0..{CONFIRMATIONS_MAX}")
        for asset, first in self.approval_threshold.items():
            second = self.second_approval_threshold.get(asset)
            if first < 0 or (second is not None and second < first):
                raise ValueError(f"thresholds for {asset} must be 0 ≤ first ≤ second")
        for name in ("quote_ttl", "approval_ttl", "p2p_payment_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        return self

    @classmethod
    def build(cls, **fields: object) -> FlowConfig:
        """A validated configuration. Raises: ConfigurationError naming every problem."""
        try:
            return cls(**fields)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
            )
            raise ConfigurationError(f"invalid flow configuration: {problems}", problems=problems) from None

    def with_changes(self, **fields: object) -> FlowConfig:
        """A copy with some fields changed, validated again."""
        return FlowConfig.build(**{**self.model_dump(), **fields})

    def confirmations_for(self, asset: str) -> int:
        """Confirmations a chain deposit of `asset` needs before it is credited."""
        return self.confirmations.get(asset, self.confirmations_default)

    def referral_rate(self, tier: str | None) -> Decimal:
        """The referrer's share of a fee for `tier` (unknown or missing tiers are standard)."""
        return self.referral_rates.get(tier or "standard", self.referral_rates.get("standard", Decimal(0)))


DEFAULT_CONFIG = FlowConfig()
