"""``gm serve``: host a workspace's triggers and keep its runs going.

One process per workspace, in one event loop:

- a webhook server (Starlette on uvicorn, on ``[serve] host:port``, 127.0.0.1 by
  default) with one path per webhook trigger;
- a file watch per files trigger (changes the agent made itself never fire);
- a timer per schedule trigger, picking up from the journal;
- a look every ``[serve] orphan_check_s`` seconds for runs whose process died
  (lease expired), which it takes over and resumes.

Triggers come from gm.toml's ``[[triggers]]`` and from the ``on:`` of task files
under ``tasks/``. Runs execute unattended: a call that needs an approval stops
its run as ``waiting`` (``approvals = "yes"`` on a trigger approves instead).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio

from gm_agent.clock import Clock, SystemClock, format_timestamp
from gm_agent.errors import ConfigError, GmAgentError
from gm_agent.events import RunCreated, WebhookRejected, new_event
from gm_agent.journal import Journal
from gm_agent.kernel import load_task
from gm_agent.kernel.state import TERMINAL
from gm_agent.settings import (
    FilesTrigger,
    ScheduleTrigger,
    Settings,
    Trigger,
    WebhookTrigger,
    load_settings,
)
from gm_agent.triggers._launch import Firing, Launcher
from gm_agent.triggers.files import OwnWriteCheck, watch_changes
from gm_agent.triggers.schedule import run_schedule, schedule_key, stream_of
from gm_agent.triggers.webhooks import Accepted, Delivery, Rejection, webhook_app

__all__ = ["TASK_GLOB", "Serving", "find_triggers", "next_change", "serve", "watched_paths"]

log = logging.getLogger("gm_agent.triggers")

TASK_GLOB = "tasks/**/*.md"
"""Where ``gm serve`` looks for task files with an ``on:``."""


@dataclass(frozen=True)
class Serving:
    """What a started daemon hosts: its triggers and, with webhooks, its URL."""

    triggers: tuple[Trigger, ...]
    url: str | None


def find_triggers(settings: Settings) -> tuple[Trigger, ...]:
    """gm.toml's triggers, then those of the tasks under ``tasks/`` (``on:``),
    with each task path relative to the workspace.

    Raises:
        ConfigError: two triggers share a name or a webhook path.
        TaskFileError: a task file under ``tasks/`` is malformed.
    """
    found: list[Trigger] = list(settings.triggers)
    workspace = settings.workspace
    for path in sorted(workspace.glob(TASK_GLOB)):
        relative = path.relative_to(workspace).as_posix()
        for trigger in load_task(path).on:
            found.append(trigger.model_copy(update={"task": relative}))
    names = [t.name for t in found]
    paths = [t.path for t in found if isinstance(t, WebhookTrigger)]
    for label, values in (("name", names), ("webhook path", paths)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"two triggers have the same {label}: {', '.join(repeated)}")
    for trigger in found:
        if not trigger.scheme and not (workspace / trigger.task).is_file():
            raise ConfigError(f"trigger {trigger.name!r}: task file {trigger.task!r} not found")
    return tuple(found)


def own_writes(journal: Journal) -> OwnWriteCheck:
    """Whether a file's content is what gm itself last wrote there (a patch or an
    undo), from ``journal``: such a change is the agent's own and fires nothing."""

    async def check(path: str, sha256: str | None) -> bool:
        written, content = await journal.last_written(path)
        return written and content == sha256

    return check


REJECTIONS_PER_MINUTE = 60
"""Refused webhook requests journaled per minute at most; more are only logged."""


class _Bucket:
    """A token bucket: ``per_minute`` takes a minute, refilled evenly."""

    def __init__(self, clock: Clock, per_minute: int) -> None:
        self._clock = clock
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._at = clock.monotonic()

    def take(self) -> bool:
        now = self._clock.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def _takes(trigger: WebhookTrigger, delivery: Delivery) -> bool:
    """Whether ``trigger`` starts a run for ``delivery`` (its ``events`` filter;
    GitHub's ``ping``, sent when a webhook is set up, never)."""
    if delivery.event == "ping":
        return False
    if not trigger.events:
        return True
    action = delivery.payload.get("action") if isinstance(delivery.payload, dict) else None
    names = {delivery.event, f"{delivery.event}.{action}" if action else None}
    return any(e in names for e in trigger.events)


