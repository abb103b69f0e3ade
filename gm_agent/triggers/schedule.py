"""Schedule triggers: cron expressions and intervals, durable across restarts.

Fire times come from APScheduler's triggers (``CronTrigger.from_crontab`` and
``IntervalTrigger``, time zone aware). The next fire time is journaled in the
trigger's stream (``trigger:NAME``): ``schedule.armed`` when the trigger is set
up, and ``next_at`` in each ``trigger.fired``. A restarted daemon picks up from
there, so a firing due while it was down is neither lost nor doubled: it is
handled by the trigger's missed-run policy (``skip``, ``once``, ``all`` within
``grace_s``), and each firing's event id (``schedule:NAME:TIME``) is unique.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gm_agent.clock import Clock, format_timestamp, parse_timestamp
from gm_agent.events import ScheduleArmed, TriggerFired, new_event
from gm_agent.journal import Journal
from gm_agent.settings import ScheduleTrigger

__all__ = [
    "LATE_S",
    "Due",
    "due_firings",
    "every_seconds",
    "fire_times",
    "run_schedule",
    "schedule_key",
    "stream_of",
]

LATE_S = 5.0
"""A firing later than this (seconds) was missed (the daemon was down, the
machine slept) and goes through the trigger's ``missed`` policy."""

MAX_CATCH_UP = 10_000
"""Fire times looked at when catching up after a long stop."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Fire = Callable[[ScheduleTrigger, datetime, datetime | None], Awaitable[None]]
"""Starts the run of a firing: (trigger, scheduled time, the next fire time after
it); it journals the ``trigger.fired``."""


def stream_of(trigger: str) -> str:
    """The journal stream (``run_id``) of trigger ``trigger``'s events."""
    return f"trigger:{trigger}"


def every_seconds(every: str) -> float:
    """``"30s"``, ``"5m"``, ``"2h"``, ``"1d"`` in seconds.

    Raises:
        ValueError: not a number and one of the units s, m, h, d.
    """
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", every.strip())
    if found is None or float(found[1]) <= 0:
        raise ValueError(f"invalid interval {every!r}: write e.g. 30s, 5m, 2h or 1d")
    return float(found[1]) * _UNITS[found[2]]


def schedule_key(spec: ScheduleTrigger) -> str:
    """The schedule as one string; a change of it re-arms the trigger."""
    if spec.cron is not None:
        return f"cron {spec.cron} {spec.timezone}"
    return f"every {spec.every}"


def _trigger(spec: ScheduleTrigger, now: datetime) -> Any:
    """The APScheduler trigger for ``spec``; an interval starts one period after ``now``."""
    from apscheduler.triggers.cron import (  # pyright: ignore[reportMissingTypeStubs]
        CronTrigger,
    )
    from apscheduler.triggers.interval import (  # pyright: ignore[reportMissingTypeStubs]
        IntervalTrigger,
    )

    if spec.cron is not None:
        return CronTrigger.from_crontab(spec.cron, timezone=spec.timezone)  # pyright: ignore[reportUnknownMemberType]
    period = every_seconds(spec.every or "")
    start = now + timedelta(seconds=period)
    return IntervalTrigger(seconds=period, start_date=start, timezone=spec.timezone)  # pyright: ignore[reportArgumentType]


def fire_times(spec: ScheduleTrigger, after: datetime | None, now: datetime) -> datetime | None:
    """The fire time following ``after`` (or the first one from ``now`` when
    ``after`` is ``None``), time zone aware; ``None`` when there is none."""
    found: datetime | None = _trigger(spec, now).get_next_fire_time(after, now)
    return found


@dataclass(frozen=True)
class Due:
    """What to do at ``now``: the fire times to run (oldest first), how many due
    ones the missed-run policy skipped, and the fire time after them."""

    fire: tuple[datetime, ...]
    skipped: int
    next_at: datetime | None


def due_firings(spec: ScheduleTrigger, next_at: datetime, now: datetime) -> Due:
    """The firings due at ``now``, from ``next_at`` on, after the missed-run policy.

    A fire time up to :data:`LATE_S` seconds old is on time and runs. Older ones
    were missed: ``skip`` runs none of them; ``once`` runs the latest, unless an
    on-time firing stands for them all; ``all`` runs those within ``grace_s``.
    """
    times: list[datetime] = []
    at: datetime | None = next_at
    while at is not None and at <= now and len(times) < MAX_CATCH_UP:
        times.append(at)
        at = fire_times(spec, at, now)
    following = at if at is None or at > now else fire_times(spec, None, now)
    on_time = [t for t in times if (now - t).total_seconds() <= LATE_S]
    missed = [t for t in times if (now - t).total_seconds() > LATE_S]
    match spec.missed:
        case "skip":
            kept: list[datetime] = []
        case "once":
            kept = missed[-1:] if not on_time else []
        case "all":
            kept = [t for t in missed if (now - t).total_seconds() <= spec.grace_s]
    fire = (*kept, *on_time)
    return Due(fire, len(times) - len(fire), following)


async def _resume_point(journal: Journal, spec: ScheduleTrigger) -> datetime | str | None:
    """Where the journal says the trigger stands: its next fire time (``None`` when
    it has no more), or ``"unarmed"`` when it never ran or its schedule changed."""
    for event in reversed(await journal.read(stream_of(spec.name))):
        data = event.data
        if isinstance(data, TriggerFired | ScheduleArmed) and data.schedule is not None:
            if data.schedule != schedule_key(spec):
                return "unarmed"
            return parse_timestamp(data.next_at) if data.next_at else None
    return "unarmed"


async def _arm(
    journal: Journal, clock: Clock, spec: ScheduleTrigger, next_at: datetime | None
) -> None:
    armed = ScheduleArmed(
        trigger=spec.name,
        schedule=schedule_key(spec),
        next_at=format_timestamp(next_at) if next_at else None,
    )
    await journal.append([new_event(clock, stream_of(spec.name), "timer", armed)])


async def run_schedule(
    spec: ScheduleTrigger, journal: Journal, clock: Clock, fire: Fire, *, tick_s: float = 1.0
) -> None:
    """Fire ``spec`` on time, forever (until cancelled), from where the journal says.

    Args:
        spec: the trigger.
        journal: where its next fire time is kept.
        clock: time and sleeps (a fake clock in tests).
        fire: starts a firing's run; see :data:`Fire`.
        tick_s: the longest single sleep, in seconds, so a changed wall clock is
            noticed.
    """
    point = await _resume_point(journal, spec)
    if point == "unarmed":
        point = fire_times(spec, None, clock.now())
        await _arm(journal, clock, spec, point)
    assert not isinstance(point, str)
    next_at = point
    while next_at is not None:
        now = clock.now()
        if next_at > now:
            await clock.sleep(min(tick_s, (next_at - now).total_seconds()))
            continue
        due = due_firings(spec, next_at, now)
        for index, at in enumerate(due.fire):
            after = due.fire[index + 1] if index + 1 < len(due.fire) else due.next_at
            await fire(spec, at, after)
        if not due.fire:  # all missed and skipped: keep the journal's next time true
            await _arm(journal, clock, spec, due.next_at)
        next_at = due.next_at
