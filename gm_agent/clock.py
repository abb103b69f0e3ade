"""Time, sleeping and identifiers, injected so tests control them.

Nothing else in gm_agent reads the wall clock, sleeps or makes ids: ruff's
banned-api rule enforces it. :class:`SystemClock` is the real default;
:class:`FakeClock` is the test double.
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from typing import Protocol

import anyio
from ulid import ULID

__all__ = ["Clock", "FakeClock", "SystemClock", "format_timestamp", "parse_timestamp"]


def format_timestamp(moment: _dt.datetime) -> str:
    """Render an aware datetime as RFC 3339 UTC with microseconds, e.g. ``2026-11-21T08:55:39.123456Z``."""
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> _dt.datetime:
    """Read back a :func:`format_timestamp` string as an aware UTC datetime.

    Raises:
        ValueError: ``text`` is not such a timestamp.
    """
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.UTC)


class Clock(Protocol):
    """What gm_agent needs from time: now, a monotonic reading, sleep, and new ids."""

    def now(self) -> _dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """A monotonic reading in seconds, for durations only."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` (may be 0)."""
        ...

    def new_id(self) -> str:
        """A new ULID (26 characters, Crockford base32, sortable by creation time)."""
        ...


class SystemClock:
    """The real clock: the system's wall and monotonic clocks and ULIDs."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)

    def monotonic(self) -> float:
        return _time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def new_id(self) -> str:
        return str(ULID())


class FakeClock:
    """A deterministic clock for tests.

    Time starts at ``start`` and advances only by :meth:`advance` or
    :meth:`sleep`; ids are ULIDs built from the fake time and a counter, so they
    are unique, sortable and the same on every test run.
    """

    def __init__(self, start: _dt.datetime | None = None) -> None:
        self._now = start or _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
        self._mono = 0.0
        self._counter = 0

    def now(self) -> _dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        self._now += _dt.timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()

    def new_id(self) -> str:
        self._counter += 1
        millis = int(self._now.timestamp() * 1000)
        return str(ULID.from_bytes(millis.to_bytes(6, "big") + self._counter.to_bytes(10, "big")))
