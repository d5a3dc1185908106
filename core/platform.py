"""One bundle of the services a caller (page, CLI, flow runner, test) works with."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock, SystemClock
from core.ledger import Ledger
from core.money import DEFAULT_REGISTRY, AssetRegistry
from core.store import Store


@dataclass
class Platform:
    store: Store
    clock: Clock
    registry: AssetRegistry
    ledger: Ledger

    @classmethod
    def open(cls, store: Store, clock: Clock | None = None, registry: AssetRegistry = DEFAULT_REGISTRY) -> Platform:
        clock = clock or SystemClock()
        return cls(store=store, clock=clock, registry=registry, ledger=Ledger(store, clock, registry))