class _Daemon:
    def __init__(self, launcher: Launcher, journal: Journal, clock: Clock) -> None:
        self.launcher = launcher
        self.journal = journal
        self.clock = clock
        self._rejections = _Bucket(clock, per_minute=REJECTIONS_PER_MINUTE)

    async def on_delivery(self, delivery: Delivery) -> tuple[Accepted, str | None]:
        trigger = delivery.trigger
        if not _takes(trigger, delivery):
            return "ignored", None
        firing = Firing(
            trigger,
            event_id=f"webhook:{trigger.name}:{delivery.delivery_id}",
            payload=delivery.payload,
            delivery_id=delivery.delivery_id,
            event=delivery.event,
        )
        return await self.launcher.fire(firing)

    async def on_rejected(self, rejection: Rejection) -> None:
        log.warning(
            "refused a request to %s (%d): %s", rejection.path, rejection.status, rejection.reason
        )
        if not self._rejections.take():
            return  # a flood: logged, not journaled (the journal must stay small and free)
        rejected = WebhookRejected(
            trigger=rejection.trigger,
            path=rejection.path,
            status=rejection.status,
            reason=rejection.reason[:500],
            delivery_id=(rejection.delivery_id or "")[:100] or None,
        )
        stream = stream_of(rejection.trigger) if rejection.trigger else "serve"
        await self.journal.append([new_event(self.clock, stream, "webhook", rejected)])

    async def watch(self, trigger: FilesTrigger) -> None:
        async for paths in watch_changes(
            self.launcher.settings.workspace,
            trigger.paths,
            debounce_ms=trigger.debounce_ms,
            own_write=own_writes(self.journal),
        ):
            await self._fire(Firing(trigger, paths=paths))

    async def schedule(self, trigger: ScheduleTrigger) -> None:
        async def fire(spec: ScheduleTrigger, at: datetime, after: datetime | None) -> None:
            stamp = format_timestamp(at)
            firing = Firing(
                spec,
                event_id=f"schedule:{spec.name}:{stamp}",
                scheduled_at=stamp,
                next_at=format_timestamp(after) if after else None,
                schedule=schedule_key(spec),
            )
            await self._fire(firing)

        await run_schedule(trigger, self.journal, self.clock, fire)

    async def _fire(self, firing: Firing) -> None:
        try:
            accepted, run_id = await self.launcher.fire(firing)
        except GmAgentError as exc:  # journaled as skipped; the trigger keeps going
            log.warning("trigger %s could not start a run: %s", firing.trigger.name, exc)
            return
        log.info("trigger %s: %s %s", firing.trigger.name, accepted, run_id or "")

    async def adopt_orphans(self, every_s: float) -> None:
        """Resume runs whose process died, now and every ``every_s`` seconds (one
        waiting for a person stays waiting; one waiting for its children is
        resumed); not child runs (their parent drives them)."""
        while True:
            for row in await self.journal.list_runs():
                drove = row.status != "waiting" or (row.status_reason or "").startswith("children:")
                if row.orphaned and row.status not in TERMINAL and drove:
                    first = await self.journal.read(row.run_id, limit=1)
                    created = first[0].data if first else None
                    if isinstance(created, RunCreated) and created.parent_run is not None:
                        continue
                    trigger = created.trigger if isinstance(created, RunCreated) else None
                    if await self.launcher.adopt(row.run_id, trigger):
                        log.info("resuming run %s (its process died)", row.run_id)
            await self.clock.sleep(every_s)

    async def supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` (a trigger's, forever); when it fails, log why and start it
        again after a growing pause (1 s doubling to 60 s), so one trigger's trouble
        (a busy journal, a file watch limit) never stops the others."""
        pause = 1.0
        while True:
            try:
                await loop()
                return
            except (GmAgentError, OSError, ValueError) as exc:
                log.warning("%s stopped (%s); starting it again in %.0f s", name, exc, pause)
            await self.clock.sleep(pause)
            pause = min(pause * 2, 60.0)


async def serve(
    workspace: Path,
    environ: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_ready: Callable[[Serving], None] | None = None,
    port: int | None = None,
) -> None:
    """Host the workspace's triggers until cancelled (Ctrl-C).

    Args:
        workspace: the project directory.
        environ: environment for settings, secrets, keys and tools.
        clock: time and ids.
        on_ready: called once everything listens, with what is served.
        port: the webhook port, over ``[serve] port`` (0 picks a free one).

    Raises:
        ConfigError: the triggers are misconfigured, or the port is taken.
        JournalError: the journal cannot be used.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    triggers = find_triggers(settings)
    async with (
        await Journal.open(
            settings.journal_path, durability=settings.journal.durability, clock=clock
        ) as journal,
        anyio.create_task_group() as group,
    ):
        launcher = Launcher(
            settings, environ, journal, clock, group, triggers={t.name: t for t in triggers}
        )
        daemon = _Daemon(launcher, journal, clock)
        hooks = [t for t in triggers if isinstance(t, WebhookTrigger)]
        url = (
            await _start_webhooks(group, daemon, settings, environ, hooks, port) if hooks else None
        )
        for trigger in triggers:
            if isinstance(trigger, FilesTrigger):
                watch = functools.partial(daemon.watch, trigger)
                group.start_soon(daemon.supervise, f"file trigger {trigger.name!r}", watch)
            elif isinstance(trigger, ScheduleTrigger):
                timer = functools.partial(daemon.schedule, trigger)
                group.start_soon(daemon.supervise, f"schedule trigger {trigger.name!r}", timer)
        orphans = functools.partial(daemon.adopt_orphans, settings.serve.orphan_check_s)
        group.start_soon(daemon.supervise, "the orphan check", orphans)
        if on_ready is not None:
            on_ready(Serving(triggers, url))


async def _start_webhooks(
    group: anyio.abc.TaskGroup,
    daemon: _Daemon,
    settings: Settings,
    environ: Mapping[str, str],
    hooks: list[WebhookTrigger],
    port: int | None,
) -> str:
    """Start uvicorn on the webhook triggers' app; the base URL it listens on."""
    import socket

    import uvicorn

    app = webhook_app(
        hooks,
        environ,
        max_body_bytes=settings.serve.max_body_bytes,
        on_delivery=daemon.on_delivery,
        on_rejected=daemon.on_rejected,
    )
    host = settings.serve.host
    wanted = settings.serve.port if port is None else port
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, wanted))
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{wanted} ({exc.strerror}); set [serve] port in gm.toml"
        ) from exc
    listener.listen(128)
    config = uvicorn.Config(app, lifespan="off", ws="none", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    group.start_soon(lambda: server.serve(sockets=[listener]))
    bound = listener.getsockname()[1]
    return f"http://{host}:{bound}"


async def next_change(
    workspace: Path, patterns: tuple[str, ...], environ: Mapping[str, str], debounce_ms: int = 500
) -> tuple[str, ...]:
    """Wait for the next settled burst of changes to files matching ``patterns``
    (not the agent's own writes); the changed paths (``gm run --watch``)."""
    settings = load_settings(workspace, environ)
    async with await Journal.open(settings.journal_path, create=False) as journal:
        async for paths in watch_changes(
            workspace, patterns, debounce_ms=debounce_ms, own_write=own_writes(journal)
        ):
            return paths
    return ()


def watched_paths(task: Path) -> tuple[tuple[str, ...], int]:
    """What ``gm run TASK --watch`` watches: the paths and debounce of the task's
    files triggers (``on:``), else every file of the workspace (500 ms)."""
    files = [t for t in load_task(task).on if isinstance(t, FilesTrigger)]
    if not files:
        return ("*",), 500
    return tuple(p for t in files for p in t.paths), min(t.debounce_ms for t in files)
