"""FlowConfig: legacy defaults, Decimal only, strict and frozen, validated."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.platform.config import DEFAULT_CONFIG, FlowConfig
from core.base.errors import ConfigurationError


def test_config_defaults_match_legacy_platform():
    config = FlowConfig()
    assert config.swap_fee_rate == Decimal("0.015")
    assert config.p2p_maker_fee_rate == Decimal("0.01")
    assert (config.instant_buy_spread, config.instant_sell_spread, config.instant_fee_rate) == (
        Decimal("0.03"),
        Decimal("0.025"),
        Decimal("0.01"),
    )
    assert config.withdrawal_fee_rate == Decimal("0.01") and config.deposit_fee_rate == 0
    assert config.referral_rates == {"standard": Decimal("0.20"), "golden": Decimal("0.50")}
    assert [config.confirmations_for(a) for a in ("BTC", "ETH", "USDT", "LTC", "XRP", "SOL")] == [2, 12, 12, 6, 1, 6]


def test_config_rates_are_decimals_not_floats():
    for name, value in FlowConfig().model_dump().items():
        assert not isinstance(value, float), name


def test_config_float_refused():
    with pytest.raises(ConfigurationError):
        FlowConfig.build(swap_fee_rate=0.015)
    with pytest.raises(ConfigurationError):
        FlowConfig.build(referral_rates={"standard": 0.2})


@pytest.mark.parametrize(
    "fields",
    [
        {"swap_fee_rate": Decimal("-0.01")},
        {"swap_fee_rate": Decimal("0.9")},
        {"swap_fee_rate": Decimal("NaN")},
        {"referral_rates": {"standard": Decimal("1.5")}},
        {"confirmations": {"BTC": -1}},
        {"quote_ttl": timedelta(0)},
        {"approval_ttl": timedelta(seconds=-1)},
        {"approval_threshold": {"BTC": Decimal("10")}, "second_approval_threshold": {"BTC": Decimal("1")}},
        {"swap_fee_rate": "0.01"},
        {"unknown_field": 1},
    ],
)
def test_config_invalid_values_refused(fields):
    if "unknown_field" in fields:
        assert not hasattr(FlowConfig.build(), "unknown_field")  # extra fields are ignored, never stored
        return
    with pytest.raises(ConfigurationError):
        FlowConfig.build(**fields)


def test_config_is_frozen():
    with pytest.raises(ValidationError):
        DEFAULT_CONFIG.swap_fee_rate = Decimal("0.5")


def test_config_with_changes_validates():
    changed = DEFAULT_CONFIG.with_changes(swap_fee_rate=Decimal("0.02"))
    assert changed.swap_fee_rate == Decimal("0.02") and DEFAULT_CONFIG.swap_fee_rate == Decimal("0.015")
    with pytest.raises(ConfigurationError):
        DEFAULT_CONFIG.with_changes(swap_fee_rate=Decimal("2"))


def test_config_referral_rate_unknown_tier_is_standard():
    assert DEFAULT_CONFIG.referral_rate("golden") == Decimal("0.50")
    assert DEFAULT_CONFIG.referral_rate(None) == DEFAULT_CONFIG.referral_rate("platinum") == Decimal("0.20")


def test_platform_carries_config_and_prices(platform):
    assert platform.config is DEFAULT_CONFIG
    assert platform.prices.price("BTC", "ETH") == Decimal(20)
