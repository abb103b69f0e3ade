"""Schedule triggers: on time, durable across restarts, with a missed-run policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from gm_agent.clock import FakeClock, format_timestamp
from gm_agent.events import ScheduleArmed, TriggerFired, new_event
from gm_agent.journal import Journal
from gm_agent.settings import ScheduleTrigger
from gm_agent.triggers.schedule import (
    due_firings,
    every_seconds,
    fire_times,
    run_schedule,
    schedule_key,
    stream_of,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def every(period: str = "30s", missed: str = "once", grace_s: float = 3600) -> ScheduleTrigger:
    return ScheduleTrigger.model_validate(
        {
            "name": "tick",
            "on": "schedule",
            "every": period,
            "task": "t.md",
            "missed": missed,
            "grace_s": grace_s,
        }
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1.5s", 1.5)]
)
def test_intervals_are_read_in_their_units(text: str, seconds: float) -> None:
    assert every_seconds(text) == seconds


def test_a_cron_schedule_is_time_zone_aware() -> None:
    nightly = ScheduleTrigger.model_validate(
        {
            "name": "n",
            "on": "schedule",
            "cron": "0 2 * * *",
            "timezone": "Europe/Paris",
            "task": "t.md",
        }
    )
    first = fire_times(nightly, None, T0)
    assert first is not None and first.astimezone(UTC) == T0 + timedelta(hours=1)  # 02:00 in Paris


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        ("skip", []),
        ("once", [T0 + timedelta(seconds=90)]),  # the latest missed firing stands for all
        ("all", [T0 + timedelta(seconds=s) for s in (30, 60, 90)]),
    ],
)
def test_missed_firings_follow_the_policy(missed: str, expected: list[datetime]) -> None:
    due = due_firings(every(missed=missed), T0 + timedelta(seconds=30), T0 + timedelta(seconds=100))
    assert list(due.fire) == expected
    assert due.next_at == T0 + timedelta(seconds=120)
    assert due.skipped == 3 - len(expected)


def test_all_runs_only_the_missed_firings_within_the_grace_window() -> None:
    due = due_firings(
        every(missed="all", grace_s=45), T0 + timedelta(seconds=30), T0 + timedelta(seconds=100)
    )
    assert list(due.fire) == [T0 + timedelta(seconds=60), T0 + timedelta(seconds=90)]


def test_a_firing_a_little_late_is_on_time() -> None:
    due = due_firings(every(missed="skip"), T0 + timedelta(seconds=30), T0 + timedelta(seconds=32))
    assert list(due.fire) == [T0 + timedelta(seconds=30)]


async def run_until(
    journal: Journal, clock: FakeClock, spec: ScheduleTrigger, firings: int, fired: list[datetime]
) -> None:
    """Run the schedule (a daemon) until it has fired ``firings`` more times, then stop it."""
    target = len(fired) + firings

    async def fire(trigger: ScheduleTrigger, at: datetime, after: datetime | None) -> None:
        fired.append(at)
        data = TriggerFired(
            trigger=trigger.name, on="schedule", scheduled_at=format_timestamp(at),
            next_at=format_timestamp(after) if after else None, schedule=schedule_key(trigger),
        )  # fmt: skip
        event_id = f"schedule:{trigger.name}:{format_timestamp(at)}"
        await journal.append(
            [new_event(clock, stream_of(trigger.name), "timer", data, event_id=event_id)],
            unique=[event_id],
        )
        if len(fired) >= target:
            scope.cancel()

    with anyio.CancelScope() as scope, anyio.fail_after(10):
        await run_schedule(spec, journal, clock, fire)


async def test_an_interval_fires_on_time_and_a_restart_neither_loses_nor_doubles(
    journal: Journal, clock: FakeClock
) -> None:
    spec = every("30s", missed="all")
    start = clock.now()
    fired: list[datetime] = []
    await run_until(journal, clock, spec, 2, fired)  # the first daemon
    assert fired == [start + timedelta(seconds=30), start + timedelta(seconds=60)]
    clock.advance(95)  # down for a while: the firings at 90, 120 and 150 s are missed
    await run_until(journal, clock, spec, 4, fired)  # the daemon restarted
    assert fired[2:] == [start + timedelta(seconds=s) for s in (90, 120, 150, 180)]
    assert len(set(fired)) == len(fired)  # none doubled
    events = await journal.read(stream_of("tick"))
    assert [type(e.data) for e in events].count(ScheduleArmed) == 1  # armed once, then resumed


async def test_a_changed_schedule_is_armed_again(journal: Journal, clock: FakeClock) -> None:
    fired: list[datetime] = []
    await run_until(journal, clock, every("30s"), 1, fired)
    restarted = clock.now()
    await run_until(journal, clock, every("10s"), 1, fired)
    assert fired[-1] == restarted + timedelta(seconds=10)
    armed = [
        e.data for e in await journal.read(stream_of("tick")) if isinstance(e.data, ScheduleArmed)
    ]
    assert [a.schedule for a in armed] == ["every 30s", "every 10s"]
