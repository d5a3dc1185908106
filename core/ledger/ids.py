"""Random parts of generated ids (entry ids, event keys), from one replaceable source.

Production uses `uuid4`. The deterministic simulator swaps in a seeded generator for the
length of a run (it admits one actor at a time, so a shared generator stays
deterministic), so the same seed gives the same ids, the same sort orders and therefore
the same interleaving.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

_SOURCE_LOCK = threading.Lock()
_seeded: random.Random | None = None


def random_hex(chars: int) -> str:
    """`chars` random hex digits (at most 32)."""
    if _seeded is not None:
        return f"{_seeded.getrandbits(128):032x}"[:chars]
    return uuid.uuid4().hex[:chars]


@contextmanager
def seeded_ids(seed: int) -> Iterator[None]:
    """Within the block every generated id comes from `random.Random(seed)`.
    One seeded block at a time per process (the simulator's runs are sequential)."""
    global _seeded
    with _SOURCE_LOCK:
        _seeded = random.Random(seed)
        try:
            yield
        finally:
            _seeded = None


def random_below(bound: int) -> int:
    """A random integer in [0, bound) from the same replaceable source (stripe choices)."""
    if _seeded is not None:
        return _seeded.randrange(bound)
    return secrets.randbelow(bound)


_SLOTS = itertools.count()
_THREAD_SLOT = threading.local()


def first_slot(bound: int) -> int:
    """Where a writer (thread) starts among `bound` stripes or streams: the process's threads
    take the slots in turn and each keeps its own, whatever ledger or trail it writes — so
    writers start apart instead of colliding by chance (a seeded simulation draws at random,
    to stay a function of its seed). Only speed depends on it: any slot is safe."""
    if _seeded is not None:
        return _seeded.randrange(bound)
    slot = getattr(_THREAD_SLOT, "slot", None)
    if slot is None:
        slot = _THREAD_SLOT.slot = next(_SLOTS)
    return slot % bound


def other_than(current: int, bound: int) -> int:
    """A random integer in [0, bound) other than `current` (a writer moving off a stripe or
    stream it lost); `current` itself when it is the only one."""
    return current if bound < 2 else (current + 1 + random_below(bound - 1)) % bound
