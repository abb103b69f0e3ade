"""Bulk work without Python's cycle collector.

Reading and folding a long run builds many small objects and no reference
cycles. Python's cycle collector runs on allocation counts, and each full
collection walks every live object again, so over a 100,000-event replay it
took two thirds of the time (bench/replay_bench.py). Reference counting still
frees everything; the collector is only paused for the duration.
"""

from __future__ import annotations

import gc
from collections.abc import Generator
from contextlib import contextmanager

__all__ = ["cycle_collection_paused"]


@contextmanager
def cycle_collection_paused() -> Generator[None]:
    """Pause the cycle collector inside the block (if it was on), and restore it after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
