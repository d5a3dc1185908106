"""One bundle of the services a caller (page, CLI, flow runner, test) works with."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.base.clock import Clock, SystemClock
from core.platform.config import DEFAULT_CONFIG, FlowConfig
from core.ledger import Ledger
from core.ledger import DEFAULT_REGISTRY, AssetRegistry
from core.platform.prices import DeterministicPriceSource, PriceSource
from core.ledger import Store


COUNT_SHOWN_MAX = 200  # a count a page shows is exact up to this; past it the page says "more than 200"
# (a count walks one index key per match: capped, a page costs the same however long the history)


@dataclass
class Platform:
    store: Store
    clock: Clock
    registry: AssetRegistry
    ledger: Ledger
    config: FlowConfig = DEFAULT_CONFIG  # fees, spreads, thresholds, TTLs (core.platform.config)
    prices: PriceSource = field(default_factory=DeterministicPriceSource)  # core.platform.prices
    legacy: Store | None = None  # the legacy platform's database when the bridge is in use (core.legacy)

    @classmethod
    def open(cls, store: Store, clock: Clock | None = None, registry: AssetRegistry = DEFAULT_REGISTRY,
             config: FlowConfig | None = None, prices: PriceSource | None = None) -> Platform:
        clock = clock or SystemClock()
        return cls(store=store, clock=clock, registry=registry, ledger=Ledger(store, clock, registry),
                   config=config or DEFAULT_CONFIG, prices=prices or DeterministicPriceSource())
