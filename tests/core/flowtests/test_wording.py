"""core.flowtests.wording (issue 22): refusals in the flow-test evidence read in decimals with
their asset, with times in UTC; the numbers come from the error's details."""

from __future__ import annotations

from core.base.errors import InsufficientFundsError, InsufficientLiquidityError, QuoteExpiredError
from core.flowtests.wording import readable_message, readable_refusal
from core.ledger import DEFAULT_REGISTRY


def test_readable_message_uses_the_errors_own_amounts_and_asset():
    funds = InsufficientFundsError("user.available:u3:BTC holds 41000000 minor units, the quote needs 70000000",
                                   account="user.available:u3:BTC", needed_minor=70_000_000, available_minor=41_000_000)
    assert readable_message(funds, DEFAULT_REGISTRY) == "u3's available BTC holds 0.41000000 BTC, the quote needs 0.70000000 BTC"
    liquidity = InsufficientLiquidityError("the ETH float holds 5 minor units, the quote needs 197000000",
                                           asset="ETH", needed_minor=197_000_000)
    assert readable_message(liquidity, DEFAULT_REGISTRY) == "the ETH float holds 5 minor units, the quote needs 1.97000000 ETH"


def test_readable_message_gives_times_their_zone_and_leaves_other_text():
    expired = QuoteExpiredError("quote q_1 expired at 2026-01-01 12:00:30", quote_id="q_1")
    assert readable_refusal(expired, DEFAULT_REGISTRY) == "QuoteExpiredError: quote q_1 expired at 2026-01-01 12:00:30 UTC"
    already = QuoteExpiredError("expired at 2026-01-01 12:00:30 UTC, id 123456789", quote_id="q_1")
    assert readable_message(already, DEFAULT_REGISTRY) == "expired at 2026-01-01 12:00:30 UTC, id 123456789"
    assert readable_refusal(ValueError("boom"), DEFAULT_REGISTRY) == "ValueError: boom"
    unknown = InsufficientFundsError("x holds 5 minor units", account="not an account", available_minor=5)
    assert readable_message(unknown, DEFAULT_REGISTRY) == "x holds 5 minor units"
